"""Time per call of each lowercase collective: plain mpi4py, mpi4py.util.pkl5, pkl5shim, uppercase.

One process count, under mpiexec::

    mpiexec -n 4 python benchmarks/collectives.py [--rounds 5] [--json out.json]

or 2, 3 and 4 ranks, each in its own mpiexec, then one table per count and a
plot (run this without mpiexec; needs matplotlib for the plot)::

    python benchmarks/collectives.py --all [--rounds 5] [--png docs/collectives.png]

Objects: an 8-byte array, a 1 MiB, a 16 MiB and a 64 MiB float64 array (per rank, or per item for
scatter/alltoall); ``allgather-one`` is an allgather where only rank 0 has the array and
the others an ``int`` (uneven counts). Every call is preceded by a barrier, its time is
the slowest rank's, and each implementation runs once untimed right before it is timed;
the order of the implementations rotates every round (allocator bias, see DESIGN.md) and
medians over the rounds are reported. The uppercase calls (``Bcast``, ``Gatherv``,
``Scatterv``, ``Allgatherv``, ``Alltoallv``, ``Allreduce``) receive into a freshly
allocated buffer each call, as the lowercase ones must.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

COLLECTIVES = [
    "bcast", "gather", "scatter", "allgather", "allgather-one", "alltoall", "allreduce"
]
SIZES = {"8 B": 8, "1 MiB": 1 << 20, "16 MiB": 16 << 20, "64 MiB": 64 << 20}
IMPLEMENTATIONS = ["plain", "pkl5", "pkl5shim", "upper"]
COUNTS = [2, 3, 4]
COLORS = {"plain": "tab:blue", "pkl5": "tab:orange", "pkl5shim": "tab:green", "upper": "tab:red"}
MPIEXEC_TIMEOUT = 1200


def payload(nbytes: int, seed: int) -> np.ndarray:
    return np.full(nbytes // 8, float(seed), dtype=np.float64)


def lowercase_call(comm: Any, name: str, nbytes: int) -> Callable[[], Any]:
    """A call of the lowercase collective ``name`` of ``comm`` (plain, pkl5 or pkl5shim)."""
    rank, size = comm.Get_rank(), comm.Get_size()
    mine = payload(nbytes, rank)
    items = [payload(nbytes, 10 * rank + d) for d in range(size)]
    calls = {
        "bcast": lambda: comm.bcast(mine if rank == 0 else None, 0),
        "gather": lambda: comm.gather(mine, 0),
        "scatter": lambda: comm.scatter(items if rank == 0 else None, 0),
        "allgather": lambda: comm.allgather(mine),
        "allgather-one": lambda: comm.allgather(mine if rank == 0 else rank),
        "alltoall": lambda: comm.alltoall(items),
        "allreduce": lambda: comm.allreduce(mine),
    }
    return calls[name]


def uppercase_call(comm: Any, name: str, nbytes: int) -> Callable[[], Any]:
    """The matching buffer call, receiving into fresh memory every time."""
    from mpi4py import MPI

    rank, size = comm.Get_rank(), comm.Get_size()
    mine = payload(nbytes, rank)
    count = mine.size
    every = np.concatenate([payload(nbytes, 10 * rank + d) for d in range(size)])
    counts = [count] * size
    displs = [count * i for i in range(size)]

    def fresh(n: int) -> np.ndarray:
        return np.empty(n, dtype=np.float64)

    def bcast() -> Any:
        buf = mine if rank == 0 else fresh(count)
        comm.Bcast(buf, 0)
        return buf

    def gather() -> Any:
        out = fresh(count * size) if rank == 0 else None
        comm.Gatherv(mine, [out, counts, displs, MPI.DOUBLE] if rank == 0 else None, 0)
        return out

    def scatter() -> Any:
        out = fresh(count)
        comm.Scatterv([every, counts, displs, MPI.DOUBLE] if rank == 0 else None, out, 0)
        return out

    def allgather() -> Any:
        out = fresh(count * size)
        comm.Allgatherv(mine, [out, counts, displs, MPI.DOUBLE])
        return out

    def allgather_one() -> Any:
        out = fresh(count)
        sizes = [count] + [0] * (size - 1)
        comm.Allgatherv(mine[: sizes[rank]], [out, sizes, [0] * size, MPI.DOUBLE])
        return out

    def alltoall() -> Any:
        out = fresh(count * size)
        comm.Alltoallv([every, counts, displs, MPI.DOUBLE], [out, counts, displs, MPI.DOUBLE])
        return out

    def allreduce() -> Any:
        out = fresh(count)
        comm.Allreduce(mine, out, MPI.SUM)
        return out

    return locals()[name.replace("-", "_")]


def run_one_count(rounds: int) -> dict[str, Any]:
    """Measure everything on this mpiexec's ranks; rank 0 returns the medians."""
    from mpi4py import MPI
    from mpi4py.util import pkl5

    import pkl5shim

    world = MPI.COMM_WORLD
    comms = {
        "plain": world.Dup(),
        "pkl5": pkl5.Intracomm(world.Dup()),
        "pkl5shim": pkl5shim.Intracomm(world.Dup()),
        "upper": world.Dup(),
    }
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name in COLLECTIVES:
        for label, nbytes in SIZES.items():
            calls = {}
            for impl, comm in comms.items():
                if impl == "pkl5" and name == "allreduce":
                    continue  # mpi4py.util.pkl5 has no allreduce
                maker = uppercase_call if impl == "upper" else lowercase_call
                calls[impl] = maker(comm, name, nbytes)
            times: dict[str, list[float]] = {impl: [] for impl in calls}
            order = list(calls)
            for round_number in range(rounds):
                shift = round_number % len(order)
                for impl in order[shift:] + order[:shift]:
                    calls[impl]()  # untimed: the allocator sees the same pattern first
                    world.Barrier()
                    start = time.perf_counter()
                    result = calls[impl]()
                    elapsed = time.perf_counter() - start
                    del result
                    times[impl].append(world.allreduce(elapsed, op=MPI.MAX))
            results.setdefault(name, {})[label] = {
                impl: statistics.median(values) for impl, values in times.items()
            }
    library = MPI.Get_library_version().splitlines()[0].strip(" \x00")
    return {
        "nprocs": world.Get_size(),
        "rounds": rounds,
        "library": library,
        "date": time.strftime("%Y-%m-%d"),
        "results": results,
    }


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a / b:.2f}x"


