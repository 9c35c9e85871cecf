"""Receiving the parts a header announced, from the channel: one strategy per MPI library.

Each part (size table, pickle stream, buffer) is cut into the pieces ``transport.pieces``
gives; every piece must arrive with exactly its announced byte count.

- ``Posted`` (MPICH, Intel MPI): every piece's receive is posted at once, into memory
  allocated now, so that MPI moves the data straight into it (zero-copy; a piece that
  arrives before its receive is posted costs the Intel MPI wheel a copy, measured 5x
  slower at 64 MiB).  A shorter piece is refused from its status, a longer one is MPI's
  truncation error.
- ``Polled``: the same, tested in a loop so that a piece that never comes times out
  (``PKL5_PAYLOAD_TIMEOUT``).
- ``Matched`` (Open MPI): each piece is matched (``Improbe``) and its size checked
  before it is received: the Open MPI 5.0 wheel corrupts memory when a large message
  is received into a smaller buffer (measured).

``STRATEGY`` is chosen once, from the library and the settings.
"""

from __future__ import annotations

import time
from typing import Any

from mpi4py import MPI

from . import codec
from .config import settings
from .progress import Backoff
from .transport import RawComm, RawRequest, pieces

_Status = MPI.Status
_testsome = RawRequest.Testsome
_irecv = RawComm.Irecv
_allocate = codec.allocate
_monotonic = time.monotonic


class MismatchError(Exception):
    """A piece of part ``part`` has ``count`` bytes where ``nbytes`` were announced."""

    def __init__(self, part: int, count: int, nbytes: int) -> None:
        super().__init__(part, count, nbytes)
        self.part, self.count, self.nbytes = part, count, nbytes


class LateError(Exception):
    """No piece arrived for ``PKL5_PAYLOAD_TIMEOUT`` seconds."""


def deadline() -> float:
    """When a piece expected from now on is late (``PKL5_PAYLOAD_TIMEOUT``)."""
    timeout = settings.payload_timeout
    return time.monotonic() + timeout if timeout else float("inf")


class Transfer:
    """The receive of parts of ``sizes`` bytes from ``source`` under ``tag`` on ``comm``."""

    parts: list[Any]
    """The parts, each in memory allocated for it (set by each strategy)."""
    requests: list[MPI.Request]
    """The receives posted so far, one a piece (set by each strategy)."""

    def __init__(self, comm: MPI.Comm, source: int, tag: int, sizes: list[int]) -> None:
        self.comm, self.source, self.tag, self.sizes = comm, source, tag, sizes
        self.plan = plan = pieces(sizes)
        self._post()  # first: the sooner MPI has the receives, the sooner the data moves
        self.counts: list[int | None] = [None] * len(plan)
        self.statuses = [_Status() for _ in plan]

    def _post(self) -> None:
        """Set ``parts`` and ``requests``: allocate and post what this strategy posts at once."""
        raise NotImplementedError

    def advance(self, blocking: bool) -> bool:
        """Move on (wait if ``blocking``); True once every piece arrived, counts checked.

        Raises ``MismatchError``, ``LateError`` or MPI's own error (see ``truncated``).
        """
        raise NotImplementedError

    def announced(self) -> list[int]:
        """The byte count of every piece, in order."""
        return [n for _i, _start, n in self.plan]

    def missing_nbytes(self) -> int:
        """Bytes of the pieces not arrived yet."""
        return sum(n for (_i, _s, n), count in zip(self.plan, self.counts) if count is None)

    def truncated(self, error: MPI.Exception) -> bool:
        """Whether ``error`` is MPI's: a piece had more bytes than announced."""
        codes = [error.Get_error_class()]
        codes += [MPI.Get_error_class(status.Get_error()) for status in self.statuses]
        return MPI.ERR_TRUNCATE in codes

    def abort(self) -> None:
        """Give up: unmatched receives are cancelled, matched ones complete, and what else
        of these parts is on the channel is received and dropped (so its sends complete)."""
        posted = [request for request in self.requests if request]
        for request in posted:
            request.Cancel()
        try:
            RawRequest.Waitall(posted)
        except MPI.Exception:  # reported already, or irrelevant now
            pass
        drop_arrived(self.comm, self.source, self.tag)

    def _complete(self, blocking: bool) -> bool:
        """Wait for (or test) every posted piece, then check their counts."""
        if blocking:
            RawRequest.Waitall(self.requests, self.statuses)
        elif not RawRequest.Testall(self.requests, self.statuses):
            return False
        self.counts = [status.Get_count(MPI.BYTE) for status in self.statuses]
        self._check_counts()
        return True

    def _check_counts(self) -> None:
        # A shorter piece than announced would leave uninitialized bytes in the
        # object (a longer one is an MPI truncation error, or refused when matched).
        for (part, _start, nbytes), count in zip(self.plan, self.counts):
            if count != nbytes:
                raise MismatchError(part, count or 0, nbytes)


