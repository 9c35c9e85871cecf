"""Stand-ins for ``MPI.Request`` and ``MPI.Message`` while pkl5shim is enabled.

Legacy code calls class methods on the module attributes: ``MPI.Request.waitall(reqs)``,
``MPI.Request.Waitall(reqs)``, ``MPI.Message.probe(comm)``.  mpi4py's types are
immutable, so ``enable()`` replaces the module attributes with these subclasses.
Their metaclass makes ``isinstance(r, MPI.Request)`` true for every request,
mpi4py's own (uppercase, persistent, generalized) and pkl5shim's alike.
"""

from __future__ import annotations

from collections.abc import Sequence
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

    # Uppercase calls: mpi4py's own unless a pkl5shim request is among them.
    @classmethod
    def Waitall(  # noqa: N802 - mpi4py's name
        cls, requests: Sequence[Any], statuses: list[MPI.Status] | None = None
    ) -> bool:
        """Wait for all requests (received objects are discarded)."""
        if not _has_engine_requests(requests):
            return RawRequest.Waitall(requests, statuses)
        p2p.Request.waitall(requests, statuses)
        return True

    @classmethod
    def Testall(  # noqa: N802 - mpi4py's name
        cls, requests: Sequence[Any], statuses: list[MPI.Status] | None = None
    ) -> bool:
        """Test for completion of all requests."""
        if not _has_engine_requests(requests):
            return RawRequest.Testall(requests, statuses)
        return p2p.Request.testall(requests, statuses)[0]

    @classmethod
    def Waitany(  # noqa: N802 - mpi4py's name
        cls, requests: Sequence[Any], status: MPI.Status | None = None
    ) -> int:
        """Wait for any request; its index."""
        if not _has_engine_requests(requests):
            return RawRequest.Waitany(requests, status)
        return p2p.Request.waitany(requests, status)[0]

    @classmethod
    def Testany(  # noqa: N802 - mpi4py's name
        cls, requests: Sequence[Any], status: MPI.Status | None = None
    ) -> tuple[int, bool]:
        """Test for completion of any request: ``(index, flag)``."""
        if not _has_engine_requests(requests):
            return RawRequest.Testany(requests, status)
        index, flag, _obj = p2p.Request.testany(requests, status)
        return (index, flag)

    @classmethod
    def Waitsome(  # noqa: N802 - mpi4py's name
        cls, requests: Sequence[Any], statuses: list[MPI.Status] | None = None
    ) -> list[int] | None:
        """Wait for some requests; their indices."""
        if not _has_engine_requests(requests):
            return RawRequest.Waitsome(requests, statuses)
        return p2p.Request.waitsome(requests, statuses)[0]

    @classmethod
    def Testsome(  # noqa: N802 - mpi4py's name
        cls, requests: Sequence[Any], statuses: list[MPI.Status] | None = None
    ) -> list[int] | None:
        """Test for completion of some requests; their indices."""
        if not _has_engine_requests(requests):
            return RawRequest.Testsome(requests, statuses)
        return p2p.Request.testsome(requests, statuses)[0]

    @classmethod
    def Get_status_all(  # noqa: N802 - mpi4py's name
        cls, requests: Sequence[Any], statuses: list[MPI.Status] | None = None
    ) -> bool:
        """Test whether all requests completed, without freeing them."""
        if not _has_engine_requests(requests):
            return RawRequest.Get_status_all(requests, statuses)
        return p2p.Request.get_status_all(requests, statuses)

    @classmethod
    def Get_status_any(  # noqa: N802 - mpi4py's name
        cls, requests: Sequence[Any], status: MPI.Status | None = None
    ) -> tuple[int, bool]:
        """Test whether any request completed, without freeing it."""
        if not _has_engine_requests(requests):
            return RawRequest.Get_status_any(requests, status)
        return p2p.Request.get_status_any(requests, status)

    @classmethod
    def Get_status_some(  # noqa: N802 - mpi4py's name
        cls, requests: Sequence[Any], statuses: list[MPI.Status] | None = None
    ) -> list[int] | None:
        """Indices of the completed requests, without freeing them."""
        if not _has_engine_requests(requests):
            return RawRequest.Get_status_some(requests, statuses)
        return p2p.Request.get_status_some(requests, statuses)


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
