"""reduce, allreduce, scan, exscan: plain mpi4py's algorithms, with out-of-band messages.

The trees are those of mpi4py (``msgpickle.pxi``): a binomial tree towards rank
0 that always applies ``op(lower ranks, higher ranks)``, and recursive doubling
for the prefix reductions.  So ``op`` sees its operands in the same order and
grouping as with plain mpi4py: non-commutative and floating-point results are
identical.  Messages are the engine's (large arrays out of band) on the
communicator's channel.  A value that cannot be pickled, or an ``op`` that
raises, travels on as a failure marker: ranks that receive it raise
``RemoteError`` and nobody is left waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mpi4py import MPI

from . import codec, collectives, p2p, progress, transport, wire
from .errors import RemoteError
from .ops import SendOp
from .progress import pending
from .receive import RecvOp
from .transport import RawComm, RawRequest

_TAG = 0
Op = Callable[[Any, Any], Any]


class Failure:
    """Stands, in this process, for a value that could not be produced or pickled.

    It travels as a failure header (``wire.failure``), and comes back as a ``Failure``.
    """

    def __init__(self, text: str) -> None:
        self.text = text

    @classmethod
    def of(cls, rank: int, description: str) -> Failure:
        """The failure of ``rank``, as its receivers report it."""
        return cls(f"rank {rank} failed: {description}")


class Link:
    """Point-to-point messages of one collective call on a communicator's channel."""

    def __init__(self, comm: MPI.Comm) -> None:
        self.channel = transport.lookup(comm)
        self.comm = self.channel.comm
        self.rank = self.comm.Get_rank()
        self.error: BaseException | None = None  # this rank's own failure

    def fail(self, error: BaseException, description: str) -> Failure:
        """Remember this rank's first error; the marker that travels in its place."""
        self.error = self.error or error
        return Failure.of(self.rank, description)

    def pickled(self, value: Any) -> Any:
        """Pickle ``value`` (a failure marker stays one; a failure to pickle becomes one)."""
        if type(value) is Failure:
            return value
        try:
            return codec.dumps(value)
        except Exception as exc:  # noqa: BLE001 - raised by finish()
            return self.fail(exc, f"could not pickle ({type(exc).__name__}: {exc})")

    def start_send(self, value: Any, dest: int) -> SendOp | MPI.Request:
        return self.start_parts(self.pickled(value), dest)

    def start_parts(self, parts: Any, dest: int) -> SendOp | MPI.Request:
        """Start sending an already pickled value, or a failure marker."""
        if type(parts) is Failure:
            failure = wire.failure(self.rank, parts.text)
            return p2p.start_header(self.comm, self.channel, failure, [], dest, _TAG)
        return p2p.start_parts(self.comm, self.channel, parts, dest, _TAG)

    def send(self, value: Any, dest: int) -> None:
        parts = self.pickled(value)
        if not pending and type(parts) is not Failure and codec.travels_plain(parts):
            RawComm.Send(self.comm, parts[0], dest, _TAG)  # small: one plain message
            return
        self.complete(self.start_parts(parts, dest))

    def recv(self, source: int) -> Any:
        """The value from ``source`` (a ``Failure`` if it sent one)."""
        # Not mpi4py's C recv: that one probes first, and a blocking MPI_Mprobe of the
        # MPICH wheel takes ~4 ms to see a message that arrives while it waits on an
        # oversubscribed node (measured), where MPI_Irecv + MPI_Wait takes ~0.01 ms.
        if pending:  # a posted receive, advanced with the others
            item: Any = p2p.irecv(self.comm, None, source, _TAG, self.channel, failures=True)
        else:  # MPI_Recv into the channel's buffer; a small value is unpickled at once
            message = collectives.recv_first(self.channel, source)
            item = collectives.taken(self.channel, source, message)
        if type(item) is RecvOp:
            progress.drive([item], 1)
        if item.failure is not None:
            return Failure(item.failure)
        return item.result()

    def sendrecv(self, value: Any, peer: int) -> Any:
        sending = self.start_send(value, peer)
        received = self.recv(peer)
        self.complete(sending)
        return received

    @staticmethod
    def complete(sending: SendOp | MPI.Request) -> None:
        """Wait for a send started by ``start_parts`` (raises what it failed with)."""
        if type(sending) is RawRequest:  # a small value: one plain message
            collectives.wait([sending])
        else:
            progress.complete(sending)

    def combine(self, op: Op, left: Any, right: Any) -> Any:
        """``op(left, right)``, or the failure marker that one of them is or it raises."""
        for value in (left, right):
            if type(value) is Failure:
                return value
        try:
            return op(left, right)
        except Exception as exc:  # noqa: BLE001 - raised by finish()
            return self.fail(exc, f"op raised {type(exc).__name__}: {exc}")

    def copy(self, obj: Any) -> Any:
        """A private copy of the caller's object (mpi4py starts from one too)."""
        try:
            return collectives.local_result(collectives.prepare(obj, self.rank))
        except Exception as exc:  # noqa: BLE001 - raised by finish()
            return self.fail(exc, f"could not pickle ({type(exc).__name__}: {exc})")

    def finish(self, value: Any, operation: str) -> Any:
        """Raise this rank's own error, then a failure that reached it; else return ``value``."""
        if self.error is not None:
            raise self.error
        if type(value) is Failure:
            raise RemoteError(f"{operation}: {value.text}")
        return value


