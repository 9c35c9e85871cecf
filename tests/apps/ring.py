"""Legacy program: a ring of isend/irecv with tokens and large arrays (mpi4py only)."""

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
right, left = (rank + 1) % size, (rank - 1) % size

token = rank
history = []
for step in range(size * 3):
    incoming = comm.irecv(source=left, tag=step)  # small: fits plain mpi4py's 32 KiB
    outgoing = comm.isend({"token": token, "step": step}, dest=right, tag=step)
    token = incoming.wait()["token"] + 1
    outgoing.wait()
    history.append(token)

field = np.full(500_000, float(rank))
for step in range(3):
    requests = [comm.isend(field, dest=right, tag=100 + step)]
    field = comm.recv(source=left, tag=100 + step) + 1.0
    MPI.Request.waitall(requests)

buffer = bytearray(1 << 20)  # plain mpi4py's way to irecv a message above 32 KiB
request = comm.irecv(buffer, source=left, tag=200)
comm.send(np.arange(20_000, dtype="i8") + rank, dest=right, tag=200)
neighbour = request.wait()

histories = comm.gather(history, root=0)
fields = comm.gather(float(field.sum()), root=0)
neighbours = comm.gather(int(neighbour.sum()), root=0)
if rank == 0:
    print("tokens", histories)
    print("fields", fields)
    print("neighbours", neighbours)
