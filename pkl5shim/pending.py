"""What a rank waits for: its pending pkl5shim operations and its threads' stacks, on a signal.

``PKL5_DUMP_SIGNAL=USR1`` (with ``PKL5_ENABLE=1`` or ``python -m pkl5shim``), or
``pkl5shim.pending.install()`` from code: ``kill -USR1 <pid of a rank>`` prints, on
stderr, a block of lines listing the receives pkl5shim is advancing, the freed sends not
yet complete, and where every thread of that rank is.

The signal's C handler only writes its number to a pipe (``signal.set_wakeup_fd``); a
daemon thread reads the pipe and prints.  So the dump comes also while the main thread
is blocked inside an MPI call, and it makes no MPI call itself.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from typing import Any, TextIO

from mpi4py import MPI

from . import config, progress

dumps = 0
"""How many dumps this process printed (tests wait for it)."""
_installed: int | None = None
_label = "pkl5shim"


_named = False
"""Whether communicator names may be read from the dumping thread (THREAD_MULTIPLE)."""


def _comm(op: Any) -> str:
    comm = getattr(op, "comm", None)
    if not _named or comm is None:
        return ""
    try:
        return f" on {comm.Get_name() or 'an unnamed communicator'}"
    except Exception:  # noqa: BLE001  (a freed communicator: leave the name out)
        return ""


def _rank(source: int) -> str:
    return "any rank" if source == MPI.ANY_SOURCE else f"rank {source}"


def _tag(tag: int) -> str:
    return "any tag" if tag == MPI.ANY_TAG else f"tag {tag}"


def describe() -> list[str]:
    """One line per pending receive and one for freed sends not yet complete (no MPI call)."""
    lines = []
    for op in list(progress.pending.values()):
        what = getattr(op, "stage", "in progress")
        where = f" from {_rank(op.source)}, {_tag(op.tag)}"  # as posted, until it matched
        size = f", {op.nbytes} bytes announced" if getattr(op, "nbytes", 0) else ""
        freed = " (request freed)" if getattr(op, "detached", False) else ""
        lines.append(f"receive{_comm(op)}{where}: {what}{size}{freed}")
    sends = len(progress.handed) + len(getattr(progress, "_detached", []))
    if sends:
        lines.append(f"{sends} freed send request(s) not yet seen complete")
    return lines


def dump(file: TextIO | None = None) -> None:
    """Print the pending operations and the stack of every thread (to stderr by default)."""
    global dumps
    out = sys.stderr if file is None else file
    lines = describe()
    text = [f"{_label}: pending operations: {len(lines) or 'none'}"]
    text += [f"{_label}:   {line}" for line in lines]
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        if ident == threading.get_ident():
            continue  # the dumping thread itself
        text.append(f"{_label}: thread {names.get(ident, ident)}:")
        for entry in traceback.format_stack(frame):
            text += [f"{_label}:   {part}" for part in entry.rstrip().splitlines()]
    out.write("\n".join(text) + "\n")
    out.flush()
    dumps += 1


def _signal_number(name: str | int) -> int:
    if isinstance(name, int):
        return name
    if name.strip().isdigit():
        return int(name)
    return int(getattr(signal, config.signal_name(name)))


def install(signum: str | int = "USR1", label: str | None = None) -> None:
    """Print a dump on each ``signum`` (main thread only; once per process).

    ``label`` prefixes every line (default ``pkl5shim[rank N]`` of ``COMM_WORLD`` when
    MPI is initialized).  It replaces a wakeup fd set before (asyncio sets one).
    """
    global _installed, _label
    number = _signal_number(signum)
    if _installed is not None:
        return
    _label = label or _default_label()
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.signal(number, _ignore)
    signal.set_wakeup_fd(write_end)
    _installed = number
    threading.Thread(
        target=_reader, args=(read_end, number), name="pkl5shim-dump", daemon=True
    ).start()


def _default_label() -> str:
    global _named
    from mpi4py import MPI

    if MPI.Is_initialized() and not MPI.Is_finalized():
        _named = MPI.Query_thread() == MPI.THREAD_MULTIPLE
        return f"pkl5shim[rank {MPI.COMM_WORLD.Get_rank()}]"
    return "pkl5shim"


def _ignore(signum: int, frame: Any) -> None:
    """The Python-level handler: the reader thread does the work."""


def _reader(fd: int, number: int) -> None:
    while True:
        data = os.read(fd, 64)
        if not data:
            return
        if number in data:
            dump()
