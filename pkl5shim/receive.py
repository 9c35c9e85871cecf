"""The receive of one object, as a machine of explicit stages.

``FIRST``: the first message (a plain pickle: done; a header: go on).  ``TABLE``: the
size table, when the header announced buffers and did not carry it inline.
``PAYLOAD``: the stream (unless inline) and the buffers.  Each stage after the first
is a ``transfer.Transfer`` from the channel, of the strategy chosen for this library.
Unpickling waits for ``result()``, so that it runs in the thread of the caller, after
the whole message arrived.
"""

from __future__ import annotations

import threading
from typing import Any

from mpi4py import MPI

from . import codec, metrics, progress, transfer, transport, wire
from .config import modes, settings
from .errors import RemoteError, WireError
from .ops import set_status
from .progress import Operation
from .transport import Channel

FIRST = "waiting for its first message"
TABLE = "header arrived, waiting for the size table and the stream"
PAYLOAD = "header arrived, waiting for the payload"
DONE = "done"
_STRATEGY = transfer.STRATEGY
COPIED_OUT = 16 * 1024
"""A plain first message of at most this many bytes is copied out of its scratch memory
(``RecvOp.spare``), which is recycled at once: a custom ``MPI.pickle.loads`` may return
views of what it is given."""


class RecvOp(Operation):
    """A receive: the first message, then for a large object the parts of its payload.

    ``stage`` says where it is (one of the stage names above); ``parts`` is
    ``(stream, buffers)`` once done.  ``failures``: a failure header ends the
    receive with ``failure`` set (collectives on the channel); elsewhere it is a
    ``WireError``.
    """

    # Defaults on the class: one is made for every message, and each assignment in
    # __init__ cost it time (0.3 us for these, measured).
    stage = FIRST
    source, tag = MPI.ANY_SOURCE, MPI.ANY_TAG
    parts: tuple[Any, list[Any]] | None = None
    failure: str | None = None
    nbytes = 0
    cancelled = detached = False
    _first: Any = None
    _first_request: MPI.Request | None = None
    header: wire.Header | None = None
    inline_stream: bytes | None = None
    """The pickle stream, when it came inline with the header."""
    transfer: transfer.Transfer | None = None
    """The stage's parts being received from the channel."""
    spare: memoryview | None = None
    """The first message's memory from ``codec.scratch``: recycled once nothing refers to it."""

    def __init__(
        self, comm: MPI.Comm, channel: Channel | None = None, failures: bool = False
    ) -> None:
        self.comm, self.channel, self.failures = comm, channel, failures

    # -- starting ----------------------------------------------------------------
    def start_first(self, request: MPI.Request, buffer: Any) -> RecvOp:
        """Wait for a first message being received into ``buffer`` by ``request``.

        Only such a receive is pending (``progress.register``): other threads' waits may
        advance it, so it has a lock; the others are their caller's alone (a lock and a
        status less: 0.3 us, measured).
        """
        self.lock = threading.Lock()
        self.status = MPI.Status()
        self._first_request, self._first = request, buffer
        progress.register(self)
        return self

    def start_arrived(self, message: memoryview, source: int, tag: int) -> RecvOp:
        """Go on from a first message already received whole from ``source`` with ``tag``."""
        self.source, self.tag = source, tag
        self._run(self._message_arrived, message)
        return self

    def start_payload(self, header: wire.Header, source: int, tag: int) -> RecvOp:
        """Fetch the payload announced by an already received ``header``."""
        self.source, self.tag = source, tag
        self._run(self._header_arrived, header)
        return self

    # -- the stages --------------------------------------------------------------
    def _first_arrived(self) -> None:
        status = self.status
        self.cancelled = status.Is_cancelled()
        self.source, self.tag = status.Get_source(), status.Get_tag()
        count = 0 if self.cancelled else status.Get_count(MPI.BYTE)
        message = memoryview(self._first)[:count]
        self._first = None
        self._message_arrived(message)

    def _message_arrived(self, message: memoryview) -> None:
        if message and wire.is_header(message):
            header = wire.decode(message)  # a copy: the message's memory is free now
            self._recycle()
            self._header_arrived(header)
        elif message:  # a plain pickle, unpickled by result()
            self.nbytes = len(message)
            if self.spare is not None and len(message) <= COPIED_OUT:
                message = bytes(message)  # so that no object can hold on to the scratch memory
                self._recycle()
            self._finish((message, []))
        else:  # nothing: a cancelled receive, a message from PROC_NULL
            self._recycle()
            self._finish(None)

    def _recycle(self) -> None:
        if self.spare is not None:
            codec.recycle(self.spare)
            self.spare = None

    def _header_arrived(self, header: wire.Header) -> None:
        self.header = header  # first: a failure drops the payload sent with it
        if self.channel is None:
            self.channel = transport.lookup(self.comm)
        if header.source != self.source:
            raise WireError(
                f"pkl5shim header names source {header.source} but came from {self.source}"
            )
        if header.failed:
            if not self.failures:
                raise WireError("pkl5shim failure header outside a collective (on the channel)")
            self.failure = header.failure_text
            self._finish(None)
            return
        if header.inline is not None:  # table and stream came with the header
            sizes, self.inline_stream = header.inline_payload()
            stage = PAYLOAD
        elif header.nbuffers == 0:
            sizes, stage = [header.stream_nbytes], PAYLOAD
        else:
            sizes, stage = [wire.table_nbytes(header)], TABLE
        self._expect(stage, sizes)
        metrics.record_receive(header.total_nbytes)  # once the receives are posted

    def _table_arrived(self, parts: list[Any]) -> None:
        assert self.header is not None
        sizes = wire.decode_table(parts[0], self.header)
        self._expect(PAYLOAD, [self.header.stream_nbytes, *sizes])

    def _payload_arrived(self, parts: list[Any]) -> None:
        assert self.header is not None
        self.nbytes = self.header.total_nbytes
        if self.inline_stream is None:
            stream, *buffers = parts
        else:
            stream, buffers = self.inline_stream, parts
        self._finish((stream, buffers))

    def _expect(self, stage: str, sizes: list[int]) -> None:
        """Go to ``stage``: receive parts of ``sizes`` bytes from the channel."""
        assert self.header is not None and self.channel is not None
        self.stage = stage
        self.transfer = _STRATEGY(self.channel.comm, self.source, self.header.channel_tag, sizes)

    # -- driving -----------------------------------------------------------------
    def advance(self, blocking: bool) -> bool:
        while not self.done:
            if not self._stage_complete(blocking):
                return self.done
            if self.stage == FIRST:
                self._run(self._first_arrived)
            else:
                assert self.transfer is not None
                arrived = self._table_arrived if self.stage == TABLE else self._payload_arrived
                self._run(arrived, self.transfer.parts)
        return True

    def _stage_complete(self, blocking: bool) -> bool:
        try:
            if self.stage == FIRST:
                assert self._first_request is not None
                if blocking:
                    progress.wait_request(self._first_request, self.status)
                    return True
                return self._first_request.Test(self.status)
            assert self.transfer is not None
            return self.transfer.advance(blocking)
        except MPI.Exception as exc:
            self._fail(_truncation(self, exc) or exc)
        except (WireError, transfer.MismatchError, transfer.LateError) as exc:
            self._fail(_explained(self, exc))
        return False

    def _run(self, stage: Any, *args: Any) -> None:
        # A failing stage ends the operation; the error is raised by result().
        try:
            stage(*args)
        except Exception as exc:  # noqa: BLE001 - stored and re-raised to the owner
            self._fail(exc)

    def _finish(self, parts: tuple[Any, list[Any]] | None) -> None:
        self.parts = parts
        self.inline_stream = self.transfer = None
        self.stage = DONE
        self.done = True
        if self._first_request is not None:  # registered by start_first
            progress.unregister(self)

    def _fail(self, error: BaseException) -> None:
        """End with ``error``; what else of this message's payload is on the channel is
        dropped, so that its sender's sends complete."""
        self.error = error
        if self.transfer is not None:
            self.transfer.abort()
        elif self.header is not None and self.channel is not None:
            transfer.drop_arrived(self.channel.comm, self.source, self.header.channel_tag)
        self._finish(None)

    # -- the operation's interface ----------------------------------------------------
    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        if self.failure is not None:
            raise RemoteError(self.failure)
        if self.parts is None:
            return None
        if modes.observing:
            metrics.arriving(self.source, self.tag)
        return codec.loads(*self.parts)

    def fill_status(self, status: MPI.Status) -> None:
        set_status(status, self.source, self.tag, self.nbytes, self.cancelled)

    def cancel(self) -> None:
        # Only the first message can be cancelled: once a header matched, the
        # payload is already on its way and is received.
        # No lock: a thread blocked waiting for this receive holds it, and
        # cancelling is how another thread releases that waiter.
        request = self._first_request
        if request and not self.done:
            try:
                request.Cancel()
            except MPI.Exception:  # completed meanwhile: nothing left to cancel
                pass

    def detach(self) -> None:
        self.detached = True


