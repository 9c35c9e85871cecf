"""Collectives: bcast, gather, scatter, allgather, alltoall, with out-of-band buffers.

Every call runs on the communicator's private channel, so no receive of the
user can match its traffic, and every object travels in the engine's one frame
format (``wire``).  Every object's first message is a plain pickle (a small object)
or a header, as ``send`` makes them.  On an intracommunicator ``bcast`` sends the
first message down a binomial tree, point-to-point (tag 0), and ``allgather`` sends
it padded to a fixed ``BLOCK`` by ``MPI_Iallgather`` (small objects travel inside
it); the parts a header announces then follow by MPI's own nonblocking collectives
(``Ibcast``, ``Iallgatherv``: logarithmic or bandwidth-optimal inside MPI).  Where
one rank is the only source or target of the data (gather, scatter), for alltoall,
and on intercommunicators, each object is one point-to-point message of the engine
on the channel (tag 0).  (MPICH loses track of nonblocking intercommunicator
collectives when a rank passes ``MPI.PROC_NULL``: measured, it hangs.)  With
``irecv`` calls pending, waiting goes through the engine's progress loop, so they
keep advancing; without, it happens inside MPI.

A rank whose object cannot be pickled sends a failure header instead: every
rank that receives it raises ``RemoteError`` after the whole call completed,
and the failing rank raises its own exception.  Nobody is left waiting.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from mpi4py import MPI

from . import codec, metrics, p2p, progress, transport, wire
from .config import settings
from .errors import RemoteError, WireError
from .ops import SendOp, as_operation
from .progress import pending
from .receive import RecvOp
from .transport import RawComm, RawRequest

_TAG = 0  # payload tags of the engine are never 0
BLOCK = 1024
"""Bytes of the first message of ``allgather``: a small object's stream or a header, padded."""


class Outgoing:
    """One rank's object, pickled, or the failure header that travels in its place.

    A class with slots, not a ``NamedTuple``: made for every object of every call, it
    costs 0.1 us less (measured).
    """

    __slots__ = ("error", "failure", "parts")

    def __init__(
        self,
        parts: tuple[Any, list[Any]] | None,
        error: BaseException | None = None,
        failure: wire.Header | None = None,
    ) -> None:
        self.parts = parts
        """``(stream, buffers)``; ``None`` for a failure."""
        self.error = error
        self.failure = failure

    def framed(self, rank: int) -> Framed:
        """The object framed for an MPI collective: inline when its header fits ``BLOCK``."""
        if self.parts is None:
            assert self.failure is not None
            return Framed(self.failure, [], [])
        header, follow = wire.frame(rank, wire.BROADCAST_TAG, self.parts, BLOCK)
        return Framed(header, follow, follow[: len(follow) - len(self.parts[1])])

    def block(self, rank: int) -> bytearray:
        """The object's ``BLOCK`` for ``allgather``: a plain block (its stream itself) when
        it has no buffers and fits, else its header (``framed``)."""
        if self.parts is not None and not self.parts[1]:
            plain = wire.plain_block(self.parts[0], BLOCK)
            if plain is not None:
                return plain
        return self.framed(rank).block()


class Framed(NamedTuple):
    """An object's header and the parts that follow it, for ``allgather``."""

    header: wire.Header
    follow: list[Any]
    section: list[Any]
    """The table (if there are buffers) and the stream, when they follow the header."""

    def block(self) -> bytearray:
        """The header in a block of ``BLOCK`` bytes."""
        return wire.encode_block(self.header, BLOCK)


def prepare(obj: Any, rank: int) -> Outgoing:
    """Pickle ``obj``; a failure becomes a failure header that tells the receivers."""
    try:
        return Outgoing(codec.dumps(obj))
    except Exception as exc:  # noqa: BLE001 - re-raised by the caller after the call
        return failed(rank, f"could not pickle its object ({type(exc).__name__}: {exc})", exc)


def failed(rank: int, description: str, error: BaseException) -> Outgoing:
    """An outgoing failure: its receivers raise ``RemoteError`` with ``description``."""
    return Outgoing(None, error, wire.failure(rank, f"rank {rank} failed: {description}"))


