"""The objects users send besides plain arrays: plain mpi4py against pkl5shim.

Run on two ranks (``pip install -e '.[frames]'`` for pandas and pyarrow)::

    mpiexec -n 2 python benchmarks/objects.py [--rounds R] [--size SIZE]

For each object (about SIZE bytes of data, 8 MiB by default) and each implementation
(plain: ``MPI.COMM_WORLD``'s lowercase methods; pkl5shim: ``pkl5shim.Intracomm``), the
table gives the median over R rounds of a ping-pong round trip (``send``/``recv``) and of
a ``bcast`` from rank 0 followed by a barrier, each round timing a batch of round trips
after one untimed; the implementations alternate within each round.  A first pass over
all objects is discarded (warm-up).  ``out of band`` is
the share of the object's bytes that pkl5shim's pickling leaves out of band (the rest is
copied into the pickle stream).  Each received object is compared once with what was sent.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from mpi4py import MPI

import pkl5shim
from pkl5shim import codec

MIB = 1 << 20


def objects(nbytes: int) -> dict[str, Callable[[], Any]]:
    """Name -> builder of an object holding about ``nbytes`` of data."""
    import pandas as pd
    import pyarrow as pa

    rows = nbytes // 20  # x: 8 bytes, n: 8 bytes, c: 1 byte code, s: about 3 bytes per row
    words = [f"w{i % 97}" for i in range(rows)]
    rng = np.random.default_rng(5)
    raw = rng.integers(0, 256, nbytes, dtype="u1")
    grid = np.arange(nbytes // 4, dtype="f8").reshape(-1, 1024)  # twice nbytes
    floats = np.arange(rows, dtype="f8")

    def frame() -> Any:
        index = np.arange(rows)
        return pd.DataFrame(
            {
                "x": index * 0.5,
                "n": index,
                "c": pd.Categorical.from_codes(index % 7, list("abcdefg")),
                "s": pd.array(words, dtype="str"),
            }
        )

    return {
        "numpy array (contiguous)": lambda: raw.copy(),
        "pandas DataFrame (f8, i8, category, str)": frame,
        "pyarrow Table (f8, f8, str)": lambda: pa.table({"x": floats, "y": floats, "s": words}),
        "dict of 8 arrays": lambda: {str(i): part for i, part in enumerate(np.split(raw, 8))},
        "list of 8 arrays": lambda: list(np.split(raw.copy(), 8)),
        "bytes": lambda: raw.tobytes(),
        "bytearray": lambda: bytearray(raw.tobytes()),
        "PickleBuffer(bytearray)": lambda: pickle.PickleBuffer(bytearray(raw.tobytes())),
        "non-contiguous view [:, ::2]": lambda: grid[:, ::2],
        "np.ascontiguousarray(view)": lambda: np.ascontiguousarray(grid[:, ::2]),
    }


def data_bytes(obj: Any) -> int:
    """Bytes of the object's data (its pickle stream plus out-of-band buffers)."""
    stream, buffers = codec.dumps(obj)
    return len(stream) + sum(memoryview(b).nbytes for b in buffers)


def out_of_band_share(obj: Any) -> float:
    stream, buffers = codec.dumps(obj)
    oob = sum(memoryview(b).nbytes for b in buffers)
    return oob / (len(stream) + oob)


def equal(got: Any, sent: Any) -> bool:
    """Whether ``got`` holds the data of ``sent`` (by their in-band pickles)."""
    if isinstance(sent, pickle.PickleBuffer):
        return bytes(memoryview(got)) == bytes(sent.raw())
    if isinstance(sent, np.ndarray):
        return bool(np.array_equal(got, sent))
    return pickle.dumps(got, protocol=5) == pickle.dumps(sent, protocol=5)


def timed(run: Callable[[int], None], batch: int, world: MPI.Intracomm) -> float:
    run(1)  # untimed
    world.Barrier()
    start = time.perf_counter()
    run(batch)
    world.Barrier()
    return (time.perf_counter() - start) / batch


def ping_pong(comm: MPI.Intracomm, obj: Any) -> Callable[[int], None]:
    rank = comm.Get_rank()

    def run(n: int) -> None:
        for _ in range(n):
            if rank == 0:
                comm.send(obj, dest=1, tag=3)
                comm.recv(source=1, tag=3)
            else:  # the same object back (a PickleBuffer arrives as a plain buffer)
                comm.recv(source=0, tag=3)
                comm.send(obj, dest=0, tag=3)

    return run


def broadcast(comm: MPI.Intracomm, obj: Any) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            comm.bcast(obj if comm.Get_rank() == 0 else None, root=0)

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--size", type=int, default=8 * MIB, help="bytes of data per object")
    args = parser.parse_args()
    world = MPI.COMM_WORLD
    if world.Get_size() != 2:
        print("run on 2 ranks: mpiexec -n 2 python benchmarks/objects.py", file=sys.stderr)
        return 2
    comms = {"plain": world, "pkl5shim": pkl5shim.Intracomm(world)}
    rank = world.Get_rank()
    rows = []
    builders = list(objects(args.size).items())
    # A first pass over all objects, discarded: the first large messages of a process pay
    # for page faults and the allocator's growth (measured: 24 ms against 5 ms for plain's
    # first 8 MiB array round trip).
    for _name, build in builders:
        for comm in comms.values():
            timed(ping_pong(comm, build()), 1, world)
            timed(broadcast(comm, build()), 1, world)
    for name, build in builders:
        began = time.perf_counter()
        obj = build()
        for label, comm in comms.items():  # correctness, once each
            got = comm.sendrecv(obj, dest=1 - rank, source=1 - rank)
            assert equal(got, obj), (name, label)
        times: dict[str, list[float]] = {f"{k} {m}": [] for k in comms for m in ("rt", "bc")}
        for round_ in range(args.rounds):
            order = list(comms.items())[:: 1 if round_ % 2 == 0 else -1]
            for label, comm in order:
                times[f"{label} rt"].append(timed(ping_pong(comm, obj), args.batch, world))
                times[f"{label} bc"].append(timed(broadcast(comm, obj), args.batch, world))
        medians = {key: statistics.median(values) * 1e3 for key, values in times.items()}
        rows.append((name, data_bytes(obj), out_of_band_share(obj), medians))
        if rank == 0:
            print(f"  {name}: {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
    if rank == 0:
        print(f"mpi4py {MPI.Get_library_version().splitlines()[0].strip()[:60]}")
        print(f"{args.rounds} rounds, batches of {args.batch}; times in ms (median)")
        head = f"{'object':<42} {'MiB':>6} {'oob':>5} {'plain rt':>9} {'shim rt':>8}"
        print(head + f" {'rt ratio':>8} {'plain bc':>9} {'shim bc':>8} {'bc ratio':>8}")
        for name, nbytes, share, m in rows:
            print(
                f"{name:<42} {nbytes / MIB:>6.1f} {share:>5.0%} {m['plain rt']:>9.2f} "
                f"{m['pkl5shim rt']:>8.2f} {m['pkl5shim rt'] / m['plain rt']:>8.2f} "
                f"{m['plain bc']:>9.2f} {m['pkl5shim bc']:>8.2f} "
                f"{m['pkl5shim bc'] / m['plain bc']:>8.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
