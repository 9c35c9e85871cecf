"""Check mode (``PKL5_CHECK``): catch arrays modified after ``isend`` before the request completed.

pkl5shim sends arrays without copying them, so a program must leave them alone
until its ``isend`` request completes (plain mpi4py copied them inside ``isend``).
In check mode every nonblocking send with out-of-band buffers records a CRC-32
of each buffer and where ``isend`` was called; when MPI completes the send the
checksums are compared.  A mismatch is reported once, naming both places: as a
``BufferModifiedWarning`` (``PKL5_CHECK=1``), or as ``BufferModifiedError``
raised by ``wait()``/``test()`` (``PKL5_CHECK=raise``).  Sends still open at
exit (never waited for) are reported too.
"""

from __future__ import annotations

import atexit
import os
import pickle
import sys
import threading
import warnings
import zlib
from typing import Any

from .config import modes
from .errors import BufferModifiedError

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_lock = threading.Lock()
_open: dict[int, Guard] = {}


class BufferModifiedWarning(UserWarning):
    """An array was modified after ``isend`` and before its request completed."""


def user_frame() -> tuple[str, int]:
    """File and line of the innermost frame outside pkl5shim (the user's call)."""
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame = frame.f_back
    if frame is None:
        return ("<unknown>", 0)
    return (frame.f_code.co_filename, frame.f_lineno)


def user_site() -> str:
    """``file:line`` of the user's call."""
    filename, lineno = user_frame()
    return f"{filename}:{lineno}"


def _warn(message: str) -> None:
    # Attributed to the user's line, not to pkl5shim's internals.
    filename, lineno = user_frame()
    warnings.warn_explicit(message, BufferModifiedWarning, filename, lineno)


def _checksum(buffer: Any) -> int:
    return zlib.crc32(pickle.PickleBuffer(buffer).raw())


class Guard:
    """The checksums of one send's out-of-band buffers, and where it was started."""

    def __init__(self, buffers: list[Any], dest: int, tag: int) -> None:
        self.buffers = buffers
        self.sums = [_checksum(buffer) for buffer in buffers]
        self.site = user_site()
        self.target = f"rank {dest}, tag {tag}"
        with _lock:
            _open[id(self)] = self

    def verify(self) -> str | None:
        """Compare the checksums now; return the report of a modification, if any."""
        with _lock:
            _open.pop(id(self), None)
        buffers, self.buffers = self.buffers, []
        changed = [i for i, (b, s) in enumerate(zip(buffers, self.sums)) if _checksum(b) != s]
        if not changed:
            return None
        return (
            f"pkl5shim check: array(s) {changed} of the object sent by isend at {self.site} "
            f"({self.target}) "
            f"were modified before the request completed (seen at {user_site()}); the "
            "receiver may have got the modified data. Wait for the request before modifying "
            "the arrays, or run with PKL5_ISEND=copy."
        )


def report(message: str, raising: bool) -> BufferModifiedError | None:
    """Warn, or return the error that ``wait()`` raises (``PKL5_CHECK=raise``)."""
    if raising and modes.check == "raise":
        return BufferModifiedError(message)
    _warn(message)
    return None


def _report_open_at_exit() -> None:
    with _lock:
        guards = list(_open.values())
    for guard in guards:
        modified = guard.verify()
        note = f" {modified}" if modified else ""
        message = f"pkl5shim check: the request of isend at {guard.site} ({guard.target}) "
        _warn(message + "was never completed." + note)


_registered = False


def activate(mode: str) -> None:
    """Set check mode to ``mode`` ('warn', 'raise' or '' for off) from now on."""
    global _registered
    modes.check = mode
    with _lock:
        if mode and not _registered:
            atexit.register(_report_open_at_exit)
            _registered = True


if modes.check:
    activate(modes.check)


def recheck_open() -> list[tuple[Guard, list[int]]]:
    """Compare the checksums of the sends not yet completed, now, without completing them.

    Returns each modified send with the indices of its modified buffers.  Those
    get their new checksums, so the send's completion does not report the same
    change again.  For tools that attribute a change to where it happened (the
    pytest plugin checks after every test).
    """
    with _lock:
        guards = list(_open.values())
    found = []
    for guard in guards:
        sums = [_checksum(buffer) for buffer in guard.buffers]
        changed = [i for i, (new, old) in enumerate(zip(sums, guard.sums)) if new != old]
        if changed:
            guard.sums = sums
            found.append((guard, changed))
    return found


def open_sends() -> list[Guard]:
    """The checked sends whose requests have not completed yet, oldest first."""
    with _lock:
        return list(_open.values())
