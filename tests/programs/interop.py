"""A rank using pkl5shim and a plain mpi4py rank in one job (2 ranks).

Rank 0 sends and receives through ``pkl5shim.Intracomm(MPI.COMM_WORLD)``, rank 1
through mpi4py alone; rank 1 duplicates ``COMM_WORLD`` once to match the
wrapper's collective channel set-up.  (Switching the shim on for some ranks only,
by ``PKL5_ENABLE``, is a launch mistake that ends with an error: see
tests/test_first_hour.py.)  Small objects go both ways with every receive form;
a large object from the plain rank reaches the wrapper's blocking recv; a large
object from the pkl5shim rank raises ``UnwrappedReceiveError`` in the plain
rank's ``recv`` and ``irecv().wait()``, which then drains the payload by hand
(its duplicate is the wrapper's channel) so that both ranks finish cleanly.
"""

from __future__ import annotations

import numpy as np
from mpi4py import MPI
from progutil import done, expect_same

rank = MPI.COMM_WORLD.Get_rank()
expect_same(type(MPI.COMM_WORLD).__module__, "mpi4py.MPI", f"rank {rank} is not patched")
if rank == 0:
    import pkl5shim

    world = pkl5shim.Intracomm(MPI.COMM_WORLD)
else:
    world = MPI.COMM_WORLD
    channel = world.Dup()  # matches the Dup that wrapping made on rank 0
peer = 1 - rank
SMALL = [7, {"text": "small", "values": [1, 2.5, None]}, b"x" * 30_000, np.arange(100)]
LARGE = {"array": np.arange(200_000, dtype=np.float64), "note": "large"}  # 1.6 MB: out of band


def shim_rank() -> None:
    for i, obj in enumerate(SMALL):  # shim -> plain: recv and irecv on the plain side
        world.send(obj, peer, 10 + i)
        world.isend(obj, peer, 20 + i).wait()
    for i, obj in enumerate(SMALL):  # plain -> shim: recv, irecv, mprobe
        expect_same(world.recv(source=peer, tag=30 + i), obj, f"recv small {i}")
        expect_same(world.irecv(source=peer, tag=40 + i).wait(), obj, f"irecv small {i}")
        expect_same(world.mprobe(peer, 50 + i).recv(), obj, f"mprobe small {i}")
    expect_same(world.recv(source=peer, tag=60), LARGE, "large from the plain rank")
    # shim -> plain, large: the plain rank refuses it; the engine's sends still complete
    requests = [world.isend(LARGE, peer, 70), world.isend(LARGE, peer, 71)]
    pkl5shim.Request.waitall(requests)
    expect_same(world.recv(source=peer, tag=72), "refused twice", "the plain rank's report")


def plain_rank() -> None:
    for i, obj in enumerate(SMALL):
        expect_same(world.recv(source=peer, tag=10 + i), obj, f"plain recv small {i}")
        expect_same(world.irecv(source=peer, tag=20 + i).wait(), obj, f"plain irecv small {i}")
    for i, obj in enumerate(SMALL):
        world.send(obj, peer, 30 + i)
        world.send(obj, peer, 40 + i)
        world.send(obj, peer, 50 + i)
    world.send(LARGE, peer, 60)
    from pkl5shim import UnwrappedReceiveError

    refused = 0
    for tag, receive in ((70, world.recv), (71, lambda **kw: world.irecv(**kw).wait())):
        try:
            receive(source=peer, tag=tag)
        except UnwrappedReceiveError as exc:
            assert "pkl5shim.wrap(comm)" in str(exc), str(exc)
            refused += 1
        # The payload on the channel: its one buffer (the size table and the pickle
        # stream came inline, in the header the plain rank refused).
        status = MPI.Status()
        message = channel.Mprobe(peer, MPI.ANY_TAG, status)
        expect_same(status.Get_count(MPI.BYTE), LARGE["array"].nbytes, "the buffer's size")
        message.Recv(bytearray(status.Get_count(MPI.BYTE)))
    expect_same(refused, 2, "UnwrappedReceiveError from recv and from irecv().wait()")
    world.send("refused twice", peer, 72)
    flag = channel.Iprobe(peer, MPI.ANY_TAG)
    expect_same(flag, False, "nothing left on the channel")
    channel.Free()


shim_rank() if rank == 0 else plain_rank()
done("interop")
