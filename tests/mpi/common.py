"""Helpers shared by the MPI check modules (imported on every rank)."""

from __future__ import annotations

from mpi4py import MPI

import pkl5shim
from tests.compare import expect_same, same

world = MPI.COMM_WORLD
comm = pkl5shim.Intracomm(world)
rank = comm.Get_rank()
size = comm.Get_size()
right = (rank + 1) % size
left = (rank - 1) % size

__all__ = ["comm", "expect_same", "left", "rank", "right", "same", "size", "world"]
