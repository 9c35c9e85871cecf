"""neighbor_allgather, neighbor_alltoall on Cartesian, graph and distributed graph topologies.

Engine messages on the channel, one per edge.  When both neighbours of a
Cartesian dimension are the same rank, MPI libraries disagree on which slot
an item fills: MPI-4 (the MPICH and Open MPI wheels) puts the item sent along
edge ``k`` into the receiver's slot ``k ^ 1`` (what goes "up" arrives from
"below"); the Intel MPI wheel fills slots in order, as for graph topologies.
pkl5shim asks the library once (a neighbour exchange on ``COMM_SELF``) and does
the same, so results equal plain mpi4py's on each library.
"""

from __future__ import annotations

import functools
from array import array
from typing import Any

from mpi4py import MPI

from .reductions import Failure, Link

_NULL = MPI.PROC_NULL


def _checked(link: Link, values: list[Any], operation: str) -> list[Any]:
    link.finish(None, operation)  # this rank's own error first
    for value in values:
        link.finish(value, operation)  # then a failure that reached it
    return values


@functools.cache
def cartesian_slots_swap() -> bool:
    """Whether this MPI library delivers Cartesian edge ``k`` into slot ``k ^ 1``."""
    ring = MPI.COMM_SELF.Create_cart([1], periods=[True])  # both neighbours: this rank
    received = array("i", [-1, -1])
    try:
        ring.Neighbor_alltoall(array("i", [0, 1]), received)
    finally:
        ring.Free()
    return list(received) == [1, 0]


def neighbor_allgather(comm: MPI.Topocomm, sendobj: Any) -> list[Any]:
    """Send ``sendobj`` to every outgoing neighbour; one object per incoming edge."""
    sources, dests = comm.inoutedges
    link = Link(comm)
    parts = link.pickled(sendobj)
    sends = [link.start_parts(parts, dest) for dest in dests if dest != _NULL]
    values = [None if source == _NULL else link.recv(source) for source in sources]
    for op in sends:
        link.complete(op)
    return _checked(link, values, "neighbor_allgather")


def neighbor_alltoall(comm: MPI.Topocomm, sendobj: Any) -> list[Any]:
    """Item ``k`` of ``sendobj`` along outgoing edge ``k``; one object per incoming edge."""
    sources, dests = comm.inoutedges
    link = Link(comm)
    items = list(sendobj) if sendobj is not None else [None] * len(dests)
    if len(items) == len(dests):
        outgoing = list(enumerate(items))
    else:
        error = ValueError(f"expecting {len(dests)} items, got {len(items)}")
        outgoing = [link.fail(error, str(error))] * len(dests)
    sends = [link.start_send(m, dest) for m, dest in zip(outgoing, dests) if dest != _NULL]
    arrived: dict[int, list[Any]] = {}
    for source in sources:
        if source != _NULL:
            arrived.setdefault(source, []).append(link.recv(source))
    for op in sends:
        link.complete(op)
    failures = [m for got in arrived.values() for m in got if type(m) is Failure]
    if link.error is not None or failures:
        return _checked(link, failures, "neighbor_alltoall")  # raises
    swapped = comm.Get_topology() == MPI.CART and cartesian_slots_swap()
    values: list[Any] = []
    for slot, source in enumerate(sources):
        if source == _NULL:
            values.append(None)
            continue
        messages = arrived[source]
        position = next(i for i, m in enumerate(messages) if m[0] == slot ^ 1) if swapped else 0
        values.append(messages.pop(position)[1])
    return _checked(link, values, "neighbor_alltoall")
