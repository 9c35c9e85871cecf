"""Point-to-point: the send and receive families, ``Request`` and ``Message``.

A small object (pickle of at most ``PKL5_EAGER`` bytes, nothing out of band)
travels as one plain pickle message, exactly as plain mpi4py sends it.  A large
one travels as a header on the user's (comm, tag) and its payload on the
communicator's channel (see ``wire`` and ``docs/protocol.md``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from mpi4py import MPI

from . import check, codec, metrics, progress, transport, wire
from .config import modes, settings
from .progress import ForeignOp, Operation, RecvOp, SendOp, handed, pending
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

_SCALARS = frozenset({type(None), bool, float, complex})
_INT_BOUND = 1 << 64
_PROC_NULL = MPI.PROC_NULL
_dumps = codec.dumps
# Objects of these types hold no out-of-band buffer and their pickle surely
# fits the eager limit, so mpi4py's own C send serves them directly.  The
# checks are written inline in the send methods: they run on every message.
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
    """Post the sends of an already pickled object; the header goes first.

    The size table and the stream travel inside the header when they fit
    (``wire.fits_inline``; the usual case for numpy arrays: only the buffers follow
    on the channel), else first on the channel.
    """
    if _travels_plain(parts):
        return mode.start_bytes(comm, parts[0], dest, tag)
    stream, buffers = parts
    if channel is None:
        channel = transport.lookup(comm)
    sizes = [memoryview(buffer).nbytes for buffer in buffers]
    table = wire.encode_table(sizes)
    inline = bool(buffers) and wire.fits_inline(len(buffers), len(stream))
    header = wire.Header(
        source=comm.Get_rank(),
        channel_tag=channel.new_tag(),
        nbuffers=len(buffers),
        stream_nbytes=len(stream),
        total_nbytes=len(stream) + sum(sizes),
        inline=table + stream if inline else None,
    )
    message = wire.encode(header)
    requests = [mode.start_bytes(comm, message, dest, tag)]
    metrics.record_send(header.total_nbytes)
    if inline:
        payload = buffers
    elif buffers:
        payload = [table, stream, *buffers]
    else:
        payload = [stream]
    requests += transport.isend_buffers(channel.comm, payload, dest, header.channel_tag)
    return SendOp(requests, (message, payload))


def as_operation(started: SendOp | MPI.Request) -> Operation:
    """The engine operation of a started send."""
    return SendOp([started]) if isinstance(started, RawRequest) else started


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
    longest_bytes, longest_str = codec.plain_lengths()
    method = start_object.__name__  # isend, ibsend, issend: what observation counts under

    def isend(self: MPI.Comm, obj: Any, dest: int, tag: int = 0) -> Request:
        if handed:  # dropped requests' sends: forgotten here once MPI completed them
            progress.maybe_prune()
        kind = type(obj)
        plain = (
            kind in _SCALARS
            or (kind is int and -_INT_BOUND < obj < _INT_BOUND)
            or (dest == _PROC_NULL)
            or (kind is bytes and len(obj) <= longest_bytes)
            or (kind is str and len(obj) <= longest_str)
        )
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
        return _request(started)

    isend.__doc__ = doc
    return isend


def blocking_send(mode: Mode, doc: str) -> Callable[..., None]:
    """Make the ``send`` method of one send mode."""
    send_object, send_bytes, start_object = mode.send_object, mode.send_bytes, mode.start_object
    longest_bytes, longest_str = codec.plain_lengths()
    method = send_object.__name__  # send, bsend, ssend: what observation counts under

    def send(self: MPI.Comm, obj: Any, dest: int, tag: int = 0) -> None:
        kind = type(obj)
        plain = (
            kind in _SCALARS
            or (kind is int and -_INT_BOUND < obj < _INT_BOUND)
            or (dest == _PROC_NULL)
            or (kind is bytes and len(obj) <= longest_bytes)
            or (kind is str and len(obj) <= longest_str)
        )
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
        return codec.allocate(settings.eager_limit)
    if isinstance(buf, int):
        return codec.allocate(max(buf, settings.eager_limit))
    view = memoryview(buf)
    if view.readonly or view.nbytes < settings.eager_limit or not view.contiguous:
        return codec.allocate(settings.eager_limit)
    return view.cast("B")


def irecv(
    comm: MPI.Comm,
    buf: Any,
    source: int,
    tag: int,
    channel: Channel | None = None,
) -> RecvOp:
    """Post the receive of one object; it keeps MPI's matching order."""
    buffer = _first_buffer(buf)
    request = RawComm.Irecv(comm, buffer, source, tag)
    op = RecvOp(comm, channel)
    op.source, op.tag = source, tag  # as posted (pending.describe); the status's once matched
    return op.start_first(request, buffer)