# -- what went wrong, in words -----------------------------------------------------
def _explained(op: RecvOp, error: Exception) -> Exception:
    if isinstance(error, transfer.MismatchError):
        return _mismatch(op, error)
    if isinstance(error, transfer.LateError):
        return _timed_out(op)
    return error


def _part(op: RecvOp, index: int) -> str:
    if op.stage == TABLE:
        return "size table"
    if op.inline_stream is not None:
        return f"buffer {index}"
    return "pickle stream" if index == 0 else f"buffer {index - 1}"


def _about(op: RecvOp) -> str:
    assert op.header is not None
    return f"object of {op.header.total_nbytes} bytes, channel tag {op.header.channel_tag}"


def _mismatch(op: RecvOp, error: transfer.MismatchError) -> WireError:
    more = "more" if error.count > error.nbytes else "fewer"
    return WireError(
        f"pkl5shim payload from rank {op.source} (tag {op.tag}) does not match its "
        f"header: a piece of its {_part(op, error.part)} has {error.count} bytes, "
        f"{more} than the {error.nbytes} announced ({_about(op)})"
    )


def _timed_out(op: RecvOp) -> WireError:
    assert op.header is not None and op.transfer is not None
    missing = op.transfer.missing_nbytes()
    if op.stage == TABLE:
        missing += op.header.total_nbytes  # nothing after the table came either
    return WireError(
        f"pkl5shim: a large message from rank {op.source} (tag {op.tag}) is "
        f"incomplete: {missing} bytes of its payload ({_about(op)}) were not sent "
        f"within PKL5_PAYLOAD_TIMEOUT={settings.payload_timeout:g} s after its header or "
        "last piece arrived. The sender failed or does not follow the pkl5shim protocol; "
        "raise PKL5_PAYLOAD_TIMEOUT (0: wait forever) if it is only slow"
    )


def _truncation(op: RecvOp, error: MPI.Exception) -> WireError | None:
    """A WireError for an MPI truncation error of a payload piece, else None."""
    if op.transfer is None or not op.transfer.truncated(error):
        return None
    announced = op.transfer.announced()
    shown = ", ".join(map(str, announced[:8])) + (", ..." if len(announced) > 8 else "")
    return WireError(
        f"pkl5shim payload from rank {op.source} (tag {op.tag}) does not match its "
        f"header: a piece has more bytes than announced (MPI: message truncated; "
        f"announced pieces of {shown} bytes, {_about(op)})"
    )