def local_result(out: Outgoing) -> Any:
    """The caller's own object, as a fresh writable copy (plain mpi4py unpickles its own)."""
    if out.error is not None:
        raise out.error
    assert out.parts is not None
    stream, buffers = out.parts
    copies = []
    for buffer in buffers:
        copy = codec.allocate(memoryview(buffer).nbytes)
        copy[:] = memoryview(buffer).cast("B")
        copies.append(copy)
    return codec.loads(stream, copies)


def count_sent(header: wire.Header | None, receivers: int) -> None:
    """Count an object with out-of-band buffers (by its header), once per receiver."""
    if header is not None and header.nbuffers:
        for _ in range(receivers):
            metrics.record_send(header.total_nbytes)


def wait(requests: list[Any], keepalive: Any = None) -> None:
    """Wait for raw MPI requests while the engine's pending receives keep advancing."""
    if not requests:
        return
    if not pending:  # nothing of the engine to advance meanwhile: wait inside MPI
        if len(requests) == 1:  # Wait: 0.2 us less than Waitall of one (measured)
            requests[0].Wait()
        else:
            RawRequest.Waitall(requests)
        return
    progress.complete(SendOp(requests, keepalive))


def raise_first(operation: str, own: Iterable[Outgoing | None], arrived: Iterable[Any]) -> None:
    """After a call completed: this rank's own error first, then the first remote failure."""
    for out in own:
        if out is not None and out.error is not None:
            raise out.error
    for item in arrived:
        if item.failure is not None:
            raise RemoteError(f"{operation}: {item.failure}")


def result(operation: str, item: RecvOp | Unpickled | Arrival) -> Any:
    """The object of an arrived item (raises ``RemoteError`` for a failure)."""
    if item.failure is not None:
        raise RemoteError(f"{operation}: {item.failure}")
    return item.result()


def check_root(comm: MPI.Comm, root: int, size: int, inter: bool) -> None:
    """Raise MPI's own root error for an invalid root (plain mpi4py's behaviour)."""
    valid = 0 <= root < size or (inter and root in (MPI.ROOT, MPI.PROC_NULL))
    if not valid:
        comm.Call_errhandler(MPI.ERR_ROOT)
        raise MPI.Exception(MPI.ERR_ROOT)


def items_or_failure(objs: Any, size: int) -> tuple[list[Any], BaseException | None]:
    """The items of a scatter/alltoall argument; a wrong count fails every receiver too."""
    items = [None] * size if objs is None else list(objs)
    if len(items) == size:
        return items, None
    return [], ValueError(f"expecting {size} items, got {len(items)}")


def _outgoing(
    items: list[Any], error: BaseException | None, size: int, rank: int
) -> list[Outgoing]:
    if error is not None:
        return [failed(rank, str(error), error) for _ in range(size)]
    return [prepare(item, rank) for item in items]


def _sizes(comm: MPI.Comm) -> tuple[int, int, bool]:
    inter = comm.Is_inter()
    size = comm.Get_remote_size() if inter else comm.Get_size()
    return size, comm.Get_rank(), inter


# -- point-to-point: engine messages on the channel --------------------------------
def post_first(chan: MPI.Comm, source: int) -> tuple[MPI.Request, memoryview]:
    """Post the receive of the next first message from ``source`` on the channel (tag 0):
    a plain pickle (at most ``PKL5_EAGER`` bytes) or a header."""
    buffer = codec.scratch(settings.eager_limit)
    return RawComm.Irecv(chan, buffer, source, _TAG), buffer


def first_arrived(posted: list[tuple[MPI.Request, memoryview]]) -> list[memoryview]:
    """Wait for posted first messages, advancing the engine's pending receives; return
    each one's bytes."""
    requests = [request for request, _buffer in posted]
    statuses = [MPI.Status() for _ in posted]
    progress.wait_for(lambda: RawRequest.Testall(requests, statuses))
    counts = [status.Get_count(MPI.BYTE) for status in statuses]
    return [buffer[:count] for (_request, buffer), count in zip(posted, counts)]


