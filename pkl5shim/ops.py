"""Sends in flight, plain requests mixed into the engine's calls, and the one status helper."""

from __future__ import annotations

from typing import Any

from mpi4py import MPI

from . import check
from .progress import Operation, handed
from .transport import RawRequest


def set_status(
    status: MPI.Status,
    source: int = MPI.ANY_SOURCE,
    tag: int = MPI.ANY_TAG,
    nbytes: int = 0,
    cancelled: bool = False,
    error: int = MPI.SUCCESS,
) -> None:
    """Fill every field of ``status`` (the defaults describe an empty status)."""
    status.Set_source(source)
    status.Set_tag(tag)
    status.Set_error(error)
    status.Set_elements(MPI.BYTE, nbytes)
    status.Set_cancelled(cancelled)


def copy_status(source: MPI.Status, target: MPI.Status) -> None:
    """Copy the fields of ``source`` into ``target``."""
    set_status(
        target,
        source.Get_source(),
        source.Get_tag(),
        source.Get_elements(MPI.BYTE),
        source.Is_cancelled(),
        source.Get_error(),
    )


class SendOp(Operation):
    """Posted sends; ``keepalive`` holds the memory MPI reads until they complete."""

    guard: Any = None
    """Check mode: the checksums of the buffers (``check.Guard``)."""
    watcher: Any = None
    """Observation: called with no argument once MPI completed the sends."""
    detached = False
    statuses: list[MPI.Status] | None = None
    """After ``cancel()``: MPI's statuses of the requests, which say whether it cancelled."""

    def __init__(self, requests: list[MPI.Request], keepalive: Any = None) -> None:
        self.requests = requests
        self.keepalive = keepalive

    def advance(self, blocking: bool) -> bool:
        if self.done:
            return True
        try:
            if blocking:
                RawRequest.Waitall(self.requests, self.statuses)
            elif not RawRequest.Testall(self.requests, self.statuses):
                return False
        except MPI.Exception as exc:
            self.error = exc
        self.done = True
        if self.guard is not None:
            self._verify()
        if self.watcher is not None:
            watcher, self.watcher = self.watcher, None
            watcher()
        self.keepalive = None
        return True

    def _verify(self) -> None:
        guard, self.guard = self.guard, None
        modified = guard.verify()
        if modified is not None:
            error = check.report(modified, raising=not self.detached)
            if error is not None and self.error is None:
                self.error = error

    def cancel(self) -> None:
        if self.statuses is None and not self.done:
            self.statuses = [MPI.Status() for _ in self.requests]
        for request in self.requests:
            if request:
                request.Cancel()

    def fill_status(self, status: MPI.Status) -> None:
        # MPI defines only this field of a send's status: whether a cancel succeeded.
        if self.statuses:
            status.Set_cancelled(self.statuses[0].Is_cancelled())

    def detach(self) -> None:
        # No lock, no MPI call: Request.__del__ calls this wherever the garbage
        # collector runs (any thread, also inside the engine while it holds the
        # registry lock).  The next prune, in a thread calling pkl5shim, adopts it.
        self.detached = True
        handed.append(self)


def as_operation(started: SendOp | MPI.Request) -> Operation:
    """The engine operation of a started send (a plain request of a small one, or sends)."""
    return SendOp([started]) if isinstance(started, RawRequest) else started


class ForeignOp(Operation):
    """A plain ``MPI.Request`` mixed into pkl5shim's request calls."""

    def __init__(self, request: MPI.Request) -> None:
        self.request = request
        self.status = MPI.Status()

    def advance(self, blocking: bool) -> bool:
        # Blocking is left to result(): a plain request's own wait() returns its object.
        if not self.done:
            self.done = blocking or self.request.Get_status(self.status)
        return self.done

    def result(self) -> Any:
        return self.request.wait(self.status)

    def fill_status(self, status: MPI.Status) -> None:
        copy_status(self.status, status)

    def cancel(self) -> None:
        self.request.Cancel()
