"""Plain mpi4py against pkl5shim, side by side, in a few seconds (run with mpiexec -n 2).

    mpiexec -n 2 python examples/speedup.py

Rank 0 sends a numpy array to rank 1 and gets it back (a round trip), through plain
``MPI.COMM_WORLD`` and through ``pkl5shim.Intracomm(MPI.COMM_WORLD)``, for sizes from
8 bytes to 64 MiB, and prints the median round-trip time of each.  The full
measurements, with pkl5 and uppercase ``Send``/``Recv``, are in docs/benchmarks.md.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from mpi4py import MPI

import pkl5shim

SIZES = [8, 1 << 10, 64 << 10, 1 << 20, 16 << 20, 64 << 20]
BUDGET = 0.25  # seconds of round trips per size and communicator


def round_trips(comm: MPI.Comm, array: np.ndarray) -> float:
    """Median seconds of a round trip of ``array`` between ranks 0 and 1."""
    rank = comm.Get_rank()
    times: list[float] = []
    spent = 0.0
    while True:
        comm.Barrier()
        start = time.perf_counter()
        if rank == 0:
            comm.send(array, dest=1)
            comm.recv(source=1)
        else:
            comm.send(comm.recv(source=0), dest=0)
        elapsed = time.perf_counter() - start
        times.append(elapsed)
        spent += elapsed
        # rank 0 decides when to stop, so both ranks do the same number of round trips
        if comm.bcast(len(times) >= 3 and (spent > BUDGET or len(times) >= 1000), root=0):
            return statistics.median(times)


def label(nbytes: int) -> str:
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift:
            return f"{nbytes >> shift} {unit}"
    return f"{nbytes} B"


def main() -> None:
    world = MPI.COMM_WORLD
    if world.Get_size() != 2:
        raise SystemExit("run me on 2 ranks: mpiexec -n 2 python examples/speedup.py")
    shim = pkl5shim.Intracomm(world)
    rows = []
    for nbytes in SIZES:
        array = np.ones(nbytes, dtype="u1")
        plain = round_trips(world, array)
        fast = round_trips(shim, array)
        rows.append((label(nbytes), plain, fast))
    if world.Get_rank() == 0:
        print(f"{'array':>8} {'plain mpi4py':>14} {'pkl5shim':>12} {'speed-up':>9}")
        for name, plain, fast in rows:
            print(f"{name:>8} {plain * 1e3:>11.3f} ms {fast * 1e3:>9.3f} ms {plain / fast:>8.2f}x")
        print("round trips of a numpy array between 2 ranks, median; speed-up = plain / pkl5shim")


if __name__ == "__main__":
    main()
