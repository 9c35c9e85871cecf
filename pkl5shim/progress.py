"""Operations in flight, and the loop that drives them to completion.

A large object arrives in stages (the header; the size table and the stream,
unless they came inline in the header; the buffers): a receive must post the
next stage once the previous one completed.  A rank blocked in one
call would otherwise never post the payload receive of another pending
``irecv`` while its sender waits for exactly that: so every blocking wait of
the engine also advances all other pending receives of the process
(``drive``), and blocks inside MPI only when nothing else is pending.
"""

from __future__ import annotations

import atexit
import collections
import os
import threading
import time
import warnings
from typing import Any

from mpi4py import MPI

from . import check, codec, metrics, transport, wire
from .config import settings
from .errors import WireError
from .transport import Channel, RawComm, RawRequest, spans


class Operation:
    """Something the engine waits for; subclasses say how it advances."""

    done = False
    error: BaseException | None = None
    lock: threading.Lock | None = None
    """Only receives have one: other threads' progress may advance them."""

    def advance(self, blocking: bool) -> bool:
        """Move the operation on (wait for it if ``blocking``); return whether it is done."""
        raise NotImplementedError

    def result(self) -> Any:
        """Return the received object (``None`` for sends); raise a stored error."""
        if self.error is not None:
            raise self.error
        return None

    def fill_status(self, status: MPI.Status) -> None:
        """Describe the completed operation in ``status``."""

    def cancel(self) -> None:
        """Ask MPI to cancel what is still cancellable."""

    def detach(self) -> None:
        """The user dropped the request: finish in the background."""


class SendOp(Operation):
    """Posted sends; ``keepalive`` holds the memory MPI reads until they complete."""

    guard: Any = None
    """Check mode: the checksums of the buffers (``check.Guard``)."""
    watcher: Any = None
    """Observation (``PKL5_STATS``): called with no argument once MPI completed the sends."""
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
        # collector runs (any thread, also inside the engine while it holds
        # _registry_lock).  The next prune, in a thread calling pkl5shim, adopts it.
        self.detached = True
        handed.append(self)


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


def copy_status(source: MPI.Status, target: MPI.Status) -> None:
    """Copy the fields of ``source`` into ``target``."""
    target.Set_source(source.Get_source())
    target.Set_tag(source.Get_tag())
    target.Set_error(source.Get_error())
    target.Set_elements(MPI.BYTE, source.Get_elements(MPI.BYTE))
    target.Set_cancelled(source.Is_cancelled())


