"""An allgather where some ranks have much more data than others, under mpiexec::

    mpiexec -n 4 python benchmarks/uneven_allgather.py [MODE] [NBYTES] [--other N] [--calls 8]

Every fourth rank (0, 4, ...) has ``NBYTES`` bytes (default 1 MiB), the others
``--other`` bytes (default 0).  Prints the slowest rank's time of each call, in ms.
MODE is one of:

- ``Allgatherv``: blocking ``MPI_Allgatherv`` of the bytes;
- ``Iallgatherv``: ``MPI_Iallgatherv`` + ``MPI_Wait``;
- ``Iallgatherv-test``: ``MPI_Iallgatherv`` polled with ``MPI_Test``;
- ``plain``, ``pkl5shim``: the lowercase ``allgather`` of a uint8 array of that size
  (of an ``int`` on ranks with no bytes);
- ``pkl5shim-allgatherv``: pkl5shim forced to use one ``MPI_Iallgatherv`` (by default it
  uses one broadcast per rank with bytes for uneven counts).

It found that the Intel MPI wheel's ``MPI_Iallgatherv`` is slow for uneven counts
(docs/benchmarks.md, "An uneven allgather"), and later that one broadcast per rank beats
the ``MPI_Iallgatherv`` of MPICH and Open MPI too.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
from mpi4py import MPI

import pkl5shim
import pkl5shim.collectives

MODES = [
    "Allgatherv",
    "Iallgatherv",
    "Iallgatherv-test",
    "plain",
    "pkl5shim",
    "pkl5shim-allgatherv",
]


def call_of(mode: str, nbytes: int, other: int) -> Callable[[], object]:
    """The call that ``mode`` times, on COMM_WORLD."""
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    counts = [nbytes if r % 4 == 0 else other for r in range(size)]
    displs = [sum(counts[:r]) for r in range(size)]
    mine = np.ones(counts[rank], np.uint8)
    area = np.empty(sum(counts), np.uint8)
    spec = [area, counts, displs, MPI.BYTE]
    obj = mine if counts[rank] else rank
    shim = pkl5shim.Intracomm(comm)
    if mode == "pkl5shim-allgatherv":
        pkl5shim.collectives.UNEVEN_ALLGATHERV_IS_SLOW = False

    def polled() -> None:
        request = comm.Iallgatherv(mine, spec)
        while not request.Test():
            os.sched_yield()

    calls: dict[str, Callable[[], object]] = {
        "Allgatherv": lambda: comm.Allgatherv(mine, spec),
        "Iallgatherv": lambda: comm.Iallgatherv(mine, spec).Wait(),
        "Iallgatherv-test": polled,
        "plain": lambda: comm.allgather(obj),
        "pkl5shim": lambda: shim.allgather(obj),
        "pkl5shim-allgatherv": lambda: shim.allgather(obj),
    }
    return calls[mode]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="pkl5shim", choices=MODES)
    parser.add_argument("nbytes", nargs="?", type=int, default=1 << 20)
    parser.add_argument("--other", type=int, default=0, help="bytes of the other ranks")
    parser.add_argument("--calls", type=int, default=8)
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    call = call_of(args.mode, args.nbytes, args.other)
    times = []
    for _ in range(args.calls):
        comm.Barrier()
        start = time.perf_counter()
        call()
        times.append(comm.allreduce(time.perf_counter() - start, MPI.MAX))
    if comm.Get_rank() == 0:
        shown = " ".join(f"{1e3 * t:.1f}" for t in times)
        print(
            f"{args.mode} {args.nbytes} B (others {args.other} B), {comm.Get_size()} ranks: "
            f"{shown} ms",
            flush=True,
        )


if __name__ == "__main__":
    main()
