"""Two ranks exchange a 256 MiB numpy array through pkl5shim (run with mpiexec -n 2)."""

import time

import numpy as np
from mpi4py import MPI

import pkl5shim

comm = pkl5shim.Intracomm(MPI.COMM_WORLD)  # the only line that differs from plain mpi4py
rank, size = comm.Get_rank(), comm.Get_size()
if size != 2:
    raise SystemExit("run me on 2 ranks: mpiexec -n 2 python examples/exchange.py")

peer = 1 - rank
array = np.full(32 * 1024 * 1024, rank, dtype="f8")  # 256 MiB
start = time.perf_counter()
request = comm.isend({"rank": rank, "data": array}, dest=peer, tag=7)
received = comm.recv(source=peer, tag=7)
request.wait()
elapsed = time.perf_counter() - start
assert received["rank"] == peer and received["data"].min() == received["data"].max() == peer
line = f"rank {rank}: got {received['data'].nbytes >> 20} MiB from rank {peer} in {elapsed:.3f} s"
# Rank 0 prints both lines: two ranks writing to mpiexec's output at once can interleave
# within a line.
lines = comm.gather(line, root=0)
if rank == 0:
    print("\n".join(lines), flush=True)