class RecvOp(Operation):
    """A receive: the first message, then for a large object the rest of its payload.

    ``parts`` is ``(stream, buffers)`` once done; unpickling waits for ``result()``
    so that it runs in the thread of the caller, after the whole message arrived.
    """

    def __init__(self, comm: MPI.Comm, channel: Channel | None = None) -> None:
        self.lock = threading.Lock()
        self.comm = comm
        self.channel = channel
        self.requests: list[MPI.Request] = []
        self.status = MPI.Status()
        self.parts: tuple[Any, list[Any]] | None = None
        self.nbytes = 0
        self.source = MPI.ANY_SOURCE
        self.tag = MPI.ANY_TAG
        self.cancelled = False
        self.detached = False
        self._first: Any = None
        self._first_request: MPI.Request | None = None
        self._expected: list[int] = []
        self._statuses: list[MPI.Status] = []
        self._sizes: list[int] = []
        self._plan: list[tuple[int, int, int]] = []
        self._probe_status = self.status
        self._deadline = 0.0
        self._header: wire.Header | None = None
        self._stream: bytes | None = None
        """The pickle stream, when it came inline with the header."""
        self._payload: list[Any] = []
        self._next = self._first_arrived

    # -- starting --------------------------------------------------------
    def start_first(self, request: MPI.Request, buffer: Any) -> RecvOp:
        """Wait for a first message being received into ``buffer`` by ``request``."""
        self.requests = [request]
        self._first_request = request
        self._first = buffer
        self._next = self._first_arrived
        _register(self)
        return self

    def start_payload(self, header: wire.Header, source: int, tag: int) -> RecvOp:
        """Fetch the payload announced by an already received ``header``."""
        self.source, self.tag = source, tag
        self._run(self._receive_table, header)
        return self

    # -- stages ------------------------------------------------------------
    def _first_arrived(self) -> None:
        status = self.status
        self.cancelled = status.Is_cancelled()
        self.source, self.tag = status.Get_source(), status.Get_tag()
        count = 0 if self.cancelled else status.Get_count(MPI.BYTE)
        message = memoryview(self._first)[:count]
        self._first = None
        if count == 0:
            self._finish(None)
        elif wire.is_header(message):
            self._receive_table(wire.decode(message))
        else:
            self.nbytes = count
            self._finish((message, []))

    def _receive_table(self, header: wire.Header) -> None:
        self._header = header  # first: a failure drops the payload sent with it
        if self.channel is None:
            self.channel = transport.lookup(self.comm)
        if header.source != self.source:
            raise WireError(
                f"pkl5shim header names source {header.source} but came from {self.source}"
            )
        metrics.record_receive(header.total_nbytes)
        if header.inline is not None:  # table and stream came with the header
            table, self._stream = header.inline_parts()
            self._receive_payload(wire.decode_table(table, header))
        elif header.nbuffers == 0:
            self._receive_payload([])
        else:
            self._expect([wire.table_nbytes(header)], self._table_arrived)

    def _table_arrived(self) -> None:
        assert self._header is not None
        self._check_counts()
        self._receive_payload(wire.decode_table(self._payload[0], self._header))

    def _receive_payload(self, sizes: list[int]) -> None:
        assert self._header is not None
        if self._stream is None:
            sizes = [self._header.stream_nbytes, *sizes]
        self._expect(sizes, self._payload_arrived)

    def _payload_arrived(self) -> None:
        assert self._header is not None
        self._check_counts()
        self.nbytes = self._header.total_nbytes
        if self._stream is None:
            stream, *buffers = self._payload
        else:
            stream, buffers = self._stream, self._payload
        self._finish((stream, buffers))

    def _expect(self, sizes: list[int], stage: Any) -> None:
        """Receive parts of ``sizes`` bytes from the channel, then run ``stage``.

        Every piece's receive is posted at once, into memory allocated now, so that
        MPI moves the data straight into it (zero-copy; a piece that arrives before
        its receive is posted costs the Intel MPI wheel a copy, measured 5x slower
        at 64 MiB).  Where a too long piece would corrupt memory (``PROBE_FIRST``),
        each piece is matched (``Improbe``) and its size checked first, and a part
        is allocated when its first piece is there.
        """
        assert self._header is not None and self.channel is not None
        self._sizes = sizes
        self._plan = [(i, start, n) for i, size in enumerate(sizes) for start, n in spans(size)]
        self._expected = [n for _i, _start, n in self._plan]
        self._counts: list[int | None] = [None] * len(self._plan)
        self._statuses = [MPI.Status() for _ in self._plan]
        self._probe_status = MPI.Status()
        self._cancelling = False
        self._deadline = _deadline()
        self._next = stage
        if PROBE_FIRST:
            self._payload = [None] * len(sizes)
            self.requests = []
            return
        self._payload = [codec.allocate(size) for size in sizes]
        comm, tag = self.channel.comm, self._header.channel_tag
        self.requests = [
            RawComm.Irecv(comm, self._payload[i][start : start + n], self.source, tag)
            for i, start, n in self._plan
        ]

    def _match(self, blocking: bool) -> bool:
        """Post the receives of the pieces that arrived, in order; True once all are posted.

        Polls (``blocking``) or returns False while the next piece is not there;
        raises ``WireError`` once it has not come for ``PKL5_PAYLOAD_TIMEOUT`` seconds.
        """
        assert self._header is not None and self.channel is not None
        comm, tag, status = self.channel.comm, self._header.channel_tag, self._probe_status
        backoff: _Backoff | None = None
        while len(self.requests) < len(self._plan):
            message = RawComm.Improbe(comm, self.source, tag, status)
            if message is None:
                if time.monotonic() > self._deadline:
                    raise self._timed_out()
                if not blocking:
                    return False
                if not self.requests:  # else pieces are arriving: spin, as MPI's wait would
                    backoff = backoff or _Backoff()
                    backoff.pause()
                continue
            index, start, nbytes = self._plan[len(self.requests)]
            count = status.Get_count(MPI.BYTE)
            if count != nbytes:
                _discard(message, count)
                raise self._mismatch(index, count, nbytes)
            if start == 0:
                self._payload[index] = codec.allocate(self._sizes[index])
            self.requests.append(message.Irecv(self._payload[index][start : start + nbytes]))
            self._deadline = _deadline()
        return True

    def _part(self, index: int) -> str:
        if self._next == self._table_arrived:
            return "size table"
        if self._stream is not None:
            return f"buffer {index}"
        return "pickle stream" if index == 0 else f"buffer {index - 1}"

    def _mismatch(self, index: int, count: int, nbytes: int) -> WireError:
        assert self._header is not None
        return WireError(
            f"pkl5shim payload from rank {self.source} (tag {self.tag}) does not match its "
            f"header: a piece of its {self._part(index)} has {count} bytes, "
            f"{'more' if count > nbytes else 'fewer'} than the {nbytes} announced (object of "
            f"{self._header.total_nbytes} bytes, channel tag {self._header.channel_tag})"
        )

    def _timed_out(self) -> WireError:
        assert self._header is not None
        header = self._header
        if PROBE_FIRST:
            missing = sum(self._expected[len(self.requests) :])
        else:
            missing = sum(n for n, count in zip(self._expected, self._counts) if count is None)
        if self._next == self._table_arrived:
            missing += header.total_nbytes  # nothing after the table came either
        return WireError(
            f"pkl5shim: a large message from rank {self.source} (tag {self.tag}) is "
            f"incomplete: {missing} bytes of its payload (object of {header.total_nbytes} "
            f"bytes, channel tag {header.channel_tag}) were not sent within "
            f"PKL5_PAYLOAD_TIMEOUT={settings.payload_timeout:g} s after its header or last "
            "piece arrived. The sender failed or does not follow the pkl5shim protocol; "
            "raise PKL5_PAYLOAD_TIMEOUT (0: wait forever) if it is only slow"
        )

    def _check_counts(self) -> None:
        # A shorter piece than announced would leave uninitialized bytes in the
        # object (a longer one is an MPI truncation error, or refused when matched).
        for index, (count, nbytes) in enumerate(zip(self._counts, self._expected)):
            if count != nbytes:
                raise self._mismatch(self._plan[index][0], count or 0, nbytes)

    def _truncated(self, error: MPI.Exception) -> WireError | None:
        """A WireError for an MPI truncation error of a payload piece, else None."""
        codes = [error.Get_error_class()]
        codes += [MPI.Get_error_class(status.Get_error()) for status in self._statuses]
        if self._header is None or MPI.ERR_TRUNCATE not in codes:
            return None
        shown = ", ".join(map(str, self._expected[:8])) + (", ..." if len(self._plan) > 8 else "")
        return WireError(
            f"pkl5shim payload from rank {self.source} (tag {self.tag}) does not match its "
            f"header: a piece has more bytes than announced (MPI: message truncated; "
            f"announced pieces of {shown} bytes, object of {self._header.total_nbytes} bytes, "
            f"channel tag {self._header.channel_tag})"
        )

    def _finish(self, parts: tuple[Any, list[Any]] | None) -> None:
        self.parts = parts
        self.requests = []
        self._payload = []
        self._stream = None
        # _next is a bound method of self: drop it, or the cycle keeps the
        # received buffers alive until the garbage collector runs (measured:
        # a 16 MiB ping-pong ran 2x slower on fresh, unfaulted memory).
        self._next = _finished
        self.done = True
        _unregister(self)

    def _fail(self, error: BaseException) -> None:
        """End with ``error``; receives already matched complete, and what else of this
        message's payload is on the channel is dropped (its sender's sends complete)."""
        self.error = error
        posted = [request for request in self.requests if request]
        if posted and self._next != self._first_arrived:
            for request in posted:  # unmatched ones are cancelled, matched ones complete
                request.Cancel()
            try:
                RawRequest.Waitall(posted)
            except MPI.Exception:  # reported through ``error`` already, or irrelevant now
                pass
        if self._header is not None and self.channel is not None:
            _drop_arrived(self.channel.comm, self.source, self._header.channel_tag)
        self._finish(None)

    def _run(self, stage: Any, *args: Any) -> None:
        # A failing stage ends the operation; the error is raised by result().
        try:
            stage(*args)
        except Exception as exc:  # noqa: BLE001 - stored and re-raised to the owner
            self._fail(exc)

    # -- driving -----------------------------------------------------------
    def advance(self, blocking: bool) -> bool:
        while not self.done:
            if not self._stage_complete(blocking):
                return self.done
            self._run(self._next)
        return True

    def _stage_complete(self, blocking: bool) -> bool:
        try:
            if self._next == self._first_arrived:
                request = self.requests[0]
                if blocking:
                    request.Wait(self.status)
                    return True
                return request.Test(self.status)
            if PROBE_FIRST:
                if len(self.requests) < len(self._plan) and not self._match(blocking):
                    return False
            elif settings.payload_timeout:
                return self._poll_posted(blocking)
            return self._complete_posted(blocking)
        except MPI.Exception as exc:
            self._fail(self._truncated(exc) or exc)
            return False
        except WireError as exc:
            self._fail(exc)
            return False

    def _complete_posted(self, blocking: bool) -> bool:
        """Wait for (or test) every posted piece; no timeout."""
        if blocking:
            RawRequest.Waitall(self.requests, self._statuses)
        elif not RawRequest.Testall(self.requests, self._statuses):
            return False
        self._counts = [status.Get_count(MPI.BYTE) for status in self._statuses]
        return True

    def _poll_posted(self, blocking: bool) -> bool:
        """Test the posted pieces (polling if ``blocking``); True once all arrived.

        When no piece arrived for ``PKL5_PAYLOAD_TIMEOUT`` seconds, the receive of
        the first missing one is cancelled: MPI cancels it only if no message
        matched it, which makes a ``WireError``; a piece that matched and is still
        arriving completes, and the clock starts again.
        """
        backoff: _Backoff | None = None
        while True:
            indices = RawRequest.Testsome(self.requests, self._statuses)
            for position, index in enumerate(indices or ()):
                status = self._statuses[position]
                if status.Is_cancelled():
                    raise self._timed_out()
                self._counts[index] = status.Get_count(MPI.BYTE)
            if indices:
                self._cancelling = False
                self._deadline = _deadline()
            if None not in self._counts:
                return True
            if not self._cancelling and time.monotonic() > self._deadline:
                self.requests[self._counts.index(None)].Cancel()
                self._cancelling = True
            if not blocking:
                return False
            backoff = backoff or _Backoff()
            backoff.pause()

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        if self.parts is None:
            return None
        metrics.arriving(self.source, self.tag)
        return codec.loads(*self.parts)

    def fill_status(self, status: MPI.Status) -> None:
        status.Set_source(self.source)
        status.Set_tag(self.tag)
        status.Set_error(MPI.SUCCESS)
        status.Set_elements(MPI.BYTE, self.nbytes)
        status.Set_cancelled(self.cancelled)

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


