"""Known traffic for the statistics tests; writes what each rank expects them to count.

Run with ``PKL5_ENABLE=1`` and ``PKL5_STATS``: rank 0 ``send``s two objects to
every other rank, the ranks ``isend``/``irecv`` two objects around a ring,
rank 0 ``bcast``s an array and rank ``size-1`` ``gather``s one array per rank.
Every rank computes from ``MPI.pickle`` what it sends and receives and writes
it to ``argv[1]`` (``{rank}`` expands), for the test to compare with the stats.
"""

import json
import sys

import numpy as np
from mpi4py import MPI

from pkl5shim.config import settings

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
EAGER = settings.eager_limit
expected: dict[str, dict[str, int]] = {}


def nbytes(obj):
    stream, buffers = MPI.pickle.dumps_oob(obj)
    return len(stream) + sum(memoryview(b).nbytes for b in buffers), bool(buffers), len(stream)


def count(method, direction, obj, zero_copy=True):
    total, has_buffers, stream = nbytes(obj)
    row = expected.setdefault(method, {})
    path = "out_of_band" if has_buffers or stream > EAGER else "eager"
    for key, value in (
        (f"objects_{direction}", 1),
        (f"bytes_{direction}", total),
        (f"{path}_{direction}", 1),
    ):
        row[key] = row.get(key, 0) + value
    if direction == "sent" and has_buffers and zero_copy:
        row["zero_copy_bytes"] = row.get("zero_copy_bytes", 0) + total - stream


def big(seed, n):
    return np.full(n, seed, dtype="u1")


# send / recv: rank 0 to every other rank
for peer in range(1, size):
    objs = [big(peer, (1 << 20) + peer), {"peer": peer, "text": "x" * peer}]
    if rank == 0:
        for obj in objs:
            comm.send(obj, dest=peer, tag=peer)
            count("send", "sent", obj)
    elif rank == peer:
        for obj in objs:
            got = comm.recv(source=0, tag=peer)
            assert type(got) is type(obj)
            count("recv", "received", obj)

# isend / irecv around a ring
right, left = (rank + 1) % size, (rank - 1) % size
mine = [big(rank, 300_000 + rank), rank * 1000]
theirs = [big(left, 300_000 + left), left * 1000]
receives = [comm.irecv(source=left, tag=100 + i) for i in range(2)]
sends = [comm.isend(obj, dest=right, tag=100 + i) for i, obj in enumerate(mine)]
got = MPI.Request.waitall(receives + sends)
assert (got[0] == theirs[0]).all() and got[1] == theirs[1]
copy_mode = len(sys.argv) > 2 and sys.argv[2] == "copy"
for obj in mine:
    count("isend", "sent", obj, zero_copy=not copy_mode)
for obj in theirs:
    count("irecv", "received", obj)

# bcast from rank 0 (the root unpickles its own copy too)
array = big(7, 2 << 20)
comm.bcast(array if rank == 0 else None, root=0)
if rank == 0:
    count("bcast", "sent", array)
count("bcast", "received", array)

# gather at the last rank (the root's own object counted on both sides)
root = size - 1
parts = comm.gather(big(rank, 400_000 * (rank + 1)), root=root)
count("gather", "sent", big(rank, 400_000 * (rank + 1)))
if rank == root:
    for source in range(size):
        count("gather", "received", parts[source])

with open(sys.argv[1].replace("{rank}", str(rank)), "w", encoding="utf-8") as stream:
    json.dump(expected, stream)
