"""mpi4py.util.sync beside large lowercase traffic: a Counter hands out ranks' turns,
a Mutex guards a section, Sequential orders the sections, and each rank sends
a 4 MiB array around the ring.  Prints the same with and without pkl5shim."""

import time

import numpy as np
from mpi4py import MPI
from mpi4py.util.sync import Counter, Mutex, Sequential

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()

counter = Counter(comm=comm)
tickets = [counter.next() for _ in range(3)]
counter.free()

data = np.full(1 << 19, float(rank))  # 4 MiB
request = comm.isend(data, (rank + 1) % size, tag=5)
received = comm.recv(source=(rank - 1) % size, tag=5)
request.wait()

mutex = Mutex(comm=comm)
with mutex:  # no communication of the program inside: another rank may hold it
    local = float(received.sum())
mutex.free()
total = comm.bcast(local if rank == 0 else None, root=0)

gathered = comm.gather(len(tickets), root=0)
with Sequential(comm):
    entered = time.monotonic_ns()  # one clock for all processes of a host; ranks enter in turn
line = f"rank {rank}: got {received[0]:.0f} x {received.size}, total {total:.0f}"
report = comm.gather((entered, line), root=0)
if rank == 0:  # one process prints: mpiexec may split lines that several ranks print at once
    times = [time for time, _ in report]
    print(*(text for _, text in report), sep="\n")
    print(f"sections in rank order: {times == sorted(times)}")
    print(f"tickets {sorted(gathered)} of {size}")
