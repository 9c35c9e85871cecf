"""Stand-ins for ``MPI.Request`` and ``MPI.Message`` while pkl5shim is enabled.

Legacy code calls class methods on the module attributes: ``MPI.Request.waitall(reqs)``,
``MPI.Request.Waitall(reqs)``, ``MPI.Message.probe(comm)``.  mpi4py's types are
immutable, so ``enable()`` replaces the module attributes with these subclasses.
Their metaclass makes ``isinstance(r, MPI.Request)`` true for every request,
mpi4py's own (uppercase, persistent, generalized) and pkl5shim's alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mpi4py import MPI

from . import p2p
from .comm import Comm
from .transport import RawMessage, RawRequest


class _RequestType(type):
    def __instancecheck__(cls, obj: object) -> bool:
        return isinstance(obj, (RawRequest, p2p.Request))

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, (RawRequest, p2p.Request))


def _has_engine_requests(requests: Sequence[Any]) -> bool:
    return any(isinstance(request, p2p.Request) for request in requests)


class Request(RawRequest, metaclass=_RequestType):  # type: ignore[misc]
    """``MPI.Request`` while pkl5shim is enabled: class methods accept every kind of request."""

    # Lowercase calls: pkl5shim's versions accept plain requests as well.
    waitall = p2p.Request.waitall
    testall = p2p.Request.testall
    waitany = p2p.Request.waitany
    testany = p2p.Request.testany
    waitsome = p2p.Request.waitsome
    testsome = p2p.Request.testsome
    get_status_all = p2p.Request.get_status_all
    get_status_any = p2p.Request.get_status_any
    get_status_some = p2p.Request.get_status_some

    # Uppercase calls: mpi4py's own unless a pkl5shim request is among them
    # (added below, one per name).


def _uppercase(name: str, lowercase: Callable[..., Any], pick: Callable[[Any], Any]) -> Any:
    """``Request.<name>``: mpi4py's call, or ``pick`` of pkl5shim's ``lowercase`` result."""
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


_UPPERCASE = {
    "Waitall": (p2p.Request.waitall, lambda _objs: True),
    "Testall": (p2p.Request.testall, _first),
    "Waitany": (p2p.Request.waitany, _first),
    "Testany": (p2p.Request.testany, lambda result: result[:2]),
    "Waitsome": (p2p.Request.waitsome, _first),
    "Testsome": (p2p.Request.testsome, _first),
    "Get_status_all": (p2p.Request.get_status_all, lambda flag: flag),
    "Get_status_any": (p2p.Request.get_status_any, lambda result: result),
    "Get_status_some": (p2p.Request.get_status_some, lambda indices: indices),
}
for _name, (_lowercase, _pick) in _UPPERCASE.items():
    setattr(Request, _name, _uppercase(_name, _lowercase, _pick))
del _name, _lowercase, _pick


class _MessageType(type):
    def __instancecheck__(cls, obj: object) -> bool:
        return isinstance(obj, (RawMessage, p2p.Message))

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, (RawMessage, p2p.Message))


class Message(RawMessage, metaclass=_MessageType):  # type: ignore[misc]
    """``MPI.Message`` while pkl5shim is enabled: matching probes of wrapped communicators."""

    @classmethod
    def probe(
        cls,
        comm: MPI.Comm,
        source: int = MPI.ANY_SOURCE,
        tag: int = MPI.ANY_TAG,
        status: MPI.Status | None = None,
    ) -> Any:
        """Blocking matching probe; through the engine when ``comm`` is wrapped."""
        if _is_wrapped(comm):
            return p2p.Message.probe(comm, source, tag, status)
        return RawMessage.probe(comm, source, tag, status)

    @classmethod
    def iprobe(
        cls,
        comm: MPI.Comm,
        source: int = MPI.ANY_SOURCE,
        tag: int = MPI.ANY_TAG,
        status: MPI.Status | None = None,
    ) -> Any:
        """Nonblocking matching probe; through the engine when ``comm`` is wrapped."""
        if _is_wrapped(comm):
            return p2p.Message.iprobe(comm, source, tag, status)
        return RawMessage.iprobe(comm, source, tag, status)


def _is_wrapped(comm: MPI.Comm) -> bool:
    return isinstance(comm, Comm)
