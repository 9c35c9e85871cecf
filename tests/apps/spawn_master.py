"""Legacy program: a master spawns workers and ships them arrays (mpi4py only)."""

import sys
from pathlib import Path

import numpy as np
from mpi4py import MPI

WORKERS = 2
world = MPI.COMM_WORLD
rank = world.Get_rank()
worker = str(Path(__file__).with_name("spawn_worker.py"))
children = world.Spawn(sys.executable, args=[worker], maxprocs=WORKERS, root=0)
if rank == 0:
    for child in range(WORKERS):
        children.send(np.arange(300_000, dtype="f8") * (child + 1), dest=child, tag=1)
    sums = sorted(children.recv(source=MPI.ANY_SOURCE, tag=2) for _ in range(WORKERS))
    print("spawned", WORKERS, "sums", [round(value, 3) for value in sums])
children.Disconnect()
world.Barrier()