def recv_first(channel: transport.Channel, source: int) -> memoryview:
    """Receive the next first message from ``source`` (only when no receive of the engine
    is pending: nothing to advance meanwhile), into the channel's scratch buffer: valid
    until the channel's next collective (``wire.decode`` and ``codec.loads`` copy from
    it).  ``MPI_Recv``, or on MPICH an ``MPI_Irecv`` tested (``transport.POLLED_RECEIVES``)."""
    # MPI_Recv, not mpi4py's C recv: that one probes first, and a blocking MPI_Mprobe
    # of the MPICH wheel takes ~4 ms to see a message that arrives while it waits on an
    # oversubscribed node (measured: alltoall-like exchange of small messages, 4 ranks
    # on 2 cores, 4020 us with recv, 22 us with MPI_Recv).
    buffer = channel.scratch
    if buffer is None or len(buffer) != settings.eager_limit:  # 0.7 us saved per call
        buffer = channel.scratch = codec.scratch(settings.eager_limit)
    status = MPI.Status()
    if transport.POLLED_RECEIVES:
        progress.wait_request(RawComm.Irecv(channel.comm, buffer, source, _TAG), status)
    else:
        RawComm.Recv(channel.comm, buffer, source, _TAG, status)
    return buffer[: status.Get_count(MPI.BYTE)]


class Unpickled:
    """A small object received whole and unpickled, or what unpickling it raised
    (slots, as ``Outgoing``)."""

    __slots__ = ("error", "obj")
    failure = None

    def __init__(self, obj: Any, error: BaseException | None = None) -> None:
        self.obj = obj
        self.error = error

    def result(self) -> Any:
        """The object (raises what unpickling it raised)."""
        if self.error is not None:
            raise self.error
        return self.obj


def taken(channel: transport.Channel, source: int, message: memoryview) -> RecvOp | Unpickled:
    """What a first message from ``source`` gives: a small object, unpickled at once
    (its memory is reused), or the receive of the payload its header announces."""
    if wire.is_header(message):
        return RecvOp(channel.comm, channel, failures=True).start_arrived(message, source, _TAG)
    metrics.arriving(source, _TAG)
    return unpickled(message)


def unpickled(stream: memoryview) -> Unpickled:
    """A small object's stream, unpickled now (its memory is reused); what unpickling
    raised is raised by ``result()``, after the call."""
    try:
        return Unpickled(codec.loads(stream, []))
    except Exception as exc:  # noqa: BLE001 - raised by result(), after the call
        return Unpickled(None, exc)


def exchange(
    comm: MPI.Comm, sends: dict[int, Outgoing], sources: list[int]
) -> dict[int, RecvOp | Unpickled]:
    """Send each object to its rank and receive one object from each source.

    Each object is one engine message (plain, or a header and its parts under a tag
    of its own) on the channel, tag 0.  With receives of the engine pending, the first
    messages' receives are posted before this rank's sends and nothing blocks inside
    MPI; without, the sends start first and each first message is received by
    ``MPI_Recv`` into one buffer.
    """
    channel = transport.lookup(comm)
    if pending:
        posted = [post_first(channel.comm, src) for src in sources]
        sending = _start_sends(channel, sends)
        messages = first_arrived(posted) if posted else []
        receives = {src: taken(channel, src, msg) for src, msg in zip(sources, messages)}
    else:
        sending = _start_sends(channel, sends)
        receives = {src: taken(channel, src, recv_first(channel, src)) for src in sources}
    payloads = [op for op in receives.values() if type(op) is RecvOp and not op.done]
    if payloads or pending:
        progress.complete_each([*payloads, *map(as_operation, sending)])
    else:  # only sends: MPI completes them
        wait([r for s in sending for r in (s.requests if type(s) is SendOp else [s])], sending)
    return receives


def _start_sends(
    channel: transport.Channel, sends: dict[int, Outgoing]
) -> list[SendOp | MPI.Request]:
    chan = channel.comm
    sending: list[SendOp | MPI.Request] = []
    for dest, out in sends.items():
        if out.failure is not None:
            sending.append(p2p.start_header(chan, channel, out.failure, [], dest, _TAG))
        else:
            sending.append(p2p.start_parts(chan, channel, out.parts, dest, _TAG))
    return sending


