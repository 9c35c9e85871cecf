"""Observation (``PKL5_STATS``, ``PKL5_LOG=debug``): counters per method, one log line per object.

Off by default, and then nothing here runs.  ``start()`` replaces the
lowercase methods of pkl5shim's classes with observed versions (which take
the engine's generic path: scalars are pickled by pkl5shim instead of mpi4py's
C code, receives are posted) and ``codec.dumps``/``codec.loads`` with versions
that count and time every object, attributed to the outermost method running
in the thread.  An object unpickled outside any method (``wait()`` of an
``irecv`` or of a ``Message.irecv``) is counted under ``irecv``.

Counting rules: *sent* is every object this rank pickled to send, *received*
every object it unpickled; a root's own object in ``bcast``/``gather``/
``scatter``/``alltoall`` (and the copy a reduction starts from) is pickled and
unpickled like the others, as in plain mpi4py, and counted on both sides.
An object is *out-of-band* when it travels as header plus payload (it has
out-of-band buffers, or its pickle exceeds ``PKL5_EAGER``), else *eager*.
Sends to or receives from ``MPI.PROC_NULL`` are not counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from mpi4py import MPI

from . import codec, p2p, receive
from .config import settings

logger = logging.getLogger("pkl5shim")

_ISENDS = frozenset({"isend", "ibsend", "issend"})
# Where the peer (root, or dest of sendrecv) is among a method's arguments, for log lines.
_PEER_POSITION = {"bcast": 1, "gather": 1, "scatter": 1, "reduce": 2, "sendrecv": 1}
_COLLECTIVES = (
    "bcast",
    "gather",
    "scatter",
    "allgather",
    "alltoall",
    "reduce",
    "allreduce",
    "scan",
    "exscan",
    "neighbor_allgather",
    "neighbor_alltoall",
)


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

    def add(self, other: MethodStats) -> None:
        """Add ``other``'s counts to these."""
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


class _Call:
    """The outermost observed method running in a thread."""

    __slots__ = ("in_flight", "method", "peer", "tag")

    def __init__(self, method: str, peer: Any, tag: Any) -> None:
        self.method, self.peer, self.tag = method, peer, tag
        self.in_flight = 0


_lock = threading.Lock()
_methods: dict[str, MethodStats] = {}
_in_flight = 0
_peak_in_flight = 0
_state = threading.local()  # .call: the _Call of this thread; .source: (source, tag) of a receive
_saved: dict[tuple[Any, str], Any] = {}  # (owner, name) -> original, while observing


# -- counting -----------------------------------------------------------------------
def _entry(method: str) -> MethodStats:
    entry = _methods.get(method)
    if entry is None:
        entry = _methods[method] = MethodStats()
    return entry


def _sizes(stream: Any, buffers: list[Any]) -> tuple[int, int]:
    return memoryview(stream).nbytes, sum(memoryview(buffer).nbytes for buffer in buffers)


def _observed_dumps(obj: Any) -> tuple[Any, list[Any]]:
    start = time.perf_counter()
    parts = _plain["dumps"](obj)
    seconds = time.perf_counter() - start
    call: _Call | None = getattr(_state, "call", None)
    method = call.method if call is not None else "other"
    stream_nbytes, buffer_nbytes = _sizes(*parts)
    nbytes = stream_nbytes + buffer_nbytes
    out_of_band = not codec.travels_plain(parts)
    copied = settings.isend_copy and method in _ISENDS
    global _in_flight, _peak_in_flight
    with _lock:
        entry = _entry(method)
        entry.objects_sent += 1
        entry.bytes_sent += nbytes
        entry.out_of_band_sent += out_of_band
        entry.eager_sent += not out_of_band
        entry.zero_copy_bytes += 0 if copied else buffer_nbytes
        entry.pickle_seconds += seconds
        if call is not None:
            call.in_flight += nbytes
            _in_flight += nbytes
            _peak_in_flight = max(_peak_in_flight, _in_flight)
    if logger.isEnabledFor(logging.DEBUG):
        _log("sent", method, _where(call, "to", None), nbytes, out_of_band, len(parts[1]))
    return parts


def _observed_loads(stream: Any, buffers: list[Any]) -> Any:
    start = time.perf_counter()
    obj = _plain["loads"](stream, buffers)
    seconds = time.perf_counter() - start
    call: _Call | None = getattr(_state, "call", None)
    stream_nbytes, buffer_nbytes = _sizes(stream, buffers)
    out_of_band = not codec.travels_plain((stream, buffers))
    _count_received(call, stream_nbytes + buffer_nbytes, out_of_band, seconds)
    if logger.isEnabledFor(logging.DEBUG):
        where = _where(call, "from", getattr(_state, "source", None))
        _log("received", _method(call, "irecv"), where, stream_nbytes + buffer_nbytes,
             out_of_band, len(buffers))  # fmt: skip
    return obj


