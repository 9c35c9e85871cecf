"""neighbor_allgather, neighbor_alltoall on Cartesian, graph and distributed graph topologies.

Engine messages on the channel, one per edge.  The slot a message fills is the
one MPI-4 defines, which both MPI wheels implement (checked against plain
mpi4py): on a Cartesian topology the item a rank sends along edge ``k`` lands
in the receiver's slot ``k ^ 1`` (what goes "up" arrives from "below"), which
matters when both neighbours of a dimension are the same rank; on graph
topologies messages between two ranks fill the receiver's slots in order.
"""

from __future__ import annotations

from typing import Any

from mpi4py import MPI

from . import progress
from .errors import RemoteError
from .reductions import Failure, Link

_NULL = MPI.PROC_NULL


def _raise_failures(link: Link, values: list[Any], operation: str) -> list[Any]:
    if link.error is not None:
        raise link.error
    for value in values:
        if type(value) is Failure:
            raise RemoteError(f"{operation}: rank {value.rank} failed: {value.description}")
    return values


def neighbor_allgather(comm: MPI.Topocomm, sendobj: Any) -> list[Any]:
    """Send ``sendobj`` to every outgoing neighbour; one object per incoming edge."""
    sources, dests = comm.inoutedges
    link = Link(comm)
    parts = link.pickled(sendobj)
    sends = [link.start_parts(parts, dest) for dest in dests if dest != _NULL]
    values = [None if source == _NULL else link.recv(source) for source in sources]
    for op in sends:
        progress.complete(op)
    return _raise_failures(link, values, "neighbor_allgather")


def neighbor_alltoall(comm: MPI.Topocomm, sendobj: Any) -> list[Any]:
    """Item ``k`` of ``sendobj`` along outgoing edge ``k``; one object per incoming edge."""
    sources, dests = comm.inoutedges
    link = Link(comm)
    items = list(sendobj) if sendobj is not None else [None] * len(dests)
    if len(items) != len(dests):
        link.error = ValueError(f"expecting {len(dests)} items, got {len(items)}")
        items = [Failure(link.rank, str(link.error))] * len(dests)
    sends = [
        link.start_send((edge, item), dest)
        for edge, (item, dest) in enumerate(zip(items, dests))
        if dest != _NULL
    ]
    arrived: dict[int, list[tuple[int, Any]]] = {}
    for source in sources:
        if source != _NULL:
            arrived.setdefault(source, []).append(link.recv(source))
    for op in sends:
        progress.complete(op)
    cartesian = comm.Get_topology() == MPI.CART
    values: list[Any] = []
    for slot, source in enumerate(sources):
        if source == _NULL:
            values.append(None)
            continue
        messages = arrived[source]
        position = next(i for i, m in enumerate(messages) if m[0] == slot ^ 1) if cartesian else 0
        values.append(messages.pop(position)[1])
    return _raise_failures(link, values, "neighbor_alltoall")