# -- bcast and allgather: the first message, then the parts by MPI's collectives ---
class Arrival:
    """An object arriving by MPI's collectives: its header, then its parts."""

    def __init__(self, header: wire.Header) -> None:
        self.header = header
        self.failure = header.failure_text if header.failed else None
        self.stream: Any = b""
        self.sizes: list[int] = []
        self.buffers: list[Any] = []
        if header.inline is None or header.failed:
            return
        if header.nbuffers:
            self.sizes, self.stream = header.inline_payload()
        else:
            self.stream = header.inline

    def section(self) -> list[int]:
        """Byte counts of the table (if any buffers) and the stream, when not inline."""
        if self.header.inline is not None:
            return []
        table = [wire.table_nbytes(self.header)] if self.header.nbuffers else []
        return [*table, self.header.stream_nbytes]

    def take_section(self, parts: list[Any]) -> None:
        """The table and the stream arrived (as ``section`` announced them)."""
        *table, self.stream = parts
        if table:
            self.sizes = wire.decode_table(table[0], self.header)

    def result(self) -> Any:
        """Unpickle the object, once its buffers arrived."""
        return codec.loads(self.stream, self.buffers)


def count_received(arrival: Arrival) -> None:
    """Count an arrived object with out-of-band buffers."""
    if arrival.sizes:
        metrics.record_receive(arrival.header.total_nbytes)


def bcast(comm: MPI.Comm, obj: Any, root: int) -> Any:
    """Broadcast ``obj`` from ``root``: its first message down a binomial tree, then the
    parts its header announces by ``MPI_Ibcast``."""
    size, rank, inter = _sizes(comm)
    check_root(comm, root, size, inter)
    if inter:
        return _bcast_inter(comm, obj, root, size, rank)
    channel = transport.lookup(comm)
    parent, children = tree(rank, root, size)
    if parent is None:
        return _bcast_root(channel.comm, obj, root, children)
    return _bcast_down(channel, root, parent, children)


def tree(rank: int, root: int, size: int) -> tuple[int | None, list[int]]:
    """This rank's parent (``None`` at ``root``) and children, farthest first, in the
    binomial tree of ``size`` ranks rooted at ``root``."""
    relative, mask = (rank - root) % size, 1
    while mask < size and not relative & mask:
        mask <<= 1
    parent = None if relative == 0 else (rank - mask) % size
    children = []
    while mask > 1:
        mask >>= 1
        if relative + mask < size:
            children.append((rank + mask) % size)
    return parent, children


def first_message(out: Outgoing, rank: int) -> tuple[Any, wire.Header | None, list[Any]]:
    """What ``bcast`` sends down its tree: the plain pickle of a small object, or a
    header whose table, stream (when not inline) and buffers follow by ``MPI_Ibcast``;
    and that header, and those parts."""
    if out.parts is None:
        assert out.failure is not None
        return wire.encode(out.failure), out.failure, []
    if codec.travels_plain(out.parts):
        return out.parts[0], None, []
    header, follow = wire.frame(rank, wire.BROADCAST_TAG, out.parts, wire.point_to_point_limit())
    return wire.encode(header), header, follow


def _bcast_root(chan: MPI.Comm, obj: Any, root: int, children: list[int]) -> Any:
    out = prepare(obj, root)
    message, header, follow = first_message(out, root)
    requests = [RawComm.Isend(chan, message, child, _TAG) for child in children]
    if follow:
        requests += transport.ibcast_buffers(chan, follow, root)
    try:
        return local_result(out)  # the root's copy is made while MPI sends the parts
    finally:
        wait(requests, (message, follow))
        count_sent(header, chan.Get_size() - 1)


def _bcast_down(channel: transport.Channel, root: int, parent: int, children: list[int]) -> Any:
    chan = channel.comm
    if pending:
        message = first_arrived([post_first(chan, parent)])[0]
    else:
        message = recv_first(channel, parent)
    forwards = [RawComm.Isend(chan, message, child, _TAG) for child in children]
    try:
        if not wire.is_header(message):
            return codec.loads(message, [])
        header = wire.decode(message)
        if header.source != root or header.channel_tag != wire.BROADCAST_TAG:
            raise WireError(
                f"pkl5shim bcast header names source {header.source} and channel tag "
                f"{header.channel_tag}, expected {root} and {wire.BROADCAST_TAG}"
            )
        arrival = Arrival(header)
        section = arrival.section()
        if section:
            parts = [codec.allocate(n) for n in section]
            wait(transport.ibcast_buffers(chan, parts, root))
            arrival.take_section(parts)
        arrival.buffers = [codec.allocate(n) for n in arrival.sizes]
        wait(transport.ibcast_buffers(chan, arrival.buffers, root))
        count_received(arrival)
        return result("bcast", arrival)
    finally:
        wait(forwards, message)


