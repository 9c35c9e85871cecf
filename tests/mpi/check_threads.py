"""Several threads per rank sending and receiving concurrently (MPI_THREAD_MULTIPLE)."""

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from common import comm, expect_same, left, rank, right, world
from mpi4py import MPI

import pkl5shim

NTHREADS = 3
COUNT = 200
TAG = 100
wildcard = pkl5shim.Intracomm(world.Dup())  # the ANY_TAG variant runs on its own communicator


def payload(r: int, t: int, i: int) -> dict[str, Any]:
    """Every fourth message is large (a 300 KB array), the others small dicts."""
    if i % 4 == 3:
        return {"r": r, "t": t, "i": i, "array": np.full(300 * 128, r * 1e6 + t * 1e3 + i)}
    return {"r": r, "t": t, "i": i, "text": "x" * (i % 50), "list": list(range(i % 7))}


def run_threads(*targets: Callable[[int], None]) -> None:
    """Run ``target(t)`` for each target and t < NTHREADS, each in a thread; re-raise a failure."""
    errors: list[BaseException] = []

    def body(target: Callable[[int], None], t: int) -> None:
        try:
            target(t)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [
        threading.Thread(target=body, args=(target, t), daemon=True)
        for target in targets
        for t in range(NTHREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck"
    if errors:
        raise errors[0]


def exchange(t: int, i: int) -> Any:
    """One ring step of thread ``t`` on its own tag, with the send/receive calls mixed."""
    obj, tag = payload(rank, t, i), TAG + t
    step = i % 4
    if step == 0:
        sreq = comm.isend(obj, right, tag)
        got = comm.recv(source=left, tag=tag)
        sreq.wait()
    elif step == 1:
        rreq = comm.irecv(source=left, tag=tag)
        comm.send(obj, right, tag)  # the matching receive is posted everywhere
        got = rreq.wait()
    elif step == 2:
        rreq = comm.irecv(source=left, tag=tag)
        sreq = comm.isend(obj, right, tag)
        got, _ = pkl5shim.Request.waitall([rreq, sreq])
    else:
        sreq = comm.isend(obj, right, tag)
        rreq = comm.irecv(source=left, tag=tag)
        got = rreq.wait()
        sreq.wait()
    return got


def check_thread_multiple_is_provided():
    expect_same(MPI.Query_thread(), MPI.THREAD_MULTIPLE, "thread level")


def check_threads_on_own_tags_receive_in_order():
    received: dict[int, list[Any]] = {t: [] for t in range(NTHREADS)}

    def worker(t: int) -> None:
        for i in range(COUNT):
            got = exchange(t, i)
            expect_same(got, payload(left, t, i), f"thread {t} message {i}")
            received[t].append((got["t"], got["i"]))

    run_threads(worker)
    for t in range(NTHREADS):
        expect_same(received[t], [(t, i) for i in range(COUNT)], f"thread {t} order")


def check_threads_receiving_any_tag_get_each_message_once():
    per_thread = 100
    received: dict[int, list[tuple[int, int]]] = {t: [] for t in range(NTHREADS)}

    def sender(t: int) -> None:
        requests = []
        for i in range(per_thread):
            obj = payload(rank, t, i)
            if i % 3 == 0 and right != rank:
                wildcard.send(obj, right, TAG + t)
            else:
                requests.append(wildcard.isend(obj, right, TAG + t))
        pkl5shim.Request.waitall(requests)

    def receiver(t: int) -> None:
        for i in range(per_thread):
            status = MPI.Status()
            if i % 2:
                got = wildcard.recv(source=left, tag=MPI.ANY_TAG, status=status)
            else:
                got = wildcard.irecv(source=left, tag=MPI.ANY_TAG).wait(status)
            expect_same(got, payload(left, got["t"], got["i"]), f"receiver {t}")
            expect_same(status.Get_tag(), TAG + got["t"], "status tag")
            received[t].append((got["t"], got["i"]))

    # Each receiver thread takes exactly a third of what left sends, whatever the tag.
    run_threads(sender, receiver)
    union = sorted(item for t in received for item in received[t])
    expected = sorted((t, i) for t in range(NTHREADS) for i in range(per_thread))
    expect_same(union, expected, "each message exactly once")
    for t, items in received.items():
        for tag in range(NTHREADS):
            indices = [i for u, i in items if u == tag]
            expect_same(indices, sorted(indices), f"receiver {t}: tag {TAG + tag} in order")


def wait_in_thread(req: pkl5shim.Request) -> tuple[threading.Thread, list[Any]]:
    """Start a thread blocked in ``req.wait(status)``; it appends (result, cancelled)."""
    outcome: list[Any] = []
    started = threading.Event()

    def waiter() -> None:
        status = MPI.Status()
        started.set()
        outcome.append((req.wait(status), status.Is_cancelled()))

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    started.wait()
    return thread, outcome


def check_cancel_from_another_thread_releases_a_waiter():
    for source, tag in ((left, 200), (MPI.ANY_SOURCE, MPI.ANY_TAG)):
        req = wildcard.irecv(source=source, tag=tag)  # nothing will ever match it
        thread, outcome = wait_in_thread(req)
        req.cancel()
        thread.join(timeout=60)
        assert not thread.is_alive(), "the waiter was not released by cancel()"
        expect_same(outcome, [(None, True)], "result and cancelled flag")
        world.Barrier()  # every receive is cancelled before the next sends
        sreq = wildcard.isend(payload(rank, 0, 3), right, 200)
        expect_same(wildcard.recv(source=left, tag=200), payload(left, 0, 3), "still works")
        sreq.wait()
