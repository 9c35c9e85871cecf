"""MPI_THREAD_SERIALIZED: several threads call MPI, taking turns under one lock.

Each of THREADS threads exchanges objects with the same thread of the
neighbouring ranks on its own tag (isend, irecv, test loops,
iprobe then a blocking recv), holding the lock for every MPI call and releasing it in between.
Some of its isend requests are dropped in reference cycles (and one batch of
BATCH at once); outside the lock each thread runs the garbage collector, so the
requests' finalizers run in threads that do not hold the lock.  pkl5shim must
call MPI only from the thread that holds the lock, and start no thread.
"""

from __future__ import annotations

import gc
import sys
import threading
from typing import Any

import mpi4py

mpi4py.rc.thread_level = "serialized"

import numpy as np  # noqa: E402
from mpi4py import MPI  # noqa: E402
from mpithreads import Holder, new_threads, start, violations, watch  # noqa: E402
from progutil import done, expect_same  # noqa: E402

import pkl5shim  # noqa: E402

THREADS = 3
ROUNDS = 60
BATCH = 30
provided = MPI.Query_thread()
if provided < MPI.THREAD_SERIALIZED:
    sys.stderr.write(f"FAIL: THREAD_SERIALIZED requested, library provides level {provided}\n")
    MPI.COMM_WORLD.Abort(3)


class TurnLock:
    """The program's MPI lock; it knows which thread holds it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.owner: int | None = None

    def __enter__(self) -> None:
        self._lock.acquire()
        self.owner = threading.get_ident()

    def __exit__(self, *exc: object) -> None:
        self.owner = None
        self._lock.release()

    def held(self) -> bool:
        return self.owner == threading.get_ident()


turn = TurnLock()
watch(turn.held)
comm = pkl5shim.Intracomm(MPI.COMM_WORLD)
rank, size = comm.Get_rank(), comm.Get_size()
right, left = (rank + 1) % size, (rank - 1) % size
errors: list[BaseException] = []


def make(src: int, t: int, i: int) -> Any:
    if i % 3 == 0:
        return {"src": src, "t": t, "i": i}
    n = 30_000 if i % 3 == 1 else 140_000
    return {"src": src, "t": t, "i": i, "array": np.arange(n, dtype=np.float64) + 1000 * t + i}


def until(request: pkl5shim.Request) -> Any:
    """Test ``request`` under the lock, letting other threads in between, until it completes."""
    while True:
        with turn:
            flag, obj = request.test()
        if flag:
            return obj


def worker(t: int) -> None:
    try:
        for i in range(ROUNDS):
            with turn:
                rreq = comm.irecv(source=left, tag=t)
                sreq = comm.isend(make(rank, t, i), right, tag=t)
            if i % 5 == 4:  # a blocking recv, once a probe under the lock saw the message
                with turn:
                    extra = comm.isend(make(rank, t, -i), right, 100 + t)
                got = None
                while got is None:
                    with turn:
                        if comm.iprobe(left, 100 + t):
                            got = comm.recv(source=left, tag=100 + t)
                expect_same(got, make(left, t, -i), f"thread {t} probe+recv {i}")
                until(extra)
            if i % 2:
                Holder(sreq)  # dropped in a cycle: the collector finalizes it
            else:
                until(sreq)
            del sreq
            expect_same(until(rreq), make(left, t, i), f"thread {t} round {i}")
            if t == 0 and i == ROUNDS // 2:  # a batch nobody receives yet, dropped at once
                with turn:
                    batch = [comm.isend(make(rank, 9, j), right, tag=50) for j in range(BATCH)]
                for request in batch:
                    Holder(request)
                del batch, request
            gc.collect()  # outside the lock
    except BaseException as exc:  # noqa: BLE001 - reported by the main thread
        errors.append(exc)


def main() -> None:
    threads = [start(worker, t) for t in range(THREADS)]
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck"
    if errors:
        raise errors[0]
    gc.collect()
    with turn:
        for j in range(BATCH):
            expect_same(comm.recv(source=left, tag=50), make(left, 9, j), f"dropped batch {j}")
        comm.Barrier()
    expect_same(new_threads(), [], "threads started by pkl5shim")
    if violations:
        raise AssertionError(f"MPI called without holding the lock:\n{violations[0]}")
    print(f"rank {rank}: level {provided}, {THREADS} threads x {ROUNDS} rounds", flush=True)
    done("threads_serialized")


main()
