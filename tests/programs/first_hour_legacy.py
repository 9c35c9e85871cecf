"""A legacy mpi4py program: rank 0 sends a small dict and a 1 MiB array to every other rank.

Run under the shim (or not) by the first-hour tests; each rank prints its OK line.
"""

import numpy as np
from mpi4py import MPI

import pkl5shim

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
if rank == 0:
    for dest in range(1, size):
        comm.send({"to": dest}, dest=dest, tag=1)
        comm.send(np.full(1 << 17, dest, dtype="f8"), dest=dest, tag=2)
else:
    small = comm.recv(source=0, tag=1)
    large = comm.recv(source=0, tag=2)
    assert small == {"to": rank} and large.min() == large.max() == rank
comm.barrier()
print(f"OK first hour legacy rank {rank} enabled={pkl5shim.enabled()}", flush=True)
