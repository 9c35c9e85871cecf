"""Counters that the engine emits into, and ``pkl5shim.stats()``.

Two kinds of counts:

- always on: the large messages (header plus payload on the channel) this process
  posted and received, one per receiver (``record_send``/``record_receive``, called
  where they are built; the small-object path emits nothing);
- while observing (``config.modes.observing``: ``PKL5_STATS``, ``PKL5_LOG=debug`` or
  ``pkl5shim.enable(stats=True)``): every object the engine pickles or unpickles, per
  method, eager or out of band, its bytes, zero-copy bytes, peak bytes in flight and
  the pickling and unpickling time.  ``codec.dumps``/``codec.loads`` emit them
  (``pickled``/``unpickled``), and ``p2p`` for the small objects that mpi4py's C code
  pickles; the method is the outermost pkl5shim call running in the thread, entered by
  the point-to-point calls themselves (``enter``/``leave``) and by ``attributed``
  around the others.  An object unpickled outside any call (``wait()`` of an
  ``irecv``) counts under ``irecv``.

Observation switches nothing: the same functions move the data, they only read
``modes.observing`` once per call.  Each object is also handed to the subscribers
(``subscribe``), as a ``Transfer``: ``observe``'s log lines, the pytest plugin's
counts per test.  This module imports nothing of the engine.
"""

from __future__ import annotations

import atexit
import functools
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple, TypeVar

from .config import modes, settings

_ISENDS = frozenset({"isend", "ibsend", "issend"})
_lock = threading.Lock()

# -- always on -------------------------------------------------------------------------
_counts = {
    "out_of_band_sent": 0,
    "out_of_band_bytes_sent": 0,
    "out_of_band_received": 0,
    "out_of_band_bytes_received": 0,
}


def record_send(nbytes: int) -> None:
    """Count one large message sent (``nbytes``: stream plus buffers)."""
    with _lock:
        _counts["out_of_band_sent"] += 1
        _counts["out_of_band_bytes_sent"] += nbytes


def record_receive(nbytes: int) -> None:
    """Count one large message received."""
    with _lock:
        _counts["out_of_band_received"] += 1
        _counts["out_of_band_bytes_received"] += nbytes


# -- per method, while observing ----------------------------------------------------------
@dataclass
class MethodStats:
    """What one method moved on this rank."""

    objects_sent: int = 0
    bytes_sent: int = 0
    objects_received: int = 0
    bytes_received: int = 0
    eager_sent: int = 0
    out_of_band_sent: int = 0
    eager_received: int = 0
    out_of_band_received: int = 0
    zero_copy_bytes: int = 0
    pickle_seconds: float = 0.0
    unpickle_seconds: float = 0.0

    def count(self, direction: str, nbytes: int, out_of_band: bool, seconds: float) -> None:
        """Count one object ``sent`` or ``received``."""
        path = "out_of_band" if out_of_band else "eager"
        clock = "pickle_seconds" if direction == "sent" else "unpickle_seconds"
        for name, value in (
            (f"objects_{direction}", 1),
            (f"bytes_{direction}", nbytes),
            (f"{path}_{direction}", 1),
            (clock, seconds),
        ):
            setattr(self, name, getattr(self, name) + value)

    def add(self, other: MethodStats) -> None:
        """Add ``other``'s counts to these."""
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


class Call:
    """The outermost pkl5shim call running in a thread, while observing."""

    __slots__ = ("in_flight", "method", "peer", "tag")

    def __init__(self, method: str, peer: Any, tag: Any) -> None:
        self.method, self.peer, self.tag = method, peer, tag
        self.in_flight = 0
        """Bytes of the objects it pickled, in flight until it returns (or its sends end)."""


class Transfer(NamedTuple):
    """One object pickled to be sent, or unpickled after it was received."""

    direction: str
    """``sent`` or ``received``."""
    method: str
    nbytes: int
    """Pickle stream plus out-of-band buffers (a receive's status count)."""
    buffer_nbytes: int
    nbuffers: int
    out_of_band: bool
    """Header plus payload (``codec.travels_plain`` said no), else one plain message."""
    seconds: float
    call: Call | None
    source: tuple[int, int] | None
    """A receive's actual (source, tag), when known."""


_methods: dict[str, MethodStats] = {}
_in_flight = 0
_peak_in_flight = 0
_local = threading.local()  # .call: this thread's Call; .source: (source, tag) being unpickled
_subscribers: list[Callable[[Transfer], None]] = []


def subscribe(callback: Callable[[Transfer], None]) -> None:
    """Hand every object observed from now on to ``callback`` (once, however often called)."""
    with _lock:
        if callback not in _subscribers:
            _subscribers.append(callback)


def unsubscribe(callback: Callable[[Transfer], None]) -> None:
    """Stop handing objects to ``callback``."""
    with _lock:
        if callback in _subscribers:
            _subscribers.remove(callback)


def _entry(method: str) -> MethodStats:
    entry = _methods.get(method)
    if entry is None:
        entry = _methods[method] = MethodStats()
    return entry


def _buffer_nbytes(buffers: list[Any]) -> int:
    return sum(memoryview(buffer).nbytes for buffer in buffers)


# -- the calls -----------------------------------------------------------------------------
def current() -> Call | None:
    """The call running in this thread, if any."""
    return getattr(_local, "call", None)