def _bcast_inter(comm: MPI.Comm, obj: Any, root: int, size: int, rank: int) -> Any:
    if root == MPI.PROC_NULL:
        return None
    if root == MPI.ROOT:
        out = prepare(obj, rank)
        exchange(comm, dict.fromkeys(range(size), out), [])
        raise_first("bcast", [out], [])
        return None
    return result("bcast", exchange(comm, {}, [root])[root])


def allgather(comm: MPI.Comm, sendobj: Any) -> list[Any]:
    """Gather to all: headers by ``MPI_Iallgather``, their parts by ``MPI_Iallgatherv``."""
    size, rank, inter = _sizes(comm)
    out = prepare(sendobj, rank)
    if inter:
        arrived = exchange(comm, dict.fromkeys(range(size), out), list(range(size)))
        raise_first("allgather", [out], arrived.values())
        return [result("allgather", arrived[src]) for src in range(size)]
    chan = transport.lookup(comm).comm
    blocks = bytearray(BLOCK * size)
    wait([chan.Iallgather(out.block(rank), blocks)])
    view = memoryview(blocks)
    blocks_of = [view[i * BLOCK : (i + 1) * BLOCK] for i in range(size)]
    streams = [wire.plain_stream(block) for block in blocks_of]
    if None in streams:
        items: list[Unpickled] | list[Arrival] = _allgather_arrivals(chan, out, blocks_of)
    else:  # every object small, its stream inside its block
        items = [unpickled(stream) for stream in streams]  # type: ignore[arg-type]
    raise_first("allgather", [out], items)
    return [result("allgather", item) for item in items]


def _allgather_arrivals(chan: MPI.Comm, out: Outgoing, blocks: list[memoryview]) -> list[Arrival]:
    """Every rank's object from its block, and the parts that follow."""
    rank = chan.Get_rank()
    arrivals = [Arrival(wire.decode_block(block, i)) for i, block in enumerate(blocks)]
    if any(item.header.inline is None or item.sizes for item in arrivals):
        framed = out.framed(rank)
        _allgather_parts(chan, out, framed, arrivals)
        count_sent(framed.header, len(blocks) - 1)
        for index, item in enumerate(arrivals):
            if index != rank:
                count_received(item)
    return arrivals


def _allgather_parts(
    chan: MPI.Comm, out: Outgoing, framed: Framed, arrivals: list[Arrival]
) -> None:
    """What follows the headers: the sections that did not fit a block, then the
    buffers, one ``MPI_Iallgatherv`` per buffer index."""
    _allgather_sections(chan, framed, arrivals)
    buffers = out.parts[1] if out.parts is not None else []
    for index in range(max(len(item.sizes) for item in arrivals)):
        mine = buffers[index] if index < len(buffers) else b""
        counts = [item.sizes[index] if index < len(item.sizes) else 0 for item in arrivals]
        received = _allgatherv(chan, mine, counts, framed)
        for item, buffer in zip(arrivals, received):
            if index < len(item.sizes):
                item.buffers.append(buffer)


def _allgather_sections(chan: MPI.Comm, framed: Framed, arrivals: list[Arrival]) -> None:
    """The tables and streams that did not fit a block: one ``MPI_Iallgatherv`` each."""
    sections = [item.section() for item in arrivals]
    if not any(sections):
        return
    mine = framed.section
    tables = _allgatherv(chan, mine[0] if len(mine) == 2 else b"", _counts(sections, 2), framed)
    streams = _allgatherv(chan, mine[-1] if mine else b"", _counts(sections, 1), framed)
    for item, section, table, stream in zip(arrivals, sections, tables, streams):
        if section:
            item.take_section([table, stream] if len(section) == 2 else [stream])


def _counts(sections: list[list[int]], length: int) -> list[int]:
    """Per rank: the table's bytes (``length`` 2) or the stream's (1) of its section."""
    if length == 2:
        return [section[0] if len(section) == 2 else 0 for section in sections]
    return [section[-1] if section else 0 for section in sections]


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
    if total <= transport.CHUNK_LIMIT and not _slow_allgatherv(counts):
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


