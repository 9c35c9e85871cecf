"""Pickle protocol 5: an object to (stream, out-of-band buffers) and back.

Everything goes through ``MPI.pickle``, so a custom ``dumps``/``loads`` (dill,
cloudpickle), ``PROTOCOL`` and ``THRESHOLD`` set by the user apply here too.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from mpi4py import MPI

from . import metrics
from .config import modes as _modes
from .config import settings

ALIGNMENT = 64
"""Byte alignment of every receive buffer the engine allocates."""

Buffers = list[Any]
_clock = time.perf_counter


# Bound methods of mpi4py's one ``MPI.pickle``: ``MPI.pickle.__init__(dumps, loads)``
# changes what they call, as it does for mpi4py's own C code.
_dumps_oob: Callable[[Any], tuple[bytes, Buffers]] = MPI.pickle.dumps_oob
_dumps_in_band: Callable[[Any], bytes] = MPI.pickle.dumps
_loads_oob: Callable[[Any, Buffers], Any] = MPI.pickle.loads_oob
_loads_in_band: Callable[[Any], Any] = MPI.pickle.loads


def dumps(obj: Any) -> tuple[bytes, Buffers]:
    """Pickle an object; buffers of ``MPI.pickle.THRESHOLD`` bytes or more stay out of band.

    ``MPI.pickle`` is used as the user set it (``MPI.pickle.__init__(dumps, loads)``
    changes these same bound methods).  A serializer that takes no
    ``buffer_callback`` (json, marshal, an old dill) pickles in band, as plain
    mpi4py would: its ``TypeError`` then comes from the in-band call, if at all.
    While observing, the object is timed and emitted into ``metrics``.
    """
    start = _clock() if _modes.observing else 0.0
    try:
        parts = _dumps_oob(obj)
    except TypeError:
        parts = _dumps_in_band(obj), []
    if start:
        metrics.pickled(parts, not travels_plain(parts), _clock() - start)
    return parts


def travels_plain(parts: tuple[Any, Buffers]) -> bool:
    """The eager rule: a pickle without out-of-band buffers, of at most ``PKL5_EAGER``
    bytes, travels as one plain message, exactly as plain mpi4py sends it."""
    return not parts[1] and len(parts[0]) <= settings.eager_limit


_PICKLE_OVERHEAD = 64
"""Bytes a pickle of ``bytes`` or ``str`` has beyond its UTF-8 or raw data (at most 21)."""


def plain_lengths() -> tuple[int, int]:
    """The longest ``bytes`` and ``str`` that surely travel plain by the eager rule:
    neither holds an out-of-band buffer, and a character is at most 4 bytes of UTF-8."""
    room = settings.eager_limit - _PICKLE_OVERHEAD
    return room, room // 4


def loads(stream: Any, buffers: Buffers) -> Any:
    """Rebuild an object from its pickle stream and out-of-band buffers.

    While observing, the object is timed and emitted into ``metrics``.
    """
    start = _clock() if _modes.observing else 0.0
    obj = _loads_oob(stream, buffers) if buffers else _loads_in_band(stream)
    if start:
        metrics.unpickled(stream, buffers, not travels_plain((stream, buffers)), _clock() - start)
    return obj


@functools.cache
def _numpy() -> ModuleType:
    """numpy, imported on first use, not at start-up: a program that never uses it does
    not pay ~50 ms for importing it (and a cached module costs 0.2 us less per call than
    an ``import`` statement, measured)."""
    import numpy

    return numpy


def allocate(nbytes: int) -> memoryview:
    """Return ``nbytes`` of writable, uninitialized memory aligned to ``ALIGNMENT``."""
    if nbytes < HUGE_PAGES_FROM:  # mpi4py's own allocation: 0.45 us less than numpy's
        raw: Any = _allocate_raw(nbytes + ALIGNMENT)
        offset = -raw.address % ALIGNMENT
    else:
        # numpy, not plain malloc: numpy asks the kernel for transparent huge pages
        # on large arrays, and first touching the memory (which MPI does while
        # receiving) is then much cheaper (measured, 256 MiB round trip: 150 ms
        # against 313 ms with malloc'ed memory).
        numpy = _numpy()
        raw = numpy.empty(nbytes + ALIGNMENT, numpy.uint8)
        # MPI.buffer(raw).address: 0.1 us, where raw.__array_interface__ took 3 (measured)
        offset = -MPI.buffer(raw).address % ALIGNMENT
    return memoryview(raw)[offset : offset + nbytes]


HUGE_PAGES_FROM = 4 << 20
"""numpy advises transparent huge pages for arrays of 4 MiB and more (``allocate``)."""
_allocate_raw = MPI.buffer.allocate


SPARES = 16
"""Most scratch buffers kept for reuse (``recycle``)."""
_spares: list[memoryview] = []
"""Scratch buffers given back; ``append`` and ``pop`` of a list are atomic under the GIL."""


def scratch(nbytes: int) -> memoryview:
    """Return ``nbytes`` of writable, uninitialized memory for a first message (a pickle
    stream or a header: nothing is built on it, so it need not be aligned; 0.5 us less
    than ``allocate``, measured), reused from ``recycle`` when one of that size is there."""
    while _spares:
        try:
            spare = _spares.pop()
        except IndexError:  # another thread took the last one
            break
        if len(spare) == nbytes:
            return spare
    numpy = _numpy()
    return memoryview(numpy.empty(nbytes, numpy.uint8))


def recycle(buffer: memoryview) -> None:
    """Give back a buffer from ``scratch`` that nothing refers to any more.

    Two or more receives posted at once (a halo exchange) made ``malloc`` map and unmap
    fresh pages for each: 50-69 us per exchange instead of 7.7 for plain mpi4py (measured).
    """
    if len(_spares) < SPARES:
        _spares.append(buffer)