def table(report: dict[str, Any]) -> str:
    n = report["nprocs"]
    lines = [
        f"### {n} ranks (oversubscribed on 2 cores when more than 2), median of "
        f"{report['rounds']} rounds, ms per call",
        "",
        "| collective | size | plain | pkl5 | pkl5shim | upper "
        "| shim/plain | shim/pkl5 | shim/upper |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, by_size in report["results"].items():
        for label, t in by_size.items():
            cells = [f"{t[i] * 1e3:.3f}" if i in t else "-" for i in IMPLEMENTATIONS]
            shim = t.get("pkl5shim")
            lines.append(
                f"| {name} | {label} | {' | '.join(cells)} | {ratio(shim, t.get('plain'))} "
                f"| {ratio(shim, t.get('pkl5'))} | {ratio(shim, t.get('upper'))} |"
            )
    return "\n".join(lines)


def verdicts(report: dict[str, Any]) -> str:
    """One line per target of issue 18 and collective: met or missed, with the ratio."""
    lines = []
    for name, by_size in report["results"].items():
        for label, t in by_size.items():
            shim = t["pkl5shim"]
            if label == "8 B":
                targets = [("<=1.10x plain", shim / t["plain"], 1.10)]
            elif label == "1 MiB":
                best = min(t["plain"], t.get("pkl5", t["plain"]))
                targets = [("<=0.9x best(plain,pkl5)", shim / best, 0.9)]
            else:
                targets = [("<=1.2x upper", shim / t["upper"], 1.2)]
                if label == "16 MiB" and name in ("bcast", "allgather"):
                    targets.append(("<=0.67x pkl5", shim / t["pkl5"], 0.67))
            for text, value, limit in targets:
                verdict = "met" if value <= limit else "MISSED"
                lines.append(f"target {name} {label} {text}: {value:.2f} {verdict}")
    return "\n".join(lines)


def plot(reports: list[dict[str, Any]], path: str) -> None:
    """One panel per collective and size: ms per call against ranks, every panel labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(SIZES), len(COLLECTIVES), figsize=(20, 10), squeeze=False)
    for row, label in enumerate(SIZES):
        for col, name in enumerate(COLLECTIVES):
            ax = axes[row][col]
            for impl in IMPLEMENTATIONS:
                points = [
                    (r["nprocs"], r["results"][name][label][impl] * 1e3)
                    for r in reports
                    if impl in r["results"][name][label]
                ]
                if points:
                    xs, ys = zip(*points)
                    ax.plot(xs, ys, marker="o", label=impl, color=COLORS[impl])
            ax.set_title(f"{name}, {label}", fontsize=9)
            ax.set_xticks(COUNTS)
            ax.set_yscale("log")
            ax.set_xlabel("ranks", fontsize=8)
            ax.set_ylabel("ms per call", fontsize=8)
            ax.legend(fontsize=6)
    first = reports[0]
    fig.suptitle(
        f"lowercase collectives, time per call (median of {first['rounds']} rounds; lower is "
        f"better): {first.get('library', '?')}, {first.get('date', '?')}, 2 cores"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def run_all(rounds: int, png: str | None) -> None:
    reports = []
    here = os.path.dirname(os.path.abspath(__file__))
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    for n in COUNTS:
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            extra = ["--oversubscribe"] if "Open MPI" in _version(mpiexec) else []
            command = [
                mpiexec,
                *extra,
                "-n",
                str(n),
                sys.executable,
                os.path.join(here, "collectives.py"),
            ]
            command += ["--rounds", str(rounds), "--json", out.name]
            subprocess.run(command, check=True, timeout=MPIEXEC_TIMEOUT)
            with open(out.name) as stream:
                reports.append(json.load(stream))
    for report in reports:
        print(table(report), end="\n\n")
        print(verdicts(report), end="\n\n")
    if png:
        plot(reports, png)
        print(f"plot written to {png}")


def _version(mpiexec: str) -> str:
    done = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=60)
    return done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", help="write rank 0's report there (one process count)")
    parser.add_argument("--all", action="store_true", help="run 2, 3 and 4 ranks, print tables")
    parser.add_argument("--png", help="with --all: write the plot there")
    args = parser.parse_args()
    if args.all:
        run_all(args.rounds, args.png)
        return
    report = run_one_count(args.rounds)
    from mpi4py import MPI

    if MPI.COMM_WORLD.Get_rank() == 0:
        if args.json:  # for --all, which prints every table once at the end
            with open(args.json, "w") as stream:
                json.dump(report, stream)
        else:
            print(table(report), flush=True)
            print(verdicts(report), flush=True)


if __name__ == "__main__":
    main()
