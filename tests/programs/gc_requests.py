"""Requests of large isends dropped inside reference cycles, collected by the garbage collector.

The collector runs ``Request.__del__`` in whichever thread allocates when a
collection is due, wherever that is: also inside pkl5shim's own code while it
holds its locks.  Rank 0 starts ROUNDS large isends that rank 1 receives only
later; a second thread drops their requests one by one inside reference cycles
(no MPI call), while the main thread keeps polling the engine through a
pending irecv, with a low collection threshold.  Every object must arrive
intact and the program must not hang.
"""

from __future__ import annotations

import gc
import threading
import time

import mpi4py

mpi4py.rc.thread_level = "multiple"

import numpy as np  # noqa: E402
from mpi4py import MPI  # noqa: E402
from progutil import done, expect_same  # noqa: E402

import pkl5shim  # noqa: E402

ROUNDS = 400
comm = pkl5shim.Intracomm(MPI.COMM_WORLD)
rank = comm.Get_rank()
assert comm.Get_size() == 2, "run on 2 ranks"


class Holder:
    """Keeps a request in a reference cycle (as a callback or a traceback would)."""

    def __init__(self, request: pkl5shim.Request) -> None:
        self.request = request
        self.me = self


def array(i: int) -> np.ndarray:
    return np.full(70_000, float(i))  # 560 kB: out of band, and not sent eagerly by MPI


def main() -> None:
    if rank == 0:
        last = comm.irecv(source=1, tag=9)  # pending: every engine call below polls
        requests = [comm.isend({"i": i, "array": array(i)}, 1, tag=5) for i in range(ROUNDS)]
        finished = threading.Event()

        def dropper() -> None:  # pure Python: no MPI call here
            while requests:
                Holder(requests.pop())
                time.sleep(0.0005)  # let the main thread allocate next
            finished.set()

        gc.set_threshold(1, 2, 2)
        thread = threading.Thread(target=dropper, daemon=True)
        thread.start()
        while not finished.is_set():
            last.test()
        thread.join()
        gc.set_threshold(700, 10, 10)
        comm.send("sent", 1, tag=6)
        expect_same(last.wait(), "done", "the receive that stayed pending")
    else:
        expect_same(comm.recv(source=0, tag=6), "sent", "order")
        for i in range(ROUNDS):
            expect_same(comm.recv(source=0, tag=5), {"i": i, "array": array(i)}, f"object {i}")
        comm.send("done", 0, tag=9)
    gc.collect()
    done("gc_requests")


main()