def _method(call: _Call | None, default: str) -> str:
    return call.method if call is not None else default


def _count_received(call: _Call | None, nbytes: int, out_of_band: bool, seconds: float) -> None:
    _state.received = getattr(_state, "received", 0) + 1
    with _lock:
        entry = _entry(_method(call, "irecv"))
        entry.objects_received += 1
        entry.bytes_received += nbytes
        entry.out_of_band_received += out_of_band
        entry.eager_received += not out_of_band
        entry.unpickle_seconds += seconds


def _where(call: _Call | None, direction: str, source: tuple[int, int] | None) -> str:
    """``to rank 1 tag 3`` for point-to-point, ``root 0`` for a collective (plus the source)."""
    if call is None or call.tag is not None:  # point-to-point (or an irecv completing)
        peer, tag = source if source is not None else (call.peer, call.tag)  # type: ignore[union-attr]
        return f"{direction} rank {peer} tag {tag}"
    where = "" if call.peer is None else f"root {call.peer}"
    if source is not None:
        where += f" {direction} rank {source[0]}"
    return where.strip()


def _log(direction: str, method: str, where: str, nbytes: int, oob: bool, nbuf: int) -> None:
    if not oob:
        path = "eager"
    elif nbuf:
        path = f"out-of-band ({nbuf} buffer{'s' if nbuf > 1 else ''})"
    else:
        path = "out-of-band (pickle over PKL5_EAGER, no buffer)"
    where = f" {where}" if where else ""
    logger.debug("%s %s%s: %d bytes, %s", method, direction, where, nbytes, path)


def _observed_result(op: receive.RecvOp) -> Any:
    # The receive knows its actual source and tag (the call may name ANY_SOURCE).
    _state.source = (op.source, op.tag)
    try:
        return _plain["result"](op)
    finally:
        _state.source = None


def _release(nbytes: int) -> Callable[[], None]:
    def done() -> None:
        global _in_flight
        with _lock:
            _in_flight -= nbytes

    return done


def _enter(method: str, peer: Any, tag: Any) -> _Call | None:
    """Make ``method`` this thread's call; ``None`` if one is already running (nested)."""
    if getattr(_state, "call", None) is not None:
        return None
    call = _state.call = _Call(method, peer, tag)
    return call


def _leave(call: _Call | None, keep_in_flight: bool = False) -> None:
    if call is None:
        return
    _state.call = None
    if not keep_in_flight:
        _release(call.in_flight)()


# -- the observed methods --------------------------------------------------------------
def _observed_send(name: str, mode: p2p.Mode) -> Callable[..., None]:
    original = _original_of(name)

    def send(self: MPI.Comm, obj: Any, dest: int, tag: int = 0) -> None:
        if dest == MPI.PROC_NULL:
            return original(self, obj, dest, tag)
        call = _enter(name, dest, tag)
        try:
            p2p.send_parts(self, codec.dumps(obj), dest, tag, mode)
        finally:
            _leave(call)
        return None

    send.__doc__ = original.__doc__
    return send


def _observed_isend(name: str, mode: p2p.Mode) -> Callable[..., p2p.Request]:
    original = _original_of(name)

    def isend(self: MPI.Comm, obj: Any, dest: int, tag: int = 0) -> p2p.Request:
        if dest == MPI.PROC_NULL:
            return original(self, obj, dest, tag)
        call = _enter(name, dest, tag)
        try:
            op = p2p.as_operation(p2p.isend_parts(self, codec.dumps(obj), dest, tag, mode))
        except BaseException:
            _leave(call)
            raise
        _leave(call, keep_in_flight=True)
        if call is not None:  # outermost: its bytes stay in flight until MPI is done
            op.watcher = _release(call.in_flight)  # type: ignore[union-attr]
        return p2p.request_of(op)

    isend.__doc__ = original.__doc__
    return isend


def _observed_recv(
    self: MPI.Comm,
    buf: Any = None,
    source: int = MPI.ANY_SOURCE,
    tag: int = MPI.ANY_TAG,
    status: MPI.Status | None = None,
) -> Any:
    """Blocking receive (observed)."""
    original = _plain["recv"]
    if source == MPI.PROC_NULL:
        return original(self, buf, source, tag, status)
    call = _enter("recv", source, tag)
    try:
        status = MPI.Status() if status is None else status
        before = getattr(_state, "received", 0)
        obj = original(self, buf, source, tag, status)
        if getattr(_state, "received", 0) == before:
            # A small object that mpi4py's C receive unpickled: counted from its
            # status; its (tiny) unpickling time is not measured.
            count = status.Get_count(MPI.BYTE)
            _count_received(_state.call, count, False, 0.0)
            if logger.isEnabledFor(logging.DEBUG):
                where = f"from rank {status.Get_source()} tag {status.Get_tag()}"
                _log("received", _method(_state.call, "recv"), where, count, False, 0)
        return obj
    finally:
        _leave(call)


