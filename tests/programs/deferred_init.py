"""A program that initializes MPI itself; with PKL5_ENABLE=1 the shim completes its setup then."""

import sys

import mpi4py

mpi4py.rc.initialize = False
mpi4py.rc.finalize = False

import numpy as np  # noqa: E402
from mpi4py import MPI  # noqa: E402

assert not MPI.Is_initialized()
world = MPI.COMM_WORLD  # taken before MPI.Init_thread: still the patched object
provided = MPI.Init_thread(MPI.THREAD_MULTIPLE)
rank, size = world.Get_rank(), world.Get_size()
request = world.isend(np.arange(200_000) * rank, dest=(rank + 1) % size, tag=3)
data = world.recv(source=(rank - 1) % size, tag=3)
request.wait()
assert (data == np.arange(200_000) * ((rank - 1) % size)).all()
import pkl5shim  # noqa: E402

line = f"rank {rank} {type(world).__name__} out-of-band {pkl5shim.stats()['out_of_band_received']}"
sys.stdout.write(line + "\n")  # one write: lines of ranks never mix
sys.stdout.flush()
MPI.Finalize()
