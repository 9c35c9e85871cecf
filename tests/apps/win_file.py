"""Legacy program: one-sided windows and MPI-IO on COMM_WORLD, plus a large send (mpi4py only)."""

import os
import sys

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
right, left = (rank + 1) % size, (rank - 1) % size

memory = np.zeros(4, dtype="i8")
window = MPI.Win.Create(memory, comm=comm)
window.Fence()
window.Put(np.full(4, rank, dtype="i8"), right)
window.Fence()
window.Free()

path = os.path.join(sys.argv[1], "win_file.bin")
handle = MPI.File.Open(comm, path, MPI.MODE_CREATE | MPI.MODE_WRONLY)
handle.Write_at_all(rank * 32, memory)
handle.Close()

request = comm.isend(np.arange(300_000, dtype="f8") * rank, dest=right, tag=7)
echo = comm.recv(source=left, tag=7)
request.wait()
sums = comm.gather(float(echo.sum()), root=0)
if rank == 0:
    print("file", np.fromfile(path, dtype="i8").reshape(size, 4).tolist())
    print("sums", sums)
    print("compare", MPI.Comm.Compare(comm, MPI.COMM_WORLD) == MPI.IDENT)
