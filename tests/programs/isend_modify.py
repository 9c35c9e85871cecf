"""Legacy pattern: refill the send buffer right after isend, before wait (mpi4py only).

Plain mpi4py pickled the array inside isend, so the receiver gets the values at
the call.  Rank 0 sends to every other rank; each receiver reports what it got.
"""

import sys
import time

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
N = 2_000_000
if rank == 0:
    data = np.arange(N, dtype="f8")
    requests = [comm.isend(data, dest=peer, tag=5) for peer in range(1, size)]
    data[:] = -1.0  # too early for zero-copy sends: MPI may not have read the array yet
    MPI.Request.waitall(requests)
else:
    time.sleep(0.3)  # receive late, so that the sender's overwrite surely comes first
    got = comm.recv(source=0, tag=5)
    intact = bool((got == np.arange(N, dtype="f8")).all())
    sys.stdout.write(f"rank {rank} intact={intact}\n")  # one write: lines of ranks never mix
    sys.stdout.flush()
