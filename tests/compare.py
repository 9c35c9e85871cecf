"""Deep comparison of received objects, shared by the MPI checks and the launched programs."""

from __future__ import annotations

from typing import Any

import numpy as np


def same(a: Any, b: Any) -> bool:
    """Deep equality that understands numpy arrays (dtype, shape, memory order, values, NaN)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            type(a) is type(b)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and a.flags.f_contiguous == b.flags.f_contiguous
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
