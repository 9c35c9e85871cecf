"""Helpers shared by the MPI check modules (imported on every rank)."""

from __future__ import annotations

from typing import Any

import numpy as np
from mpi4py import MPI

import pkl5shim

world = MPI.COMM_WORLD
comm = pkl5shim.Intracomm(world)
rank = comm.Get_rank()
size = comm.Get_size()
right = (rank + 1) % size
left = (rank - 1) % size


def same(a: Any, b: Any) -> bool:
    """Deep equality that understands numpy arrays (dtype, shape and values)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            type(a) is type(b)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        )
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return type(a) is type(b) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def expect_same(got: Any, expected: Any, what: str = "") -> None:
    """Raise AssertionError showing both values when they differ."""
    if not same(got, expected):
        raise AssertionError(f"{what}: got {got!r:.300}, expected {expected!r:.300}")
