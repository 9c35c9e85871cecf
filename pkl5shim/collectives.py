"""Collectives: bcast, gather, scatter, allgather, alltoall, with out-of-band buffers.

Every call runs on the communicator's private channel, so no receive of the
user can match its traffic.  Each rank's object becomes a *piece*: a 16-byte
head (payload size, buffer count), a payload (the table of buffer sizes, then
the pickle stream) and the out-of-band buffers.  Heads travel first, so every
rank learns the sizes it must receive.  bcast and allgather on an intracommunicator
use MPI's own nonblocking collectives for heads, payloads and buffers
(``Ibcast``, ``Iallgather``, ``Iallgatherv``: logarithmic or bandwidth-optimal
inside MPI).  Where one rank is the only source or target of the data (gather,
scatter), for alltoall, and on intercommunicators, every piece goes
point-to-point: head, payload, then buffers, in that order on one tag.
(MPICH loses track of nonblocking intercommunicator collectives when a rank
passes ``MPI.PROC_NULL``: measured, it hangs.)  Waiting goes through the
engine's progress loop, so pending ``irecv`` calls keep advancing.

A rank whose object cannot be pickled sends a failure piece instead: every
rank that receives it raises ``RemoteError`` after the whole call completed,
and the failing rank raises its own exception.  Nobody is left waiting.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, NamedTuple

from mpi4py import MPI

from . import codec, metrics, progress, transport, wire
from .config import settings
from .errors import RemoteError, WireError
from .progress import SendOp, pending
from .transport import RawRequest

_TAG = 0  # payload tags of the engine are never 0
_HEAD = struct.Struct("<qq")  # payload bytes, buffer count (-1: a failure piece)
_FAILED = -1
_BLOCK = 1024  # the first message: the head, and the payload too when it fits
_INLINE = _BLOCK - _HEAD.size


class Piece(NamedTuple):
    """One rank's object, ready to send."""

    payload: Any  # size table + pickle stream, or a failure description
    buffers: list[Any]
    error: BaseException | None

    @property
    def inline(self) -> bool:
        """Whether the payload travels inside the first message."""
        return memoryview(self.payload).nbytes <= _INLINE

    def first(self, padded: bool) -> bytearray:
        """The first message: the head, then the payload if it fits (padded to ``_BLOCK``)."""
        payload_nbytes = memoryview(self.payload).nbytes
        used = _HEAD.size + (payload_nbytes if self.inline else 0)
        block = bytearray(_BLOCK if padded else used)
        count = _FAILED if self.error is not None else len(self.buffers)
        _HEAD.pack_into(block, 0, payload_nbytes, count)
        if self.inline:
            block[_HEAD.size : used] = self.payload
        return block


def prepare(obj: Any, rank: int) -> Piece:
    """Pickle ``obj``; a failure becomes a piece that tells the receivers about it."""
    try:
        stream, buffers = codec.dumps(obj)
    except Exception as exc:  # noqa: BLE001 - re-raised by the caller after the call
        return failure_piece(
            rank, f"could not pickle its object ({type(exc).__name__}: {exc})", exc
        )
    if not buffers:
        return Piece(stream, [], None)
    table = wire.encode_table([memoryview(buffer).nbytes for buffer in buffers])
    return Piece(table + stream, list(buffers), None)


def failure_piece(rank: int, description: str, error: BaseException) -> Piece:
    """A piece that makes its receivers raise ``RemoteError``."""
    return Piece(f"rank {rank} failed: {description}".encode(), [], error)


