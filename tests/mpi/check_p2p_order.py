"""Matching order and wildcards: ANY_SOURCE/ANY_TAG, non-overtaking, pre-posted irecv."""

from typing import Any

import numpy as np
from common import comm, expect_same, left, rank, right, size, world
from mpi4py import MPI

import pkl5shim


def small(r: int, i: int) -> dict[str, Any]:
    return {"from": r, "i": i, "small": list(range(i % 5))}


def large(r: int, i: int) -> dict[str, Any]:
    return {"from": r, "i": i, "large": np.arange(40_000 + i, dtype="f8") + r}


def mixed(r: int, i: int) -> dict[str, Any]:
    """Small for even ``i``, large (out of band) for odd ``i``."""
    return large(r, i) if i % 2 else small(r, i)


def total_nbytes(obj: Any) -> int:
    """What a receive's status counts: pickle stream plus out-of-band buffers."""
    stream, buffers = MPI.pickle.dumps_oob(obj)
    return len(stream) + sum(memoryview(b).nbytes for b in buffers)


def check_any_source_any_tag_status():
    sends = [comm.isend(small(rank, 0), right, 5), comm.isend(large(rank, 1), right, 6)]
    expected = [(5, small(left, 0)), (6, large(left, 1))]
    for tag, obj in expected:  # one sender, so ANY_TAG receives in send order
        status = MPI.Status()
        got = comm.recv(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status)
        expect_same(got, obj, f"tag {tag}")
        expect_same(status.Get_source(), left, "source")
        expect_same(status.Get_tag(), tag, "tag")
        expect_same(status.Get_count(MPI.BYTE), total_nbytes(obj), f"count of tag {tag}")
        assert not status.Is_cancelled()
    pkl5shim.Request.waitall(sends)


def check_irecv_any_source_any_tag_status():
    rreqs = [comm.irecv(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG) for _ in range(2)]
    sends = [comm.isend(large(rank, 1), right, 8), comm.isend(small(rank, 2), right, 9)]
    for req, (tag, obj) in zip(rreqs, [(8, large(left, 1)), (9, small(left, 2))]):
        status = MPI.Status()
        expect_same(req.wait(status), obj, f"tag {tag}")
        expect_same((status.Get_source(), status.Get_tag()), (left, tag), "source, tag")
        expect_same(status.Get_count(MPI.BYTE), total_nbytes(obj), f"count of tag {tag}")
    pkl5shim.Request.waitall(sends)


def check_interleaved_small_and_large_same_tag_keep_send_order():
    count = 16
    sends = [comm.isend(mixed(rank, i), right, 11) for i in range(count)]
    got = [comm.recv(source=left, tag=11) for _ in range(count)]
    pkl5shim.Request.waitall(sends)
    expect_same(got, [mixed(left, i) for i in range(count)], "blocking receives")


def check_interleaved_sizes_into_posted_irecvs_keep_send_order():
    count = 16
    rreqs = [comm.irecv(source=left, tag=12) for _ in range(count)]
    sends = [comm.isend(mixed(rank, count - i), right, 12) for i in range(count)]
    got = pkl5shim.Request.waitall(rreqs)
    pkl5shim.Request.waitall(sends)
    expect_same(got, [mixed(left, count - i) for i in range(count)], "irecvs")


def check_different_tags_received_out_of_order():
    tags = list(range(20, 28))
    sends = [comm.isend(mixed(rank, tag), right, tag) for tag in tags]
    for tag in reversed(tags):
        status = MPI.Status()
        got = comm.recv(source=left, tag=tag, status=status)
        expect_same(got, mixed(left, tag), f"tag {tag}")
        expect_same(status.Get_tag(), tag, "status tag")
    pkl5shim.Request.waitall(sends)


def check_irecv_posted_before_large_isend():
    rreq = comm.irecv(source=left, tag=30)
    world.Barrier()  # every receive is posted before any send starts
    sreq = comm.isend(large(rank, 3), right, 30)
    expect_same(rreq.wait(), large(left, 3), "irecv")
    sreq.wait()


def check_irecv_posted_before_large_blocking_send():
    # Every rank blocks in send while its own irecv still needs its payload
    # receive posted: the send must advance it.
    for method in ("send", "ssend"):
        rreq = comm.irecv(source=left, tag=31)
        world.Barrier()
        getattr(comm, method)(large(rank, 4), right, 31)
        expect_same(rreq.wait(), large(left, 4), method)


def check_posted_irecvs_any_source_get_every_message_once_in_mpi_order():
    per_peer = 6
    rreqs = [comm.irecv(source=MPI.ANY_SOURCE, tag=40) for _ in range(per_peer * size)]
    world.Barrier()
    sends = [comm.isend(mixed(rank, i), dest, 40) for i in range(per_peer) for dest in range(size)]
    statuses: list[MPI.Status] = []
    got = pkl5shim.Request.waitall(rreqs, statuses)
    pkl5shim.Request.waitall(sends)
    for obj, status in zip(got, statuses):
        expect_same(status.Get_source(), obj["from"], "status source")
        expect_same(obj, mixed(obj["from"], obj["i"]), "content")
    # Receives posted in order match each sender's messages in send order.
    for source in range(size):
        expect_same([obj["i"] for obj in got if obj["from"] == source], list(range(per_peer)))


def check_blocking_recv_any_source_keeps_per_sender_order():
    per_peer = 5
    sends = [comm.isend(mixed(rank, i), dest, 41) for i in range(per_peer) for dest in range(size)]
    got = []
    for _ in range(per_peer * size):
        status = MPI.Status()
        obj = comm.recv(source=MPI.ANY_SOURCE, tag=41, status=status)
        expect_same(status.Get_source(), obj["from"], "status source")
        got.append(obj)
    pkl5shim.Request.waitall(sends)
    for source in range(size):
        mine = [obj for obj in got if obj["from"] == source]
        expect_same(mine, [mixed(source, i) for i in range(per_peer)], f"from {source}")


def check_irecv_into_user_bytearray_and_int_size():
    buffers = [bytearray(1 << 17), bytearray(100), 1 << 17, 10]
    for make in (small, large):
        rreqs = [comm.irecv(buf, source=left, tag=50 + k) for k, buf in enumerate(buffers)]
        sends = [comm.isend(make(rank, k), right, 50 + k) for k in range(len(buffers))]
        got = pkl5shim.Request.waitall(rreqs)
        pkl5shim.Request.waitall(sends)
        expect_same(got, [make(left, k) for k in range(len(buffers))], make.__name__)


def check_recv_ignores_given_buffer():
    for make in (small, large):
        req = comm.isend(make(rank, 7), right, 55)
        got = comm.recv(bytearray(16), source=left, tag=55)
        req.wait()
        expect_same(got, make(left, 7), make.__name__)


def check_posted_irecv_matches_before_a_later_blocking_recv():
    for first, second in ((small, large), (large, small)):
        rreq = comm.irecv(source=MPI.ANY_SOURCE, tag=60)
        sends = [comm.isend(first(rank, 0), right, 60), comm.isend(second(rank, 1), right, 60)]
        later = comm.recv(source=left, tag=60)  # blocks while the irecv is pending
        expect_same(rreq.wait(), first(left, 0), "the irecv posted first")
        expect_same(later, second(left, 1), "the later blocking recv")
        pkl5shim.Request.waitall(sends)
