"""``enable()``/``disable()``: route ``MPI.COMM_WORLD`` and ``MPI.COMM_SELF`` through the engine.

mpi4py's types are immutable, but its module attributes are not.  ``enable()``
replaces ``MPI.COMM_WORLD`` and ``MPI.COMM_SELF`` with pkl5shim communicators
sharing their handles (every communicator derived from them is wrapped too),
and ``MPI.Comm``/``MPI.Request``/``MPI.Message`` with the stand-ins of
``surrogates``.  mpi4py's own objects stay picklable: pickle finds a class or a
constant by its name in ``mpi4py.MPI``, which now names the replacement, so
``copyreg`` is told how to rebuild them.  ``disable()`` puts everything back.
"""

from __future__ import annotations

import copyreg
import threading
from typing import Any

from mpi4py import MPI

from . import check, launch, observe, surrogates, transport
from .comm import Comm, constant
from .config import modes, settings

_COMMUNICATORS = ("COMM_WORLD", "COMM_SELF")  # collective order: the same on every rank
_lock = threading.RLock()
_saved: dict[str, Any] | None = None  # the original module attributes while enabled
_wrapped: dict[str, Comm] = {}  # one wrapper per predefined communicator, kept across cycles
_modes_before: dict[str, Any] = {}  # check/stats as they were before enable() changed them
_original_init = MPI.Init
_original_init_thread = MPI.Init_thread
_PICKLED_TYPES = (MPI.Comm, MPI.Intracomm, MPI.Request, MPI.Message)
"""mpi4py's types whose instances may refer to a replaced class or constant when pickled."""


def enabled() -> bool:
    """Tell whether ``enable()`` is in effect."""
    return _saved is not None


def enable(check: bool | str | None = None, stats: bool | None = None) -> None:
    """Patch ``mpi4py.MPI`` (idempotent, thread-safe).

    Collective over ``MPI.COMM_WORLD`` the first time, when MPI is initialized:
    every rank must call it.  If the program initializes MPI itself
    (``mpi4py.rc.initialize = False``), the setup completes in ``MPI.Init`` or
    ``MPI.Init_thread``.  A rank whose peers do not all enable the shim within
    ``PKL5_LAUNCH_TIMEOUT`` seconds raises ``pkl5shim.launch.LaunchError``; settings that
    must agree (``PKL5_EAGER``, ``PKL5_CHUNK``, ``PKL5_STATS=total``) and differ raise
    ``pkl5shim.launch.SettingsMismatchError`` on every rank.

    ``check=True`` (or ``"raise"``) turns on check mode, as ``PKL5_CHECK=1``
    (or ``raise``) does; ``stats=True`` turns on observation, as
    ``PKL5_STATS`` does (read the counts with ``pkl5shim.stats()``).
    ``None`` leaves the mode as the environment set it; ``disable()`` puts
    back what ``enable()`` changed.
    """
    with _lock:
        _observe_as_the_environment_asks()
        _set_modes(check, stats)
        _patch()


_logging_set_up = False


def _observe_as_the_environment_asks() -> None:
    """``PKL5_STATS``/``PKL5_LOG``: observing since the settings were read; subscribe the
    log lines (and send them to stderr, once, for ``PKL5_LOG=debug``)."""
    global _logging_set_up
    if modes.observing:
        observe.start()
    if settings.log and not _logging_set_up:
        _logging_set_up = True
        observe.log_to_stderr()


def _set_modes(check_mode: bool | str | None, stats: bool | None) -> None:
    if check_mode is not None:
        if check_mode not in (True, False, "warn", "raise"):
            raise ValueError(f"enable(check={check_mode!r}): expected True, False or 'raise'")
        mode = {True: "warn", False: ""}.get(check_mode, check_mode)  # type: ignore[call-overload]
        _modes_before.setdefault("check", modes.check)
        check.activate(mode)
    if stats is not None:
        _modes_before.setdefault("stats", observe.observing())
        if stats:
            observe.start()
        else:
            observe.stop()


def _restore_modes() -> None:
    if "check" in _modes_before:
        check.activate(_modes_before.pop("check"))
    if "stats" in _modes_before:
        if _modes_before.pop("stats"):
            observe.start()
        else:
            observe.stop()


def _patch() -> None:
    global _saved
    with _lock:
        if _saved is not None:
            return
        if MPI.Is_finalized():
            raise RuntimeError("pkl5shim.enable(): MPI is already finalized")
        names = (*_COMMUNICATORS, *surrogates.STAND_INS, "Init", "Init_thread")
        originals = {name: getattr(MPI, name) for name in names}
        replacements: dict[str, Any] = {
            **surrogates.STAND_INS,
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
        for kind in _PICKLED_TYPES:
            copyreg.pickle(kind, _reduce_original)


def disable() -> None:
    """Put back the original ``mpi4py.MPI`` objects (idempotent, thread-safe).

    Communicators and requests made while enabled keep working.
    """
    global _saved
    with _lock:
        _restore_modes()
        if _saved is None:
            return
        for name, value in _saved.items():
            setattr(MPI, name, value)
        _saved = None
        for kind in _PICKLED_TYPES:
            copyreg.dispatch_table.pop(kind, None)


def patched_names() -> list[str]:
    """The ``mpi4py.MPI`` attributes replaced right now."""
    saved = _saved
    return [] if saved is None else [f"MPI.{name}" for name in saved]


def _wrapper(name: str, original: MPI.Comm) -> Comm:
    wrapper = _wrapped.get(name)
    if wrapper is None or wrapper != original:
        # No channel yet: it is made collectively once MPI is initialized.
        wrapper = _wrapped[name] = constant(name, original)
    return wrapper


def original(name: str) -> Any:
    """mpi4py's own ``MPI.<name>``, also while ``enable()`` has replaced it."""
    saved = _saved
    return saved[name] if saved is not None and name in saved else getattr(MPI, name)


def _new_original(name: str, *args: Any) -> Any:
    cls = original(name)
    return cls.__new__(cls, *args)


def _reduce_original(obj: Any) -> Any:
    """mpi4py's reduction of ``obj``, with replaced classes and constants named through
    ``original`` instead of ``mpi4py.MPI`` (where pickle would find the replacement)."""
    value = obj.__reduce__()
    saved = _saved
    if saved is None:
        return value
    if isinstance(value, str):
        return (original, (value,)) if saved.get(value) is obj else value
    func, args = value[0], value[1]
    if func is copyreg.__newobj__ and saved.get(args[0].__name__) is args[0]:
        return (_new_original, (args[0].__name__, *args[1:]), *value[2:])
    return value


def _attach_channels() -> None:
    world = _wrapped["COMM_WORLD"]
    if transport.find(world) is None:
        # The first time only: every rank runs the shim, with the settings that must
        # agree; a rank without the shim would leave the Dup below waiting forever.
        launch.handshake(world)
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