def _finished() -> None:
    raise AssertionError("a finished receive has no next stage")


PROBE_FIRST = "Open MPI" in MPI.Get_library_version()
"""Match each payload piece before receiving it: the Open MPI 5.0 wheel corrupts memory
(segfault, ``malloc`` abort) when a large message is received into a smaller buffer
(measured), where MPICH and Intel MPI report a truncation error."""


def _deadline() -> float:
    """When a payload piece expected from now on is late (PKL5_PAYLOAD_TIMEOUT)."""
    timeout = settings.payload_timeout
    return time.monotonic() + timeout if timeout else float("inf")


def _discard(message: MPI.Message, count: int) -> None:
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


def _drop_arrived(comm: MPI.Comm, source: int, tag: int) -> None:
    """Receive and drop the messages of ``(source, tag)`` already on ``comm``."""
    status = MPI.Status()
    while True:
        message = RawComm.Improbe(comm, source, tag, status)
        if message is None:
            return
        _discard(message, status.Get_count(MPI.BYTE))


# -- the registry of pending receives and detached sends ------------------------
_registry_lock = threading.Lock()
pending: dict[int, RecvOp] = {}
"""Receives in progress, by id (mutated in place, never rebound: others import it)."""
_detached: list[SendOp] = []
"""Detached sends not yet seen complete; only the thread holding ``_prune_lock`` touches it."""
handed: collections.deque[SendOp] = collections.deque()
"""Sends just detached (freed or dropped requests): appended without a lock, adopted by a
prune (mutated in place, never rebound: others import it)."""
_prune_lock = threading.Lock()
"""One pruning thread at a time: MPI forbids testing one request in two threads at once."""
_prune_at = 16


