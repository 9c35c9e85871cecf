"""``Request``: the request of a nonblocking call, and its class methods over many requests.

A request stands for one engine operation (``progress.Operation``) or a plain
``MPI.Request`` (a small send, which mpi4py's own wait/test serve directly when
no receive is pending).  The class methods also take mpi4py's requests, so that
requests of several communicators and of uppercase calls can be waited for together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mpi4py import MPI

from . import progress
from .ops import ForeignOp, SendOp, set_status
from .progress import Operation, pending
from .transport import RawRequest


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
            set_status(status)
        return None
    try:
        return op.result()
    finally:  # after result(): a plain request's status is known once it is waited for
        if status is not None:
            op.fill_status(status)


def _has_engine_requests(requests: Sequence[Any]) -> bool:
    return any(isinstance(request, Request) for request in requests)


def _get_status(op: Operation | None, status: MPI.Status | None) -> bool:
    """Whether ``op`` completed (``status`` filled then), without taking its result."""
    if op is None:
        if status is not None:
            set_status(status)
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


class Handles:
    """``handle``, ``toint``, ``py2f`` and the class methods back from a handle, as
    mpi4py's objects have them: through ``_raw()``, the one MPI object this stands for."""

    __slots__ = ()
    _RAW: Any  # mpi4py's class of that MPI object

    def _raw(self) -> Any:
        raise NotImplementedError

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

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


class RequestSet:
    """The class methods of ``Request`` over many requests (lowercase; see ``_UPPERCASE``)."""

    __slots__ = ()

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


class Request(Handles, RequestSet):
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
            # Waited for in MPI when nothing is pending: no receive to advance meanwhile.
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


def request_of(op: Operation | MPI.Request) -> Request:
    """The ``Request`` of an engine operation or a plain request."""
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
