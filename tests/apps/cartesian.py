"""Legacy program: halo exchange on a periodic Cartesian grid (mpi4py only)."""

import numpy as np
from mpi4py import MPI

world = MPI.COMM_WORLD
dims = MPI.Compute_dims(world.Get_size(), 2)
cart = world.Create_cart(dims, periods=[True, True])
rank = cart.Get_rank()
coords = cart.Get_coords(rank)
block = np.full((400, 400), float(rank))
received = []
for direction in (0, 1):
    source, dest = cart.Shift(direction, 1)
    halo = cart.sendrecv(block[:, :] * (direction + 1), dest=dest, source=source)
    received.append(float(halo.sum()))
row = cart.Sub([False, True])
row_total = row.allgather(float(block.sum()))
summary = cart.gather({"coords": coords, "halos": received, "row": row_total}, root=0)
if rank == 0:
    print("dims", dims)
    for item in summary:
        print(item)
row.Free()
cart.Free()
