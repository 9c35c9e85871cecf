"""Where pkl5shim's time goes: its round trip against floors written the same way.

Run on two ranks::

    mpiexec -n 2 python benchmarks/overhead.py [--rounds 10] [--trips 3000]

Each row is timed for four implementations in one run, their order rotated every round
(medians over the rounds, microseconds per round trip):

- ``mpi4py``: mpi4py's own lowercase ``send``/``recv``;
- ``thin``: a subclass whose ``send``/``recv`` are Python functions that only call
  mpi4py's: the least a shim written in Python can cost;
- ``two-msg``: a minimal out-of-band protocol in Python with the same MPI calls as
  pkl5shim's large path (``dumps_oob``; a header message with the stream and the sizes;
  the buffers on a second communicator; ``Waitall``): what pkl5shim's engine adds to it
  is its bookkeeping;
- ``pkl5shim``: ``pkl5shim.Intracomm``.

With ``--threshold N`` the buffers of N bytes or more go out of band
(``MPI.pickle.THRESHOLD``, 256 KiB by default) for ``two-msg`` and ``pkl5shim`` alike: at
16K, the ``two-msg`` column against ``mpi4py`` shows where one message stops paying.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from mpi4py import MPI

import pkl5shim

KIB = 1 << 10
ROWS: dict[str, Any] = {
    "int": 12345,
    "dict 3 entries": {"a": 1, "b": [1, 2, 3], "c": "text"},
    "bytes 1 KiB": b"x" * KIB,
    "str 1 KiB": "y" * KIB,
    "uint8 1 KiB": np.zeros(KIB, np.uint8),
    "uint8 16 KiB": np.zeros(16 * KIB, np.uint8),
    "uint8 64 KiB": np.zeros(64 * KIB, np.uint8),
    "uint8 128 KiB": np.zeros(128 * KIB, np.uint8),
    "uint8 256 KiB": np.zeros(256 * KIB, np.uint8),
    "uint8 1 MiB": np.zeros(1024 * KIB, np.uint8),
    "uint8 4 MiB": np.zeros(4096 * KIB, np.uint8),
}
Pair = tuple[Callable[[Any, int], None], Callable[[int], Any]]


def implementations(world: MPI.Intracomm) -> dict[str, Pair]:
    """The send and receive of each implementation, each on its own communicator."""
    raw, header_comm, payload_comm = world.Dup(), world.Dup(), world.Dup()
    shim = pkl5shim.Intracomm(world.Dup())
    c_send, c_recv = MPI.Comm.send, MPI.Comm.recv

    class Thin(MPI.Intracomm):
        def send(self, obj: Any, dest: int, tag: int = 0) -> None:
            return c_send(self, obj, dest, tag)

        def recv(self, buf: Any = None, source: int = -1, tag: int = -1, status: Any = None) -> Any:
            return c_recv(self, buf, source, tag, status)

    thin = Thin(world.Dup())

    def two_msg_send(obj: Any, dest: int) -> None:
        stream, buffers = MPI.pickle.dumps_oob(obj)
        sizes = [memoryview(b).nbytes for b in buffers]
        head = header_comm.Isend(pickle.dumps((stream, sizes), 5), dest, 1)
        MPI.Request.Waitall([head] + [payload_comm.Isend(b, dest, 1) for b in buffers])

    def two_msg_recv(source: int) -> Any:
        stream, sizes = header_comm.recv(None, source, 1)
        buffers = [np.empty(size, np.uint8) for size in sizes]
        MPI.Request.Waitall([payload_comm.Irecv(b, source, 1) for b in buffers])
        return MPI.pickle.loads_oob(stream, buffers)

    return {
        "mpi4py": (lambda o, d: raw.send(o, d, 1), lambda s: raw.recv(None, s, 1)),
        "thin": (lambda o, d: thin.send(o, d, 1), lambda s: thin.recv(None, s, 1)),
        "two-msg": (two_msg_send, two_msg_recv),
        "pkl5shim": (lambda o, d: shim.send(o, d, 1), lambda s: shim.recv(None, s, 1)),
    }


def round_trips(world: MPI.Intracomm, pair: Pair, obj: Any, trips: int) -> float:
    """Seconds per round trip over ``trips`` round trips (rank 0 -> 1 -> 0)."""
    send, recv = pair
    world.Barrier()
    start = time.perf_counter()
    if world.Get_rank() == 0:
        for _ in range(trips):
            send(obj, 1)
            recv(1)
    else:
        for _ in range(trips):
            send(recv(0), 0)
    return (time.perf_counter() - start) / trips


def main() -> None:
    """Print one row per object on rank 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--trips", type=int, default=3000, help="round trips per timed batch")
    parser.add_argument("--threshold", type=int, default=None, help="MPI.pickle.THRESHOLD")
    args = parser.parse_args()
    world = MPI.COMM_WORLD
    if world.Get_size() != 2:
        raise SystemExit("run with exactly 2 ranks: mpiexec -n 2 python benchmarks/overhead.py")
    if args.threshold is not None:
        MPI.pickle.THRESHOLD = args.threshold
    impls = implementations(world)
    names = list(impls)
    rank = world.Get_rank()
    if rank == 0:
        library = MPI.Get_library_version().splitlines()[0].strip(" \x00")
        print(f"{library}; THRESHOLD {MPI.pickle.THRESHOLD}; rounds {args.rounds}")
        print(f"{'object':16s}" + "".join(f"{n:>11s}" for n in names) + "   pkl5shim/mpi4py")
    for obj_name, obj in ROWS.items():
        nbytes = getattr(obj, "nbytes", 0)
        trips = max(50, min(args.trips, args.trips * 64 * KIB // max(nbytes, 1)))
        times: dict[str, list[float]] = {name: [] for name in names}
        for round_number in range(args.rounds):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                round_trips(world, impls[name], obj, max(10, trips // 10))  # warm-up
                times[name].append(round_trips(world, impls[name], obj, trips))
        if rank == 0:
            medians = {name: statistics.median(values) * 1e6 for name, values in times.items()}
            cells = "".join(f"{medians[n]:9.1f}us" for n in names)
            print(f"{obj_name:16s}{cells}   {medians['pkl5shim'] / medians['mpi4py']:.2f}")


if __name__ == "__main__":
    main()
