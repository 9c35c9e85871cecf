"""pkl5shim.wrap: the right class for each kind of communicator, accepted wherever mpi4py's is."""

import os
import tempfile

import numpy as np
from common import comm, expect_same, left, rank, right, size, world
from mpi4py import MPI
from mpi4py.util import pkl5

import pkl5shim


def big(r: int) -> dict:
    return {"rank": r, "data": np.arange(100_000 + r, dtype="f8")}


def ring_round_trip(c: MPI.Comm, dest: int, source: int) -> None:
    """Send a large object to ``dest`` and check the one received from ``source``."""
    me = c.Get_rank()
    request = c.isend(big(me), dest, tag=11)
    expect_same(c.recv(source=source, tag=11), big(source), type(c).__name__)
    request.wait()


def check_wrap_world_and_split_give_intracomm():
    wrapped = pkl5shim.wrap(world)
    assert type(wrapped) is pkl5shim.Intracomm, type(wrapped)
    assert pkl5shim.wrap(wrapped) is wrapped
    assert wrapped == world and isinstance(wrapped, MPI.Intracomm)
    ring_round_trip(wrapped, right, left)
    half = world.Split(rank % 2, rank)
    sub = pkl5shim.wrap(half)
    assert type(sub) is pkl5shim.Intracomm
    me, count = sub.Get_rank(), sub.Get_size()
    ring_round_trip(sub, (me + 1) % count, (me - 1) % count)
    sub.Free()


def check_wrap_cartesian_keeps_topology_methods():
    cart = pkl5shim.wrap(world.Create_cart([size], periods=[True]))
    assert type(cart) is pkl5shim.Cartcomm and isinstance(cart, MPI.Cartcomm)
    source, dest = cart.Shift(0, 1)
    assert (source, dest) == (left, right), (source, dest)
    assert cart.Get_coords(rank) == [rank]
    ring_round_trip(cart, dest, source)
    expect_same(cart.neighbor_allgather(rank), [left, right] if size > 1 else [0, 0])
    copy = cart.Dup()
    assert type(copy) is pkl5shim.Cartcomm and copy.Get_topology() == MPI.CART
    ring_round_trip(copy, dest, source)
    copy.Free()
    cart.Free()


def check_wrap_graph_and_dist_graph():
    index = [2 * (i + 1) for i in range(size)]
    edges = [e for i in range(size) for e in ((i - 1) % size, (i + 1) % size)]
    graph = pkl5shim.wrap(world.Create_graph(index, edges))
    assert type(graph) is pkl5shim.Graphcomm
    expect_same(graph.Get_neighbors(rank), [left, right])
    ring_round_trip(graph, right, left)
    dist = pkl5shim.wrap(world.Create_dist_graph_adjacent([left], [right]))
    assert type(dist) is pkl5shim.Distgraphcomm
    sources, destinations, _weights = dist.Get_dist_neighbors()
    expect_same((sources, destinations), ([left], [right]))
    ring_round_trip(dist, right, left)
    graph.Free()
    dist.Free()


def check_wrap_intercomm_or_self():
    if size == 1:  # an intercommunicator needs two groups: check COMM_SELF instead
        selfcomm = pkl5shim.wrap(MPI.COMM_SELF.Dup())
        assert type(selfcomm) is pkl5shim.Intracomm
        ring_round_trip(selfcomm, 0, 0)
        selfcomm.Free()
        return
    color = rank % 2
    local = world.Split(color, rank)
    inter = pkl5shim.wrap(local.Create_intercomm(0, world, 1 - color, tag=5))
    assert type(inter) is pkl5shim.Intercomm and inter.Is_inter()
    if inter.Get_rank() == 0:
        request = inter.isend(big(rank), 0, tag=3)
        got = inter.recv(source=0, tag=3)
        request.wait()
        assert got["rank"] == 1 - color, got["rank"]
        expect_same(got["data"], big(1 - color)["data"])
    inter.Free()
    local.Free()


