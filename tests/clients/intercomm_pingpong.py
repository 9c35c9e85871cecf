"""Round trips of 8 MiB arrays on an intercommunicator, the pattern of mpi4py.futures:
a thread on rank 0 issends a task, polls with iprobe and frees the send request once
the answer came; rank 1 iprobes, receives, issends the answer and polls with test.

Plain mpi4py, without pkl5shim, hangs here on the MPICH 5.0.2 wheel after a few
round trips (measured: 4 of 12); it completes on the Open MPI and Intel MPI wheels.
"""

import threading
import time

import numpy as np
from mpi4py import MPI

ROUNDS = 12
world = MPI.COMM_WORLD
rank = world.Get_rank()
assert world.Get_size() == 2, "run on 2 ranks"
half = world.Split(rank, 0)
comm = half.Create_intercomm(0, world, 1 - rank, 7)


def client() -> None:
    status = MPI.Status()
    for i in range(ROUNDS):
        request = comm.issend(np.full(1 << 20, float(i)), 0, 0)
        while not comm.iprobe(0, 0, status):
            time.sleep(0.001)
        answer = comm.recv(None, 0, 0, status)
        MPI.Request.Free(request)
        print("round", i, answer[0], flush=True)
    comm.issend(None, 0, 0).wait()


def server() -> None:
    status = MPI.Status()
    while True:
        while not comm.iprobe(0, MPI.ANY_TAG, status):
            time.sleep(0.001)
        task = comm.recv(None, 0, 0, status)
        if task is None:
            return
        request = comm.issend(task * 2, 0, 0)
        while not MPI.Request.test(request)[0]:
            time.sleep(0.001)


if rank == 0:
    thread = threading.Thread(target=client)
    thread.start()
    thread.join()
else:
    server()
comm.Free()
half.Free()
