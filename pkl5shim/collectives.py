"""Collectives of ``mpi4py.util.pkl5``: bcast, gather, scatter, allgather, alltoall.

They run as engine point-to-point messages on the communicator's private
channel (tag 0; payload tags are never 0), so no receive of the user can match
them, and large buffers travel out of band.  ``bcast`` is a binomial tree; the
others are linear, as in pkl5.  An object that fails to pickle on one rank
reaches its receivers as a ``RemoteError`` instead of leaving them waiting.
"""

from __future__ import annotations

from typing import Any

from mpi4py import MPI

from . import codec, p2p, progress, transport
from .errors import RemoteError
from .progress import Operation, RecvOp
from .transport import Channel

_TAG = 0
Parts = tuple[Any, list[Any]]


class _Failure:
    """Sent in place of an object that could not be pickled."""

    def __init__(self, rank: int, description: str) -> None:
        self.rank = rank
        self.description = description


def _pickle(obj: Any, rank: int) -> tuple[Parts, BaseException | None]:
    try:
        return codec.dumps(obj), None
    except Exception as exc:  # noqa: BLE001 - re-raised by the caller after sending
        failure = _Failure(rank, f"could not pickle its object ({type(exc).__name__}: {exc})")
        return codec.dumps(failure), exc


def _unpickle(parts: Parts, operation: str) -> Any:
    obj = codec.loads(*parts)
    if type(obj) is _Failure:
        raise RemoteError(f"{operation}: rank {obj.rank} failed: {obj.description}")
    return obj


def _local_copy(parts: Parts, operation: str) -> Any:
    # The caller's own item comes back as a fresh, writable copy, as in plain
    # mpi4py (which unpickles its own pickle).
    stream, buffers = parts
    copies = []
    for buffer in buffers:
        copy = codec.allocate(memoryview(buffer).nbytes)
        copy[:] = memoryview(buffer).cast("B")
        copies.append(copy)
    return _unpickle((stream, copies), operation)


class _Exchange:
    """The sends and receives of one collective call on a channel."""

    def __init__(self, comm: MPI.Comm) -> None:
        self.channel: Channel = transport.lookup(comm)
        self.sends: list[Operation] = []
        self.recvs: dict[int, RecvOp] = {}

    def send(self, parts: Parts, dest: int) -> None:
        chan = self.channel
        self.sends.append(p2p.as_operation(p2p.start_parts(chan.comm, chan, parts, dest, _TAG)))

    def post_recv(self, source: int) -> None:
        chan = self.channel
        self.recvs[source] = p2p.irecv(chan.comm, None, source, _TAG, chan)

    def recv_parts(self, source: int) -> Parts:
        op = self.recvs.pop(source) if source in self.recvs else None
        if op is None:
            self.post_recv(source)
            op = self.recvs.pop(source)
        progress.drive([op], 1)
        if op.error is not None:
            raise op.error
        assert op.parts is not None
        return op.parts

    def finish(self) -> None:
        ops = self.sends + list(self.recvs.values())
        if ops:
            progress.drive(ops, len(ops))
        for op in self.sends:
            op.result()


def _check_root(comm: MPI.Comm, root: int, size: int, inter: bool) -> None:
    valid = 0 <= root < size or (inter and root in (MPI.ROOT, MPI.PROC_NULL))
    if not valid:
        comm.Call_errhandler(MPI.ERR_ROOT)
        raise MPI.Exception(MPI.ERR_ROOT)


def _items(objs: Any, size: int, rank: int) -> tuple[list[Any], BaseException | None]:
    # A wrong item count is reported to the receivers too (as a failure they
    # raise), so that no rank is left waiting for an item that never comes.
    items = [None] * size if objs is None else list(objs)
    if len(items) == size:
        return items, None
    error = ValueError(f"expecting {size} items, got {len(items)}")
    return [_Failure(rank, str(error))] * size, error


def bcast(comm: MPI.Comm, obj: Any, root: int) -> Any:
    """Broadcast ``obj`` from ``root``."""
    if comm.Is_inter():
        return _bcast_inter(comm, obj, root)
    size, rank = comm.Get_size(), comm.Get_rank()
    _check_root(comm, root, size, inter=False)
    exchange = _Exchange(comm)
    relative = (rank - root) % size
    error = None
    if relative == 0:
        parts, error = _pickle(obj, rank)
        span = 1
        while span < size:
            span <<= 1
    else:
        span = relative & -relative
        parts = exchange.recv_parts((rank - span) % size)
    child = span >> 1
    while child:
        if relative + child < size:
            exchange.send(parts, (rank + child) % size)
        child >>= 1
    exchange.finish()
    if error is not None:
        raise error
    if relative == 0:
        return _local_copy(parts, "bcast")
    return _unpickle(parts, "bcast")


