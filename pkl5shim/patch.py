"""``enable()``/``disable()``: route ``MPI.COMM_WORLD`` and ``MPI.COMM_SELF`` through the engine.

mpi4py's types are immutable, but its module attributes are not.  ``enable()``
replaces ``MPI.COMM_WORLD`` and ``MPI.COMM_SELF`` with pkl5shim communicators
sharing their handles (every communicator derived from them is wrapped too),
and ``MPI.Request``/``MPI.Message`` with stand-ins whose class methods accept
pkl5shim's requests.  ``disable()`` puts the original objects back.
"""

from __future__ import annotations

import threading
from typing import Any

from mpi4py import MPI

from . import surrogates, transport
from .comm import Comm, Intracomm

_COMMUNICATORS = ("COMM_WORLD", "COMM_SELF")  # collective order: the same on every rank
_lock = threading.RLock()
_saved: dict[str, Any] | None = None  # the original module attributes while enabled
_wrapped: dict[str, Comm] = {}  # one wrapper per predefined communicator, kept across cycles
_original_init = MPI.Init
_original_init_thread = MPI.Init_thread


def enabled() -> bool:
    """Tell whether ``enable()`` is in effect."""
    return _saved is not None


def enable() -> None:
    """Patch ``mpi4py.MPI`` (idempotent, thread-safe).

    Collective over ``MPI.COMM_WORLD`` the first time, when MPI is initialized:
    every rank must call it.  If the program initializes MPI itself
    (``mpi4py.rc.initialize = False``), the setup completes in ``MPI.Init`` or
    ``MPI.Init_thread``.
    """
    global _saved
    with _lock:
        if _saved is not None:
            return
        if MPI.Is_finalized():
            raise RuntimeError("pkl5shim.enable(): MPI is already finalized")
        names = (*_COMMUNICATORS, "Request", "Message", "Init", "Init_thread")
        originals = {name: getattr(MPI, name) for name in names}
        replacements: dict[str, Any] = {
            "Request": surrogates.Request,
            "Message": surrogates.Message,
            "Init": _init,
            "Init_thread": _init_thread,
        }
        for name in _COMMUNICATORS:
            replacements[name] = _wrapper(name, originals[name])
        if MPI.Is_initialized():
            _attach_channels()  # before patching: if this fails, nothing changed
        for name, value in replacements.items():
            setattr(MPI, name, value)
        _saved = originals


def disable() -> None:
    """Put back the original ``mpi4py.MPI`` objects (idempotent, thread-safe).

    Communicators and requests made while enabled keep working.
    """
    global _saved
    with _lock:
        if _saved is None:
            return
        for name, value in _saved.items():
            setattr(MPI, name, value)
        _saved = None


def patched_names() -> list[str]:
    """The ``mpi4py.MPI`` attributes replaced right now."""
    saved = _saved
    return [] if saved is None else [f"MPI.{name}" for name in saved]


def _wrapper(name: str, original: MPI.Comm) -> Comm:
    wrapper = _wrapped.get(name)
    if wrapper is None or wrapper != original:
        # No channel yet: it is made collectively once MPI is initialized.
        wrapper = MPI.Comm.__new__(Intracomm, original)
        _wrapped[name] = wrapper
    return wrapper


def _attach_channels() -> None:
    for name in _COMMUNICATORS:
        transport.attach(_wrapped[name])


def _init() -> None:
    """``MPI.Init`` while pkl5shim is enabled: also sets up the patched communicators."""
    _original_init()
    _after_init()


def _init_thread(required: int = MPI.THREAD_MULTIPLE) -> int:
    """``MPI.Init_thread`` while pkl5shim is enabled: also sets up the patched communicators."""
    provided = _original_init_thread(required)
    _after_init()
    return provided


def _after_init() -> None:
    with _lock:
        if _saved is not None:
            _attach_channels()