def _register(op: RecvOp) -> None:
    with _registry_lock:
        pending[id(op)] = op


def _unregister(op: RecvOp) -> None:
    with _registry_lock:
        pending.pop(id(op), None)


def maybe_prune() -> None:
    """Prune once enough sends were detached since the last prune (from pkl5shim calls only)."""
    if len(handed) + len(_detached) >= _prune_at:
        prune_detached()


def prune_detached() -> None:
    """Forget detached sends that MPI has completed (their memory can go)."""
    global _prune_at
    if not _prune_lock.acquire(blocking=False):
        return  # another thread is pruning
    try:
        while handed:  # only the pruning thread takes items out
            _detached.append(handed.popleft())
        _detached[:] = [op for op in _detached if not op.advance(blocking=False)]
        _prune_at = max(16, 2 * len(_detached))
    finally:
        _prune_lock.release()


def _others_pending(ops: list[Operation]) -> bool:
    if len(pending) > len(ops):
        return True
    if len(ops) == 1:
        return bool(pending) and id(ops[0]) not in pending
    mine = {id(op) for op in ops}
    return any(key not in mine for key in list(pending))


def poll_others(ops: list[Operation] = ()) -> None:  # type: ignore[assignment]
    """Advance, without blocking, every pending receive not in ``ops``."""
    mine = {id(op) for op in ops}
    with _registry_lock:
        others = [op for key, op in pending.items() if key not in mine]
    for op in others:
        assert op.lock is not None
        if op.lock.acquire(blocking=False):
            try:
                op.advance(blocking=False)
            finally:
                op.lock.release()
    if _detached or handed:
        prune_detached()


