"""Ping-pong pkl5 against pkl5shim only, alternating their order every round.

Run: timeout 300 mpiexec -n 2 python benchmarks/pair.py [nbytes]  (default 16 MiB)
Prints the median round-trip time of each over 10 rounds of 5 round trips.
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np
from mpi4py import MPI
from mpi4py.util import pkl5

import pkl5shim


def round_trips(comm: MPI.Comm, obj: np.ndarray, count: int) -> float:
    """Time ``count`` round trips rank 0 -> 1 -> 0; return seconds per round trip."""
    world = MPI.COMM_WORLD
    world.Barrier()
    start = time.perf_counter()
    for _ in range(count):
        if world.Get_rank() == 0:
            comm.send(obj, 1, 7)
            comm.recv(None, 1, 7)
        else:
            comm.send(comm.recv(None, 0, 7), 0, 7)
    return (time.perf_counter() - start) / count


def main() -> None:
    world = MPI.COMM_WORLD
    comms = {"pkl5": pkl5.Intracomm(world), "pkl5shim": pkl5shim.Intracomm(world)}
    nbytes = int(sys.argv[1]) if len(sys.argv) > 1 else 16 << 20
    obj = np.ones(nbytes, np.uint8)
    times: dict[str, list[float]] = {name: [] for name in comms}
    for rnd in range(10):
        order = list(comms) if rnd % 2 else list(comms)[::-1]
        for name in order:
            times[name].append(round_trips(comms[name], obj, 5))
    if world.Get_rank() == 0:
        for name, values in times.items():
            print(f"{name:9s} {statistics.median(values) * 1e3:8.2f} ms  ({nbytes} bytes)")


if __name__ == "__main__":
    main()