def check_wrap_of_null_communicator_raises():
    try:
        pkl5shim.wrap(MPI.COMM_NULL)
    except ValueError as exc:
        assert "COMM_NULL" in str(exc)
    else:
        raise AssertionError("wrap(MPI.COMM_NULL) did not raise")


def check_wrapped_communicator_is_accepted_by_mpi4py():
    assert MPI.Comm.Compare(comm, world) == MPI.IDENT
    assert MPI.Intracomm(comm) == world
    assert MPI.Comm.f2py(comm.py2f()) == world
    plain_pkl5 = pkl5.Intracomm(comm)
    expect_same(plain_pkl5.allgather(rank), list(range(size)))
    assert comm.Get_attr(MPI.TAG_UB) == world.Get_attr(MPI.TAG_UB)
    assert comm.Get_errhandler() is not None
    counts = np.zeros(1)
    comm.Allreduce(np.ones(1), counts, op=MPI.SUM)
    assert counts[0] == size
    window = MPI.Win.Create(np.zeros(4), comm=comm)
    window.Free()
    allocated = MPI.Win.Allocate(64, comm=comm)
    allocated.Free()


def check_wrapped_communicator_opens_files():
    path = comm.bcast(os.path.join(tempfile.mkdtemp(), "wrap.bin") if rank == 0 else None, 0)
    handle = MPI.File.Open(comm, path, MPI.MODE_CREATE | MPI.MODE_RDWR)
    handle.Write_at_all(rank * 8, np.array([rank], dtype="i8"))
    handle.Close()
    comm.Barrier()
    if rank == 0:
        expect_same(np.fromfile(path, dtype="i8"), np.arange(size, dtype="i8"))
        os.remove(path)


def ring_in(c: MPI.Comm) -> None:
    """A large-object ring round trip on ``c``: proves it has a working channel."""
    me, count = c.Get_rank(), c.Get_size()
    ring_round_trip(c, (me + 1) % count, (me - 1) % count)


def check_communicators_derived_from_a_wrapped_one_are_wrapped():
    split = comm.Split(rank % 2, rank)
    shared = comm.Split_type(MPI.COMM_TYPE_SHARED)
    created = comm.Create(world.Get_group())
    grouped = comm.Create_group(world.Get_group())
    cart = comm.Create_cart([size], periods=[True])
    sub = cart.Sub([True])
    dist = comm.Create_dist_graph_adjacent([left], [right])
    everyone = [(split, pkl5shim.Intracomm), (shared, pkl5shim.Intracomm),
                (created, pkl5shim.Intracomm), (grouped, pkl5shim.Intracomm),
                (cart, pkl5shim.Cartcomm), (sub, pkl5shim.Cartcomm),
                (dist, pkl5shim.Distgraphcomm)]  # fmt: skip
    for derived, kind in everyone:
        assert type(derived) is kind, (type(derived), kind)
        ring_in(derived)
        derived.Free()


def check_excluded_ranks_get_comm_null():
    first = world.Get_group().Incl([0])
    created = comm.Create(first)
    if rank == 0:
        assert type(created) is pkl5shim.Intracomm
        ring_in(created)
        created.Free()
    else:
        assert created == MPI.COMM_NULL
    first.Free()


def check_intercomm_and_merge_are_wrapped():
    if size == 1:  # two groups are needed: check Split with MPI.UNDEFINED instead
        assert comm.Split(MPI.UNDEFINED, 0) == MPI.COMM_NULL
        return
    color = rank % 2
    local = comm.Split(color, rank)
    inter = local.Create_intercomm(0, comm, 1 - color, tag=6)
    assert type(inter) is pkl5shim.Intercomm
    merged = inter.Merge(high=bool(color))
    assert type(merged) is pkl5shim.Intracomm
    ring_in(merged)
    for made in (merged, inter, local):
        made.Free()
