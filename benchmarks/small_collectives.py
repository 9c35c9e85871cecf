"""Small collectives back to back: plain mpi4py against pkl5shim, µs per call.

    mpiexec -n 2 python benchmarks/small_collectives.py [LABEL]

A 3-entry dict through every lowercase collective, 2 000 calls per timed batch after 50
untimed, 5 rounds alternating which of the two goes first; rank 0 prints the medians.
No barrier per call (collectives.py has one): this sees the microseconds of the layers.
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
obj = {"a": 1, "b": [1, 2, 3]}
OPERATIONS: dict[str, Callable[[Any], Any]] = {
    "bcast": lambda c: c.bcast(obj, 0),
    "gather": lambda c: c.gather(obj, 0),
    "scatter": lambda c: c.scatter([obj] * size if rank == 0 else None, 0),
    "allgather": lambda c: c.allgather(obj),
    "alltoall": lambda c: c.alltoall([obj] * size),
    "allreduce": lambda c: c.allreduce(rank),
}


def main() -> None:
    label = sys.argv[1] if len(sys.argv) > 1 else ""
    times: dict[tuple[str, str], list[float]] = {}
    for round_ in range(5):
        for name, call in OPERATIONS.items():
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
        for name in OPERATIONS:
            plain = statistics.median(times[(name, "plain")]) * 1e6
            ours = statistics.median(times[(name, "shim")]) * 1e6
            print(f"{label} {name:10s} plain {plain:6.2f} us  shim {ours:6.2f} us  "
                  f"{ours / plain:5.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