def _bcast_inter(comm: MPI.Comm, obj: Any, root: int) -> Any:
    size = comm.Get_remote_size()
    _check_root(comm, root, size, inter=True)
    if root == MPI.PROC_NULL:
        return None
    exchange = _Exchange(comm)
    if root == MPI.ROOT:
        parts, error = _pickle(obj, comm.Get_rank())
        for dest in range(size):
            exchange.send(parts, dest)
        exchange.finish()
        if error is not None:
            raise error
        return None
    parts = exchange.recv_parts(root)
    exchange.finish()
    return _unpickle(parts, "bcast")


def gather(comm: MPI.Comm, sendobj: Any, root: int) -> list[Any] | None:
    """Gather one object from every rank at ``root``."""
    inter = comm.Is_inter()
    size = comm.Get_remote_size() if inter else comm.Get_size()
    rank = comm.Get_rank()
    _check_root(comm, root, size, inter)
    if root == MPI.PROC_NULL:
        return None
    exchange = _Exchange(comm)
    receiving = root == MPI.ROOT if inter else root == rank
    sending = not inter or root != MPI.ROOT
    parts: Parts | None = None
    error = None
    if sending:
        parts, error = _pickle(sendobj, rank)
        if not receiving:
            exchange.send(parts, root)
    received: dict[int, Parts] = {}
    if receiving:
        sources = [src for src in range(size) if inter or src != rank]
        for source in sources:
            exchange.post_recv(source)
        received = {source: exchange.recv_parts(source) for source in sources}
    exchange.finish()
    if error is not None:
        raise error
    if not receiving:
        return None
    return [
        _local_copy(parts, "gather") if source == rank and not inter and parts
        else _unpickle(received[source], "gather")
        for source in range(size)
    ]  # fmt: skip


def scatter(comm: MPI.Comm, sendobj: Any, root: int) -> Any:
    """Scatter the items of ``sendobj`` (a sequence at ``root``) to every rank."""
    inter = comm.Is_inter()
    size = comm.Get_remote_size() if inter else comm.Get_size()
    rank = comm.Get_rank()
    _check_root(comm, root, size, inter)
    if root == MPI.PROC_NULL:
        return None
    exchange = _Exchange(comm)
    sending = root == MPI.ROOT if inter else root == rank
    own: Parts | None = None
    errors: list[BaseException | None] = []
    if sending:
        items, count_error = _items(sendobj, size, rank)
        errors.append(count_error)
        for dest, item in enumerate(items):
            parts, error = _pickle(item, rank)
            errors.append(error)
            if dest == rank and not inter:
                own = parts
            else:
                exchange.send(parts, dest)
    received = None if sending else exchange.recv_parts(root)
    exchange.finish()
    for error in errors:
        if error is not None:
            raise error
    if own is not None:
        return _local_copy(own, "scatter")
    return None if received is None else _unpickle(received, "scatter")


def allgather(comm: MPI.Comm, sendobj: Any) -> list[Any]:
    """Gather one object from every rank on every rank."""
    inter = comm.Is_inter()
    size = comm.Get_remote_size() if inter else comm.Get_size()
    rank = comm.Get_rank()
    peers = [peer for peer in range(size) if inter or peer != rank]
    exchange = _Exchange(comm)
    for source in peers:
        exchange.post_recv(source)
    parts, error = _pickle(sendobj, rank)
    for dest in peers:
        exchange.send(parts, dest)
    received = {source: exchange.recv_parts(source) for source in peers}
    exchange.finish()
    if error is not None:
        raise error
    return [
        _unpickle(received[peer], "allgather") if peer in received
        else _local_copy(parts, "allgather")
        for peer in range(size)
    ]  # fmt: skip


def alltoall(comm: MPI.Comm, sendobj: Any) -> list[Any]:
    """Send item ``i`` of ``sendobj`` to rank ``i``; receive one item from every rank."""
    inter = comm.Is_inter()
    size = comm.Get_remote_size() if inter else comm.Get_size()
    rank = comm.Get_rank()
    items, count_error = _items(sendobj, size, rank)
    peers = [peer for peer in range(size) if inter or peer != rank]
    exchange = _Exchange(comm)
    for source in peers:
        exchange.post_recv(source)
    own: Parts | None = None
    errors: list[BaseException | None] = [count_error]
    for dest, item in enumerate(items):
        parts, error = _pickle(item, rank)
        errors.append(error)
        if dest == rank and not inter:
            own = parts
        else:
            exchange.send(parts, dest)
    received = {source: exchange.recv_parts(source) for source in peers}
    exchange.finish()
    for error in errors:
        if error is not None:
            raise error
    return [
        _unpickle(received[peer], "alltoall") if peer in received
        else _local_copy(own, "alltoall")  # type: ignore[arg-type]
        for peer in range(size)
    ]  # fmt: skip
