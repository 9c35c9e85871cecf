"""Pickle protocol 5: an object to (stream, out-of-band buffers) and back.

Everything goes through ``MPI.pickle``, so a custom ``dumps``/``loads`` (dill,
cloudpickle), ``PROTOCOL`` and ``THRESHOLD`` set by the user apply here too.
"""

from __future__ import annotations

from typing import Any

from mpi4py import MPI

ALIGNMENT = 64
"""Byte alignment of every receive buffer the engine allocates."""

Buffers = list[Any]


dumps_oob = MPI.pickle.dumps_oob
"""``MPI.pickle.dumps_oob``; ``MPI.pickle.__init__`` changes that same object."""


def dumps(obj: Any) -> tuple[bytes, Buffers]:
    """Pickle ``obj``; buffers of ``MPI.pickle.THRESHOLD`` bytes or more stay out of band."""
    return MPI.pickle.dumps_oob(obj)


def loads(stream: Any, buffers: Buffers) -> Any:
    """Rebuild an object from its pickle stream and out-of-band buffers."""
    if not buffers:
        return MPI.pickle.loads(stream)
    return MPI.pickle.loads_oob(stream, buffers)


def allocate(nbytes: int) -> memoryview:
    """Return ``nbytes`` of writable, uninitialized memory aligned to ``ALIGNMENT``."""
    # Plain malloc through mpi4py, not numpy: numpy asks the kernel for huge
    # pages on large arrays, and with THP defrag=madvise (a common default)
    # first touching such memory inside MPI stalls in page compaction (measured:
    # a 256 MiB exchange took 0.5-1.5 s instead of 0.1 s).
    raw = MPI.buffer.allocate(nbytes + ALIGNMENT)
    offset = -raw.address % ALIGNMENT
    return memoryview(raw)[offset : offset + nbytes]
