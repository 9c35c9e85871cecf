"""Settings, read once from the ``PKL5_*`` environment variables."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

_SUFFIXES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(name: str, raw: str) -> int:
    """Parse a byte count such as ``65536``, ``64K`` or ``2G``; name the variable on error."""
    text = raw.strip().upper().removesuffix("IB").removesuffix("B")
    suffix = text[-1:] if text[-1:] in _SUFFIXES else ""
    number = text[: len(text) - len(suffix)]
    try:
        value = int(number) * _SUFFIXES[suffix]
    except ValueError:
        raise ValueError(
            f"{name}={raw!r}: expected a byte count such as 65536, 64K or 2G"
        ) from None
    return value


def _size_from_env(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, "")
    if not raw.strip():
        return default
    value = parse_size(name, raw)
    if value < minimum:
        raise ValueError(f"{name}={raw!r}: must be at least {minimum} bytes")
    return value


def _seconds_from_env(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    if not raw.strip():
        return default
    text = raw.strip().lower().removesuffix("s")
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise ValueError(f"{name}={raw!r}: expected seconds such as 60 or 0.5 (0: no limit)")
    return value


def format_size(nbytes: int) -> str:
    """``25275990016`` as ``23.5 GiB``; counts below 1 KiB as bytes."""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{nbytes} B" if unit == "B" else f"{value:.1f}".removesuffix(".0") + f" {unit}"
        value /= 1024
    return f"{value:.1f}".removesuffix(".0") + " TiB"


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1 << 40


@dataclass
class Settings:
    """The engine's settings; every rank must use the same values.

    Read once at import; only ``check`` and ``stats`` change later, through
    ``pkl5shim.enable(check=..., stats=...)``.
    """

    eager_limit: int
    """PKL5_EAGER: largest first message; smaller pickles travel as one plain message."""
    max_message: int
    """PKL5_MAX_MESSAGE: a header announcing more bytes than this is refused."""
    chunk_limit: int
    """PKL5_CHUNK: largest single MPI message for payloads (0: the library's limit)."""
    payload_timeout: float
    """PKL5_PAYLOAD_TIMEOUT: seconds a large receive waits for the next piece of a payload to
    be sent, after its header arrived (0: forever); then it raises ``WireError``."""
    isend_copy: bool
    """PKL5_ISEND=copy: isend copies out-of-band buffers at call time (default zero-copy)."""
    stats: str
    """PKL5_STATS: '' (off), 'table' (1: a table per rank at exit), 'total' or 'json'."""
    stats_path: str
    """PKL5_STATS=json:PATH: write the statistics to PATH at exit ({rank}, {pid} expand)."""
    log: bool
    """PKL5_LOG=debug: one ``logging`` line per object sent or received."""
    check: str
    """PKL5_CHECK: '' (off), 'warn' (1) or 'raise': report arrays modified after isend."""
    launch_timeout: float = 30.0
    """PKL5_LAUNCH_TIMEOUT: seconds ``enable()`` waits for every rank of ``COMM_WORLD`` to
    enable the shim too (0: forever); then it raises ``pkl5shim.launch.LaunchError``."""
    dump_signal: str = ""
    """PKL5_DUMP_SIGNAL: a signal name (``USR1``) that prints the pending operations (the
    start-up forms install it; see ``pkl5shim.pending``); '' off."""


EAGER_DEFAULT = 256 * 1024
"""Objects whose pickle has no out-of-band buffer travel as one message up to this size.

It equals mpi4py's ``MPI.pickle.THRESHOLD`` (256 KiB), below which buffers stay in band
anyway: with a lower limit, a 64-256 KiB array went as a header and a stream on the
channel, two messages and two copies, 2-2.6x plain mpi4py's time (measured, MPICH).
"""


def load() -> Settings:
    """Read the settings from the environment."""
    stats, stats_path = _stats_from_env()
    return Settings(
        eager_limit=_size_from_env("PKL5_EAGER", EAGER_DEFAULT, 1024),
        max_message=_size_from_env("PKL5_MAX_MESSAGE", _physical_memory(), 1),
        chunk_limit=_size_from_env("PKL5_CHUNK", 0, 0),
        payload_timeout=_seconds_from_env("PKL5_PAYLOAD_TIMEOUT", 60.0),
        isend_copy=_isend_copy_from_env(),
        stats=stats,
        stats_path=stats_path,
        log=_log_from_env(),
        check=_check_from_env(),
        launch_timeout=_seconds_from_env("PKL5_LAUNCH_TIMEOUT", 30.0),
        dump_signal=_dump_signal_from_env(),
    )


def signal_name(raw: str) -> str:
    """``USR1``, ``usr1`` or ``SIGUSR1`` as ``SIGUSR1``; anything else raises ``ValueError``."""
    import signal

    text = raw.strip().upper()
    name = text if text.startswith("SIG") else "SIG" + text
    if not isinstance(getattr(signal, name, None), signal.Signals):
        raise ValueError(f"PKL5_DUMP_SIGNAL={raw!r}: expected a signal name such as USR1")
    return name


def _dump_signal_from_env() -> str:
    raw = os.environ.get("PKL5_DUMP_SIGNAL", "")
    if raw.strip().upper() in ("", "0", "OFF"):
        return ""
    return signal_name(raw)


def _check_from_env() -> str:
    raw = os.environ.get("PKL5_CHECK", "")
    value = raw.strip().lower()
    if value in ("", "0", "off"):
        return ""
    if value in ("1", "warn", "on"):
        return "warn"
    if value == "raise":
        return "raise"
    raise ValueError(f"PKL5_CHECK={raw!r}: expected 1 (warn) or raise")


def _isend_copy_from_env() -> bool:
    raw = os.environ.get("PKL5_ISEND", "")
    value = raw.strip().lower()
    if value in ("", "zero-copy"):
        return False
    if value == "copy":
        return True
    raise ValueError(f"PKL5_ISEND={raw!r}: expected 'copy' or 'zero-copy'")


def _stats_from_env() -> tuple[str, str]:
    raw = os.environ.get("PKL5_STATS", "")
    value = raw.strip()
    if value.lower() in ("", "0", "off"):
        return ("", "")
    if value.lower() in ("1", "table", "on"):
        return ("table", "")
    if value.lower() == "total":
        return ("total", "")
    if value.startswith("json:") and len(value) > len("json:"):
        return ("json", value[len("json:") :])
    raise ValueError(
        f"PKL5_STATS={raw!r}: expected 1 (a table per rank at exit), total (summed on rank 0) "
        "or json:PATH (PATH may contain {rank} and {pid})"
    )


def _log_from_env() -> bool:
    raw = os.environ.get("PKL5_LOG", "")
    value = raw.strip().lower()
    if value in ("", "0", "off"):
        return False
    if value == "debug":
        return True
    raise ValueError(f"PKL5_LOG={raw!r}: expected debug (one log line per object) or off")


settings = load()