_c_recv = RawComm.recv
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
    progress.drive([op], 1)
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


# -- Request -------------------------------------------------------------------
def _operation(request: Request | MPI.Request | None) -> Operation | None:
    if isinstance(request, Request):
        request = request._op
    if isinstance(request, RawRequest):
        return ForeignOp(request) if request else None
    if isinstance(request, Operation):
        return request
    if request is None:
        return None
    raise TypeError(
        f"expected a pkl5shim.Request or an mpi4py.MPI.Request, got {type(request).__name__}"
    )


def _take(
    request: Request | MPI.Request | None, op: Operation | None, status: MPI.Status | None
) -> Any:
    if isinstance(request, Request):
        request._op = None
    if op is None:
        if status is not None:
            _empty_status(status)
        return None
    try:
        return op.result()
    finally:  # after result(): a plain request's status is known once it is waited for
        if status is not None:
            op.fill_status(status)


def _empty_status(status: MPI.Status) -> None:
    status.Set_source(MPI.ANY_SOURCE)
    status.Set_tag(MPI.ANY_TAG)
    status.Set_error(MPI.SUCCESS)
    status.Set_elements(MPI.BYTE, 0)
    status.Set_cancelled(False)


def _has_engine_requests(requests: Sequence[Any]) -> bool:
    return any(isinstance(request, Request) for request in requests)


def _get_status(op: Operation | None, status: MPI.Status | None) -> bool:
    """Whether ``op`` completed (``status`` filled then), without taking its result."""
    if op is None:
        if status is not None:
            _empty_status(status)
        return True
    done = progress.test([op])[0]
    if done and status is not None:
        op.fill_status(status)
    return done


def _statuses(statuses: Sequence[MPI.Status] | None, count: int) -> list[MPI.Status | None]:
    """The status to fill for each of ``count`` results, as mpi4py does: a list grows to
    ``count``; any other sequence fills its first items and leaves the rest unset."""
    if statuses is None:
        return [None] * count
    if isinstance(statuses, list):
        statuses.extend(MPI.Status() for _ in range(count - len(statuses)))
        return statuses
    given: list[MPI.Status | None] = list(statuses[:count])
    return given + [None] * (count - len(given))


class _Handles:
    """``handle``, ``toint``, ``py2f`` and the class methods back from a handle, as
    mpi4py's objects have them: through ``_raw()``, the one MPI object this stands for."""

    __slots__ = ()
    _RAW: Any  # mpi4py's class of that MPI object

    def _raw(self) -> Any:
        raise NotImplementedError

    @property
    def handle(self) -> int:
        """MPI handle."""
        return self._raw().handle

    def toint(self) -> int:
        """Integer handle."""
        return self._raw().toint()

    def py2f(self) -> int:
        """Fortran handle."""
        return self._raw().py2f()

    @classmethod
    def fromhandle(cls, handle: int) -> Any:
        """The object of an MPI handle."""
        return cls(cls._RAW.fromhandle(handle))

    @classmethod
    def fromint(cls, arg: int) -> Any:
        """The object of an integer handle."""
        return cls(cls._RAW.fromint(arg))

    @classmethod
    def f2py(cls, arg: int) -> Any:
        """The object of a Fortran handle."""
        return cls(cls._RAW.f2py(arg))


