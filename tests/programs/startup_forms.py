"""Checks that the shim reached a program that imports mpi4py in the form given in argv[1]."""

import sys

import numpy as np

form = sys.argv[1]
if form == "from-import":
    from mpi4py import MPI

    world = MPI.COMM_WORLD
elif form == "import-as":
    import mpi4py.MPI as MPI

    world = MPI.COMM_WORLD
else:  # "from-module-import": the name is bound before any user code sees the module
    from mpi4py.MPI import COMM_WORLD as world  # noqa: N811 - the form under test
    from mpi4py.MPI import Request

    import pkl5shim.surrogates

    assert Request is pkl5shim.surrogates.Request, Request

kind = f"{type(world).__module__}.{type(world).__name__}"
rank, size = world.Get_rank(), world.Get_size()
request = world.isend(np.arange(100_000) + rank, dest=(rank + 1) % size, tag=1)
data = world.recv(source=(rank - 1) % size, tag=1)
request.wait()
assert data[0] == (rank - 1) % size
sys.stdout.write(f"rank {rank} {kind} __name__={__name__} argv={sys.argv[1:]}\n")
sys.stdout.flush()
