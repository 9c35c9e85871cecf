"""Moving bytes: the private channel of a communicator, per-message tags, large counts."""

from __future__ import annotations

import atexit
import itertools
import os
import threading
from typing import Any

from mpi4py import MPI

from .config import settings
from .errors import ChannelError

# mpi4py's own classes, captured before pkl5shim.enable() replaces the module
# attributes ``MPI.Comm``, ``MPI.Request`` and ``MPI.Message`` (see surrogates.py).
RawComm = MPI.Comm
RawRequest = MPI.Request
RawMessage = MPI.Message


class Channel:
    """A private duplicate of a user communicator that carries large payloads.

    Payload messages use a tag unique to each message, so that no receive of
    the user (``ANY_TAG``, another thread, an outstanding ``irecv``) can match them.
    """

    def __init__(self, comm: MPI.Comm) -> None:
        self.comm = comm
        self.local: MPI.Intracomm | None = None  # this side of an intercomm (reductions)
        self.scratch: memoryview | None = None  # collectives' blocking first receives
        self.handle = 0
        """The handle of the communicator it carries payloads of (``attach`` sets it)."""
        self._tags = itertools.count()
        # The standard defines TAG_UB on COMM_WORLD only (Open MPI sets it nowhere else).
        self._tag_span = int(MPI.COMM_WORLD.Get_attr(MPI.TAG_UB))

    def new_tag(self) -> int:
        """Return a tag in ``1..TAG_UB`` not used by any message in flight."""
        return 1 + next(self._tags) % self._tag_span

    def free(self) -> None:
        """Release the duplicate communicator (and the local one, if any)."""
        if MPI.Is_finalized():
            return
        if self.local is not None:
            self.local.Free()
            self.local = None
        if self.comm != MPI.COMM_NULL:
            self.comm.Free()


_keyval_lock = threading.Lock()
_keyval: int | None = None
_live: dict[int, tuple[MPI.Comm, Channel]] = {}
_by_handle: dict[int, Channel] = {}
"""The channels by their communicator's handle, for ``lookup`` (a dict's ``get`` took
0.1 us where ``MPI_Comm_get_attr`` took 0.4, measured); an entry goes when the attribute
does, before MPI may give the handle to another communicator."""


def _on_comm_free(comm: MPI.Comm, keyval: int, channel: Channel) -> None:
    _live.pop(id(channel), None)
    if _by_handle.get(channel.handle) is channel:
        del _by_handle[channel.handle]
    channel.free()


def _get_keyval() -> int:
    global _keyval
    with _keyval_lock:
        if _keyval is None:
            _keyval = RawComm.Create_keyval(delete_fn=_on_comm_free)
        return _keyval


def attach(comm: MPI.Comm) -> Channel:
    """Give ``comm`` its channel; collective over ``comm`` unless it already has one.

    The channel is stored as an MPI attribute of ``comm``: freeing ``comm`` frees it.
    """
    keyval = _get_keyval()
    channel = comm.Get_attr(keyval)
    if channel is None:
        plain = MPI.Intercomm(comm) if comm.Is_inter() else MPI.Intracomm(comm)
        channel = Channel(plain.Dup())
        comm.Set_attr(keyval, channel)
        _live[id(channel)] = (RawComm(comm), channel)
        channel.handle = comm.handle
        _by_handle[channel.handle] = channel
    return channel


def find(comm: MPI.Comm) -> Channel | None:
    """The channel of ``comm``, or ``None`` if it has none (or is null)."""
    if _keyval is None or comm == MPI.COMM_NULL:
        return None
    return comm.Get_attr(_keyval)


def lookup(comm: MPI.Comm) -> Channel:
    """Return the channel of ``comm``; raise ``ChannelError`` if it has none.

    A null (for example freed) communicator raises MPI's own ``MPI_ERR_COMM``,
    as plain mpi4py does.
    """
    channel = _by_handle.get(comm.handle)
    if channel is not None:
        return channel
    # MPI_Comm_get_attr itself raises MPI_ERR_COMM for a null communicator (every wheel):
    # comparing with COMM_NULL first cost 0.2 us per message.
    if _keyval is None:
        if comm == MPI.COMM_NULL:
            raise MPI.Exception(MPI.ERR_COMM)
        channel = None
    else:
        channel = comm.Get_attr(_keyval)
    if channel is None:
        raise ChannelError(
            f"{type(comm).__name__} has no pkl5shim channel (it was not created through "
            "pkl5shim): wrap it on every rank with pkl5shim.wrap(comm) before sending "
            "large objects on it"
        )
    return channel


