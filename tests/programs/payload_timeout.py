"""PKL5_PAYLOAD_TIMEOUT=1 on 2 ranks: a header whose payload never arrives raises WireError.

Each rank sends raw headers (and parts of their payloads) to the other with
uppercase calls, under channel tags reserved from its own tag counter.  The
receiver must raise ``WireError`` naming the source, the tag and the missing
bytes after about a second, and its communicator must still work.  A payload
arriving late, or under the wrong tag, stays on the channel: no later message
matches it.  A slow but correct sender, whose pieces each come within the
timeout, is received whole.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from mpi4py import MPI
from progutil import done, expect_same

import pkl5shim
from pkl5shim import transport, wire
from pkl5shim.config import settings

TIMEOUT = 1.0
SLACK = 15.0  # seconds a loaded machine may add to the timeout
TAG = 31
comm = pkl5shim.Intracomm(MPI.COMM_WORLD)
rank, size = comm.Get_rank(), comm.Get_size()
assert size == 2, "run on 2 ranks"
assert settings.payload_timeout == TIMEOUT, settings
other = 1 - rank
chan = transport.lookup(comm).comm

RECEIVES: dict[str, Callable[[], Any]] = {
    "recv": lambda: comm.recv(source=other, tag=TAG),
    "irecv().wait()": lambda: comm.irecv(source=other, tag=TAG).wait(),
    "mprobe().recv()": lambda: comm.mprobe(other, TAG).recv(),
}


def reserved_tag() -> int:
    return transport.lookup(comm).new_tag()


def large(r: int) -> dict[str, Any]:
    return {"from": r, "a": np.arange(1 << 20, dtype=np.float64) * (r + 1), "b": np.ones(70_000)}


def expect_timeout(
    receive: Callable[[], Any], channel_tag: int, missing: int, what: str, start: float = 0.0
) -> None:
    """``receive`` raises WireError TIMEOUT s after ``start`` (or now), naming what is missing."""
    start = start or time.monotonic()
    try:
        receive()
    except pkl5shim.WireError as exc:
        text = str(exc)
    else:
        raise AssertionError(f"{what}: no WireError")
    elapsed = time.monotonic() - start
    assert TIMEOUT * 0.9 <= elapsed <= TIMEOUT + SLACK, f"{what}: raised after {elapsed:.2f} s"
    for fragment in (
        f"rank {other}",
        f"tag {TAG}",
        f"channel tag {channel_tag}",
        f"{missing} bytes",
        "PKL5_PAYLOAD_TIMEOUT=1 s",
    ):
        assert fragment in text, f"{what}: {fragment!r} not in {text!r}"


def assert_comm_works() -> None:
    request = comm.isend(large(rank), other, TAG)
    expect_same(comm.recv(source=other, tag=TAG), large(other), "large object after a timeout")
    request.wait()
    comm.Barrier()
    status = MPI.Status()
    for where, target in (("communicator", comm), ("channel", chan)):
        assert not MPI.Comm.iprobe(target, MPI.ANY_SOURCE, MPI.ANY_TAG, status), (
            f"message tag {status.Get_tag()} left on the {where}"
        )
    comm.Barrier()


def header(channel_tag: int, nbuffers: int, stream: int, total: int) -> bytes:
    return wire.encode(wire.Header(rank, channel_tag, nbuffers, stream, total))


def send_raw(first: bytes, pieces: list[Any], channel_tag: int) -> list[MPI.Request]:
    requests = [MPI.Comm.Isend(chan, piece, other, channel_tag) for piece in pieces]
    return [*requests, MPI.Comm.Isend(comm, first, other, TAG)]


def nothing_sent() -> None:
    """A header alone: its size table and everything after it never come."""
    for how, receive in RECEIVES.items():
        tag = reserved_tag()
        requests = send_raw(header(tag, 2, 100, 100 + 5000), [], tag)
        expect_timeout(receive, tag, 16 + 100 + 5000, f"header alone, {how}")
        MPI.Request.Waitall(requests)
        assert_comm_works()


def table_sent_only() -> None:
    tag = reserved_tag()
    requests = send_raw(header(tag, 2, 100, 5100), [struct.pack("<2q", 2000, 3000)], tag)
    expect_timeout(RECEIVES["irecv().wait()"], tag, 5100, "table only")
    MPI.Request.Waitall(requests)
    assert_comm_works()


def inline_header_with_a_buffer_missing() -> None:
    """The table and the stream came inline with the header; the last buffer never comes."""
    tag = reserved_tag()
    inline = struct.pack("<2q", 2000, 3000) + bytes(100)
    first = wire.encode(wire.Header(rank, tag, 2, 100, 5100, inline))
    requests = send_raw(first, [bytes(2000)], tag)
    expect_timeout(RECEIVES["recv"], tag, 3000, "inline header, last buffer missing")
    MPI.Request.Waitall(requests)
    assert_comm_works()


def last_buffer_missing() -> None:
    tag = reserved_tag()
    table = struct.pack("<2q", 2000, 3000)
    requests = send_raw(header(tag, 2, 100, 5100), [table, bytes(100), bytes(2000)], tag)
    expect_timeout(RECEIVES["recv"], tag, 3000, "last buffer missing")
    MPI.Request.Waitall(requests)
    assert_comm_works()


def pending_irecv_times_out_while_other_traffic_flows() -> None:
    """An irecv left pending times out in the background; other messages are not disturbed."""
    tag = reserved_tag()
    faulty = send_raw(header(tag, 0, 700, 700), [], tag)
    comm.Barrier()
    start = time.monotonic()
    request = comm.irecv(source=other, tag=TAG)
    rounds = 0
    while not comm.allreduce(request.get_status(), op=MPI.LAND):
        # other traffic meanwhile: it advances the pending irecv through the progress loop
        sent = comm.isend(large(rank), other, TAG + 1)
        expect_same(comm.recv(source=other, tag=TAG + 1), large(other), "traffic meanwhile")
        sent.wait()
        rounds += 1
        assert time.monotonic() - start < TIMEOUT + SLACK, "the pending irecv never timed out"
    assert rounds > 0, "the irecv timed out before any other traffic"
    expect_timeout(request.wait, tag, 700, "pending irecv", start)
    MPI.Request.Waitall(faulty)
    comm.Barrier()
    assert_comm_works()


def late_or_misdirected_payload_is_never_matched() -> None:
    """A payload after the timeout, or under another tag, stays on the channel."""
    late_tag, wrong_tag = reserved_tag(), reserved_tag()
    late, misdirected = np.full(5000, 10 + rank, np.uint8), np.full(3000, 20 + rank, np.uint8)
    requests = send_raw(header(late_tag, 0, late.nbytes, late.nbytes), [], late_tag)
    expect_timeout(RECEIVES["recv"], late_tag, late.nbytes, "late payload")
    comm.Barrier()  # both receives gave up before the payloads are sent
    requests.append(MPI.Comm.Isend(chan, late, other, late_tag))
    requests += send_raw(header(wrong_tag, 0, 3000, 3000), [], wrong_tag)
    requests.append(MPI.Comm.Isend(chan, misdirected, other, wrong_tag + 10**6))
    expect_timeout(RECEIVES["irecv().wait()"], wrong_tag, 3000, "payload under another tag")
    comm.Barrier()
    for _ in range(2):  # later large messages are not disturbed by the strays
        sent = comm.isend(large(rank), other, TAG)
        expect_same(comm.recv(source=other, tag=TAG), large(other), "large object next to strays")
        sent.wait()
    for tag, base, count in ((late_tag, 10, 5000), (wrong_tag + 10**6, 20, 3000)):
        got = np.empty(count, np.uint8)
        chan.Recv(got, other, tag)
        expect_same(got, np.full(count, base + other, np.uint8), f"stray under tag {tag} is whole")
    MPI.Request.Waitall(requests)
    assert_comm_works()


def slow_sender_within_the_timeout_is_received() -> None:
    """Each piece comes within the timeout, the whole payload takes longer: no error."""
    obj = {"from": rank, "a": np.arange(1 << 20, dtype=np.float64)}  # 3 pieces: 1.8 s
    stream, buffers = MPI.pickle.dumps_oob(obj)
    sizes = [memoryview(b).nbytes for b in buffers]
    pieces = [wire.encode_table(sizes), stream, *buffers]
    if rank == 0:
        tag = reserved_tag()
        first = header(tag, len(buffers), len(stream), len(stream) + sum(sizes))
        MPI.Comm.Send(comm, first, other, TAG)
        for piece in pieces:
            time.sleep(0.6 * TIMEOUT)
            MPI.Comm.Send(chan, piece, other, tag)
    else:
        start = time.monotonic()
        expected = {"from": other, "a": np.arange(1 << 20, dtype=np.float64)}
        expect_same(comm.recv(source=other, tag=TAG), expected, "slow sender")
        elapsed = time.monotonic() - start
        assert elapsed > 1.5 * TIMEOUT, f"the slow sender took only {elapsed:.2f} s"
    assert_comm_works()


nothing_sent()
table_sent_only()
last_buffer_missing()
inline_header_with_a_buffer_missing()
pending_irecv_times_out_while_other_traffic_flows()
late_or_misdirected_payload_is_never_matched()
slow_sender_within_the_timeout_is_received()
done("payload timeout")
