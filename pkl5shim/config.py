"""Settings: a frozen ``Settings`` read once from the ``PKL5_*`` variables, and ``modes``.

``load(environ)`` is pure: one table (``VARIABLES``) names, for every variable, the
field it sets, its parser and its default.  ``settings = load(os.environ)`` runs at
import and is never changed afterwards.  What changes at run time
(``pkl5shim.enable(check=..., stats=...)``) lives in ``modes``, the only mutable
state of this module.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

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


def format_size(nbytes: int) -> str:
    """``25275990016`` as ``23.5 GiB``; counts below 1 KiB as bytes."""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{nbytes} B" if unit == "B" else f"{value:.1f}".removesuffix(".0") + f" {unit}"
        value /= 1024
    return f"{value:.1f}".removesuffix(".0") + " TiB"


def signal_name(raw: str) -> str:
    """``USR1``, ``usr1`` or ``SIGUSR1`` as ``SIGUSR1``; anything else raises ``ValueError``."""
    import signal

    text = raw.strip().upper()
    name = text if text.startswith("SIG") else "SIG" + text
    if not isinstance(getattr(signal, name, None), signal.Signals):
        raise ValueError(f"PKL5_DUMP_SIGNAL={raw!r}: expected a signal name such as USR1")
    return name


# -- parsers: (variable name, raw value that is not blank) -> value -----------------
Parser = Callable[[str, str], Any]


def size_at_least(minimum: int) -> Parser:
    """A parser of byte counts of at least ``minimum``."""

    def parse(name: str, raw: str) -> int:
        value = parse_size(name, raw)
        if value < minimum:
            raise ValueError(f"{name}={raw!r}: must be at least {minimum} bytes")
        return value

    return parse


def parse_seconds(name: str, raw: str) -> float:
    """Seconds such as ``60``, ``0.5`` or ``2s`` (0: no limit)."""
    try:
        value = float(raw.strip().lower().removesuffix("s"))
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise ValueError(f"{name}={raw!r}: expected seconds such as 60 or 0.5 (0: no limit)")
    return value


def choice(values: Mapping[str, Any], expected: str) -> Parser:
    """A parser of one of ``values`` (case-insensitive); ``expected`` ends the error."""

    def parse(name: str, raw: str) -> Any:
        key = raw.strip().lower()
        if key not in values:
            raise ValueError(f"{name}={raw!r}: {expected}")
        return values[key]

    return parse


def parse_stats(name: str, raw: str) -> tuple[str, str]:
    """``PKL5_STATS``: (``table``, ``total`` or ``json``; the JSON path or '')."""
    value = raw.strip()
    plain = {"0": "", "off": "", "1": "table", "table": "table", "on": "table", "total": "total"}
    if value.lower() in plain:
        return (plain[value.lower()], "")
    if value.startswith("json:") and len(value) > len("json:"):
        return ("json", value[len("json:") :])
    raise ValueError(
        f"{name}={raw!r}: expected 1 (a table per rank at exit), total (summed on rank 0) "
        "or json:PATH (PATH may contain {rank} and {pid})"
    )


def parse_signal(name: str, raw: str) -> str:
    """``PKL5_DUMP_SIGNAL``: a signal name, or '' for ``0``/``off``."""
    return "" if raw.strip().upper() in ("0", "OFF") else signal_name(raw)


def physical_memory() -> int:
    """Bytes of memory of this machine (1 TiB where it cannot be known)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1 << 40


EAGER_DEFAULT = 256 * 1024
"""Objects whose pickle has no out-of-band buffer travel as one message up to this size.

It equals mpi4py's ``MPI.pickle.THRESHOLD`` (256 KiB), below which buffers stay in band
anyway: with a lower limit, a 64-256 KiB array went as a header and a stream on the
channel, two messages and two copies, 2-2.6x plain mpi4py's time (measured, MPICH).
"""

_parse_isend = choice({"zero-copy": False, "copy": True}, "expected 'copy' or 'zero-copy'")
_parse_log = choice(
    {"0": False, "off": False, "debug": True}, "expected debug (one log line per object) or off"
)
_parse_check = choice(
    {"0": "", "off": "", "1": "warn", "warn": "warn", "on": "warn", "raise": "raise"},
    "expected 1 (warn) or raise",
)


class Variable(NamedTuple):
    """One ``PKL5_*`` variable: the field(s) it sets, its parser, its default."""

    name: str
    fields: tuple[str, ...]
    parse: Parser
    default: Any
    """The value when the variable is unset or blank; a callable is called for it."""


VARIABLES = (
    Variable("PKL5_EAGER", ("eager_limit",), size_at_least(1024), EAGER_DEFAULT),
    Variable("PKL5_MAX_MESSAGE", ("max_message",), size_at_least(1), physical_memory),
    Variable("PKL5_CHUNK", ("chunk_limit",), size_at_least(0), 0),
    Variable("PKL5_PAYLOAD_TIMEOUT", ("payload_timeout",), parse_seconds, 60.0),
    Variable("PKL5_ISEND", ("isend_copy",), _parse_isend, False),
    Variable("PKL5_STATS", ("stats", "stats_path"), parse_stats, ("", "")),
    Variable("PKL5_LOG", ("log",), _parse_log, False),
    Variable("PKL5_CHECK", ("check",), _parse_check, ""),
    Variable("PKL5_LAUNCH_TIMEOUT", ("launch_timeout",), parse_seconds, 30.0),
    Variable("PKL5_DUMP_SIGNAL", ("dump_signal",), parse_signal, ""),
)
"""Every ``PKL5_*`` variable the engine reads (``PKL5_ENABLE`` is ``startup``'s)."""


@dataclass(frozen=True)
class Settings:
    """The engine's settings; every rank must use the same values. Never changed."""

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
    """PKL5_CHECK: '' (off), 'warn' (1) or 'raise', as the environment set it (the mode in
    effect is ``modes.check``)."""
    launch_timeout: float
    """PKL5_LAUNCH_TIMEOUT: seconds ``enable()`` waits for every rank of ``COMM_WORLD`` to
    enable the shim too (0: forever); then it raises ``pkl5shim.launch.LaunchError``."""
    dump_signal: str
    """PKL5_DUMP_SIGNAL: a signal name (``USR1``) that prints the pending operations (the
    start-up forms install it; see ``pkl5shim.pending``); '' off."""


def load(environ: Mapping[str, str]) -> Settings:
    """The settings that ``environ`` sets; a bad value raises ``ValueError`` naming it."""
    values: dict[str, Any] = {}
    for variable in VARIABLES:
        raw = environ.get(variable.name, "")
        if raw.strip():
            value = variable.parse(variable.name, raw)
        else:
            value = variable.default() if callable(variable.default) else variable.default
        if len(variable.fields) == 1:
            value = (value,)
        values.update(zip(variable.fields, value))
    return Settings(**values)


@dataclass
class Modes:
    """What changes at run time, through ``pkl5shim.enable(check=..., stats=...)``.

    The one mutable object of the settings: modules import it and read its fields
    on each use, so it is changed in place, never rebound.
    """

    check: str
    """'' (off), 'warn' or 'raise': check mode in effect (see ``check``)."""
    observing: bool
    """Whether the engine emits every object it moves into ``metrics``."""


settings = load(os.environ)
"""This process's settings, read at import."""

modes = Modes(check=settings.check, observing=bool(settings.stats or settings.log))
"""The modes in effect: from the environment first, then as ``enable()`` changes them."""