class Request(_Handles):
    """Request of a nonblocking operation (not a subclass of ``MPI.Request``).

    Its class methods also accept plain ``MPI.Request`` objects, so requests of
    several communicators and of uppercase calls can be waited for together.
    """

    __slots__ = ("_op",)
    _RAW = RawRequest

    def __init__(self, request: Request | Operation | MPI.Request | None = None) -> None:
        """Wrap an engine operation, a plain ``MPI.Request``, or nothing (a null request).

        ``Request(req)`` of a pkl5shim request refers to the same operation (equal to it).
        """
        if isinstance(request, Request):
            request = request._op
        elif isinstance(request, RawRequest) and not request:
            request = None
        # A plain MPI.Request (small sends) is kept as it is: mpi4py's own
        # wait/test serve it directly when no receive is pending.
        self._op: Operation | MPI.Request | None = request

    def __eq__(self, other: object) -> bool:
        """``req == MPI.REQUEST_NULL`` holds once the request completed."""
        if isinstance(other, Request):
            return self._op is other._op
        if isinstance(other, RawRequest):
            return self._op is None and other == MPI.REQUEST_NULL
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        """True while the request is active."""
        return self._op is not None

    def __repr__(self) -> str:
        state = "null" if self._op is None else type(self._op).__name__
        return f"<pkl5shim.Request {state}>"

    def __del__(self) -> None:
        # Dropped before completion (no wait, no Free): as after Free(), MPI may
        # still read the object's memory, so the engine keeps it until MPI is done.
        # A small send's own MPI.Request too: else mpi4py would free it here, in
        # whatever thread the collector runs, and release the pickle MPI still sends
        # (measured: corrupted messages on all three wheels).  detach() calls no MPI.
        op = self._op
        if op is None:
            return
        if type(op) is SendOp:
            if not op.done:
                op.detach()
        elif type(op) is RawRequest and op:
            SendOp([op]).detach()

    def _raw(self) -> MPI.Request:
        """The one MPI request this is; a request of a large message is several."""
        op = self._op
        if op is None:
            return MPI.REQUEST_NULL
        if type(op) is RawRequest:
            return op
        raise ValueError(
            "a pkl5shim request of a large message is several MPI requests: it has no single "
            "MPI handle (wait for it first, or use uppercase calls for handle-level work)"
        )

    def Free(self) -> None:  # noqa: N802 - mpi4py's name
        """Free the request; the operation still completes and its memory stays alive until then."""
        op = self._op
        if op is None:
            raise MPI.Exception(MPI.ERR_REQUEST)  # mpi4py's Free of a null request
        if isinstance(op, RawRequest):
            op = SendOp([op])
        op.detach()
        progress.maybe_prune()
        self._op = None

    def free(self) -> None:
        """Free the request unless it is null (mpi4py's ``free``)."""
        if self._op is not None:
            self.Free()

    def cancel(self) -> None:
        """Cancel a pending receive whose message has not matched yet."""
        op = self._op
        if op is None:
            raise MPI.Exception(MPI.ERR_REQUEST)  # mpi4py's Cancel of a null request
        if isinstance(op, RawRequest):
            op.Cancel()
        else:
            op.cancel()

    Cancel = cancel

    def get_status(self, status: MPI.Status | None = None) -> bool:
        """Test for completion without freeing the request."""
        return _get_status(_operation(self), status)

    Get_status = get_status

    def test(self, status: MPI.Status | None = None) -> tuple[bool, Any]:
        """Test for completion: ``(flag, obj)``."""
        op = self._op
        if type(op) is RawRequest:
            if pending:
                progress.poll_others()
            flag, obj = op.test(status)
            if flag:
                self._op = None
            return (flag, obj)
        if op is not None and not progress.test([op])[0]:
            return (False, None)
        return (True, _take(self, op, status))

    def wait(self, status: MPI.Status | None = None) -> Any:
        """Wait for completion and return the received object (``None`` for sends)."""
        op = self._op
        if type(op) is RawRequest:
            if not pending:
                self._op = None
                return op.wait(status)
            op = ForeignOp(op)
        if op is not None:
            progress.drive([op], 1)
        return _take(self, op, status)

    def Test(self, status: MPI.Status | None = None) -> bool:  # noqa: N802 - mpi4py's name
        """Test for completion, discarding any received object."""
        return self.test(status)[0]

    def Wait(self, status: MPI.Status | None = None) -> bool:  # noqa: N802 - mpi4py's name
        """Wait for completion, discarding any received object (``True``, as mpi4py's)."""
        self.wait(status)
        return True

    @classmethod
    def get_status_all(
        cls, requests: Sequence[Any], statuses: list[MPI.Status] | None = None
    ) -> bool:
        """Test whether all requests completed, without freeing them."""
        if not _has_engine_requests(requests):  # mpi4py's own, as the MPI library has it
            return RawRequest.get_status_all(requests, statuses)
        sts = _statuses(statuses, len(requests))
        return all([_get_status(_operation(req), st) for req, st in zip(requests, sts)])

    @classmethod
    def get_status_any(
        cls, requests: Sequence[Any], status: MPI.Status | None = None
    ) -> tuple[int, bool]:
        """Test whether any request completed: ``(index, flag)``, without freeing it."""
        if not _has_engine_requests(requests):  # mpi4py's own, as the MPI library has it
            return RawRequest.get_status_any(requests, status)
        ops = [_operation(req) for req in requests]
        active = [op for op in ops if op is not None]
        if not active:
            return (MPI.UNDEFINED, True)
        done = progress.test(active)
        if not any(done):
            return (MPI.UNDEFINED, False)
        index = ops.index(active[done.index(True)])
        if status is not None:
            ops[index].fill_status(status)  # type: ignore[union-attr]
        return (index, True)

    @classmethod
    def get_status_some(
        cls, requests: Sequence[Any], statuses: list[MPI.Status] | None = None
    ) -> list[int] | None:
        """Indices of the completed requests, without freeing them; ``None`` if none is active."""
        if not _has_engine_requests(requests):  # mpi4py's own, as the MPI library has it
            return RawRequest.get_status_some(requests, statuses)
        ops = [_operation(req) for req in requests]
        positions = [i for i, op in enumerate(ops) if op is not None]
        if not positions:
            return None
        done = progress.test([ops[i] for i in positions])  # type: ignore[misc]
        indices = [i for i, flag in zip(positions, done) if flag]
        for index, status in zip(indices, _statuses(statuses, len(indices))):
            if status is not None:
                ops[index].fill_status(status)  # type: ignore[union-attr]
        return indices

    @classmethod
    def testall(
        cls, requests: Sequence[Any], statuses: list[MPI.Status] | None = None
    ) -> tuple[bool, list[Any] | None]:
        """Test for completion of all requests: ``(flag, objs)``."""
        ops = [_operation(req) for req in requests]
        active = [op for op in ops if op is not None]
        if active and not all(progress.test(active)):
            return (False, None)
        return (True, _take_all(requests, ops, statuses))

    @classmethod
    def waitall(
        cls, requests: Sequence[Any], statuses: list[MPI.Status] | None = None
    ) -> list[Any]:
        """Wait for all requests and return their objects."""
        ops = [_operation(req) for req in requests]
        active = [op for op in ops if op is not None]
        if active:
            progress.drive(active, len(active))
        return _take_all(requests, ops, statuses)

    @classmethod
    def testany(
        cls, requests: Sequence[Any], status: MPI.Status | None = None
    ) -> tuple[int, bool, Any]:
        """Test for completion of any request: ``(index, flag, obj)``."""
        return _any(requests, status, blocking=False)

    @classmethod
    def waitany(cls, requests: Sequence[Any], status: MPI.Status | None = None) -> tuple[int, Any]:
        """Wait for any request: ``(index, obj)``; index ``MPI.UNDEFINED`` if none is active."""
        index, _flag, obj = _any(requests, status, blocking=True)
        return (index, obj)

    @classmethod
    def testsome(
        cls, requests: Sequence[Any], statuses: list[MPI.Status] | None = None
    ) -> tuple[list[int] | None, list[Any] | None]:
        """Test for completion of some requests: ``(indices, objs)``."""
        return _some(requests, statuses, blocking=False)

    @classmethod
    def waitsome(
        cls, requests: Sequence[Any], statuses: list[MPI.Status] | None = None
    ) -> tuple[list[int] | None, list[Any] | None]:
        """Wait for some requests: ``(indices, objs)``; ``(None, None)`` if none is active."""
        return _some(requests, statuses, blocking=True)


