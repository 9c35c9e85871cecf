"""The ``PKL5_STATS`` output: a table per rank, the sum on rank 0, or JSON files, at exit.

Reads ``metrics.stats()``; written at exit (``metrics.write_at_exit``) once imported, by
``comm``: every program that loads pkl5shim's classes writes what ``PKL5_STATS`` asks for.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from .config import settings
from .metrics import stats, write_at_exit

# -- the table --------------------------------------------------------------------
_COLUMNS = (
    ("sent", "objects_sent", "d"),
    ("bytes sent", "bytes_sent", "bytes"),
    ("received", "objects_received", "d"),
    ("bytes recv", "bytes_received", "bytes"),
    ("eager", "eager", "d"),
    ("out-of-band", "out_of_band", "d"),
    ("zero-copy", "zero_copy_bytes", "bytes"),
    ("pickle ms", "pickle_seconds", "ms"),
    ("unpickle ms", "unpickle_seconds", "ms"),
)


def _bytes(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(nbytes) < 1024 or unit == "GiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} TiB"  # pragma: no cover - the loop returns


def _cell(row: dict[str, Any], key: str, kind: str) -> str:
    if key in ("eager", "out_of_band"):
        value = row[f"{key}_sent"] + row[f"{key}_received"]
    else:
        value = row[key]
    if kind == "bytes":
        return _bytes(value)
    if kind == "ms":
        return f"{value * 1e3:.2f}"
    return str(value)


def table(counts: dict[str, Any], title: str) -> str:
    """Format ``stats()`` (or a sum of them) as a text table, one row per method."""
    rows = [(name, row) for name, row in counts["methods"].items()]
    rows.append(("all", counts["total"]))
    header = ["method", *(label for label, _key, _kind in _COLUMNS)]
    cells = [[name, *(_cell(row, key, kind) for _l, key, kind in _COLUMNS)] for name, row in rows]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
    lines = [title]
    for line in [header, *cells]:
        first = line[0].ljust(widths[0])
        lines.append("  ".join([first, *(c.rjust(w) for c, w in zip(line[1:], widths[1:]))]))
    lines.append(f"peak bytes in flight: {_bytes(counts['peak_bytes_in_flight'])}")
    return "\n".join(lines)


def summed(all_counts: list[dict[str, Any]]) -> dict[str, Any]:
    """The sum of several processes' ``stats()`` (the peak is the largest of the peaks)."""
    total: dict[str, Any] = {"methods": {}, "total": {}, "peak_bytes_in_flight": 0}
    for counts in all_counts:
        for name, row in [*counts["methods"].items(), ("", counts["total"])]:
            target = total["methods"].setdefault(name, {}) if name else total["total"]
            for key, value in row.items():
                target[key] = target.get(key, 0) + value
        total["peak_bytes_in_flight"] = max(
            total["peak_bytes_in_flight"], counts["peak_bytes_in_flight"]
        )
    total["methods"] = dict(sorted(total["methods"].items()))
    return total


# -- output at exit ------------------------------------------------------------------
def _world() -> Any:
    from mpi4py import MPI

    if MPI.Is_initialized() and not MPI.Is_finalized():
        return MPI.COMM_WORLD
    return None


def _world_rank() -> int:
    world = _world()
    if world is not None:
        return world.Get_rank()
    for name in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def _write_json() -> None:
    path = settings.stats_path.replace("{rank}", str(_world_rank()))
    path = path.replace("{pid}", str(os.getpid()))
    counts = {"rank": _world_rank(), "pid": os.getpid(), **stats()}
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(counts, stream, indent=1, sort_keys=True)


def _print_table() -> None:
    rank = _world_rank()
    print(table(stats(), f"pkl5shim stats, rank {rank}"), file=sys.stderr, flush=True)


def _print_total() -> None:
    from .transport import RawComm

    world = _world()
    if world is None:  # MPI already finalized: no way to sum, each rank reports
        _print_table()
        return
    gathered = RawComm.gather(world, stats(), 0)  # mpi4py's own gather, not the engine
    if gathered is not None:
        title = f"pkl5shim stats, sum of {len(gathered)} ranks"
        print(table(summed(gathered), title), file=sys.stderr, flush=True)


def at_exit() -> None:
    """Write the ``PKL5_STATS`` output (called once at exit)."""
    output = {"json": _write_json, "table": _print_table, "total": _print_total}
    writer = output.get(settings.stats)
    if writer is not None:
        writer()


write_at_exit(at_exit)
