"""Every algorithm of pkl5shim once, with cheap data, for 8 and 16 ranks (tests/test_scale.py).

Run by ``tests/mpi/runner.py`` (its directory is first on ``sys.path``, so the
helpers and check modules of ``tests/mpi`` import).  Results are compared with
plain mpi4py's on the same data and with the expected values.  The checks of
``tests/mpi`` that loop over every root and data kind are meant for 1-4 ranks
(the unpicklable-scatter check alone is cubic in the number of ranks).
"""

from __future__ import annotations

from typing import Any

import check_collectives as collective_checks
import check_p2p_basic as p2p_checks
import check_reductions as reduction_checks
import numpy as np
from common import comm, expect_same, left, rank, right, size, world
from mpi4py import MPI

import pkl5shim

MIB = 1 << 20


def item(r: int, large: bool) -> dict[str, Any]:
    """A small dict, or one holding a 1 MiB array (out of band)."""
    if large:
        return {"r": r, "array": np.arange(MIB // 8, dtype=np.float64) + r}
    return {"r": r, "values": [r, 2 * r, "x" * (r % 7)]}


def check_p2p_ring_small_and_large() -> None:
    p2p_checks.check_isend_recv_small_and_large()
    p2p_checks.check_irecv_then_isend()


def check_p2p_fan_in_with_any_source_and_fan_out() -> None:
    if rank == 0:
        requests = [comm.irecv(source=MPI.ANY_SOURCE, tag=5) for _ in range(size - 1)]
        world.Barrier()  # every receive is posted before anyone sends
        got = pkl5shim.Request.waitall(requests)
        expect_same(sorted(obj["r"] for obj in got), list(range(1, size)), "one from each rank")
        for obj in got:
            expect_same(obj, item(obj["r"], obj["r"] % 3 == 0), f"from rank {obj['r']}")
        pkl5shim.Request.waitall([comm.isend(item(d, d % 3 == 1), d, 6) for d in range(1, size)])
    else:
        world.Barrier()
        comm.send(item(rank, rank % 3 == 0), 0, 5)
        expect_same(comm.recv(source=0, tag=6), item(rank, rank % 3 == 1), "from rank 0")


def collectives_like_plain() -> None:
    """Every collective at two roots, small and large: like plain mpi4py, and as expected."""
    for root in (0, size - 1):
        for large in (False, True):
            what = f"root {root}, large {large}"
            obj = item(root, large) if rank == root else None
            expect_same(comm.bcast(obj, root), item(root, large), f"bcast {what}")
            mine = item(rank, large and rank % 4 == 0)
            gathered = comm.gather(mine, root)
            expect_same(gathered, world.gather(mine, root), f"gather {what}: plain")
            if rank == root:
                expected = [item(r, large and r % 4 == 0) for r in range(size)]
                expect_same(gathered, expected, f"gather {what}")
            items = [item(d, large and d % 4 == 1) for d in range(size)] if rank == root else None
            expect_same(comm.scatter(items, root), item(rank, large and rank % 4 == 1), what)
    for large in (False, True):
        mine = item(rank, large and rank % 4 == 0)  # some ranks large, the others small
        everyone = [item(r, large and r % 4 == 0) for r in range(size)]
        expect_same(comm.allgather(mine), everyone, f"allgather, large {large}")
    expect_same(comm.allgather(item(rank, True)), [item(r, True) for r in range(size)], "even")
    row = [item(100 * rank + d, d == (rank + 1) % size) for d in range(size)]
    column = [item(100 * s + rank, rank == (s + 1) % size) for s in range(size)]
    expect_same(comm.alltoall(row), column, "alltoall")
    expect_same(comm.alltoall(row), world.alltoall(row), "alltoall: plain")
    for root in (0, size - 1):
        for value in reduction_checks.operands("SUM", rank):
            ours, plain = comm.reduce(value, MPI.SUM, root), world.reduce(value, MPI.SUM, root)
            expect_same(ours, plain, f"reduce at {root}")
    array = np.full(40_000, float(rank))  # 320 kB: out of band
    for name in ("allreduce", "scan", "exscan"):
        ours = getattr(comm, name)(array, MPI.SUM)
        expect_same(ours, getattr(world, name)(array, MPI.SUM), f"{name}: plain")
    comm.barrier()


def check_collectives_match_plain() -> None:
    collectives_like_plain()


def check_collectives_with_a_pending_any_source_any_tag_irecv() -> None:
    # The whole set again while a wildcard irecv is pending: every wait polls it,
    # and no collective message may match it.
    pending = comm.irecv(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG)
    collectives_like_plain()
    matched_early = pending.test()[0]
    world.Barrier()  # nobody sends the real message before every rank has looked
    comm.send(("p2p", rank), right, 7)
    assert not matched_early, "a collective's message matched the user's irecv"
    expect_same(pending.wait(), ("p2p", left), "the wildcard irecv")


def check_reductions_every_op_match_plain() -> None:
    reduction_checks.check_allreduce_scan_exscan_match_plain_for_every_op()
    reduction_checks.check_unpicklable_value_fails_every_rank_of_an_allreduce()


def check_intercomm_reductions_match_plain() -> None:
    reduction_checks.check_intercomm_reduce_and_allreduce_match_plain()


def check_unpicklable_bcast_root_fails_every_rank() -> None:
    collective_checks.check_unpicklable_bcast_root_raises_there_and_remote_error_elsewhere()


def check_neighbor_collectives_on_a_periodic_ring() -> None:
    ours = pkl5shim.wrap(world.Create_cart([size], periods=[True]))
    plain = world.Create_cart([size], periods=[True])
    try:
        mine = item(rank, rank % 4 == 0)
        gathered = ours.neighbor_allgather(mine)
        expect_same(gathered, plain.neighbor_allgather(mine), "neighbor_allgather: plain")
        expect_same(gathered, [item(left, left % 4 == 0), item(right, right % 4 == 0)], "values")
        sent = [item(10 * rank, True), item(10 * rank + 1, False)]
        expect_same(ours.neighbor_alltoall(sent), plain.neighbor_alltoall(sent), "alltoall")
    finally:
        ours.Free()
        plain.Free()