class Incoming:
    """A piece being received: its head, then its payload, then its buffers."""

    def __init__(self, first: bytes | memoryview) -> None:
        """Read the head (and an inline payload) from the first message."""
        if len(first) < _HEAD.size:
            raise WireError(f"collective piece of {len(first)} bytes, shorter than its head")
        self.payload_nbytes, self.count = _HEAD.unpack_from(first)
        if self.payload_nbytes < 0 or self.payload_nbytes > settings.max_message:
            raise WireError(f"collective piece announces {self.payload_nbytes} payload bytes")
        if self.count < _FAILED:
            raise WireError(f"collective piece announces {self.count} buffers")
        self.inline = self.payload_nbytes <= _INLINE
        end = _HEAD.size + self.payload_nbytes
        if self.inline and len(first) < end:
            raise WireError(f"collective piece of {len(first)} bytes, its head announces {end}")
        self.payload: Any = memoryview(first)[_HEAD.size : end] if self.inline else None
        self.buffers: list[Any] = []

    def allocate_payload(self) -> Any:
        """Memory for a payload that did not fit the first message."""
        self.payload = codec.allocate(self.payload_nbytes)
        return self.payload

    @property
    def failed(self) -> bool:
        return self.count == _FAILED

    def sizes(self) -> list[int]:
        """Parse the size table once the payload arrived."""
        if self.failed or self.count == 0:
            return []
        if self.count * 8 > self.payload_nbytes:
            raise WireError(f"collective piece announces {self.count} buffers, too few bytes")
        sizes = list(struct.unpack_from(f"<{self.count}q", self.payload))
        if any(size < 0 for size in sizes) or sum(sizes) > settings.max_message:
            raise WireError(f"collective piece announces bad buffer sizes {sizes[:8]}")
        return sizes

    def allocate_buffers(self) -> list[Any]:
        """Allocate the receive memory of every buffer (after the payload arrived)."""
        self.buffers = [codec.allocate(size) for size in self.sizes()]
        return self.buffers

    def result(self, operation: str) -> Any:
        """Unpickle the object (raises ``RemoteError`` for a failure piece)."""
        if self.failed:
            raise RemoteError(f"{operation}: {bytes(self.payload).decode(errors='replace')}")
        return codec.loads(_stream(self.payload, self.count), self.buffers)


def local_result(piece: Piece, operation: str) -> Any:
    """The caller's own object, as a fresh writable copy (plain mpi4py unpickles its own)."""
    if piece.error is not None:
        raise piece.error
    copies = []
    for buffer in piece.buffers:
        copy = codec.allocate(memoryview(buffer).nbytes)
        copy[:] = memoryview(buffer).cast("B")
        copies.append(copy)
    return codec.loads(_stream(piece.payload, len(piece.buffers)), copies)


def _stream(payload: Any, nbuffers: int) -> Any:
    """The pickle stream of a payload: what follows its table of ``nbuffers`` sizes."""
    return memoryview(payload)[nbuffers * 8 :] if nbuffers else payload


def count_sent(piece: Piece, receivers: int) -> None:
    """Count a piece with out-of-band buffers, once per receiver."""
    if piece.buffers and piece.error is None:
        nbytes = memoryview(piece.payload).nbytes + sum(memoryview(b).nbytes for b in piece.buffers)
        for _ in range(receivers):
            metrics.record_send(nbytes)


def count_received(item: Incoming) -> None:
    """Count a received piece with out-of-band buffers."""
    if item.count > 0:
        metrics.record_receive(
            item.payload_nbytes + sum(memoryview(b).nbytes for b in item.buffers)
        )


def wait(requests: list[Any], keepalive: Any = None) -> None:
    """Wait for raw MPI requests while the engine's pending receives keep advancing."""
    if not requests:
        return
    if not pending:  # nothing of the engine to advance meanwhile: wait inside MPI
        RawRequest.Waitall(requests)
        return
    progress.complete(SendOp(requests, keepalive))


def channel_of(comm: MPI.Comm) -> MPI.Comm:
    """The private duplicate that carries this communicator's collective traffic."""
    return transport.lookup(comm).comm