def _uppercase(name: str, lowercase: Callable[..., Any], pick: Callable[[Any], Any]) -> Any:
    """``Request.<name>``: mpi4py's call, or ``pick`` of the lowercase call's result.

    mpi4py's own serves lists of plain requests (its C loop); a list holding a
    pkl5shim request goes through the engine.
    """
    mpi4py_call = getattr(RawRequest, name)

    def call(cls: type, requests: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
        if not _has_engine_requests(requests):
            return mpi4py_call(requests, *args, **kwargs)
        return pick(lowercase(requests, *args, **kwargs))

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"mpi4py's ``Request.{name}``; also takes pkl5shim requests."
    return classmethod(call)


def _first(result: tuple[Any, ...]) -> Any:
    return result[0]


def _same(result: Any) -> Any:
    return result


_UPPERCASE = {
    "Waitall": (Request.waitall, lambda _objs: True),
    "Testall": (Request.testall, _first),
    "Waitany": (Request.waitany, _first),
    "Testany": (Request.testany, lambda result: result[:2]),
    "Waitsome": (Request.waitsome, _first),
    "Testsome": (Request.testsome, _first),
    "Get_status_all": (Request.get_status_all, _same),
    "Get_status_any": (Request.get_status_any, _same),
    "Get_status_some": (Request.get_status_some, _same),
}
for _name, (_lowercase, _pick) in _UPPERCASE.items():
    setattr(Request, _name, _uppercase(_name, _lowercase, _pick))
del _name, _lowercase, _pick

REQUEST_CLASS_METHODS = (
    *(name.lower() for name in _UPPERCASE),
    *_UPPERCASE,
    "fromhandle",
    "fromint",
    "f2py",
)
"""The class methods of ``Request``, lowercase and uppercase, as mpi4py has them."""


def _request(op: Operation | MPI.Request) -> Request:
    # The constructor's checks, skipped: this runs once per message.
    request = object.__new__(Request)
    request._op = op
    return request


def _take_all(
    requests: Sequence[Any], ops: list[Operation | None], statuses: list[MPI.Status] | None
) -> list[Any]:
    sts = _statuses(statuses, len(requests))
    return [_take(req, op, st) for req, op, st in zip(requests, ops, sts)]


def _done_indices(
    requests: Sequence[Any], blocking: bool
) -> tuple[list[Operation | None], list[int] | None]:
    ops = [_operation(req) for req in requests]
    positions = [i for i, op in enumerate(ops) if op is not None]
    if not positions:
        return ops, None
    active = [ops[i] for i in positions]
    done = progress.drive(active, 1) if blocking else progress.test(active)  # type: ignore[arg-type]
    return ops, [i for i, flag in zip(positions, done) if flag]


def _any(
    requests: Sequence[Any], status: MPI.Status | None, blocking: bool
) -> tuple[int, bool, Any]:
    ops, done = _done_indices(requests, blocking)
    if done is None:
        return (MPI.UNDEFINED, True, _take(None, None, status))
    if not done:
        return (MPI.UNDEFINED, False, None)
    index = done[0]
    return (index, True, _take(requests[index], ops[index], status))


def _some(
    requests: Sequence[Any], statuses: list[MPI.Status] | None, blocking: bool
) -> tuple[list[int] | None, list[Any] | None]:
    ops, done = _done_indices(requests, blocking)
    if done is None:
        return (None, None)
    sts = _statuses(statuses, len(done))
    objs = [_take(requests[i], ops[i], st) for i, st in zip(done, sts)]
    return (done, objs)


# -- Message -------------------------------------------------------------------
class Message(_Handles):
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

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

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

    @classmethod
    def Probe(  # noqa: N802 - mpi4py's name
        cls,
        comm: MPI.Comm,
        source: int = MPI.ANY_SOURCE,
        tag: int = MPI.ANY_TAG,
        status: MPI.Status | None = None,
    ) -> MPI.Message:
        """mpi4py's uppercase matching probe (an ``MPI.Message`` of the raw bytes)."""
        return RawMessage.Probe(comm, source, tag, status)

    @classmethod
    def Iprobe(  # noqa: N802 - mpi4py's name
        cls,
        comm: MPI.Comm,
        source: int = MPI.ANY_SOURCE,
        tag: int = MPI.ANY_TAG,
        status: MPI.Status | None = None,
    ) -> MPI.Message | None:
        """mpi4py's uppercase nonblocking matching probe."""
        return RawMessage.Iprobe(comm, source, tag, status)

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
            return _request(RawMessage.irecv(message))
        assert self._comm is not None
        buffer = codec.allocate(self._nbytes)
        request = RawMessage.Irecv(message, buffer)
        return _request(RecvOp(self._comm).start_first(request, buffer))

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
