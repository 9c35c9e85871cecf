"""``pkl5shim.info()`` and ``python -m pkl5shim --info``: what is active in this process."""

from __future__ import annotations

import os

import mpi4py
from mpi4py import MPI

from . import patch, startup, transport
from .config import format_size, modes, settings

_THREAD_LEVELS = {
    MPI.THREAD_SINGLE: "THREAD_SINGLE",
    MPI.THREAD_FUNNELED: "THREAD_FUNNELED",
    MPI.THREAD_SERIALIZED: "THREAD_SERIALIZED",
    MPI.THREAD_MULTIPLE: "THREAD_MULTIPLE",
}


def _library() -> str:
    return MPI.Get_library_version().strip().splitlines()[0].strip()


def _large_counts() -> str:
    if settings.chunk_limit:
        return f"payloads split at PKL5_CHUNK={settings.chunk_limit} bytes"
    if transport.CHUNK_LIMIT > (1 << 31) - 1:
        return "native (MPI-4 large-count calls)"
    if transport.INTEL_MPI:
        return "emulated (Intel MPI's large-count collectives fail): messages below 2**31 bytes"
    return "emulated: payloads split into messages of at most 2**31-1 bytes"


_NAME_WIDTH = 21  # the longest name, PKL5_PAYLOAD_TIMEOUT, and a space
_VALUE_WIDTH = 30


def _setting(name: str, value: object) -> str:
    source = "set" if os.environ.get(name, "").strip() else "default"
    return f"  {name:<{_NAME_WIDTH}}{value!s:<{_VALUE_WIDTH}} ({source})"


def _size(nbytes: int) -> str:
    return f"{format_size(nbytes)} ({nbytes} bytes)" if nbytes >= 1024 else f"{nbytes} bytes"


def _enable_setting() -> str:
    raw = os.environ.get("PKL5_ENABLE", "")
    try:
        on = startup.requested()
    except ValueError:
        return f"{raw!r} (invalid, ignored)"
    return raw.strip() if on else "off"


def info() -> str:
    """A report of versions, settings and patched objects (initializes MPI if needed)."""
    from . import __version__

    version = MPI.Get_version()
    patched = patch.patched_names()
    channels = transport.live_channels()
    lines = [
        f"pkl5shim          {__version__}",
        f"mpi4py            {mpi4py.__version__}",
        f"MPI library       {_library()}",
        f"MPI standard      {version[0]}.{version[1]}",
        f"large counts      {_large_counts()}",
        f"thread level      {_THREAD_LEVELS.get(MPI.Query_thread(), MPI.Query_thread())}",
        "settings:",
        _setting("PKL5_ENABLE", _enable_setting()),
        _setting("PKL5_EAGER", _size(settings.eager_limit)),
        _setting("PKL5_MAX_MESSAGE", _size(settings.max_message)),
        _setting(
            "PKL5_CHUNK", _size(settings.chunk_limit) if settings.chunk_limit else "library limit"
        ),
        _setting("PKL5_PAYLOAD_TIMEOUT", _seconds(settings.payload_timeout)),
        _setting("PKL5_LAUNCH_TIMEOUT", _seconds(settings.launch_timeout)),
        _setting("PKL5_DUMP_SIGNAL", settings.dump_signal or "off"),
        _setting("PKL5_ISEND", "copy" if settings.isend_copy else "zero-copy"),
        _setting("PKL5_STATS", _stats_setting()),
        _setting("PKL5_LOG", "debug" if settings.log else "off"),
        _setting("PKL5_CHECK", {"warn": "1 (warn)", "raise": "raise"}.get(modes.check, "off")),
        "patched:          " + (", ".join(patched) if patched else "nothing (not enabled)"),
        f"communicators with a pkl5shim channel: {len(channels)}"
        + (f" ({', '.join(channels)})" if channels else ""),
    ]
    return "\n".join(lines)


def _seconds(value: float) -> str:
    return f"{value:g} s" if value else "0 (no limit)"


def _stats_setting() -> str:
    if settings.stats == "json":
        return f"json:{settings.stats_path}"
    return {"table": "1 (a table per rank at exit)", "total": "total (rank 0)"}.get(
        settings.stats, "off"
    )