def raise_first(operation: str, pieces: Sequence[Piece | None], incoming: Sequence[Any]) -> None:
    """After a call completed: this rank's own error first, then the first remote failure."""
    for piece in pieces:
        if piece is not None and piece.error is not None:
            raise piece.error
    for item in incoming:
        if isinstance(item, Incoming) and item.failed:
            item.result(operation)


def check_root(comm: MPI.Comm, root: int, size: int, inter: bool) -> None:
    """Raise MPI's own root error for an invalid root (plain mpi4py's behaviour)."""
    valid = 0 <= root < size or (inter and root in (MPI.ROOT, MPI.PROC_NULL))
    if not valid:
        comm.Call_errhandler(MPI.ERR_ROOT)
        raise MPI.Exception(MPI.ERR_ROOT)


def items_or_failure(objs: Any, size: int, rank: int) -> tuple[list[Any], BaseException | None]:
    """The items of a scatter/alltoall argument; a wrong count fails every receiver too."""
    items = [None] * size if objs is None else list(objs)
    if len(items) == size:
        return items, None
    return [], ValueError(f"expecting {size} items, got {len(items)}")


def _pieces(items: list[Any], error: BaseException | None, size: int, rank: int) -> list[Piece]:
    if error is not None:
        return [failure_piece(rank, str(error), error) for _ in range(size)]
    return [prepare(item, rank) for item in items]


def _sizes(comm: MPI.Comm) -> tuple[int, int, bool]:
    inter = comm.Is_inter()
    size = comm.Get_remote_size() if inter else comm.Get_size()
    return size, comm.Get_rank(), inter


# -- point-to-point exchange of pieces ----------------------------------------------
def exchange(chan: MPI.Comm, sends: dict[int, Piece], sources: list[int]) -> dict[int, Incoming]:
    """Send each piece to its rank and receive one piece from each source.

    Per pair the messages are the first block (head, and a small payload),
    then a large payload, then the buffers, on one tag: MPI keeps their order,
    and the receiver posts each receive once it knows the size.
    """
    firsts = {src: bytearray(_BLOCK) for src in sources}
    first_requests = [chan.Irecv(firsts[src], src, _TAG) for src in sources]
    send_requests: list[RawRequest] = []
    for dest, piece in sends.items():
        send_requests.append(chan.Isend(piece.first(padded=False), dest, _TAG))
        payload = [] if piece.inline else [piece.payload]
        send_requests += transport.isend_buffers(chan, payload + piece.buffers, dest, _TAG)
    wait(first_requests)
    incoming = {src: Incoming(firsts[src]) for src in sources}
    wait(
        [
            request
            for src, item in incoming.items()
            if not item.inline
            for request in transport.irecv_buffers(chan, [item.allocate_payload()], src, _TAG)
        ]
    )
    buffer_requests = [
        request
        for src, item in incoming.items()
        for request in transport.irecv_buffers(chan, item.allocate_buffers(), src, _TAG)
    ]
    wait(buffer_requests + send_requests, sends)
    for piece in sends.values():
        count_sent(piece, 1)
    for item in incoming.values():
        count_received(item)
    return incoming


# -- bcast -----------------------------------------------------------------------
def bcast(comm: MPI.Comm, obj: Any, root: int) -> Any:
    """Broadcast ``obj`` from ``root``: first block, payload and buffers by ``MPI_Ibcast``."""
    size, rank, inter = _sizes(comm)
    check_root(comm, root, size, inter)
    chan = channel_of(comm)
    if inter:
        return _bcast_inter(chan, obj, root, size, rank)
    if root == rank:
        piece = prepare(obj, rank)
        wait([chan.Ibcast(piece.first(padded=True), root)])
        payload = [] if piece.inline else [piece.payload]
        requests = transport.ibcast_buffers(chan, payload + piece.buffers, root)
        wait(requests, piece)
        count_sent(piece, size - 1)
        return local_result(piece, "bcast")
    first = bytearray(_BLOCK)
    wait([chan.Ibcast(first, root)])
    incoming = Incoming(first)
    if not incoming.inline:
        wait(transport.ibcast_buffers(chan, [incoming.allocate_payload()], root))
    wait(transport.ibcast_buffers(chan, incoming.allocate_buffers(), root))
    count_received(incoming)
    return incoming.result("bcast")


