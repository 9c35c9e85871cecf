"""Counters of the out-of-band traffic, and ``PKL5_STATS=json:PATH`` at exit.

Only large messages (header plus payload on the channel) are counted, so the
small-object path costs nothing more.
"""

from __future__ import annotations

import atexit
import json
import os
import threading

from .config import settings

_lock = threading.Lock()
_counts = {
    "out_of_band_sent": 0,
    "out_of_band_bytes_sent": 0,
    "out_of_band_received": 0,
    "out_of_band_bytes_received": 0,
}


def record_send(nbytes: int) -> None:
    """Count one large object sent (``nbytes``: stream plus buffers)."""
    with _lock:
        _counts["out_of_band_sent"] += 1
        _counts["out_of_band_bytes_sent"] += nbytes


def record_receive(nbytes: int) -> None:
    """Count one large object received."""
    with _lock:
        _counts["out_of_band_received"] += 1
        _counts["out_of_band_bytes_received"] += nbytes


def stats() -> dict[str, int]:
    """This process's counters of large objects sent and received through the engine."""
    with _lock:
        return dict(_counts)


def _world_rank() -> int:
    from mpi4py import MPI

    if MPI.Is_initialized() and not MPI.Is_finalized():
        return MPI.COMM_WORLD.Get_rank()
    for name in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def _write_at_exit() -> None:
    path = settings.stats_path.replace("{rank}", str(_world_rank()))
    path = path.replace("{pid}", str(os.getpid()))
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(stats(), stream, indent=1, sort_keys=True)


if settings.stats_path:
    atexit.register(_write_at_exit)
