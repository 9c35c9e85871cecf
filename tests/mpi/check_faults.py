"""Faults on the receive side: wrong pieces on the private channel, strays, odd headers.

Each rank plays a faulty sender towards its right neighbour with raw uppercase
sends (``MPI.Comm.Isend``): a header on the user's communicator and pieces on
the pkl5shim channel (``transport.lookup(comm).comm``) under a channel tag
reserved from this rank's own tag counter, so that no later message of this
rank can use it.  On one rank every message goes to the rank itself.  The
receiver must raise ``WireError`` naming the problem, fill no large memory,
consume what the faulty sender sent (its sends complete), and the
communicator must still carry a large numpy array afterwards.
Failures are collected (``Soft``) until the ring round trip at the end of each
check ran on every rank, so that one rank's failure leaves no other rank waiting.

Headers broken in themselves (truncated, wrong magic or version, absurd or
negative sizes) are covered by ``check_errors.py``; a header whose payload
never arrives needs a short PKL5_PAYLOAD_TIMEOUT and is tested by
``tests/test_payload_timeout.py``.
"""

from __future__ import annotations

import resource
import struct
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from common import comm, expect_same, left, rank, right, size, world
from expect import Soft, raises
from mpi4py import MPI

import pkl5shim
from pkl5shim import transport, wire

TAG = 23
TAG_UB = int(world.Get_attr(MPI.TAG_UB))
BIG = 4 << 20  # bytes of a piece sent by rendezvous on every library
MAX_RSS_GROWTH = 64 << 20  # bytes a refused message may make the receiver's memory grow
SETTLE_SECONDS = 30.0

RECEIVES: dict[str, Callable[[], Any]] = {
    "recv": lambda: comm.recv(source=left, tag=TAG),
    "irecv().wait()": lambda: comm.irecv(source=left, tag=TAG).wait(),
    "mprobe().recv()": lambda: comm.mprobe(left, TAG).recv(),
}


# -- helpers ---------------------------------------------------------------------
def channel() -> MPI.Comm:
    return transport.lookup(comm).comm


def reserved_tag() -> int:
    """A channel tag this rank's engine will never use again (taken from its counter)."""
    return transport.lookup(comm).new_tag()


def header(channel_tag: int, nbuffers: int, stream: int, total: int) -> bytes:
    return wire.encode(wire.Header(rank, channel_tag, nbuffers, stream, total))


def inline_header(
    channel_tag: int, sizes: list[int], stream: bytes, source: int | None = None
) -> bytes:
    """A header carrying its size table and stream: only the buffers go on the channel."""
    inline = wire.encode_table(sizes) + stream
    total = len(stream) + sum(sizes)
    source = rank if source is None else source
    return wire.encode(wire.Header(source, channel_tag, len(sizes), len(stream), total, inline))


def inject(first: bytes | None, pieces: list[Any], channel_tag: int) -> list[MPI.Request]:
    """Raw sends to the right: ``first`` on (comm, TAG), ``pieces`` on the channel."""
    requests = [MPI.Comm.Isend(channel(), piece, right, channel_tag) for piece in pieces]
    if first is not None:
        requests.append(MPI.Comm.Isend(comm, first, right, TAG))
    world.Barrier()  # every rank's messages are on their way before anyone receives
    return requests


def settle(requests: list[MPI.Request], what: str) -> None:
    """The injected sends must complete: the receiver took (or dropped) every piece."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while not MPI.Request.Testall(requests):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: the receiver left injected messages unreceived")
        time.sleep(1e-3)


def max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def traced(call: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``call``; return its exception (or None) and how much the peak resident memory grew.

    Resident memory, not allocations: a valid header may make the receiver allocate
    what it announces (pages nobody touches), as long as nothing large is filled.
    """
    before = max_rss()
    try:
        call()
        error = None
    except Exception as exc:  # noqa: BLE001 - returned to the caller, which judges it
        error = exc
    return error, max_rss() - before


def assert_nothing_pending() -> None:
    """No message waits for this rank on the communicator nor on its channel."""
    world.Barrier()
    status = MPI.Status()
    for where, target in (("communicator", comm), ("pkl5shim channel", channel())):
        found = MPI.Comm.iprobe(target, MPI.ANY_SOURCE, MPI.ANY_TAG, status)
        assert not found, (
            f"a message from rank {status.Get_source()} tag {status.Get_tag()} "
            f"({status.Get_count(MPI.BYTE)} bytes) is left on the {where}"
        )
    world.Barrier()