def _bcast_inter(chan: MPI.Comm, obj: Any, root: int, size: int, rank: int) -> Any:
    if root == MPI.PROC_NULL:
        return None
    if root == MPI.ROOT:
        piece = prepare(obj, rank)
        exchange(chan, dict.fromkeys(range(size), piece), [])
        raise_first("bcast", [piece], [])
        return None
    return exchange(chan, {}, [root])[root].result("bcast")


# -- gather ----------------------------------------------------------------------
def gather(comm: MPI.Comm, sendobj: Any, root: int) -> list[Any] | None:
    """Gather at ``root``: one piece from every rank, point-to-point."""
    size, rank, inter = _sizes(comm)
    check_root(comm, root, size, inter)
    if inter and root == MPI.PROC_NULL:
        return None
    chan = channel_of(comm)
    receiving = root == MPI.ROOT if inter else root == rank
    if not receiving:
        piece = prepare(sendobj, rank)
        exchange(chan, {root: piece}, [])
        raise_first("gather", [piece], [])
        return None
    own = None if inter else prepare(sendobj, rank)
    incoming = exchange(chan, {}, [src for src in range(size) if inter or src != rank])
    raise_first("gather", [own], incoming.values())
    return [
        incoming[src].result("gather") if src in incoming else local_result(own, "gather")  # type: ignore[arg-type]
        for src in range(size)
    ]


# -- scatter -----------------------------------------------------------------------
def scatter(comm: MPI.Comm, sendobj: Any, root: int) -> Any:
    """Scatter the items of ``sendobj`` from ``root``, point-to-point."""
    size, rank, inter = _sizes(comm)
    check_root(comm, root, size, inter)
    if inter and root == MPI.PROC_NULL:
        return None
    chan = channel_of(comm)
    sending = root == MPI.ROOT if inter else root == rank
    if not sending:
        return exchange(chan, {}, [root])[root].result("scatter")
    items, error = items_or_failure(sendobj, size, rank)
    pieces = _pieces(items, error, size, rank)
    exchange(chan, {d: p for d, p in enumerate(pieces) if inter or d != rank}, [])
    if error is not None:
        raise error
    raise_first("scatter", pieces, [])
    return None if inter else local_result(pieces[rank], "scatter")


# -- allgather ---------------------------------------------------------------------
def allgather(comm: MPI.Comm, sendobj: Any) -> list[Any]:
    """Gather to all: heads by ``MPI_Iallgather``, payloads and buffers by ``MPI_Iallgatherv``."""
    size, rank, inter = _sizes(comm)
    chan = channel_of(comm)
    piece = prepare(sendobj, rank)
    if inter:
        incoming = exchange(chan, dict.fromkeys(range(size), piece), list(range(size)))
        raise_first("allgather", [piece], incoming.values())
        return [incoming[src].result("allgather") for src in range(size)]
    firsts = bytearray(_BLOCK * size)
    wait([chan.Iallgather(piece.first(padded=True), firsts)])
    view = memoryview(firsts)
    pieces = [Incoming(view[i * _BLOCK : (i + 1) * _BLOCK]) for i in range(size)]
    if not all(item.inline for item in pieces):
        counts = [0 if item.inline else item.payload_nbytes for item in pieces]
        mine = b"" if piece.inline else piece.payload
        payloads = _allgatherv(chan, mine, counts, piece)
        for item, payload in zip(pieces, payloads):
            if not item.inline:
                item.payload = payload
    sizes = [item.sizes() for item in pieces]
    for index in range(max((len(s) for s in sizes), default=0)):
        mine = piece.buffers[index] if index < len(piece.buffers) else b""
        counts = [s[index] if index < len(s) else 0 for s in sizes]
        received = _allgatherv(chan, mine, counts, piece)
        for item, s, buffer in zip(pieces, sizes, received):
            if index < len(s):
                item.buffers.append(buffer)
    raise_first("allgather", [piece], pieces)
    count_sent(piece, size - 1)
    for index, item in enumerate(pieces):
        if index != rank:
            count_received(item)
    return [item.result("allgather") for item in pieces]


