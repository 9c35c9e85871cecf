"""Small calls back to back: plain mpi4py against pkl5shim, µs per call, with issue 18's verdict.

    mpiexec -n N python benchmarks/small_calls.py [LABEL]

A 3-entry dict (an int for ``allreduce``) through every lowercase collective and the usual
point-to-point patterns: ``send``/``recv`` and ``isend``/``irecv``/``wait`` with a partner
(``rank ^ 1``), a halo exchange with both ring neighbours (two ``irecv``, two ``isend``,
one ``Request.waitall``) and ``sendrecv`` around the ring.  2 000 calls per timed batch
after 50 untimed, 5 rounds alternating which of the two goes first; rank 0 prints the
medians, the ratio and the verdict against issue 18's target (within 1.05x plain for
point-to-point, 1.10x for collectives).  No barrier per call (collectives.py has one):
this sees the microseconds of the layers.  (Called ``small_collectives.py`` until
2026-12-03, when the point-to-point rows came.)
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from mpi4py import MPI

import pkl5shim

comm = MPI.COMM_WORLD
shim = pkl5shim.Intracomm(comm)
rank, size = comm.Get_rank(), comm.Get_size()
partner = rank ^ 1 if rank ^ 1 < size else MPI.PROC_NULL
left, right = (rank - 1) % size, (rank + 1) % size
obj = {"a": 1, "b": [1, 2, 3]}


def send_recv(c: Any) -> None:
    if rank < partner:
        c.send(obj, partner, 1)
        c.recv(None, partner, 1)
    else:
        c.recv(None, partner, 1)
        c.send(obj, partner, 1)


def isend_irecv(c: Any) -> None:
    received = c.irecv(source=partner, tag=2)
    sent = c.isend(obj, partner, 2)
    received.wait()
    sent.wait()


def halo(c: Any) -> None:
    requests = [c.irecv(source=left, tag=3), c.irecv(source=right, tag=4)]
    requests += [c.isend(obj, right, 3), c.isend(obj, left, 4)]
    type(requests[0]).waitall(requests)


POINT_TO_POINT: dict[str, Callable[[Any], Any]] = {
    "send/recv": send_recv,
    "isend/irecv": isend_irecv,
    "halo": halo,
    "sendrecv": lambda c: c.sendrecv(obj, right, 5, None, left, 5),
}
COLLECTIVES: dict[str, Callable[[Any], Any]] = {
    "bcast": lambda c: c.bcast(obj, 0),
    "gather": lambda c: c.gather(obj, 0),
    "scatter": lambda c: c.scatter([obj] * size if rank == 0 else None, 0),
    "allgather": lambda c: c.allgather(obj),
    "alltoall": lambda c: c.alltoall([obj] * size),
    "allreduce": lambda c: c.allreduce(rank),
}
TARGETS = {**dict.fromkeys(POINT_TO_POINT, 1.05), **dict.fromkeys(COLLECTIVES, 1.10)}


def main() -> None:
    label = sys.argv[1] if len(sys.argv) > 1 else ""
    operations = {**POINT_TO_POINT, **COLLECTIVES}
    times: dict[tuple[str, str], list[float]] = {}
    for round_ in range(5):
        for name, call in operations.items():
            pair = [("plain", comm), ("shim", shim)]
            for kind, target in pair if round_ % 2 else pair[::-1]:
                for _ in range(50):
                    call(target)
                comm.Barrier()
                start = time.perf_counter()
                for _ in range(2000):
                    call(target)
                times.setdefault((name, kind), []).append((time.perf_counter() - start) / 2000)
    if rank == 0:
        print(f"{MPI.Get_library_version().splitlines()[0][:40]}; {size} ranks")
        for name in operations:
            plain = statistics.median(times[(name, "plain")]) * 1e6
            ours = statistics.median(times[(name, "shim")]) * 1e6
            ratio, target = ours / plain, TARGETS[name]
            verdict = "met" if ratio <= target else "MISSED"
            print(f"{label} {name:11s} plain {plain:6.2f} us  shim {ours:6.2f} us  "
                  f"{ratio:5.2f}x  target <={target:.2f}x: {verdict}")  # fmt: skip


if __name__ == "__main__":
    main()
