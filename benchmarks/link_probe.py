"""Where the ranks run, and one 64 MiB uppercase round trip between ranks 0 and 1.

Run across the namespace hosts (``benchmarks/netns_cluster.sh``), then read the link
counters: the round trip must have put 64 MiB on each link in each direction::

    $PKL5_CLUSTER_MPIEXEC -n 2 python benchmarks/link_probe.py
    benchmarks/netns_cluster.sh counters
"""

from __future__ import annotations

import time

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank = comm.Get_rank()
names = comm.allgather(MPI.Get_processor_name())
shared = comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()
nbytes = 64 << 20
array = np.ones(nbytes, np.uint8)
comm.Barrier()
start = time.perf_counter()
if rank == 0:
    comm.Send(array, 1)
    comm.Recv(array, 1)
elif rank == 1:
    comm.Recv(array, 0)
    comm.Send(array, 0)
elapsed = time.perf_counter() - start
if rank == 0:
    rate = 2 * nbytes * 8 / elapsed / 1e9
    print(names, "shared", shared, f"64MiB round trip {elapsed:.3f}s = {rate:.2f} Gbit/s")
