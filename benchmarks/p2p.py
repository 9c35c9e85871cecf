"""Ping-pong round-trip times: uppercase MPI, plain mpi4py, mpi4py's pkl5 and pkl5shim.

``shim-channel`` is pkl5shim with the size table and the stream of every large
object sent on the channel instead of inline in its header (the protocol before
inline headers): ``shim/channel`` is what inline headers save.

Run on two ranks::

    mpiexec -n 2 python benchmarks/p2p.py [--rounds R] [--quick] [--max-size SIZE]

Rank 0 sends a payload to rank 1, which sends what it received back.  For each
payload the implementations are timed in R rounds; each round rotates their
order and runs each one once untimed right before timing it (a fixed order
biases the results through the memory allocator).  A batch of N round trips is
timed per implementation and round, N being calibrated so that a batch takes
about ``--batch-ms`` milliseconds (at least 3 round trips); the table reports
the median over the rounds of the time per round trip.  Each implementation's
result is checked once per payload, with contents it has not seen before, so
that one that moves no data cannot look fast.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mpi4py
import numpy as np
from mpi4py import MPI
from mpi4py.util import pkl5

import pkl5shim
from pkl5shim import wire

TAG = 7
KIB = 1 << 10
MIB = 1 << 20
ARRAY_SIZES = [
    8, 64, KIB, 16 * KIB, 64 * KIB, 256 * KIB,
    MIB, 4 * MIB, 16 * MIB, 64 * MIB, 256 * MIB,
]  # fmt: skip
QUICK_ARRAY_SIZES = [8, KIB, 64 * KIB, MIB, 16 * MIB, 64 * MIB]
IMPLEMENTATIONS = ["upper-reused", "upper-fresh", "plain", "pkl5", "shim-channel", "pkl5shim"]
MAX_BATCH = 20000

Exchange = Callable[[Any, int], Any]
"""Run n round trips with a payload (this rank's side); return the last object received."""


# -- payloads ------------------------------------------------------------------
@dataclass(frozen=True)
class Payload:
    """One row of the table: a name, its size in bytes and how to build it."""

    name: str
    nbytes: int
    build: Callable[[int], Any]
    """Build the object; different seeds give different contents of the same shape."""


def format_size(nbytes: int) -> str:
    """Return ``nbytes`` as ``8 B``, ``16 KiB``, ``4 MiB``..."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", MIB), ("KiB", KIB)):
        if nbytes >= scale and nbytes % scale == 0:
            return f"{nbytes // scale} {unit}"
    return f"{nbytes} B"


def parse_size(text: str) -> int:
    """Parse a byte count such as ``4096``, ``64K``, ``16M`` or ``1G``."""
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    scales = {"K": KIB, "M": MIB, "G": 1 << 30}
    if text and text[-1] in scales:
        return int(text[:-1]) * scales[text[-1]]
    return int(text)


def byte_array(nbytes: int, seed: int) -> np.ndarray:
    """A uint8 array whose contents depend on ``seed`` (not a constant)."""
    pattern = np.arange(min(nbytes, 4093), dtype=np.int64)
    pattern = ((pattern * 131 + seed * 7919) % 251).astype(np.uint8)
    return np.resize(pattern, nbytes)


def float_arrays(seed: int, count: int = 100, nbytes: int = MIB) -> list[np.ndarray]:
    """``count`` float64 arrays of ``nbytes`` each, with seed-dependent contents."""
    base = np.arange(nbytes // 8, dtype=np.float64)
    return [base + (seed * count + i) for i in range(count)]


def small_dict(seed: int) -> dict[str, int]:
    """A dict of 1000 small entries."""
    return {str(i): i + seed for i in range(1000)}


def payloads(array_sizes: list[int], max_size: int) -> list[Payload]:
    """The rows of the table, smallest first, without those above ``max_size`` bytes."""
    rows = [
        Payload("int", 8, lambda seed: 12345 + seed),
        Payload("dict 3 entries", 0, lambda seed: {"a": seed, "b": [1, 2, 3], "c": "text"}),
        Payload("dict 1000 entries", 0, small_dict),
    ]
    rows += [
        Payload(f"uint8 {format_size(n)}", n, lambda seed, n=n: byte_array(n, seed))
        for n in array_sizes
    ]
    rows.append(Payload("list 100 x 1 MiB f8", 100 * MIB, float_arrays))
    return [row for row in rows if row.nbytes <= max_size]


def same(a: Any, b: Any) -> bool:
    """Tell whether two payloads are equal (arrays by value, lists item by item)."""
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and bool(np.array_equal(a, b))
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


# -- implementations -------------------------------------------------------------
def as_arrays(obj: Any) -> list[np.ndarray] | None:
    """The arrays an uppercase implementation sends for ``obj``; ``None`` if it cannot."""
    if isinstance(obj, np.ndarray):
        return [obj]
    if isinstance(obj, list) and all(isinstance(item, np.ndarray) for item in obj):
        return obj
    return None


def like(obj: Any, arrays: list[np.ndarray]) -> Any:
    """Return received ``arrays`` in the shape of ``obj`` (one array or a list)."""
    return arrays[0] if isinstance(obj, np.ndarray) else arrays


def upper_exchange(comm: MPI.Intracomm, template: Any, fresh: bool) -> Exchange | None:
    """Uppercase Send/Recv of each array, into reused buffers or fresh ``np.empty`` ones."""
    shapes = as_arrays(template)
    if shapes is None:
        return None
    reused = [np.empty_like(array) for array in shapes]
    peer = 1 - comm.Get_rank()

    def receive() -> list[np.ndarray]:
        buffers = [np.empty_like(array) for array in shapes] if fresh else reused
        for buffer in buffers:
            comm.Recv(buffer, peer, TAG)
        return buffers

    def send(arrays: list[np.ndarray]) -> None:
        for array in arrays:
            comm.Send(array, peer, TAG)

    def exchange(obj: Any, n: int) -> Any:
        arrays = as_arrays(obj)
        for _ in range(n):
            if comm.Get_rank() == 0:
                send(arrays)
                arrays = receive()
            else:
                arrays = receive()
                send(arrays)
        return like(obj, arrays)

    return exchange


def channel_headers_exchange(comm: MPI.Comm) -> Exchange:
    """pkl5shim with every size table and stream sent on the channel (kind 0 headers), as
    before they travelled inline in the header: what the inline header saves."""
    exchange = lower_exchange(comm)

    def on_the_channel(obj: Any, n: int) -> Any:
        fits_inline, wire.fits_inline = wire.fits_inline, lambda *_: False
        try:
            return exchange(obj, n)
        finally:
            wire.fits_inline = fits_inline

    return on_the_channel


def lower_exchange(comm: MPI.Comm) -> Exchange:
    """Lowercase send/recv of whole objects on ``comm``."""
    peer = 1 - comm.Get_rank()

    def exchange(obj: Any, n: int) -> Any:
        for _ in range(n):
            if comm.Get_rank() == 0:
                comm.send(obj, peer, TAG)
                received = comm.recv(None, peer, TAG)
            else:
                received = comm.recv(None, peer, TAG)
                comm.send(received, peer, TAG)
        return received

    return exchange


@dataclass
class Comms:
    """The communicators of the lowercase implementations, all over ``COMM_WORLD``."""

    plain: MPI.Intracomm
    pkl5: Any
    pkl5shim: Any


def exchanges(comms: Comms, template: Any) -> dict[str, Exchange | None]:
    """Every implementation's round trip for payloads shaped like ``template``."""
    return {
        "upper-reused": upper_exchange(comms.plain, template, fresh=False),
        "upper-fresh": upper_exchange(comms.plain, template, fresh=True),
        "plain": lower_exchange(comms.plain),
        "pkl5": lower_exchange(comms.pkl5),
        "shim-channel": channel_headers_exchange(comms.pkl5shim),
        "pkl5shim": lower_exchange(comms.pkl5shim),
    }


# -- measuring -------------------------------------------------------------------
def verify(comm: MPI.Intracomm, exchange: Exchange, payload: Payload, seed: int) -> bool:
    """One round trip with new contents; both ranks check what they received."""
    expected = payload.build(seed)
    received = exchange(expected, 1)
    return bool(comm.allreduce(same(expected, received), op=MPI.LAND))


def timed_batch(comm: MPI.Intracomm, exchange: Exchange, obj: Any, n: int) -> float:
    """Warm up once, then time ``n`` round trips; return seconds per round trip (rank 0's)."""
    comm.Barrier()
    exchange(obj, 1)
    start = time.perf_counter()
    exchange(obj, n)
    elapsed = time.perf_counter() - start
    return comm.bcast(elapsed / n, root=0)


def calibrate(comm: MPI.Intracomm, exchange: Exchange, obj: Any, batch_seconds: float) -> int:
    """Number of round trips that takes about ``batch_seconds``, agreed by both ranks."""
    n = 1
    while True:
        # The better of two tries: a single hiccup must not shrink the batch.
        per_trip = min(timed_batch(comm, exchange, obj, n) for _ in range(2))
        if per_trip * n >= batch_seconds / 4 or n >= MAX_BATCH:
            return max(3, min(MAX_BATCH, round(batch_seconds / per_trip)))
        n *= 4


def rotated(names: list[str], shift: int) -> list[str]:
    """``names`` rotated left by ``shift`` (the same on every rank)."""
    shift %= len(names)
    return names[shift:] + names[:shift]


def measure_payload(
    comms: Comms, payload: Payload, index: int, rounds: int, batch_seconds: float
) -> tuple[dict[str, float | str | None], int]:
    """Median seconds per round trip of each implementation (or a note); and the batch size."""
    comm = comms.plain
    obj = payload.build(0)
    runs = exchanges(comms, obj)
    results: dict[str, float | str | None] = {name: None for name in runs}
    active = []
    for number, (name, exchange) in enumerate(runs.items(), start=1):
        if exchange is None:
            continue
        if verify(comm, exchange, payload, seed=100 * index + number):
            active.append(name)
        else:
            results[name] = "WRONG"
    n = calibrate(comm, runs["plain"], obj, batch_seconds)  # the slowest, in general
    times: dict[str, list[float]] = {name: [] for name in active}
    for round_number in range(rounds):
        for name in rotated(active, round_number + index):
            times[name].append(timed_batch(comm, runs[name], obj, n))
    for name in active:
        results[name] = statistics.median(times[name])
    return results, n


# -- printing --------------------------------------------------------------------
def format_time(seconds: float | str | None) -> str:
    """Return a time with a unit chosen for its size, or a note as is, or ``-``."""
    if seconds is None:
        return "-"
    if isinstance(seconds, str):
        return seconds
    for unit, scale in (("s", 1.0), ("ms", 1e-3)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-6:.3g} us"


def ratio(numerator: Any, denominator: Any) -> str:
    """Return ``numerator / denominator`` as ``1.23``, or ``-`` when either is missing."""
    if not isinstance(numerator, float) or not isinstance(denominator, float):
        return "-"
    return f"{numerator / denominator:.2f}"


RATIOS = [
    ("shim/plain", "plain"),
    ("shim/pkl5", "pkl5"),
    ("shim/upfresh", "upper-fresh"),
    ("shim/channel", "shim-channel"),
]


def target(payload: Payload) -> tuple[str, list[str], float]:
    """Issue 18's target for a payload: its name, what pkl5shim is compared with, the bound.

    Up to 16 KiB: within 1.05x plain mpi4py; 64 KiB to 1 MiB: at most 0.9x the faster
    of plain and pkl5; from 4 MiB: within 1.2x uppercase ``Recv`` into a fresh buffer.
    """
    if payload.nbytes <= 16 * KIB:
        return "<=1.05x plain", ["plain"], 1.05
    if payload.nbytes <= MIB:
        return "<=0.9x best(plain,pkl5)", ["plain", "pkl5"], 0.9
    return "<=1.2x upper-fresh", ["upper-fresh"], 1.2


def verdict(payload: Payload, results: dict[str, Any]) -> str:
    """``met`` or ``MISSED`` with the ratio against the target's reference, one run."""
    label, references, bound = target(payload)
    mine = results["pkl5shim"]
    others = [results[name] for name in references if isinstance(results[name], float)]
    if not isinstance(mine, float) or not others:
        return f"{label}: -"
    value = mine / min(others)
    return f"{label}: {value:.2f} {'met' if value <= bound else 'MISSED'}"


def table_row(payload: Payload, results: dict[str, Any], n: int) -> list[str]:
    """The cells of one payload's row, its verdict last."""
    cells = [payload.name, str(n)]
    cells += [format_time(results[impl]) for impl in IMPLEMENTATIONS]
    cells += [ratio(results["pkl5shim"], results[other]) for _label, other in RATIOS]
    return [*cells, verdict(payload, results)]


def print_row(cells: list[str]) -> None:
    """Print one table row: the first column left-aligned, the others right-aligned."""
    widths = [20, 7] + [13] * len(IMPLEMENTATIONS) + [13] * len(RATIOS)
    first, *rest = cells
    line = first.ljust(widths[0]) + "".join(c.rjust(w) for c, w in zip(rest, widths[1:]))
    if len(rest) == len(widths):  # the verdict, left-aligned after the ratios
        line += "  " + rest[-1]
    print(line, flush=True)


def print_preamble(args: argparse.Namespace) -> None:
    """Print the MPI library, versions, settings and command line."""
    command = shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    library = MPI.Get_library_version().splitlines()[0].strip(" \x00")  # Open MPI ends in NUL
    print(f"MPI library: {library}")
    print(f"MPI standard: {'.'.join(map(str, MPI.Get_version()))}")
    print(
        f"mpi4py {mpi4py.__version__}, "
        f"numpy {np.__version__}, pkl5shim {pkl5shim.__version__}, "
        f"Python {sys.version.split()[0]}"
    )
    print(
        f"ranks: {MPI.COMM_WORLD.Get_size()}, rounds: {args.rounds}, "
        f"batch target: {args.batch_ms:g} ms, max size: {format_size(args.max_size)}"
    )
    print(f"command (each rank): {command}")
    print(f"load average at start: {load_average()}")
    print("times: median over rounds of the time per round trip (rank 0 -> rank 1 -> rank 0);")
    print("n: round trips per timed batch; ratios: pkl5shim time / other time")
    print()


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (the machine may be shared)."""
    return ", ".join(f"{load:.2f}" for load in os.getloadavg())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None, help="rounds per payload (7; 3 quick)")
    parser.add_argument("--quick", action="store_true", help="fewer sizes and rounds")
    parser.add_argument(
        "--max-size", type=parse_size, default=None,
        help="skip payloads larger than this, e.g. 16M (default: 256M; 64M quick)",
    )  # fmt: skip
    parser.add_argument(
        "--batch-ms", type=float, default=None,
        help="target duration of one timed batch (default 60; 30 quick)",
    )  # fmt: skip
    parser.add_argument("--png", help="also write a plot of the array rows there (matplotlib)")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 3 if args.quick else 7
    if args.max_size is None:
        args.max_size = (64 if args.quick else 256) * MIB
    if args.batch_ms is None:
        args.batch_ms = 30.0 if args.quick else 60.0
    return args


def main() -> None:
    """Measure every payload and print the table on rank 0."""
    args = parse_args()
    world = MPI.COMM_WORLD
    if world.Get_size() != 2:
        if world.Get_rank() == 0:
            print("run with exactly 2 ranks: mpiexec -n 2 python benchmarks/p2p.py")
        world.Abort(2)
    comms = Comms(world, pkl5.Intracomm(world), pkl5shim.Intracomm(world))
    rank = world.Get_rank()
    if rank == 0:
        print_preamble(args)
        print_row(["payload", "n", *IMPLEMENTATIONS, *(label for label, _ in RATIOS), "target"])
    sizes = QUICK_ARRAY_SIZES if args.quick else ARRAY_SIZES
    measured: list[tuple[Payload, dict[str, Any]]] = []
    for index, payload in enumerate(payloads(sizes, args.max_size)):
        results, n = measure_payload(comms, payload, index, args.rounds, args.batch_ms / 1e3)
        measured.append((payload, results))
        if rank == 0:
            print_row(table_row(payload, results, n))
    if rank == 0:
        print(f"\nload average at end: {load_average()}")
        if args.png:
            plot(measured, args.png)
            print(f"plot written to {args.png}")


def plot(measured: list[tuple[Payload, dict[str, Any]]], path: str) -> None:
    """Round trip of the uint8 arrays against their size, and pkl5shim's ratios below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(p.nbytes, r) for p, r in measured if p.name.startswith("uint8")]
    fig, (times, ratios) = plt.subplots(2, 1, figsize=(9, 8), sharex=True)
    for impl in ("upper-fresh", "plain", "pkl5", "pkl5shim"):
        points = [(n, r[impl] * 1e6) for n, r in rows if isinstance(r[impl], float)]
        if points:
            times.plot(*zip(*points), marker="o", label=impl)
    for label, other in RATIOS[:3]:
        points = [
            (n, r["pkl5shim"] / r[other])
            for n, r in rows
            if isinstance(r["pkl5shim"], float) and isinstance(r[other], float)
        ]
        if points:
            ratios.plot(*zip(*points), marker="o", label=label)
    ratios.axhline(1.0, color="grey", linewidth=0.8)
    times.set(xscale="log", yscale="log", ylabel="round trip (us)")
    ratios.set(xscale="log", yscale="log", ylabel="pkl5shim / other", xlabel="array bytes")
    times.legend()
    ratios.legend()
    library = MPI.Get_library_version().splitlines()[0].strip(" \x00")
    fig.suptitle(
        f"send/recv round trip of a uint8 array, 2 ranks (lower is better)\n"
        f"{library}, {time.strftime('%Y-%m-%d')}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80)


if __name__ == "__main__":
    main()