def _advance(op: Operation, blocking: bool) -> bool:
    if op.lock is None:
        return op.advance(blocking)
    with op.lock:
        return op.advance(blocking)


def test(ops: list[Operation], need: int | None = None) -> list[bool]:
    """Advance ``ops`` once, and the other pending receives unless ``need`` ops are done."""
    flags = [_advance(op, blocking=False) for op in ops]
    if need is None or sum(flags) < need:
        poll_others(ops)
    return flags


class _Backoff:
    """Spin a little, then yield the core, then sleep up to a quarter millisecond."""

    def __init__(self) -> None:
        self.rounds = 0

    def pause(self) -> None:
        self.rounds += 1
        if self.rounds < 50:
            return
        if self.rounds < 2000:
            os.sched_yield()
            return
        time.sleep(min(250e-6, 1e-6 * (self.rounds - 1990)))


def drive(ops: list[Operation], need: int) -> list[bool]:
    """Block until at least ``need`` of ``ops`` are done; return which are done."""
    if len(ops) == 1 and not _others_pending(ops):
        return [_advance(ops[0], blocking=True)]
    backoff = _Backoff()
    while True:
        flags = test(ops, need)
        if sum(flags) >= need:
            return flags
        backoff.pause()


def complete(op: Operation) -> Any:
    """Wait for one operation and return its result."""
    drive([op], 1)
    return op.result()


def wait_for(probe: Any) -> Any:
    """Call ``probe()`` until it returns something true, advancing pending receives."""
    backoff = _Backoff()
    while True:
        found = probe()
        if found:
            return found
        poll_others()
        backoff.pause()


def flush_detached(timeout: float = 10.0) -> int:
    """At exit: wait up to ``timeout`` seconds for detached sends; return how many remain."""
    deadline = time.monotonic() + timeout
    while (_detached or handed) and time.monotonic() < deadline:
        prune_detached()
        time.sleep(1e-3)
    return len(_detached) + len(handed)


def _flush_at_exit() -> None:
    if MPI.Is_initialized() and not MPI.Is_finalized():
        left = flush_detached()
        if left:
            warnings.warn(
                f"pkl5shim: {left} freed send request(s) still not received at exit",
                RuntimeWarning,
                stacklevel=1,
            )


atexit.register(_flush_at_exit)
