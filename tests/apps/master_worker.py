"""Legacy program: a master-worker loop with ANY_SOURCE and MPI.Request.waitall (mpi4py only)."""

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
TASKS = [np.arange(n, dtype="f8") for n in (10, 700_000, 50, 1_200_000, 3, 400_000, 90_000, 8)]
WORK, STOP, RESULT = 1, 2, 3


def work(task):
    return {"n": len(task), "sum": float(task.sum()), "echo": task[::-1].copy()}


if size == 1:
    done = {len(task): work(task)["sum"] for task in TASKS}
elif rank == 0:
    done = {}
    queue = list(TASKS)
    status = MPI.Status()
    for worker in range(1, size):
        comm.send(queue.pop(), dest=worker, tag=WORK)
    while len(done) < len(TASKS):
        answer = comm.recv(source=MPI.ANY_SOURCE, tag=RESULT, status=status)
        assert (answer["echo"][::-1] == np.arange(answer["n"])).all()
        done[answer["n"]] = answer["sum"]
        if queue:
            comm.send(queue.pop(), dest=status.Get_source(), tag=WORK)
    MPI.Request.waitall([comm.isend(None, dest=w, tag=STOP) for w in range(1, size)])
else:
    status = MPI.Status()
    while True:
        task = comm.recv(source=0, tag=MPI.ANY_TAG, status=status)
        if status.Get_tag() == STOP:
            break
        comm.send(work(task), dest=0, tag=RESULT)
if rank == 0:
    print("results", sorted(done.items()))
