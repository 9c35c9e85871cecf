"""The communicator classes: drop-ins for ``mpi4py.util.pkl5.Comm``/``Intracomm``/``Intercomm``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mpi4py import MPI

from . import collectives, neighbors, p2p, reductions, transport
from . import stats_output as _stats_output  # noqa: F401  (PKL5_STATS output at exit)
from .metrics import attributed
from .p2p import BUFFERED, STANDARD, SYNCHRONOUS, Message, Request, request_of
from .transport import RawComm

ANY_SOURCE = MPI.ANY_SOURCE
ANY_TAG = MPI.ANY_TAG
_lock = MPI._comm_lock  # mpi4py's per-communicator lock of each lowercase collective
_constants: dict[int, tuple[str, MPI.Comm]] = {}
"""id of each wrapper that stands for a predefined communicator -> (name, mpi4py's object)."""


def predefined(name: str) -> MPI.Comm:
    """``MPI.<name>`` of this process (how a predefined communicator is unpickled)."""
    return getattr(MPI, name)


class Comm(MPI.Comm):
    """Communicator whose lowercase methods use pickle protocol 5 out of band.

    Creating one is collective over the communicator: it duplicates it once
    into a private channel for large payloads (freed when the communicator is).
    """

    def __new__(cls, comm: MPI.Comm | None = None) -> Comm:
        """Wrap ``comm`` (sharing its MPI handle); ``None`` gives a null communicator."""
        self = RawComm.__new__(cls, comm)
        if comm is not None and self != MPI.COMM_NULL:
            transport.attach(self)
        return self

    # -- an object of mpi4py's object model ------------------------------------
    def __reduce__(self) -> Any:
        """Pickled as mpi4py pickles its communicators; a predefined one by its name."""
        constant = _constants.get(id(self))
        if constant is not None:
            return (predefined, (constant[0],))
        return super().__reduce__()

    def free(self) -> None:
        """Free the communicator unless it is null or predefined (mpi4py's ``free``)."""
        if id(self) not in _constants:
            super().free()

    def Free(self) -> None:  # noqa: N802 - mpi4py's name
        """Free the communicator; a predefined one behaves as mpi4py's own constant does."""
        constant = _constants.get(id(self))
        if constant is None:
            super().Free()
        else:
            RawComm.Free(constant[1])  # MPI's verdict, and mpi4py keeps the handle

    @classmethod
    def fromhandle(cls, handle: int) -> MPI.Comm:
        """The communicator of an MPI handle (pkl5shim's class if it has a channel)."""
        return rewrap(RawComm.fromhandle(handle))

    @classmethod
    def fromint(cls, arg: int) -> MPI.Comm:
        """The communicator of an integer handle (pkl5shim's class if it has a channel)."""
        return rewrap(RawComm.fromint(arg))

    @classmethod
    def f2py(cls, arg: int) -> MPI.Comm:
        """The communicator of a Fortran handle (pkl5shim's class if it has a channel)."""
        return rewrap(RawComm.f2py(arg))

    # -- point-to-point ----------------------------------------------------
    send = p2p.blocking_send(STANDARD, "Blocking send in standard mode.")
    bsend = p2p.blocking_send(BUFFERED, "Blocking send in buffered mode.")
    ssend = p2p.blocking_send(SYNCHRONOUS, "Blocking send in synchronous mode.")
    isend = p2p.nonblocking_send(
        STANDARD, "Nonblocking send in standard mode; leave the object's arrays alone until done."
    )
    ibsend = p2p.nonblocking_send(BUFFERED, "Nonblocking send in buffered mode.")
    issend = p2p.nonblocking_send(SYNCHRONOUS, "Nonblocking send in synchronous mode.")
    recv = p2p.recv

    def irecv(self, buf: Any = None, source: int = ANY_SOURCE, tag: int = ANY_TAG) -> Request:
        """Nonblocking receive of an object of any size.

        ``buf`` (a buffer or a byte count) receives the first message when it
        is at least ``PKL5_EAGER`` bytes; it is never needed.
        """
        return request_of(p2p.irecv(self, buf, source, tag))

    @attributed("sendrecv", peer=1)
    def sendrecv(
        self,
        sendobj: Any,
        dest: int,
        sendtag: int = 0,
        recvbuf: Any = None,
        source: int = ANY_SOURCE,
        recvtag: int = ANY_TAG,
        status: MPI.Status | None = None,
    ) -> Any:
        """Send and receive."""
        # An invalid source or tag must fail before anything is sent, as with
        # MPI_Sendrecv: else the send would be left for a receive never posted.
        RawComm.Iprobe(self, source, recvtag)
        request = self.isend(sendobj, dest, sendtag)
        try:
            return self.recv(None, source, recvtag, status)
        finally:
            request.wait()

    def probe(
        self, source: int = ANY_SOURCE, tag: int = ANY_TAG, status: MPI.Status | None = None
    ) -> bool:
        """Blocking probe; ``status`` describes the first message (see docs/protocol.md)."""
        return p2p.probe(self, source, tag, status)

    def iprobe(
        self, source: int = ANY_SOURCE, tag: int = ANY_TAG, status: MPI.Status | None = None
    ) -> bool:
        """Nonblocking probe; ``status`` describes the first message (see docs/protocol.md)."""
        return p2p.iprobe(self, source, tag, status)

    def mprobe(
        self, source: int = ANY_SOURCE, tag: int = ANY_TAG, status: MPI.Status | None = None
    ) -> Message:
        """Blocking matching probe."""
        return Message.probe(self, source, tag, status)

    def improbe(
        self, source: int = ANY_SOURCE, tag: int = ANY_TAG, status: MPI.Status | None = None
    ) -> Message | None:
        """Nonblocking matching probe."""
        return Message.iprobe(self, source, tag, status)

    # -- collectives ---------------------------------------------------------
    @attributed("bcast", peer=1)
    def bcast(self, obj: Any, root: int = 0) -> Any:
        """Broadcast."""
        with _lock(self, "bcast"):
            return collectives.bcast(self, obj, root)

    @attributed("gather", peer=1)
    def gather(self, sendobj: Any, root: int = 0) -> list[Any] | None:
        """Gather."""
        with _lock(self, "gather"):
            return collectives.gather(self, sendobj, root)

    @attributed("scatter", peer=1)
    def scatter(self, sendobj: Any, root: int = 0) -> Any:
        """Scatter."""
        with _lock(self, "scatter"):
            return collectives.scatter(self, sendobj, root)

    @attributed("allgather")
    def allgather(self, sendobj: Any) -> list[Any]:
        """Gather to all."""
        with _lock(self, "allgather"):
            return collectives.allgather(self, sendobj)

    @attributed("alltoall")
    def alltoall(self, sendobj: Any) -> list[Any]:
        """All to all scatter/gather."""
        with _lock(self, "alltoall"):
            return collectives.alltoall(self, sendobj)

    @attributed("reduce", peer=2)
    def reduce(self, sendobj: Any, op: Any = MPI.SUM, root: int = 0) -> Any:
        """Reduce to ``root``; ``op`` applied in rank order, as plain mpi4py applies it."""
        return reductions.reduce(self, sendobj, op, root)

    @attributed("allreduce")
    def allreduce(self, sendobj: Any, op: Any = MPI.SUM) -> Any:
        """Reduce to all; ``op`` applied in rank order, as plain mpi4py applies it."""
        return reductions.allreduce(self, sendobj, op)

    # -- communicators made from this one keep the engine --------------------
    def Dup(self, info: MPI.Info | None = None) -> Comm:  # noqa: N802 - mpi4py's name
        """Duplicate the communicator; the duplicate gets its own channel."""
        new = super().Dup(info) if info is not None else super().Dup()
        transport.attach(new)
        return new

    def Dup_with_info(self, info: MPI.Info) -> Comm:  # noqa: N802 - mpi4py's name
        """Duplicate the communicator with hints; the duplicate gets its own channel."""
        new = super().Dup_with_info(info)
        transport.attach(new)
        return new

    def Clone(self) -> Comm:  # noqa: N802 - mpi4py's name
        """Clone the communicator; the clone gets its own channel."""
        new = super().Clone()
        transport.attach(new)
        return new

    def Idup_with_info(self, info: MPI.Info) -> tuple[Comm, MPI.Request]:  # noqa: N802
        """Duplicate with hints; completes at once so the duplicate gets its channel."""
        new, request = super().Idup_with_info(info)
        request.Wait()
        transport.attach(new)
        return new, request

    def Idup(self, info: MPI.Info | None = None) -> tuple[Comm, MPI.Request]:  # noqa: N802
        """Duplicate the communicator; completes at once so the duplicate gets its channel.

        The returned request is already complete (waiting for it returns at once).
        """
        new, request = super().Idup(info) if info is not None else super().Idup()
        request.Wait()
        transport.attach(new)
        return new, request


class Intracomm(Comm, MPI.Intracomm):
    """Intracommunicator wrapper."""

    @attributed("scan")
    def scan(self, sendobj: Any, op: Any = MPI.SUM) -> Any:
        """Inclusive prefix reduction."""
        return reductions.scan(self, sendobj, op)

    @attributed("exscan")
    def exscan(self, sendobj: Any, op: Any = MPI.SUM) -> Any:
        """Exclusive prefix reduction (``None`` on rank 0)."""
        return reductions.exscan(self, sendobj, op)


class _Neighbors:
    """Neighbourhood collectives of the topology wrappers."""

    @attributed("neighbor_allgather")
    def neighbor_allgather(self, sendobj: Any) -> list[Any]:
        """Gather from incoming neighbours."""
        with _lock(self, "neighbor_allgather"):
            return neighbors.neighbor_allgather(self, sendobj)  # type: ignore[arg-type]

    @attributed("neighbor_alltoall")
    def neighbor_alltoall(self, sendobj: Any) -> list[Any]:
        """Item ``k`` to outgoing neighbour ``k``; one object from each incoming neighbour."""
        with _lock(self, "neighbor_alltoall"):
            return neighbors.neighbor_alltoall(self, sendobj)  # type: ignore[arg-type]


class Intercomm(Comm, MPI.Intercomm):
    """Intercommunicator wrapper."""


class Cartcomm(_Neighbors, Intracomm, MPI.Cartcomm):
    """Cartesian topology wrapper: keeps ``Shift``, ``Get_coords``, ``Sub``, ..."""


class Graphcomm(_Neighbors, Intracomm, MPI.Graphcomm):
    """Graph topology wrapper: keeps ``Get_neighbors``, ``Get_topo``, ..."""


class Distgraphcomm(_Neighbors, Intracomm, MPI.Distgraphcomm):
    """Distributed graph topology wrapper: keeps ``Get_dist_neighbors``, ..."""


_TOPOLOGY_CLASSES = {MPI.CART: Cartcomm, MPI.GRAPH: Graphcomm, MPI.DIST_GRAPH: Distgraphcomm}


def wrap(comm: MPI.Comm) -> Comm:
    """Wrap ``comm`` in the pkl5shim class of its kind (collective, like ``Dup``).

    Intercommunicators give an ``Intercomm``; Cartesian, graph and distributed
    graph communicators keep their topology methods; a communicator already
    wrapped is returned as it is.
    """
    if comm == MPI.COMM_NULL:
        raise ValueError("cannot wrap MPI.COMM_NULL")
    if isinstance(comm, Comm):
        transport.attach(comm)  # mpi4py makes some results as type(self), without a channel
        return comm
    return _class_of(comm)(comm)


def _class_of(comm: MPI.Comm) -> type[Comm]:
    if comm.Is_inter():
        return Intercomm
    return _TOPOLOGY_CLASSES.get(comm.Get_topology(), Intracomm)


def rewrap(comm: MPI.Comm) -> MPI.Comm:
    """``comm`` as a pkl5shim communicator if its handle has a channel (not collective).

    A handle made into an object again (``fromint``, ``f2py``, ``fromhandle``) keeps
    the type it had; a handle pkl5shim never wrapped stays mpi4py's.
    """
    if isinstance(comm, Comm) or transport.find(comm) is None:
        return comm
    return RawComm.__new__(_class_of(comm), comm)


def constant(name: str, original: MPI.Comm) -> Intracomm:
    """The wrapper that stands for the predefined ``MPI.<name>`` (no channel yet).

    Like mpi4py's constants it is never freed by ``free()``, ``Free()`` gets MPI's
    answer for the predefined handle, and it pickles by name.
    """
    wrapper = RawComm.__new__(Intracomm, original)
    _constants[id(wrapper)] = (name, original)
    return wrapper


# Methods that create a communicator from a wrapped one return it wrapped.
# Spawn, Spawn_multiple, Accept and Connect are left out on purpose: wrapping is
# collective over both sides, and an unchanged child or peer would never join.
_DERIVING = {
    Comm: (MPI.Comm, ("Split", "Split_type", "Create")),
    Intracomm: (
        MPI.Intracomm,
        (
            "Create_group",
            "Create_cart",
            "Create_graph",
            "Create_dist_graph",
            "Create_dist_graph_adjacent",
            "Create_intercomm",
        ),
    ),
    Intercomm: (MPI.Intercomm, ("Merge",)),
    Cartcomm: (MPI.Cartcomm, ("Sub",)),
}


def _wrapping(original: Callable[..., MPI.Comm]) -> Callable[..., MPI.Comm]:
    def method(self: Comm, *args: Any, **kwargs: Any) -> MPI.Comm:
        new = original(self, *args, **kwargs)
        return new if new == MPI.COMM_NULL else wrap(new)

    method.__name__ = method.__qualname__ = original.__name__
    method.__doc__ = f"{original.__doc__ or ''}\n\nThe new communicator is wrapped by pkl5shim."
    return method


for _cls, (_base, _names) in _DERIVING.items():
    for _name in _names:
        setattr(_cls, _name, _wrapping(getattr(_base, _name)))
del _cls, _base, _names, _name