def _aligned(counts: list[int]) -> list[int]:
    displs, offset = [], 0
    for count in counts:
        displs.append(offset)
        offset += -(-count // codec.ALIGNMENT) * codec.ALIGNMENT
    return displs


def _allgatherv(chan: MPI.Comm, mine: Any, counts: list[int], keepalive: Any) -> list[Any]:
    """Every rank's ``mine`` (``counts`` bytes each) on every rank, as separate views.

    One ``MPI_Iallgatherv`` into one allocation (each piece 64-byte aligned) when
    the total fits one call of this library and the library handles these counts
    well; else one broadcast per rank that has bytes, one allocation each.
    """
    displs = _aligned(counts)
    total = displs[-1] + counts[-1] if counts else 0
    if total == 0:
        return [codec.allocate(0) for _ in counts]
    if total <= transport.chunk_limit() and not _slow_allgatherv(counts):
        area = codec.allocate(total)
        wait([chan.Iallgatherv(mine, [area, counts, displs, MPI.BYTE])], keepalive)
        return [area[start : start + count] for start, count in zip(displs, counts)]
    return _broadcast_each(chan, mine, counts, keepalive)


def _broadcast_each(chan: MPI.Comm, mine: Any, counts: list[int], keepalive: Any) -> list[Any]:
    """Every rank's ``mine`` by one ``MPI_Ibcast`` per rank with bytes, all posted at once.

    Chunked for count limits; every rank posts the broadcasts in rank order.
    """
    rank = chan.Get_rank()
    targets = [codec.allocate(count) for count in counts]
    requests = []
    for root, count in enumerate(counts):
        if count:
            source = mine if root == rank else targets[root]
            requests += transport.ibcast_buffers(chan, [source], root)
    if counts[rank]:
        targets[rank][:] = memoryview(mine).cast("B")
    wait(requests, keepalive)
    return targets


UNEVEN_ALLGATHERV_IS_SLOW = transport.INTEL_MPI
"""The Intel MPI wheel's ``MPI_Iallgatherv`` takes time growing with the largest count
over the smallest (measured, 2 ranks, a 4 MiB piece beside one of 0, 16, 64 and 1000
bytes: 720, 49, 7.2 and 1.1 ms; its blocking ``MPI_Allgatherv``: 0.1 ms), and longer
still while polled.  MPICH and Open MPI do not (measured)."""


def _slow_allgatherv(counts: list[int]) -> bool:
    """True when this library's ``MPI_Iallgatherv`` is known to be slow for ``counts``."""
    return UNEVEN_ALLGATHERV_IS_SLOW and min(counts) * 64 < max(counts)


# -- alltoall ------------------------------------------------------------------------
def alltoall(comm: MPI.Comm, sendobj: Any) -> list[Any]:
    """Item ``i`` to rank ``i``, pairwise point-to-point."""
    size, rank, inter = _sizes(comm)
    chan = channel_of(comm)
    items, error = items_or_failure(sendobj, size, rank)
    pieces = _pieces(items, error, size, rank)
    peers = [peer for peer in range(size) if inter or peer != rank]
    incoming = exchange(chan, {peer: pieces[peer] for peer in peers}, peers)
    raise_first("alltoall", pieces, incoming.values())
    return [
        incoming[p].result("alltoall") if p in incoming else local_result(pieces[p], "alltoall")
        for p in range(size)
    ]