def enter(method: str, peer: Any, tag: Any) -> Call | None:
    """Make ``method`` this thread's call; ``None`` if one is already running (nested)."""
    if getattr(_local, "call", None) is not None:
        return None
    call = _local.call = Call(method, peer, tag)
    return call


def leave(call: Call | None, until: Any = None) -> None:
    """End ``call`` (from ``enter``); its bytes leave flight now, or once ``until`` (a
    send operation, whose ``watcher`` is called when MPI completed it) is done."""
    if call is None:
        return
    _local.call = None
    if until is None:
        _release(call.in_flight)
    else:
        until.watcher = functools.partial(_release, call.in_flight)


def _release(nbytes: int) -> None:
    global _in_flight
    with _lock:
        _in_flight -= nbytes


F = TypeVar("F", bound=Callable[..., Any])


def attributed(name: str, peer: int | None = None) -> Callable[[F], F]:
    """Decorate a method so that, while observing, what it moves counts under ``name``.

    ``peer``: the position, among the arguments after ``self``, of the root (or
    destination) that log lines name; a ``root=``/``dest=`` keyword serves too.  Off,
    the wrapper only reads ``modes.observing`` and calls the method: switched without
    re-patching anything.
    """

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not modes.observing:
                return method(self, *args, **kwargs)
            call = enter(name, _peer(args, kwargs, peer), None)
            try:
                return method(self, *args, **kwargs)
            finally:
                leave(call)

        return wrapper  # type: ignore[return-value]

    return decorate


def _peer(args: tuple[Any, ...], kwargs: dict[str, Any], position: int | None) -> Any:
    if position is None:
        return None
    default = args[position] if len(args) > position else 0
    return kwargs.get("dest", kwargs.get("root", default))


# -- the objects (called only while observing) -------------------------------------------
def pickled(parts: tuple[Any, list[Any]], out_of_band: bool, seconds: float) -> None:
    """Count an object pickled to be sent (``codec.dumps``), in this thread's call."""
    stream, buffers = parts
    buffer_nbytes = _buffer_nbytes(buffers)
    nbytes = memoryview(stream).nbytes + buffer_nbytes
    _count("sent", nbytes, buffer_nbytes, len(buffers), out_of_band, seconds, None)


def arriving(source: int, tag: int) -> None:
    """The next object this thread unpickles came from ``source`` with ``tag``."""
    if modes.observing:
        _local.source = (source, tag)


def unpickled(stream: Any, buffers: list[Any], out_of_band: bool, seconds: float) -> None:
    """Count an object unpickled after it was received (``codec.loads``)."""
    source = getattr(_local, "source", None)
    _local.source = None
    buffer_nbytes = _buffer_nbytes(buffers)
    nbytes = memoryview(stream).nbytes + buffer_nbytes
    _count("received", nbytes, buffer_nbytes, len(buffers), out_of_band, seconds, source)


def received_plain(nbytes: int, source: int, tag: int) -> None:
    """Count a small object that mpi4py's C receive unpickled (``nbytes`` from its status).

    Its unpickling ran inside mpi4py and is not timed: it counts as 0 seconds.
    """
    _count("received", nbytes, 0, 0, False, 0.0, (source, tag))


def _count(
    direction: str,
    nbytes: int,
    buffer_nbytes: int,
    nbuffers: int,
    out_of_band: bool,
    seconds: float,
    source: tuple[int, int] | None,
) -> None:
    """Count one object under this thread's call (``other`` or ``irecv`` outside any)."""
    global _in_flight, _peak_in_flight
    call = current()
    sent = direction == "sent"
    method = call.method if call is not None else ("other" if sent else "irecv")
    with _lock:
        entry = _entry(method)
        entry.count(direction, nbytes, out_of_band, seconds)
        if sent:
            copied = settings.isend_copy and method in _ISENDS
            entry.zero_copy_bytes += 0 if copied else buffer_nbytes
        if sent and call is not None:
            call.in_flight += nbytes
            _in_flight += nbytes
            _peak_in_flight = max(_peak_in_flight, _in_flight)
    transfer = Transfer(
        direction, method, nbytes, buffer_nbytes, nbuffers, out_of_band, seconds, call, source
    )
    for callback in list(_subscribers):
        callback(transfer)


# -- at exit ---------------------------------------------------------------------------------
_exit_writers: list[Callable[[], None]] = []


def write_at_exit(writer: Callable[[], None]) -> None:
    """Call ``writer`` at exit, after the engine's own exit handlers (which are registered
    after this module's, the engine importing it first): sends are flushed by then."""
    _exit_writers.append(writer)


def _at_exit() -> None:
    for writer in _exit_writers:
        writer()


atexit.register(_at_exit)


# -- results ---------------------------------------------------------------------------------
def stats() -> dict[str, Any]:
    """This process's statistics (the keys are described in docs/guide.md, "Statistics").

    ``methods``, ``total`` and ``peak_bytes_in_flight`` stay empty or zero unless
    observation is or was on.
    """
    with _lock:
        counts: dict[str, Any] = dict(_counts)
        methods = {name: asdict(entry) for name, entry in sorted(_methods.items())}
        total = MethodStats()
        for entry in _methods.values():
            total.add(entry)
        return {
            **counts,
            "observing": modes.observing,
            "methods": methods,
            "total": asdict(total),
            "peak_bytes_in_flight": _peak_in_flight,
            "bytes_in_flight": _in_flight,
        }
