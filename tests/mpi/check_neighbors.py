"""neighbor_allgather and neighbor_alltoall of pkl5shim against plain mpi4py on every topology."""

import numpy as np
from common import comm, expect_same, left, rank, right, size, world
from expect import Soft, raises
from mpi4py import MPI

import pkl5shim


def topologies():
    """(name, plain topology communicator) pairs, made collectively on every rank."""
    dims2 = MPI.Compute_dims(size, 2)
    made = [
        ("cart 1-D periodic", world.Create_cart([size], periods=[True])),
        ("cart 1-D open", world.Create_cart([size], periods=[False])),
        ("cart 2-D periodic", world.Create_cart(dims2, periods=[True, True])),
        ("cart 1 x size, periodic (repeated neighbours)", world.Create_cart([1, size], [1, 1])),
    ]
    index = [2 * (i + 1) for i in range(size)]
    edges = [n for i in range(size) for n in ((i - 1) % size, (i + 1) % size)]
    made.append(("graph ring", world.Create_graph(index, edges)))
    made.append(
        (
            "dist graph with repeated edges",
            world.Create_dist_graph_adjacent([left, left, right], [right, right, left]),
        )
    )
    return made


def item(r: int, k: int, large: bool):
    if large:
        return {"from": r, "edge": k, "data": np.arange(150_000 + k, dtype=np.float64) * (r + 1)}
    return (r, k, "x" * k)


def check_neighbor_collectives_match_plain_on_every_topology():
    soft = Soft()
    for name, plain in topologies():
        ours = pkl5shim.wrap(plain)
        soft.true(hasattr(ours, "neighbor_alltoall") and isinstance(ours, pkl5shim.Comm), name)
        outdegree = len(plain.outedges)
        for large in (False, True):
            obj = item(rank, -1, large)
            got, ref = ours.neighbor_allgather(obj), plain.neighbor_allgather(obj)
            soft(expect_same, got, ref, f"{name}: neighbor_allgather large={large}")
            items = [item(rank, k, large) for k in range(outdegree)]
            got, ref = ours.neighbor_alltoall(items), plain.neighbor_alltoall(items)
            soft(expect_same, got, ref, f"{name}: neighbor_alltoall large={large}")
        plain.Free()
    soft.done()


def check_neighbor_alltoall_with_wrong_item_count_raises_and_leaves_no_message():
    cart = comm.Create_cart([size], periods=[True])
    assert isinstance(cart, pkl5shim.Cartcomm)
    exc = raises(ValueError, lambda: cart.neighbor_alltoall([1, 2, 3]))
    assert "expecting 2 items" in str(exc), exc
    plain = world.Create_cart([size], periods=[True])
    expect_same(cart.neighbor_alltoall(["l", "r"]), plain.neighbor_alltoall(["l", "r"]))
    plain.Free()
    cart.Free()