UNEVEN_ALLGATHERV_IS_SLOW = True
"""``MPI_Iallgatherv`` of uneven counts is slower than one ``MPI_Ibcast`` per rank with
bytes, on all three wheels (measured, ``benchmarks/uneven_allgather.py``, 1 and 16 MiB on
one rank, 8 B on the others, ms per call, Iallgatherv against broadcasts:

- MPICH, 2 ranks: 0.4 / 0.2-0.3 and 5.8 / 2.0; 4 ranks: 1.7 / 0.65 and 16.5 / 7.6;
- Open MPI, 2 ranks: 0.35 / 0.2 and 4.1 / 2.3; 4 ranks: 0.55 / 0.55 and 5.3 / 4.8;
- Intel MPI: its time grows with the largest count over the smallest (2 ranks, a 4 MiB
  piece beside one of 0, 16, 64 and 1000 bytes: 720, 49, 7.2 and 1.1 ms; its blocking
  ``MPI_Allgatherv``: 0.1 ms), and longer still while polled.)

``benchmarks/uneven_allgather.py pkl5shim-allgatherv`` sets it False, to compare."""


def _slow_allgatherv(counts: list[int]) -> bool:
    """True when this library's ``MPI_Iallgatherv`` is known to be slow for ``counts``."""
    return UNEVEN_ALLGATHERV_IS_SLOW and min(counts) * 64 < max(counts)


# -- gather, scatter, alltoall: point-to-point -------------------------------------
def _rooted(comm: MPI.Comm, root: int) -> tuple[int, int, bool, bool] | None:
    """``(size, rank, inter, at_root)`` of a rooted call; ``None`` where it does nothing
    (``MPI.PROC_NULL`` on an intercommunicator).  An invalid root raises MPI's error."""
    size, rank, inter = _sizes(comm)
    check_root(comm, root, size, inter)
    if inter and root == MPI.PROC_NULL:
        return None
    return size, rank, inter, (root == MPI.ROOT if inter else root == rank)


def gather(comm: MPI.Comm, sendobj: Any, root: int) -> list[Any] | None:
    """Gather at ``root``: one engine message from every rank."""
    rooted = _rooted(comm, root)
    if rooted is None:
        return None
    size, rank, inter, receiving = rooted
    if not receiving:
        out = prepare(sendobj, rank)
        exchange(comm, {root: out}, [])
        raise_first("gather", [out], [])
        return None
    own = None if inter else prepare(sendobj, rank)
    arrived = exchange(comm, {}, [src for src in range(size) if inter or src != rank])
    raise_first("gather", [own], arrived.values())
    return [
        result("gather", arrived[src]) if src in arrived else local_result(own)  # type: ignore[arg-type]
        for src in range(size)
    ]


def scatter(comm: MPI.Comm, sendobj: Any, root: int) -> Any:
    """Scatter the items of ``sendobj`` from ``root``: one engine message per rank."""
    rooted = _rooted(comm, root)
    if rooted is None:
        return None
    size, rank, inter, sending = rooted
    if not sending:
        return result("scatter", exchange(comm, {}, [root])[root])
    items, error = items_or_failure(sendobj, size)
    outs = _outgoing(items, error, size, rank)
    exchange(comm, {d: out for d, out in enumerate(outs) if inter or d != rank}, [])
    if error is not None:
        raise error
    raise_first("scatter", outs, [])
    return None if inter else local_result(outs[rank])


def alltoall(comm: MPI.Comm, sendobj: Any) -> list[Any]:
    """Item ``i`` to rank ``i``: one engine message per pair."""
    size, rank, inter = _sizes(comm)
    items, error = items_or_failure(sendobj, size)
    outs = _outgoing(items, error, size, rank)
    peers = [peer for peer in range(size) if inter or peer != rank]
    arrived = exchange(comm, {peer: outs[peer] for peer in peers}, peers)
    raise_first("alltoall", outs, arrived.values())
    return [
        result("alltoall", arrived[p]) if p in arrived else local_result(outs[p])
        for p in range(size)
    ]