class Posted(Transfer):
    """Every piece's receive posted at once; completed by ``MPI_Waitall``/``MPI_Testall``."""

    def _post(self) -> None:
        comm, source, tag = self.comm, self.source, self.tag
        self.parts = parts = [_allocate(size) for size in self.sizes]
        if len(self.plan) == len(parts):  # a piece a part, the common case: no slices
            self.requests = [_irecv(comm, part, source, tag) for part in parts]
        else:
            self.requests = [
                _irecv(comm, parts[part][start : start + n], source, tag)
                for part, start, n in self.plan
            ]

    def advance(self, blocking: bool) -> bool:
        return self._complete(blocking)


class Polled(Posted):
    """Posted pieces tested in a loop, so that a piece that never comes times out.

    When no piece arrived for ``PKL5_PAYLOAD_TIMEOUT`` seconds, the receive of the first
    missing one is cancelled: MPI cancels it only if no message matched it, which is
    ``LateError``; a piece that matched and is still arriving completes, and the clock starts
    again.
    """

    cancelling = False

    def _post(self) -> None:
        super()._post()
        self.deadline = deadline()

    def advance(self, blocking: bool) -> bool:
        requests, statuses, counts = self.requests, self.statuses, self.counts
        backoff: Backoff | None = None
        while True:
            indices = _testsome(requests, statuses)
            if indices:
                for position, index in enumerate(indices):
                    status = statuses[position]
                    if status.Is_cancelled():
                        raise LateError()
                    counts[index] = status.Get_count()
                if None not in counts:
                    self._check_counts()
                    return True
                self.cancelling = False
                self.deadline = deadline()
            elif not self.cancelling and _monotonic() > self.deadline:
                requests[counts.index(None)].Cancel()
                self.cancelling = True
            if not blocking:
                return False
            backoff = backoff or Backoff()
            backoff.pause()


class Matched(Transfer):
    """Each piece matched and its size checked before its receive is posted (Open MPI)."""

    def _post(self) -> None:  # nothing yet: each piece is posted once it matched
        self.parts = [None] * len(self.sizes)
        self.requests = []
        self.probe_status = MPI.Status()
        self.deadline = deadline()

    def advance(self, blocking: bool) -> bool:
        if len(self.requests) < len(self.plan) and not self._match(blocking):
            return False
        return self._complete(blocking)

    def missing_nbytes(self) -> int:
        return sum(self.announced()[len(self.requests) :])

    def _match(self, blocking: bool) -> bool:
        """Post the receives of the pieces that arrived, in order; True once all are posted.

        Polls (``blocking``) or returns False while the next piece is not there.
        """
        status = self.probe_status
        backoff: Backoff | None = None
        while len(self.requests) < len(self.plan):
            message = RawComm.Improbe(self.comm, self.source, self.tag, status)
            if message is None:
                if time.monotonic() > self.deadline:
                    raise LateError()
                if not blocking:
                    return False
                if not self.requests:  # else pieces are arriving: spin, as MPI's wait would
                    backoff = backoff or Backoff()
                    backoff.pause()
                continue
            part, start, nbytes = self.plan[len(self.requests)]
            count = status.Get_count(MPI.BYTE)
            if count != nbytes:
                discard(message, count)
                raise MismatchError(part, count, nbytes)
            if start == 0:
                self.parts[part] = codec.allocate(self.sizes[part])
            self.requests.append(message.Irecv(self.parts[part][start : start + nbytes]))
            self.deadline = deadline()
        return True


PROBE_FIRST = "Open MPI" in MPI.Get_library_version()
"""Match each piece before receiving it: the Open MPI 5.0 wheel corrupts memory
(segfault, ``malloc`` abort) when a large message is received into a smaller buffer
(measured), where MPICH and Intel MPI report a truncation error."""

STRATEGY: type[Transfer] = (
    Matched if PROBE_FIRST else Polled if settings.payload_timeout else Posted
)
"""How this process receives payloads."""


def discard(message: MPI.Message, count: int) -> None:
    """Receive a matched message whole into scratch memory and drop it.

    Never into a smaller buffer: the Open MPI 5.0 wheel corrupts memory on a
    truncated large receive (measured).  A message larger than PKL5_MAX_MESSAGE
    is left matched and unreceived: nothing can match it any more.
    """
    if count > settings.max_message:
        return
    try:
        message.Recv(codec.allocate(count))
    except MPI.Exception:
        pass


def drop_arrived(comm: MPI.Comm, source: int, tag: int) -> None:
    """Receive and drop the messages of ``(source, tag)`` already on ``comm``."""
    status = MPI.Status()
    while True:
        message = RawComm.Improbe(comm, source, tag, status)
        if message is None:
            return
        discard(message, status.Get_count(MPI.BYTE))
