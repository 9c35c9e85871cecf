"""Plot p2p.py and collectives.py results measured across namespace hosts (on_hosts.py).

::

    python benchmarks/cluster_plot.py --p2p "1 host=p2p-1host.txt" --p2p "10 Gbit/s=p2p-10g.txt" \\
        --coll "2x2 10 Gbit/s=coll-2x2-10gbit.json" --png docs/cluster.png

``--p2p LABEL=FILE``: the output of ``benchmarks/p2p.py`` (its table is read back);
``--coll LABEL=FILE``: the ``--json`` report of ``benchmarks/collectives.py``. The first
panel draws the round trip of the uint8 arrays with the time the wire alone needs
(2 x size / rate, dotted) for labels that name a rate in Gbit/s; the second pkl5shim's
ratios to plain mpi4py and pkl5; the third the 64 MiB collectives.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

IMPLEMENTATIONS = ["upper-reused", "upper-fresh", "plain", "pkl5", "shim-channel", "pkl5shim"]
UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
SIZE_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def read_p2p(path: Path) -> dict[int, dict[str, float]]:
    """``{array bytes: {implementation: seconds per round trip}}`` from p2p.py's table."""
    rows: dict[int, dict[str, float]] = {}
    for line in path.read_text().splitlines():
        if not line.startswith("uint8 "):
            continue
        name, rest = line[:20], line[27:]
        number, unit = name.split()[1:3]
        cells = [rest[13 * i : 13 * (i + 1)].split() for i in range(len(IMPLEMENTATIONS))]
        rows[int(number) * SIZE_UNITS[unit]] = {
            impl: float(cell[0]) * UNITS[cell[1]]
            for impl, cell in zip(IMPLEMENTATIONS, cells)
            if len(cell) == 2
        }
    return rows


def gbits(label: str) -> float | None:
    """The rate a label names (``10 Gbit/s`` -> 10e9), or None."""
    found = re.search(r"([\d.]+)\s*Gbit", label)
    return float(found.group(1)) * 1e9 if found else None


def main() -> None:
    """Draw the three panels."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--p2p", action="append", default=[], help="LABEL=FILE")
    parser.add_argument("--coll", action="append", default=[], help="LABEL=FILE")
    parser.add_argument("--png", required=True)
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (times, ratios, colls) = plt.subplots(1, 3, figsize=(19, 6))
    for number, item in enumerate(args.p2p):
        label, _, name = item.partition("=")
        rows = read_p2p(Path(name))
        sizes = sorted(rows)
        color = f"C{number}"
        for impl, style in (("pkl5shim", "-"), ("plain", "--"), ("upper-fresh", "-.")):
            points = [(n, rows[n][impl] * 1e6) for n in sizes if impl in rows[n]]
            times.plot(
                *zip(*points), style, marker="o", ms=3, color=color, label=f"{label}: {impl}"
            )
        rate = gbits(label)
        if rate:
            times.plot(sizes, [2 * n * 8 / rate * 1e6 for n in sizes], ":", color=color,
                       label=f"{label}: wire (2 x size / rate)")  # fmt: skip
        for other, style in (("plain", "-"), ("pkl5", "--")):
            points = [
                (n, rows[n]["pkl5shim"] / rows[n][other])
                for n in sizes
                if "pkl5shim" in rows[n] and other in rows[n]
            ]
            ratios.plot(*zip(*points), style, marker="o", ms=3, color=color,
                        label=f"{label}: pkl5shim / {other}")  # fmt: skip
    times.set(xscale="log", yscale="log", xlabel="uint8 array bytes", ylabel="round trip (us)",
              title="send/recv round trip, 2 ranks")  # fmt: skip
    ratios.axhline(1.0, color="grey", linewidth=0.8)
    ratios.set(xscale="log", yscale="log", xlabel="uint8 array bytes", ylabel="ratio",
               title="pkl5shim / plain (solid), / pkl5 (dashed); < 1: pkl5shim faster")  # fmt: skip
    times.legend(fontsize=6)
    ratios.legend(fontsize=6)
    names = ["bcast", "gather", "scatter", "allgather", "alltoall", "allreduce"]
    width = 0.8 / max(1, len(args.coll))
    for number, item in enumerate(args.coll):
        label, _, name = item.partition("=")
        report = json.loads(Path(name).read_text())["results"]
        values = [report[c]["64 MiB"]["pkl5shim"] / report[c]["64 MiB"]["upper"] for c in names]
        colls.bar([i + number * width for i in range(len(names))], values, width, label=label)
    colls.axhline(1.0, color="grey", linewidth=0.8)
    colls.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names)
    colls.set(ylabel="pkl5shim time / uppercase time", title="collectives, 64 MiB per rank")
    colls.legend(fontsize=7)
    fig.suptitle("pkl5shim across namespace hosts (tbf-limited veth links), MPICH 5.0.2 wheel")
    fig.tight_layout()
    fig.savefig(args.png, dpi=80)
    print(f"plot written to {args.png}")


if __name__ == "__main__":
    main()
