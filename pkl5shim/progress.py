"""Operations in flight, and the loop that drives them to completion.

A large object arrives in stages (see ``receive``): a receive must post the next
stage once the previous one completed.  A rank blocked in one call would
otherwise never post the payload receive of another pending ``irecv`` while its
sender waits for exactly that: so every blocking wait of the engine also
advances all other pending receives of the process (``drive``), and blocks
inside MPI only when nothing else is pending (on MPICH, a loop of Tests that never
sleeps stands in for that wait: ``wait_request``).  Sends whose requests the user
dropped are kept here until MPI completes them (``handed``, then pruned).
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

from .transport import POLLED_RECEIVES


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


# -- the registry of pending receives and detached sends ------------------------
pending: dict[int, Operation] = {}
"""Receives in progress, by id (mutated in place, never rebound: others import it).

No lock: each use is one operation of the dict in C (setting, popping, copying its
values), atomic under the GIL and locked per dict on a free-threaded build.  A lock
taken twice per message cost 0.5 us of a 2 us small ``irecv`` (measured)."""
_detached: list[Operation] = []
"""Detached sends not yet seen complete; only the thread holding ``_prune_lock`` touches it."""
handed: collections.deque[Operation] = collections.deque()
"""Sends just detached (freed or dropped requests): appended without a lock, adopted by a
prune (mutated in place, never rebound: others import it)."""
_prune_lock = threading.Lock()
"""One pruning thread at a time: MPI forbids testing one request in two threads at once."""
_prune_at = 16


def register(op: Operation) -> None:
    """Make a receive pending: every wait of the engine advances it until it is done."""
    pending[id(op)] = op


def unregister(op: Operation) -> None:
    """A receive is done (or failed): stop advancing it."""
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
    if not pending:
        return False
    if len(pending) > len(ops):
        return True
    if len(ops) == 1:
        return id(ops[0]) not in pending
    # one comparison in C of the keys with the ids (a generator over them took 1 us)
    return not pending.keys() <= {id(op) for op in ops}


def poll_others(ops: list[Operation] = ()) -> None:  # type: ignore[assignment]
    """Advance, without blocking, every pending receive not in ``ops``."""
    mine = {id(op) for op in ops}
    others = [op for op in list(pending.values()) if id(op) not in mine]
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
    if (need is None or sum(flags) < need) and (_detached or handed or _others_pending(ops)):
        poll_others(ops)
    return flags


class Backoff:
    """Spin a little, then yield the core, then sleep up to a quarter millisecond.

    Five rounds of spinning, not fifty: oversubscribed (4 ranks on 2 cores, MPICH), a halo
    exchange of small objects (two ``irecv``, two ``isend``, ``waitall``) took 11.7x plain
    mpi4py's time with fifty and 4.9x with five, while a rank spun on a core its peer
    needed; on 2 ranks the two were the same within noise (measured).
    """

    SPIN = 5

    def __init__(self, sleeps: bool = True) -> None:
        self.rounds = 0
        self.sleeps = sleeps
        """False: never sleep, as ``MPI_Wait`` does not (see ``wait_request``)."""

    def pause(self) -> None:
        self.rounds += 1
        if self.rounds < self.SPIN:
            return
        if self.rounds < 2000 or not self.sleeps:
            os.sched_yield()
            return
        time.sleep(min(250e-6, 1e-6 * (self.rounds - 1990)))


def wait_request(request: MPI.Request, status: MPI.Status | None = None) -> None:
    """Wait for one MPI request, with nothing else to advance meanwhile: in ``MPI_Wait``,
    or in a loop of Tests where that returns sooner (``transport.POLLED_RECEIVES``).

    The loop yields the core and never sleeps: MPI moves this rank's other messages
    (large sends) only inside its calls, and sleeping between Tests starved them (measured
    with MPICH's ``Iallgatherv``: 7.9 ms became 153-166 ms with Backoff's sleeps).
    """
    if not POLLED_RECEIVES:
        request.Wait(status)
        return
    if request.Test(status):  # arrived already: no Backoff to make
        return
    backoff = Backoff(sleeps=False)
    while not request.Test(status):
        backoff.pause()


def drive(ops: list[Operation], need: int) -> list[bool]:
    """Block until at least ``need`` of ``ops`` are done; return which are done."""
    if len(ops) == 1 and not _others_pending(ops):
        return [_advance(ops[0], blocking=True)]
    backoff = Backoff()
    while True:
        flags = test(ops, need)
        if sum(flags) >= need:
            return flags
        backoff.pause()


def complete_each(ops: list[Operation]) -> None:
    """Wait for every operation of one collective call.

    Every send of the call is posted before anything waits, so no operation of the
    set waits for another to be advanced: when nothing else is pending, each is
    waited for in turn inside MPI; else the polling loop advances them all.
    """
    if _others_pending(ops):
        drive(ops, len(ops))
        return
    for op in ops:
        _advance(op, blocking=True)


def complete(op: Operation) -> Any:
    """Wait for one operation and return its result."""
    drive([op], 1)
    return op.result()


def wait_for(probe: Any, sleeps: bool = True) -> Any:
    """Call ``probe()`` until it returns something true, advancing pending receives
    (``sleeps``: see ``Backoff``)."""
    backoff = Backoff(sleeps)
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