def _observed_message_recv(self: p2p.Message, status: MPI.Status | None = None) -> Any:
    call = _enter("Message.recv", self._source, self._tag)
    try:
        return _saved[(p2p.Message, "recv")](self, status)
    finally:
        _leave(call)


def _observed_method(owner: type, name: str) -> Callable[..., Any]:
    original = _saved[(owner, name)]
    position = _PEER_POSITION.get(name)

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        peer = None
        if position is not None:
            default = args[position] if len(args) > position else 0
            peer = kwargs.get("dest", kwargs.get("root", default))
        call = _enter(name, peer, None)
        try:
            return original(self, *args, **kwargs)
        finally:
            _leave(call)

    method.__name__ = name
    method.__doc__ = original.__doc__
    return method


# -- switching on and off ---------------------------------------------------------------
_plain: dict[str, Any] = {}


def _comm_class() -> type:
    from .comm import Comm

    return Comm


def _original_of(name: str) -> Any:
    return _saved[(_comm_class(), name)]


def _targets() -> list[tuple[type, str]]:
    from .comm import Comm, Intracomm, _Neighbors

    owners: dict[str, type] = {"scan": Intracomm, "exscan": Intracomm}
    owners.update(neighbor_allgather=_Neighbors, neighbor_alltoall=_Neighbors)
    p2p_names = ("send", "bsend", "ssend", "isend", "ibsend", "issend", "recv", "sendrecv")
    targets = [(Comm, name) for name in p2p_names]
    targets += [(owners.get(name, Comm), name) for name in _COLLECTIVES]
    return [*targets, (p2p.Message, "recv")]


def log_to_stderr() -> None:
    """``PKL5_LOG=debug``: send the ``pkl5shim`` logger's debug lines to stderr, with the rank.

    A program that configured ``logging`` itself keeps its handlers: only the
    level of the ``pkl5shim`` logger is set.
    """
    logger.setLevel(logging.DEBUG)
    if logger.handlers or logging.getLogger().handlers:
        return
    rank = MPI.COMM_WORLD.Get_rank() if MPI.Is_initialized() else "?"
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"pkl5shim[rank {rank}] %(message)s"))
    logger.addHandler(handler)


def observing() -> bool:
    """Tell whether observation is on."""
    return bool(_saved)


def start() -> None:
    """Turn observation on (idempotent): count and time every object, log if asked."""
    with _lock:
        if _saved:
            return
        for owner, name in _targets():
            _saved[(owner, name)] = owner.__dict__[name]
        _plain.update(dumps=codec.dumps, loads=codec.loads, result=receive.RecvOp.result)
        _plain["recv"] = _saved[(_comm_class(), "recv")]
    modes = {"send": p2p.STANDARD, "bsend": p2p.BUFFERED, "ssend": p2p.SYNCHRONOUS}
    comm = _comm_class()
    for name, mode in modes.items():
        setattr(comm, name, _observed_send(name, mode))
        setattr(comm, "i" + name, _observed_isend("i" + name, mode))
    comm.recv = _observed_recv
    comm.sendrecv = _observed_method(comm, "sendrecv")
    for owner, name in _targets():
        if name in _COLLECTIVES:
            setattr(owner, name, _observed_method(owner, name))
    p2p.Message.recv = _observed_message_recv  # type: ignore[method-assign]
    codec.dumps = _observed_dumps
    codec.loads = _observed_loads
    receive.RecvOp.result = _observed_result  # type: ignore[method-assign]


def stop() -> None:
    """Turn observation off: the original methods come back; the counts are kept."""
    with _lock:
        saved = dict(_saved)
        _saved.clear()
    if not saved:
        return
    for (owner, name), original in saved.items():
        setattr(owner, name, original)
    codec.dumps = _plain["dumps"]
    codec.loads = _plain["loads"]
    receive.RecvOp.result = _plain["result"]  # type: ignore[method-assign]


# -- results -------------------------------------------------------------------------------
def snapshot() -> dict[str, Any]:
    """The counts so far: per method, their total, and the peak of bytes in flight."""
    with _lock:
        methods = {name: asdict(entry) for name, entry in sorted(_methods.items())}
        total = MethodStats()
        for entry in _methods.values():
            total.add(entry)
        return {
            "observing": bool(_saved),
            "methods": methods,
            "total": asdict(total),
            "peak_bytes_in_flight": _peak_in_flight,
            "bytes_in_flight": _in_flight,
        }
