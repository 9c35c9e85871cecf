"""What check mode, PKL5_ISEND=copy and statistics cost: isend ping-pong in every mode, one run.

Run on two ranks::

    mpiexec -n 2 python benchmarks/modes.py [--rounds R] [--batch-ms MS]

Each round trip is ``isend`` + ``recv`` + ``wait`` on both ranks (the calls
the modes change).  Columns: plain mpi4py, mpi4py's pkl5, and pkl5shim with
its default settings ("shim"), with check mode ("check", as ``PKL5_CHECK=1``),
with ``PKL5_ISEND=copy`` ("copy") and with statistics ("stats", as
``PKL5_STATS``).  The modes are switched inside the one process between
batches (the settings are otherwise read once at start-up), so every column
is measured in the same run, rotated as in ``p2p.py``.  Ratios: mode / shim.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from mpi4py import MPI
from mpi4py.util import pkl5
from p2p import (
    KIB,
    MIB,
    TAG,
    Exchange,
    Payload,
    byte_array,
    calibrate,
    format_time,
    load_average,
    ratio,
    rotated,
    same,
    small_dict,
    timed_batch,
)

import pkl5shim
from pkl5shim import check, observe
from pkl5shim import p2p as engine_p2p
from pkl5shim.config import settings

MODES = ["plain", "pkl5", "shim", "check", "copy", "stats"]
SIZES = [KIB, 64 * KIB, MIB, 16 * MIB, 64 * MIB]


def isend_exchange(comm: Any) -> Exchange:
    """Round trips in which both ranks send with ``isend`` and wait after receiving."""
    peer = 1 - comm.Get_rank()

    def exchange(obj: Any, n: int) -> Any:
        received = obj
        for _ in range(n):
            if comm.Get_rank() == 0:
                request = comm.isend(obj, peer, TAG)
                received = comm.recv(None, peer, TAG)
                request.wait()
            else:
                received = comm.recv(None, peer, TAG)
                request = comm.isend(received, peer, TAG)
                request.wait()
        return received

    return exchange


@contextmanager
def mode(name: str) -> Iterator[None]:
    """Switch pkl5shim into a mode for the duration of a batch."""
    if name == "check":
        check.activate("warn")
    elif name == "copy":
        engine_p2p.settings = replace(settings, isend_copy=True)  # settings are frozen: swap them
    elif name == "stats":
        observe.start()
    try:
        yield
    finally:
        check.activate("")
        engine_p2p.settings = settings
        observe.stop()


def in_mode(name: str, exchange: Exchange) -> Exchange:
    """``exchange`` run with pkl5shim in mode ``name``."""

    def run(obj: Any, n: int) -> Any:
        with mode(name):
            return exchange(obj, n)

    return run


def measure(
    comm: MPI.Intracomm, runs: dict[str, Exchange], payload: Payload, index: int, args: Any
) -> tuple[dict[str, Any], int]:
    """Median seconds per round trip of each mode; and the batch size."""
    results: dict[str, Any] = {}
    for number, (name, exchange) in enumerate(runs.items(), start=1):
        expected = payload.build(100 * index + number)
        ok = comm.allreduce(same(expected, exchange(expected, 1)), op=MPI.LAND)
        results[name] = None if ok else "WRONG"
    obj = payload.build(0)
    n = calibrate(comm, runs["plain"], obj, args.batch_ms / 1e3)
    active = [name for name in runs if results[name] is None]
    times: dict[str, list[float]] = {name: [] for name in active}
    for round_number in range(args.rounds):
        for name in rotated(active, round_number + index):
            times[name].append(timed_batch(comm, runs[name], obj, n))
    results.update({name: statistics.median(times[name]) for name in active})
    return results, n


def main() -> None:
    """Print the table on rank 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-ms", type=float, default=40.0)
    args = parser.parse_args()
    world = MPI.COMM_WORLD
    if world.Get_size() != 2:
        sys.exit("run with exactly 2 ranks: mpiexec -n 2 python benchmarks/modes.py")
    shim = pkl5shim.Intracomm(world)
    plain_run, shim_run = isend_exchange(world), isend_exchange(shim)
    runs: dict[str, Callable[[Any, int], Any]] = {
        "plain": plain_run,
        "pkl5": isend_exchange(pkl5.Intracomm(world)),
        "shim": shim_run,
        **{name: in_mode(name, shim_run) for name in ("check", "copy", "stats")},
    }
    rows = [Payload("int", 8, lambda seed: 12345 + seed), Payload("dict 1000", 0, small_dict)]
    rows += [Payload(f"uint8 {n // KIB} KiB", n, lambda s, n=n: byte_array(n, s)) for n in SIZES]
    ratios = [m for m in MODES if m not in ("shim",)]
    rank = world.Get_rank()
    if rank == 0:
        library = MPI.Get_library_version().splitlines()[0].strip(" \x00")
        print(f"MPI library: {library}; rounds {args.rounds}; load {load_average()}")
        print("times: median per isend+recv+wait round trip; ratios: column / shim")
        header = ["payload", "n", *MODES, *(f"{m}/shim" for m in ratios)]
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
    for index, payload in enumerate(rows):
        results, n = measure(world, runs, payload, index, args)
        if rank == 0:
            cells = [payload.name, str(n), *(format_time(results[m]) for m in MODES)]
            cells += [ratio(results[m], results["shim"]) for m in ratios]
            print("| " + " | ".join(cells) + " |", flush=True)
    if rank == 0:
        print(f"load at end: {load_average()}")


if __name__ == "__main__":
    main()