def live_channels() -> list[str]:
    """Names of the communicators that have a channel now."""
    return [comm.Get_name() or "unnamed" for comm, _channel in list(_live.values())]


def free_all() -> None:
    """Free every channel still alive; runs at exit, before MPI is finalized."""
    if _keyval is None or MPI.Is_finalized():
        return
    for key, (comm, _channel) in list(_live.items()):
        if key in _live:  # freeing one channel may have freed another (a local comm)
            comm.Delete_attr(_keyval)


atexit.register(free_all)


INTEL_MPI = "Intel" in MPI.Get_library_version()
"""The Intel MPI wheel reports MPI 4.1, but its ``MPI_Ibcast`` of 2**31 bytes or more
fails ("Other MPI error") and its ``MPI_Iallgatherv`` of such a count never completes
(measured; point-to-point large counts work): there every message stays below 2**31
bytes, as on MPI-3."""


def _chunk_limit() -> int:
    if settings.chunk_limit:
        return settings.chunk_limit
    if MPI.Get_version() >= (4, 0) and not INTEL_MPI:
        return (1 << 63) - 1
    return (1 << 31) - 1


CHUNK_LIMIT = _chunk_limit()
"""Largest byte count of one MPI message (``PKL5_CHUNK``, else native large counts on
MPI-4 but not Intel MPI); fixed at import, as the settings are (asking each message
cost 0.1 us, measured)."""


POLLED_RECEIVES = "MPICH" in MPI.Get_library_version()
"""Wait for a receive in a loop of Tests, not in ``MPI_Recv``/``MPI_Wait``: the MPICH
wheel's blocking calls return later (measured, small objects, in-process A/B: ``gather``
and ``alltoall`` 0.92-0.95x the time on 2 ranks, ``bcast`` 0.81x and ``isend``/``irecv``
0.49-0.54x on 4 ranks on 2 cores); Open MPI's and Intel MPI's took 1.00-1.43x with the loop."""


def _oversubscribed() -> bool:
    """Whether this node runs more ranks than it has cores, as the launcher of MPICH and
    Intel MPI tells (Open MPI's sets no ``MPI_LOCALNRANKS``, and its probe does not stall)."""
    ranks = os.environ.get("MPI_LOCALNRANKS", "")
    return ranks.isdigit() and int(ranks) > (os.cpu_count() or 1)


POLLED_PROBES = _oversubscribed()
"""A blocking ``recv`` probes for its message in a loop of ``MPI_Improbe``, not in
``MPI_Mprobe``: on a node with more ranks than cores the blocking probe of the MPICH and
Intel MPI wheels returned after 2-8 ms, where the loop took 14-40 us (measured:
``send``/``recv`` and ``sendrecv`` of small objects, 4 ranks on 2 cores; plain mpi4py
takes the 2-8 ms too; Open MPI's ``sendrecv`` took 6.6 us).  With a core per rank the
loop was 1.2-1.6x slower than ``MPI_Mprobe``, so it is not used there."""


def chunks(buffer: Any) -> list[memoryview]:
    """Split a buffer into pieces that each fit one MPI message (at least one piece)."""
    view = memoryview(buffer).cast("B")
    limit = CHUNK_LIMIT
    if view.nbytes <= limit:
        return [view]
    return [view[start : start + limit] for start in range(0, view.nbytes, limit)]


def pieces(sizes: list[int]) -> list[tuple[int, int, int]]:
    """``(part, start, length)`` of the pieces ``chunks`` cuts parts of ``sizes`` bytes
    into, in order (an empty part is one empty piece)."""
    limit = CHUNK_LIMIT
    if len(sizes) == 1 and sizes[0] <= limit:  # the common case: 0.8 us less (measured)
        return [(0, 0, sizes[0])]
    return [
        (part, start, min(limit, size - start))
        for part, size in enumerate(sizes)
        for start in range(0, size or 1, limit)
    ]


def isend_buffers(comm: MPI.Comm, buffers: list[Any], dest: int, tag: int) -> list[MPI.Request]:
    """Post nonblocking sends of ``buffers`` in order, chunked for count limits."""
    return [RawComm.Isend(comm, piece, dest, tag) for buffer in buffers for piece in chunks(buffer)]


def ibcast_buffers(comm: MPI.Comm, buffers: list[Any], root: int) -> list[MPI.Request]:
    """Post nonblocking broadcasts of ``buffers`` from ``root``, chunked for count limits."""
    return [RawComm.Ibcast(comm, piece, root) for buffer in buffers for piece in chunks(buffer)]
