"""MPI_THREAD_FUNNELED: only the main thread calls MPI; worker threads only touch objects.

The main thread sends and receives large and small objects around a ring.  It
hands the requests of some large isends to worker threads, which drop them in
reference cycles and run the garbage collector, and hands every received
object to a worker, which checks its content and drops it.  pkl5shim must not
call MPI from a worker (its request finalizer runs there) and must not start
threads of its own.
"""

from __future__ import annotations

import gc
import queue
import sys
from typing import Any

import mpi4py

mpi4py.rc.thread_level = "funneled"

import numpy as np  # noqa: E402
from mpi4py import MPI  # noqa: E402
from mpithreads import Holder, new_threads, start, violations, watch  # noqa: E402
from progutil import done, expect_same  # noqa: E402

import pkl5shim  # noqa: E402

ROUNDS = 120
WORKERS = 2
BATCH = 40
provided = MPI.Query_thread()
if provided < MPI.THREAD_FUNNELED:
    sys.stderr.write(f"FAIL: THREAD_FUNNELED requested, library provides level {provided}\n")
    MPI.COMM_WORLD.Abort(3)
main_thread = MPI.Is_thread_main
watch(main_thread)
comm = pkl5shim.Intracomm(MPI.COMM_WORLD)
rank, size = comm.Get_rank(), comm.Get_size()
right, left = (rank + 1) % size, (rank - 1) % size


def make(src: int, i: int) -> Any:
    if i % 3 == 0:
        return {"src": src, "i": i, "text": "small"}
    n = 40_000 if i % 3 == 1 else 150_000
    return {"src": src, "i": i, "array": np.arange(n, dtype=np.float64) * (src + 1) + i}


dropped: queue.Queue = queue.Queue()


def worker(inbox: queue.Queue, outbox: queue.Queue) -> None:
    while True:
        item = inbox.get()
        if item is None:
            return
        kind, payload = item
        if kind == "drop":  # requests whose sends are still in flight
            for request in payload:
                Holder(request)
            del payload, item, request
            gc.collect()
            dropped.put(True)
        else:
            i, obj = payload
            del payload, item
            outbox.put((i, same(obj, make(left, i))))
            del obj
            gc.collect()


def same(got: Any, expected: Any) -> bool:
    try:
        expect_same(got, expected, "content")
    except AssertionError:
        return False
    return True


def main() -> None:
    before = new_threads()
    inbox: queue.Queue = queue.Queue()
    outbox: queue.Queue = queue.Queue()
    workers = [start(worker, inbox, outbox) for _ in range(WORKERS)]
    checked: dict[int, bool] = {}
    for i in range(ROUNDS):
        rreq = comm.irecv(source=left, tag=1)
        sreq = comm.isend(make(rank, i), right, tag=1)
        if i % 4 == 0:  # blocking calls while the irecv and the isend are pending
            got = comm.sendrecv(make(rank, i), right, sendtag=2, source=left, recvtag=2)
            inbox.put(("check", (i, got)))
        if i % 2:
            inbox.put(("drop", [sreq]))  # a worker drops it: MPI may still read the array
        else:
            sreq.wait()
        del sreq
        inbox.put(("check", (i, rreq.wait())))
        while not outbox.empty():
            index, ok = outbox.get()
            checked[index] = checked.get(index, True) and ok
    # A batch of isends that nobody receives yet, all dropped by a worker at once.
    batch = [comm.isend(make(rank, i), right, tag=3) for i in range(1, 3 * BATCH, 3)]
    inbox.put(("drop", batch))
    del batch
    for _ in range(ROUNDS // 2 + 1):  # every drop done, the batch's too
        dropped.get()
    comm.Barrier()
    for i in range(1, 3 * BATCH, 3):
        expect_same(comm.recv(source=left, tag=3), make(left, i), "dropped batch")
    for _ in workers:
        inbox.put(None)
    for thread in workers:
        thread.join(timeout=60)
    while not outbox.empty():
        index, ok = outbox.get()
        checked[index] = checked.get(index, True) and ok
    expect_same(sorted(checked), list(range(ROUNDS)), "every received object checked")
    expect_same([i for i, ok in checked.items() if not ok], [], "damaged objects")
    expect_same(before, [], "threads before")
    expect_same(new_threads(), [], "threads started by pkl5shim")
    if violations:
        raise AssertionError(f"MPI called outside the main thread:\n{violations[0]}")
    print(f"rank {rank}: level {provided}, {ROUNDS} rounds, workers ran the finalizers", flush=True)
    done("threads_funneled")


main()