def _tree_reduce(link: Link, value: Any, op: Op, size: int) -> Any:
    """Binomial tree to rank 0; the result is meaningful at rank 0 only."""
    rank, mask = link.rank, 1
    while mask < size:
        if rank & mask:
            link.send(value, (rank & ~mask) % size)
            return None
        peer = rank | mask
        if peer < size:
            value = link.combine(op, value, link.recv(peer))
        mask <<= 1
    return value


def _local_comm(comm: MPI.Comm) -> MPI.Intracomm:
    """The intracommunicator of this side of an intercommunicator (made once, collectively)."""
    channel = transport.lookup(comm)
    if channel.local is None:
        merged = MPI.Intercomm.Merge(channel.comm, False)
        leader = MPI.Group.Translate_ranks(channel.comm.Get_group(), [0], merged.Get_group())[0]
        local = merged.Split(leader, channel.comm.Get_rank())
        merged.Free()
        transport.attach(local)
        channel.local = local
    return channel.local


def reduce(comm: MPI.Comm, sendobj: Any, op: Op, root: int) -> Any:
    """Reduce to ``root`` with ``op`` applied in rank order."""
    if comm.Is_inter():
        return _reduce_inter(comm, sendobj, op, root)
    size = comm.Get_size()
    collectives.check_root(comm, root, size, inter=False)
    link = Link(comm)
    value = _tree_reduce(link, link.copy(sendobj), op, size)
    if root != 0:
        if link.rank == 0:
            link.send(value, root)
        elif link.rank == root:
            value = link.recv(0)
    return link.finish(value if link.rank == root else None, "reduce")


def _reduce_inter(comm: MPI.Comm, sendobj: Any, op: Op, root: int) -> Any:
    collectives.check_root(comm, root, comm.Get_remote_size(), inter=True)
    local = _local_comm(comm)
    link = Link(comm)
    if root == MPI.PROC_NULL:
        return None
    if root == MPI.ROOT:
        return link.finish(link.recv(0), "reduce")
    inner = Link(local)
    value = _tree_reduce(inner, inner.copy(sendobj), op, local.Get_size())
    if inner.rank == 0:
        link.send(value, root)
    return inner.finish(None, "reduce")


def allreduce(comm: MPI.Comm, sendobj: Any, op: Op) -> Any:
    """Reduce with ``op`` in rank order; every rank gets the result."""
    if comm.Is_inter():
        local = _local_comm(comm)
        inner = Link(local)
        value = _tree_reduce(inner, inner.copy(sendobj), op, local.Get_size())
        if inner.rank == 0:
            value = Link(comm).sendrecv(value, 0)
        value = collectives.bcast(local, value, 0)
        return inner.finish(value, "allreduce")
    link, size = Link(comm), comm.Get_size()
    if size & (size - 1) == 0:  # a power of two: every rank computes the tree's expression
        return link.finish(_doubling(link, link.copy(sendobj), op, size), "allreduce")
    value = _tree_reduce(link, link.copy(sendobj), op, size)
    value = collectives.bcast(comm, value, 0)
    return link.finish(value, "allreduce")


def _doubling(link: Link, value: Any, op: Op, size: int) -> Any:
    """Recursive doubling: at step ``mask`` each rank exchanges its partial result with
    ``rank ^ mask`` and applies ``op(lower, higher)``.

    For a power-of-two ``size`` that is, on every rank, exactly the grouping and order of
    mpi4py's binomial tree (``_tree_reduce``), so results equal plain mpi4py's; but the
    data crosses each link once in each direction at the same time, where reduce then
    broadcast sends it twice one after the other (measured across two hosts: allreduce of
    64 MiB took 1.74x uppercase at 10 Gbit/s with reduce + bcast: docs/benchmarks.md,
    "Across hosts").
    """
    rank, mask = link.rank, 1
    while mask < size:
        peer = rank ^ mask
        other = link.sendrecv(value, peer)
        value = link.combine(op, value, other) if rank < peer else link.combine(op, other, value)
        mask <<= 1
    return value


def scan(comm: MPI.Comm, sendobj: Any, op: Op) -> Any:
    """Inclusive prefix reduction: rank ``i`` gets ``op`` over ranks ``0..i``."""
    return _prefix(comm, sendobj, op, inclusive=True, operation="scan")


def exscan(comm: MPI.Comm, sendobj: Any, op: Op) -> Any:
    """Exclusive prefix reduction: rank ``i`` gets ``op`` over ranks ``0..i-1`` (rank 0: None)."""
    return _prefix(comm, sendobj, op, inclusive=False, operation="exscan")


_NOTHING = object()


def _prefix(comm: MPI.Comm, sendobj: Any, op: Op, inclusive: bool, operation: str) -> Any:
    """Recursive doubling, grouping the operands exactly as mpi4py's scan and exscan do."""
    link = Link(comm)
    size, rank = comm.Get_size(), link.rank
    partial = link.copy(sendobj)
    result = partial if inclusive else _NOTHING
    mask = 1
    while mask < size:
        peer = rank ^ mask
        if peer < size:
            other = link.sendrecv(partial, peer)
            if rank > peer:
                partial = link.combine(op, other, partial)
                result = other if result is _NOTHING else link.combine(op, other, result)
            else:
                partial = link.combine(op, partial, other)
        mask <<= 1
    return link.finish(None if result is _NOTHING else result, operation)