def large(r: int) -> dict[str, Any]:
    return {"from": r, "array": np.arange((8 << 20) // 8, dtype=np.float64) + r}


def assert_comm_works() -> None:
    """A small and a large (8 MiB) object go around the ring by recv and by irecv."""
    for make in (lambda r: ("small", r), large):
        request = comm.isend(make(rank), right, TAG)
        expect_same(comm.recv(source=left, tag=TAG), make(left), "recv after the fault")
        request.wait()
        request = comm.isend(make(rank), right, TAG)
        expect_same(comm.irecv(source=left, tag=TAG).wait(), make(left), "irecv after the fault")
        request.wait()
    assert_nothing_pending()


def fault_check(name: str, build: Callable[[int], tuple[bytes, list[Any]]], *fragments: str):
    """Inject ``build(tag)`` once per way of receiving; each raises WireError with fragments."""
    soft = Soft()
    for how, receive in RECEIVES.items():
        tag = reserved_tag()
        first, pieces = build(tag)
        requests = inject(first, pieces, tag)
        error, growth = traced(receive)
        soft(raises, pkl5shim.WireError, lambda: _reraise(error), *fragments)  # noqa: B023
        soft.true(growth <= MAX_RSS_GROWTH, f"{name} by {how}: memory grew by {growth} bytes")
        soft(settle, requests, f"{name} by {how}")
        soft(assert_nothing_pending)
    soft(assert_comm_works)
    soft.done()


def _reraise(error: BaseException | None) -> None:
    if error is not None:
        raise error


# -- pieces of the wrong size ---------------------------------------------------------
def check_stream_piece_longer_than_announced():
    fault_check(
        "stream of 200 bytes, 100 announced",
        lambda tag: (header(tag, 0, 100, 100), [bytes(200)]),
        "more",
        "100",
    )


def check_large_stream_piece_longer_than_announced():
    # Received into the announced 100 bytes, this crashed the Open MPI 5.0 wheel
    # (memory corruption on a truncated rendezvous receive; measured).
    fault_check(
        "stream of 4 MiB, 100 announced",
        lambda tag: (header(tag, 0, 100, 100), [bytes(BIG)]),
        "more",
        "100",
    )


def check_stream_piece_shorter_than_announced():
    fault_check(
        "stream of 50 bytes, 100 announced",
        lambda tag: (header(tag, 0, 100, 100), [bytes(50)]),
        "50",
        "fewer",
        "100",
    )


def check_size_table_of_the_wrong_length():
    cases = {
        struct.pack("<q", 4096): ("8", "fewer", "16"),
        struct.pack("<3q", 1000, 3096, 0): ("more", "16"),
    }
    for table, fragments in cases.items():
        fault_check(
            f"size table of {len(table)} bytes, 16 announced",
            lambda tag: (header(tag, 2, 16, 16 + 4096), [table, bytes(16)]),  # noqa: B023
            *fragments,
        )


def check_buffer_longer_than_its_table_entry_then_more_pieces():
    # Buffer 0 is longer than the table says; buffer 1 follows: both are taken off the channel.
    def build(tag: int) -> tuple[bytes, list[Any]]:
        table = struct.pack("<2q", 1000, 3000)
        return header(tag, 2, 64, 64 + 4000), [table, bytes(64), bytes(BIG), bytes(3000)]

    fault_check("buffer of 4 MiB, 1000 announced", build, "more", "1000")


def check_buffers_of_an_inline_header_longer_or_shorter_than_announced():
    # The table and the stream came inline; the buffers on the channel are wrong.
    stream = MPI.pickle.dumps_oob(np.arange(3))[0]
    fault_check(
        "inline header: buffer of 4 MiB, 1000 announced, then buffer 1",
        lambda tag: (inline_header(tag, [1000, 3000], stream), [bytes(BIG), bytes(3000)]),
        "more",
        "1000",
    )
    fault_check(
        "inline header: buffer of 500 bytes, 1000 announced",
        lambda tag: (inline_header(tag, [1000, 3000], stream), [bytes(500), bytes(3000)]),
        "500",
        "fewer",
        "1000",
    )


def check_pieces_in_the_wrong_order():
    # The buffer comes where the stream is expected.
    def build(tag: int) -> tuple[bytes, list[Any]]:
        table = struct.pack("<q", 5000)
        return header(tag, 1, 64, 64 + 5000), [table, bytes(5000), bytes(64)]

    fault_check("buffer before stream", build, "more", "64")


def check_huge_announcement_with_a_small_piece_fills_no_large_memory():
    # A valid header for 1 GiB (within PKL5_MAX_MESSAGE), then a 100-byte stream.
    fault_check(
        "stream of 100 bytes, 1 GiB announced",
        lambda tag: (header(tag, 0, 1 << 30, 1 << 30), [bytes(100)]),
        "100",
        "fewer",
        str(1 << 30),
    )
    fault_check(
        "stream of 100 bytes after a table of 1 GiB",
        lambda tag: (header(tag, 1, 8, 8 + (1 << 30)), [struct.pack("<q", 1 << 30), bytes(100)]),
        "more",
        str(8 + (1 << 30)),
    )


def check_header_source_mismatch_drops_its_payload():
    # The header names another rank; its payload, already on the channel, is dropped.
    def build(tag: int) -> tuple[bytes, list[Any]]:
        bad = wire.encode(wire.Header(size + 3, tag, 0, 5000, 5000))
        return bad, [bytes(5000)]

    fault_check("header naming another source", build, f"names source {size + 3}")
    fault_check(
        "inline header naming another source",
        lambda tag: (inline_header(tag, [5000], b"s" * 40, source=size + 3), [bytes(5000)]),
        f"names source {size + 3}",
    )


# -- what is not a fault ----------------------------------------------------------------
def check_payload_sent_before_its_header_is_received():
    """Order between the channel and the user's communicator does not matter."""
    obj = large(rank)
    stream, buffers = MPI.pickle.dumps_oob(obj)
    sizes = [memoryview(b).nbytes for b in buffers]
    soft = Soft()
    for (how, receive), inline in [(item, kind) for item in RECEIVES.items() for kind in (0, 1)]:
        tag = reserved_tag()
        if inline:  # the table and the stream inside the header: only the buffers go first
            first, pieces = inline_header(tag, sizes, stream), buffers
        else:
            total = len(stream) + sum(sizes)
            first = wire.encode(wire.Header(rank, tag, len(buffers), len(stream), total))
            pieces = [wire.encode_table(sizes), stream, *buffers]
        requests = [MPI.Comm.Isend(channel(), piece, right, tag) for piece in pieces]
        world.Barrier()
        requests.append(MPI.Comm.Isend(comm, first, right, TAG))
        what = f"payload before {'inline ' if inline else ''}header, by {how}"
        soft(expect_same, receive(), large(left), what)
        soft(settle, requests, how)
    soft(assert_comm_works)
    soft.done()


def check_stray_channel_messages_are_never_matched_by_later_traffic():
    """Payloads without a header stay where they are: tags are unique per message."""
    strays = {
        reserved_tag(): np.full(100, rank, np.uint8),
        reserved_tag(): np.full(BIG, rank, np.uint8),  # rendezvous-sized
        TAG_UB: np.full(300, rank, np.uint8),  # the highest tag, never reached by the counter
    }
    requests = [MPI.Comm.Isend(channel(), data, right, tag) for tag, data in strays.items()]
    world.Barrier()
    # point-to-point traffic of every kind, and collectives on the same channel
    for how, receive in RECEIVES.items():
        request = comm.isend(large(rank), right, TAG)
        expect_same(receive(), large(left), f"large message by {how} next to strays")
        request.wait()
    pending = comm.irecv(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG)
    expect_same(comm.bcast(large(0), root=0), large(0), "bcast next to strays")
    gathered = comm.allgather(large(rank))
    expect_same(gathered, [large(r) for r in range(size)], "allgather next to strays")
    expect_same(comm.alltoall([large(rank)] * size), [large(r) for r in range(size)], "alltoall")
    gathered = comm.gather(large(rank), root=size - 1)
    if rank == size - 1:
        expect_same(gathered, [large(r) for r in range(size)], "gather next to strays")
    request = comm.isend("release", right, TAG + 1)
    expect_same(pending.wait(), "release", "the pending ANY_SOURCE irecv got the next message")
    request.wait()
    # every stray is still on the channel, whole, under its own tag
    status = MPI.Status()
    for tag, data in strays.items():
        assert channel().Iprobe(left, tag, status), f"stray with tag {tag} was consumed"
        expect_same(status.Get_count(MPI.BYTE), data.nbytes, f"size of stray {tag}")
        got = np.empty_like(data)
        channel().Recv(got, left, tag)
        expect_same(got, np.full(data.size, left, np.uint8), f"stray {tag}")
    settle(requests, "strays")
    assert_nothing_pending()
    assert_comm_works()
