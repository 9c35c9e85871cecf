"""Point-to-point: the send and receive families, ``Request`` and ``Message``.

A small object (pickle of at most ``PKL5_EAGER`` bytes, nothing out of band)
travels as one plain pickle message, exactly as plain mpi4py sends it.  A large
one travels as a header on the user's (comm, tag) and its payload on the
communicator's channel (see ``wire`` and ``docs/protocol.md``).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

from mpi4py import MPI

from . import check, codec, metrics, progress, transport, wire
from .config import modes, settings
from .ops import SendOp, as_operation
from .progress import handed, pending
from .receive import RecvOp
from .requests import Handles, Request, request_of
from .transport import Channel, RawComm, RawMessage, RawRequest


class Mode(NamedTuple):
    """The MPI calls of one send mode."""

    send_object: Callable[..., None]
    send_bytes: Callable[..., None]
    start_bytes: Callable[..., MPI.Request]
    start_object: Callable[..., MPI.Request]


STANDARD = Mode(RawComm.send, RawComm.Send, RawComm.Isend, RawComm.isend)
BUFFERED = Mode(RawComm.bsend, RawComm.Bsend, RawComm.Ibsend, RawComm.ibsend)
SYNCHRONOUS = Mode(RawComm.ssend, RawComm.Ssend, RawComm.Issend, RawComm.issend)

# The objects mpi4py's own C send serves directly: they hold no out-of-band buffer
# and their pickle surely travels plain (or nothing is sent, to MPI.PROC_NULL).  Each
# send method tests them inline: a call to a function would cost 0.1 us, 5% of a small
# round trip (measured).
_SCALARS = frozenset({type(None), bool, float, complex})
_INT_BOUND = 1 << 64
_LONGEST = dict(zip((bytes, str), codec.plain_lengths()))
"""The longest ``bytes`` and ``str`` that surely travel plain."""
_PROC_NULL = MPI.PROC_NULL
_dumps = codec.dumps
_HEADER_LIMIT = wire.point_to_point_limit()
"""Largest header (the settings are fixed at import)."""
_travels_plain = codec.travels_plain


# -- sending ------------------------------------------------------------------
def start_parts(
    comm: MPI.Comm,
    channel: Channel | None,
    parts: tuple[Any, list[Any]],
    dest: int,
    tag: int,
    mode: Mode = STANDARD,
) -> SendOp | MPI.Request:
    """Post the sends of an already pickled object: one plain message (the eager rule),
    or its header, then on the channel the parts it announces (``wire.frame``)."""
    if _travels_plain(parts):
        return mode.start_bytes(comm, parts[0], dest, tag)
    if channel is None:
        channel = transport.lookup(comm)
    header, follow = wire.frame(comm.Get_rank(), channel.new_tag(), parts, _HEADER_LIMIT)
    started = start_header(comm, channel, header, follow, dest, tag, mode)
    metrics.record_send(header.total_nbytes)  # once the sends are posted
    return started


def start_header(
    comm: MPI.Comm,
    channel: Channel,
    header: wire.Header,
    follow: list[Any],
    dest: int,
    tag: int,
    mode: Mode = STANDARD,
) -> SendOp:
    """Post the sends of ``header`` on ``comm`` and of ``follow`` on the channel."""
    message = wire.encode(header)
    requests = [mode.start_bytes(comm, message, dest, tag)]
    requests += transport.isend_buffers(channel.comm, follow, dest, header.channel_tag)
    return SendOp(requests, (message, follow))


def isend_parts(
    comm: MPI.Comm, parts: tuple[Any, list[Any]], dest: int, tag: int, mode: Mode = STANDARD
) -> SendOp | MPI.Request:
    """Start a nonblocking send of a pickled object; ``PKL5_ISEND`` and ``PKL5_CHECK`` apply."""
    guard = None
    if parts[1]:
        if settings.isend_copy:  # PKL5_ISEND=copy: plain mpi4py's semantics
            parts = (parts[0], [memoryview(buffer).tobytes("A") for buffer in parts[1]])
        elif modes.check:  # PKL5_CHECK: checksum the arrays, compare at completion
            guard = check.Guard(parts[1], dest, tag)
    started = start_parts(comm, None, parts, dest, tag, mode)
    if guard is not None:
        started.guard = guard  # type: ignore[union-attr]
    return started


def send_parts(
    comm: MPI.Comm, parts: tuple[Any, list[Any]], dest: int, tag: int, mode: Mode = STANDARD
) -> None:
    """Send a pickled object and return once MPI is done with its memory."""
    if not pending and _travels_plain(parts):
        mode.send_bytes(comm, parts[0], dest, tag)
        return
    started = start_parts(comm, None, parts, dest, tag, mode)
    if type(started) is not RawRequest or not started.Test():
        progress.complete(as_operation(started))


def nonblocking_send(mode: Mode, doc: str) -> Callable[..., Request]:
    """Make the ``isend`` method of one send mode."""
    start_object, start_bytes = mode.start_object, mode.start_bytes
    method = start_object.__name__  # isend, ibsend, issend: what observation counts under

    def isend(self: MPI.Comm, obj: Any, dest: int, tag: int = 0) -> Request:
        if handed:  # dropped requests' sends: forgotten here once MPI completed them
            progress.maybe_prune()
        kind = type(obj)  # mpi4py's own C send serves it (see _SCALARS)
        plain = (
            kind in _SCALARS
            or (kind is int and -_INT_BOUND < obj < _INT_BOUND)
            or (kind in _LONGEST and len(obj) <= _LONGEST[kind])
            or dest == _PROC_NULL
        )
        if plain and not modes.observing:  # mpi4py's own isend, nothing to count
            return request_of(start_object(self, obj, dest, tag))
        observing = modes.observing and dest != _PROC_NULL
        call = metrics.enter(method, dest, tag) if observing else None
        try:
            if plain:
                started = start_object(self, obj, dest, tag)
                if observing:  # mpi4py's C code pickled it: pickle again, to count it
                    _dumps(obj)
            else:
                parts = _dumps(obj)
                if _travels_plain(parts):
                    started = start_bytes(self, parts[0], dest, tag)
                else:
                    started = isend_parts(self, parts, dest, tag, mode)
        except BaseException:
            metrics.leave(call)
            raise
        if call is not None:  # its bytes stay in flight until MPI completed the sends
            metrics.leave(call, started if type(started) is SendOp else None)
        return request_of(started)

    isend.__doc__ = doc
    return isend


def blocking_send(mode: Mode, doc: str) -> Callable[..., None]:
    """Make the ``send`` method of one send mode."""
    send_object, send_bytes, start_object = mode.send_object, mode.send_bytes, mode.start_object
    method = send_object.__name__  # send, bsend, ssend: what observation counts under

    def send(self: MPI.Comm, obj: Any, dest: int, tag: int = 0) -> None:
        kind = type(obj)  # mpi4py's own C send serves it (see _SCALARS)
        plain = (
            kind in _SCALARS
            or (kind is int and -_INT_BOUND < obj < _INT_BOUND)
            or (kind in _LONGEST and len(obj) <= _LONGEST[kind])
            or dest == _PROC_NULL
        )
        if plain and not pending and not modes.observing:  # mpi4py's own send, nothing else
            send_object(self, obj, dest, tag)
            return
        observing = modes.observing and dest != _PROC_NULL
        call = metrics.enter(method, dest, tag) if observing else None
        try:
            if pending:  # receives to advance: never block inside MPI
                if not plain:
                    send_parts(self, _dumps(obj), dest, tag, mode)
                    return
                started = start_object(self, obj, dest, tag)
                if not started.Test():
                    progress.complete(as_operation(started))
            elif plain:
                send_object(self, obj, dest, tag)
            else:
                parts = _dumps(obj)
                if _travels_plain(parts):
                    send_bytes(self, parts[0], dest, tag)
                else:
                    progress.complete(start_parts(self, None, parts, dest, tag, mode))
            if plain and observing:  # mpi4py's C code pickled it: pickle again, to count it
                _dumps(obj)
        finally:
            if call is not None:
                metrics.leave(call)

    send.__doc__ = doc
    return send


# -- receiving -----------------------------------------------------------------
def _first_buffer(buf: Any) -> Any:
    # The first message is never larger than the eager limit: a user buffer
    # serves if it is at least that large, and an int asks for at least that.
    if buf is None:
        return codec.scratch(settings.eager_limit)
    if isinstance(buf, int):
        return codec.scratch(max(buf, settings.eager_limit))
    view = memoryview(buf)
    if view.readonly or view.nbytes < settings.eager_limit or not view.contiguous:
        return codec.scratch(settings.eager_limit)
    return view.cast("B")


def irecv(
    comm: MPI.Comm,
    buf: Any,
    source: int,
    tag: int,
    channel: Channel | None = None,
    failures: bool = False,
) -> RecvOp:
    """Post the receive of one object; it keeps MPI's matching order.

    ``failures``: a collective's receive on the channel, where a failure header is valid.
    """
    buffer = _first_buffer(buf)
    request = RawComm.Irecv(comm, buffer, source, tag)
    op = RecvOp(comm, channel, failures)
    op.source, op.tag = source, tag  # as posted (pending.describe); the status's once matched
    if buf is None:
        op.spare = buffer
    return op.start_first(request, buffer)


_c_recv = RawComm.recv
_improbe = RawComm.improbe
_m_recv = RawMessage.recv
_Header = wire.Header
_Status = MPI.Status


@wire.receives_headers
def recv(
    self: MPI.Comm,
    buf: Any = None,
    source: int = MPI.ANY_SOURCE,
    tag: int = MPI.ANY_TAG,
    status: MPI.Status | None = None,
) -> Any:
    """Blocking receive; ``buf`` is accepted and not needed (deprecated, as in mpi4py)."""
    if buf is not None:
        warnings.warn("the 'buf' argument is deprecated", UserWarning, stacklevel=2)
    observing = modes.observing and source != _PROC_NULL
    call = metrics.enter("recv", source, tag) if observing else None
    try:
        if pending:  # receives to advance: never block inside MPI
            if source == _PROC_NULL:
                return _c_recv(self, None, source, tag, status)
            return recv_posted(self, source, tag, status)
        first_status = _Status() if status is None else status
        if transport.POLLED_PROBES and source != _PROC_NULL:
            probe = functools.partial(_improbe, self, source, tag, first_status)
            message = progress.wait_for(probe, sleeps=False)  # as MPI_Mprobe would not
            obj = _m_recv(message)
        else:
            obj = _c_recv(self, None, source, tag, first_status)
        if type(obj) is not _Header:
            if observing:  # mpi4py's C code unpickled it: counted from its status
                count = first_status.Get_count(MPI.BYTE)
                metrics.received_plain(count, first_status.Get_source(), first_status.Get_tag())
            return obj
        op = RecvOp(self).start_payload(obj, first_status.Get_source(), first_status.Get_tag())
        return _finish_receive(op, status)
    finally:
        if call is not None:
            metrics.leave(call)


def recv_posted(comm: MPI.Comm, source: int, tag: int, status: MPI.Status | None) -> Any:
    """Blocking receive through a posted receive (the engine's generic path)."""
    return _finish_receive(irecv(comm, None, source, tag), status)


def _finish_receive(op: RecvOp, status: MPI.Status | None) -> Any:
    if pending:  # other receives to advance meanwhile
        progress.drive([op], 1)
    else:  # the op is not pending itself (start_payload): nobody else can advance it
        op.advance(True)
    if status is not None:
        op.fill_status(status)
    return op.result()


def probe(comm: MPI.Comm, source: int, tag: int, status: MPI.Status | None) -> bool:
    """Block until a message matches; ``status`` describes its first message."""
    if pending:
        return progress.wait_for(lambda: RawComm.iprobe(comm, source, tag, status))
    return RawComm.probe(comm, source, tag, status)


def iprobe(comm: MPI.Comm, source: int, tag: int, status: MPI.Status | None) -> bool:
    """Tell whether a message matches; ``status`` describes its first message."""
    if pending:
        progress.poll_others()
    return RawComm.iprobe(comm, source, tag, status)


# -- Message -------------------------------------------------------------------
def _raw_probe(name: str) -> classmethod:
    """``Message.Probe``/``Iprobe``: mpi4py's uppercase matching probe (an ``MPI.Message``
    of the raw bytes of the first message)."""
    call = getattr(RawMessage, name)

    def probe(
        cls: type,
        comm: MPI.Comm,
        source: int = MPI.ANY_SOURCE,
        tag: int = MPI.ANY_TAG,
        status: MPI.Status | None = None,
    ) -> MPI.Message | None:
        return call(comm, source, tag, status)

    probe.__name__ = probe.__qualname__ = name
    probe.__doc__ = _raw_probe.__doc__
    return classmethod(probe)


class Message(Handles):
    """A message matched by ``mprobe``/``improbe`` (not a subclass of ``MPI.Message``)."""

    __slots__ = ("_comm", "_message", "_nbytes", "_source", "_tag")
    _RAW = RawMessage

    def __init__(
        self,
        message: MPI.Message | None = None,
        comm: MPI.Comm | None = None,
        status: MPI.Status | None = None,
    ) -> None:
        """Wrap a matched first message of ``comm`` described by ``status``."""
        self._message = MPI.MESSAGE_NULL if message is None else message
        self._comm = comm
        self._nbytes = 0 if status is None else status.Get_count(MPI.BYTE)
        self._source = MPI.ANY_SOURCE if status is None else status.Get_source()
        self._tag = MPI.ANY_TAG if status is None else status.Get_tag()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Message):
            return self._message == other._message
        if isinstance(other, RawMessage):
            return self._message == other
        return NotImplemented

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        """True until the message is received."""
        return bool(self._message)

    def free(self) -> None:
        """Do nothing (mpi4py's ``Message.free`` semantics)."""
        self._message.free()

    def _raw(self) -> MPI.Message:
        """The matched first message."""
        return self._message

    def Recv(self, buf: Any, status: MPI.Status | None = None) -> None:  # noqa: N802
        """Receive the matched first message's bytes into ``buf`` (mpi4py's ``Recv``)."""
        RawMessage.Recv(self._message, buf, status)

    def Irecv(self, buf: Any) -> MPI.Request:  # noqa: N802 - mpi4py's name
        """Start receiving the matched first message's bytes into ``buf``."""
        return RawMessage.Irecv(self._message, buf)

    Probe = _raw_probe("Probe")
    Iprobe = _raw_probe("Iprobe")

    def recv(self, status: MPI.Status | None = None) -> Any:
        """Receive the matched message (blocking)."""
        message, self._message = self._message, MPI.MESSAGE_NULL
        if message == MPI.MESSAGE_NO_PROC:
            return RawMessage.recv(message, status)
        assert self._comm is not None
        observing = modes.observing
        call = metrics.enter("Message.recv", self._source, self._tag) if observing else None
        try:
            buffer = codec.allocate(self._nbytes)
            first_status = MPI.Status() if status is None else status
            RawMessage.Recv(message, buffer, first_status)
            if not wire.is_header(buffer):
                return codec.loads(buffer, []) if self._nbytes else None
            op = RecvOp(self._comm).start_payload(wire.decode(buffer), self._source, self._tag)
            return _finish_receive(op, status)
        finally:
            metrics.leave(call)

    def irecv(self) -> Request:
        """Receive the matched message (nonblocking)."""
        message, self._message = self._message, MPI.MESSAGE_NULL
        if message == MPI.MESSAGE_NO_PROC:
            return request_of(RawMessage.irecv(message))
        assert self._comm is not None
        buffer = codec.allocate(self._nbytes)
        request = RawMessage.Irecv(message, buffer)
        return request_of(RecvOp(self._comm).start_first(request, buffer))

    @classmethod
    def probe(
        cls,
        comm: MPI.Comm,
        source: int = MPI.ANY_SOURCE,
        tag: int = MPI.ANY_TAG,
        status: MPI.Status | None = None,
    ) -> Message:
        """Blocking matching probe."""
        status = MPI.Status() if status is None else status
        if pending:
            return progress.wait_for(lambda: cls.iprobe(comm, source, tag, status))
        return cls(RawComm.Mprobe(comm, source, tag, status), comm, status)

    @classmethod
    def iprobe(
        cls,
        comm: MPI.Comm,
        source: int = MPI.ANY_SOURCE,
        tag: int = MPI.ANY_TAG,
        status: MPI.Status | None = None,
    ) -> Message | None:
        """Nonblocking matching probe: a ``Message`` or ``None``."""
        status = MPI.Status() if status is None else status
        if pending:
            progress.poll_others()
        message = RawComm.Improbe(comm, source, tag, status)
        return None if message is None else cls(message, comm, status)
