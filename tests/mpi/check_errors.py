"""Errors: bad objects, bad headers, bad arguments, unwrapped peers.

Every case is followed by a small and a large round trip on the same
communicator and a check that no message is left pending (on the user's
communicator nor on its private pkl5shim channel, where an unconsumed payload
would wait), which proves that the failure consumed exactly what it had to.
"""

import pickle
import resource
import struct
import threading

import numpy as np
from common import comm, expect_same, left, rank, right, size, world
from expect import Soft, pickle_error_of, raises
from mpi4py import MPI

import pkl5shim
from pkl5shim import transport, wire
from pkl5shim.config import settings

TAG = 11
TAG_UB = int(world.Get_attr(MPI.TAG_UB))
BIG = 1 << 20  # bytes of the large arrays: well above MPI.pickle.THRESHOLD and PKL5_EAGER
MAX_RSS_GROWTH = 100 << 20  # bytes a rejected header may make the receiver allocate


# -- helpers ---------------------------------------------------------------------
def small(r):
    return {"from": r, "values": list(range(r + 3))}


def large(r):
    return {"from": r, "array": np.arange(BIG // 8 + r, dtype=np.float64) * (r + 1)}


def channel_of(c):
    return transport.lookup(c).comm


def assert_nothing_pending(c=comm):
    """No message waits for this rank on ``c`` nor on its channel (between two barriers)."""
    c.Barrier()
    status = MPI.Status()
    for where, target in (("user communicator", c), ("pkl5shim channel", channel_of(c))):
        found = MPI.Comm.iprobe(target, MPI.ANY_SOURCE, MPI.ANY_TAG, status)
        assert not found, (
            f"a message from rank {status.Get_source()} tag {status.Get_tag()} "
            f"({status.Get_count(MPI.BYTE)} bytes) is left on the {where}"
        )
    c.Barrier()


def assert_comm_works(c=comm, tag=TAG):
    """A small and a large object travel around the ring; nothing is left behind."""
    for make in (small, large):
        request = c.isend(make(rank), right, tag)
        got = c.recv(source=left, tag=tag)
        request.wait()
        expect_same(got, make(left), make.__name__)
        request = c.isend(make(rank + 100), right, tag)
        got = c.irecv(source=left, tag=tag).wait()
        request.wait()
        expect_same(got, make(left + 100), f"{make.__name__} by irecv")
    assert_nothing_pending(c)


# -- (a) unpicklable objects fail on the sender, and nothing is sent -------------
def unpicklables():
    return {
        "lambda": lambda: 0,
        "lock": threading.Lock(),
        "large array then a lock": {"array": np.ones(BIG, np.uint8), "lock": threading.Lock()},
        "lock then large array": [threading.Lock(), np.ones(BIG, np.uint8)],
    }


def check_unpicklable_object_raises_on_sender_and_sends_nothing():
    sends = {
        "send": comm.send,
        "ssend": comm.ssend,
        "isend": lambda obj, dest, tag: comm.isend(obj, dest, tag).wait(),
        "issend": lambda obj, dest, tag: comm.issend(obj, dest, tag).wait(),
    }
    soft = Soft()
    count = 0
    for how, send in sends.items():
        for what, obj in unpicklables().items():
            soft(raises, pickle_error_of(obj), lambda: send(obj, right, TAG))  # noqa: B023
            # The next message on (comm, TAG) is the real one sent after the failure.
            count += 1
            request = comm.isend(("real", rank, count, how, what), right, TAG)
            got = comm.recv(source=left, tag=TAG)
            request.wait()
            soft(expect_same, got, ("real", left, count, how, what), f"after {how} of {what}")
    soft.done()
    assert_nothing_pending()
    assert_comm_works()


# -- (b) an object whose unpickling fails on the receiver ------------------------
class UnpickleBoomError(Exception):
    """Raised while the receiver rebuilds a Bomb."""


def explode(what):
    raise UnpickleBoomError(f"refusing to unpickle {what}")


class Bomb:
    """Pickles fine; unpickling it raises UnpickleBoomError."""

    def __init__(self, what):
        self.what = what

    def __reduce__(self):
        return (explode, (self.what,))


def bombs(r):
    return {
        "small": Bomb(f"small from {r}"),
        "large array then bomb": {"array": np.ones(BIG, np.uint8), "bomb": Bomb(f"large from {r}")},
        "bomb then large array": [Bomb(f"first from {r}"), np.ones(BIG, np.uint8)],
        "large in-band stream": [bytes(4 * settings.eager_limit), Bomb(f"stream from {r}")],
    }


RECEIVES = {
    "recv": lambda source, tag: comm.recv(source=source, tag=tag),
    "irecv().wait()": lambda source, tag: comm.irecv(source=source, tag=tag).wait(),
    "mprobe().recv()": lambda source, tag: comm.mprobe(source, tag).recv(),
}


def check_failed_unpickling_raises_on_receiver_and_consumes_the_message():
    soft = Soft()
    count = 0
    for how, receive in RECEIVES.items():
        for what in bombs(rank):
            request = comm.isend(bombs(rank)[what], right, TAG)
            call = lambda: receive(left, TAG)  # noqa: B023, E731
            soft(raises, UnpickleBoomError, call, f"from {left}")
            request.wait()
            count += 1
            request = comm.isend(("next", rank, count), right, TAG)
            got = receive(left, TAG)
            request.wait()
            soft(expect_same, got, ("next", left, count), f"message after {what} by {how}")
            assert_nothing_pending()
    soft.done()
    assert_comm_works()


# -- (c) bad headers injected with uppercase sends -------------------------------
# magic, version, kind, flags, source, channel tag, nbuffers, stream bytes, total bytes
FIELDS = struct.Struct("<4sBBHiiqqq")
SUFFIX = wire.encode(wire.Header(0, 1, 0, 0, 0))[len(wire.PREFIX) + FIELDS.size :]


def check_header_layout_is_what_the_injections_assume():
    header = wire.Header(
        source=rank, channel_tag=7, nbuffers=2, stream_nbytes=100, total_nbytes=900
    )
    encoded = wire.encode(header)
    assert len(encoded) == wire.HEADER_SIZE == len(wire.PREFIX) + FIELDS.size + len(SUFFIX)
    assert encoded.startswith(wire.PREFIX) and encoded.endswith(SUFFIX)
    fields = FIELDS.unpack(encoded[len(wire.PREFIX) : len(wire.PREFIX) + FIELDS.size])
    assert fields == (wire.MAGIC, wire.VERSION, 0, 0, rank, 7, 2, 100, 900), fields
    assert made_header(channel_tag=7, nbuffers=2, stream=100, total=900) == encoded
    inline = wire.Header(rank, TAG_UB, 2, 16, 16 + 4096, adding_up())
    assert made_inline_header(adding_up()) == wire.encode(inline)


def made_header(**changes):
    """A header from this rank, with some fields replaced (built like wire.encode does)."""
    values = {
        "magic": wire.MAGIC, "version": wire.VERSION, "kind": 0, "flags": 0,
        "source": rank, "channel_tag": TAG_UB, "nbuffers": 0, "stream": 100, "total": 100,
    }  # fmt: skip
    values.update(changes)
    return wire.PREFIX + FIELDS.pack(*values.values()) + SUFFIX


def valid_header():
    return made_header()


def made_inline_header(inline, **changes):
    """An inline header (kind 1) carrying ``inline`` as its table and stream."""
    fields = {"kind": wire.INLINE, "nbuffers": 2, "stream": 16, "total": 16 + 4096}
    fields.update(changes)
    start = len(wire.PREFIX) + FIELDS.size
    section = b"B" + struct.pack("<I", len(inline)) + inline + b"\x86R."
    return made_header(**fields)[:start] + section


def adding_up():
    return struct.pack("<2q", 1000, 3096) + bytes(16)


# name: (first message, [(channel message, tag)], fragment of the WireError)
BAD_HEADERS = {
    "header truncated by 1 byte": (lambda: valid_header()[:-1], [], "truncated"),
    "header truncated by 5 bytes": (lambda: valid_header()[:-5], [], "truncated"),
    "header truncated into its fields": (lambda: valid_header()[:-20], [], "truncated"),
    "wrong magic": (lambda: made_header(magic=b"XXXX"), [], "magic"),
    "wrong version": (lambda: made_header(version=wire.VERSION + 98), [], "version"),
    "total size 2**62": (lambda: made_header(stream=100, total=1 << 62), [], "PKL5_MAX_MESSAGE"),
    "total just over PKL5_MAX_MESSAGE": (
        lambda: made_header(stream=0, total=settings.max_message + 1),
        [],
        "PKL5_MAX_MESSAGE",
    ),
    "huge stream": (lambda: made_header(stream=1 << 62, total=1 << 62), [], "PKL5_MAX_MESSAGE"),
    "negative stream size": (lambda: made_header(stream=-1, total=100), [], "inconsistent sizes"),
    "negative total size": (lambda: made_header(stream=0, total=-5), [], "inconsistent sizes"),
    "total smaller than stream": (
        lambda: made_header(stream=5000, total=10),
        [],
        "inconsistent sizes",
    ),
    "negative nbuffers": (lambda: made_header(nbuffers=-3), [], "-3 buffers"),
    "nbuffers huge": (lambda: made_header(nbuffers=1 << 40), [], f"{1 << 40} buffers"),
    "nbuffers just over MAX_BUFFERS": (
        lambda: made_header(nbuffers=wire.MAX_BUFFERS + 1),
        [],
        "buffers",
    ),
    "channel tag 0": (lambda: made_header(channel_tag=0), [], "channel tag"),
    "negative source": (lambda: made_header(source=-4), [], "invalid source"),
    "source naming another rank": (
        lambda: made_header(source=size + 7),
        [],
        f"names source {size + 7}",
    ),
    "size table with a negative size": (
        lambda: made_header(nbuffers=2, stream=16, total=16 + 4096),
        [(lambda: struct.pack("<2q", -4096, 8192), TAG_UB)],
        "does not add up",
    ),
    "size table not adding up to the header": (
        lambda: made_header(nbuffers=2, stream=16, total=16 + 4096),
        [(lambda: struct.pack("<2q", 10, 20), TAG_UB)],
        "does not add up",
    ),
    "unknown header kind": (lambda: made_header(kind=2), [], "unknown kind 2"),
    "inline kind without its section": (lambda: made_header(kind=wire.INLINE), [], "inline"),
    "inline size table not adding up": (
        lambda: made_inline_header(struct.pack("<2q", 10, 20) + bytes(16)),
        [],
        "does not add up",
    ),
    "inline section shorter than announced": (
        lambda: made_inline_header(adding_up()[:-4]),
        [],
        "corrupted message",
    ),
    "header truncated in its inline section": (
        lambda: made_inline_header(adding_up())[:-10],
        [],
        "truncated",
    ),
}


def max_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def expected_error(name, how):
    """The exception a bad header gives: WireError, except one documented case.

    Blocking recv lets mpi4py's C recv unpickle the first message; a truncated
    header is no complete pickle, so pickle's own error comes first there
    (docs/protocol.md).
    """
    fragment = BAD_HEADERS[name][2]
    if how == "recv" and name.startswith("header truncated"):
        return (pickle.UnpicklingError, EOFError), ()
    return pkl5shim.WireError, (fragment,)


def inject_and_receive(name, how):
    first, extra, _fragment = BAD_HEADERS[name]
    message = first()
    requests = [MPI.Comm.Isend(comm, message, right, TAG)]
    requests += [MPI.Comm.Isend(channel_of(comm), make(), right, tag) for make, tag in extra]
    before = max_rss_bytes()
    kinds, fragments = expected_error(name, how)
    raises(kinds, lambda: RECEIVES[how](left, TAG), *fragments)
    growth = max_rss_bytes() - before
    MPI.Request.Waitall(requests)
    assert growth <= MAX_RSS_GROWTH, f"{name}: max RSS grew by {growth} bytes"


def bad_header_check(*names):
    """Inject each bad header for each way of receiving; then the comm works."""
    failures = []
    for name in names:
        for how in RECEIVES:
            try:
                inject_and_receive(name, how)
            except AssertionError as exc:
                failures.append(f"{name}, received by {how}: {exc}")
            assert_nothing_pending()
        assert_comm_works()
    assert not failures, "\n".join(failures)


def check_truncated_header_raises_wire_error():
    bad_header_check(
        "header truncated by 1 byte",
        "header truncated by 5 bytes",
        "header truncated into its fields",
    )


def check_wrong_magic_raises_wire_error():
    bad_header_check("wrong magic")


def check_wrong_version_raises_wire_error():
    bad_header_check("wrong version")


def check_absurd_total_size_raises_wire_error_without_allocating():
    bad_header_check("total size 2**62", "total just over PKL5_MAX_MESSAGE", "huge stream")


def check_negative_sizes_raise_wire_error():
    bad_header_check("negative stream size", "negative total size", "total smaller than stream")


def check_bad_buffer_count_raises_wire_error():
    bad_header_check("negative nbuffers", "nbuffers huge", "nbuffers just over MAX_BUFFERS")


def check_bad_source_or_channel_tag_raises_wire_error():
    bad_header_check("channel tag 0", "negative source", "source naming another rank")


def check_bad_size_table_raises_wire_error():
    bad_header_check("size table with a negative size", "size table not adding up to the header")


def check_bad_header_kind_or_inline_section_raises_wire_error():
    bad_header_check(
        "unknown header kind",
        "inline kind without its section",
        "inline size table not adding up",
        "inline section shorter than announced",
        "header truncated in its inline section",
    )


# -- (d) invalid destination and tag ---------------------------------------------
def bad_arguments():
    # Open MPI's TAG_UB is 2**31 - 1: a larger tag is no C int, and mpi4py itself
    # raises OverflowError before MPI sees it (plain mpi4py does the same).
    over_ub = MPI.Exception if TAG_UB + 1 < 1 << 31 else OverflowError
    return [
        ("destination size + 5", size + 5, TAG, MPI.Exception, MPI.ERR_RANK),
        ("destination -7", -7, TAG, MPI.Exception, MPI.ERR_RANK),
        ("tag -5", right, -5, MPI.Exception, MPI.ERR_TAG),
        ("tag TAG_UB + 1", right, TAG_UB + 1, over_ub, MPI.ERR_TAG),
    ]


def check_invalid_destination_or_tag_raises_mpi_exception():
    sends = {
        "send": comm.send,
        "ssend": comm.ssend,
        "isend": lambda obj, dest, tag: comm.isend(obj, dest, tag).wait(),
        "issend": lambda obj, dest, tag: comm.issend(obj, dest, tag).wait(),
    }
    objects = {"int": 5, "small": small(rank), "large": large(rank)}
    soft = Soft()
    for what, dest, tag, kind, error_class in bad_arguments():
        # The reference: plain mpi4py fails the same way.
        soft(raises, kind, lambda: MPI.Comm.isend(world, 1, dest, tag).wait())  # noqa: B023
        for how, send in sends.items():
            for name, obj in objects.items():
                exc = soft(raises, kind, lambda: send(obj, dest, tag))  # noqa: B023
                if isinstance(exc, MPI.Exception):
                    got = exc.Get_error_class()
                    soft.true(
                        got == error_class,
                        f"{how} of {name} with {what}: error class {got} "
                        f"({exc.Get_error_string()}), expected {error_class}",
                    )
    soft.done()
    assert_nothing_pending()
    assert_comm_works()


# -- (e) a plain mpi4py receive of a large pkl5shim message ----------------------
# The plain receive consumes the header and raises; the payload the header
# announced is then left on the channel and the sender's isend cannot complete.
# No pkl5shim call can fetch it any more (the header is gone), so the receiver
# drains the channel itself: the sender follows its isend by a sentinel on the
# channel, and since MPI does not let messages from one sender overtake each
# other for an ANY_TAG receive, everything before the sentinel is the payload.
SENTINEL_TAG = TAG_UB  # channel tags count up from 1: TAG_UB is not in use


def drain_channel(wrapped, source):
    channel = channel_of(wrapped)
    status = MPI.Status()
    while True:
        message = channel.Mprobe(source, MPI.ANY_TAG, status)
        message.Recv(bytearray(status.Get_count(MPI.BYTE)))
        if status.Get_tag() == SENTINEL_TAG:
            return


def unwrapped_receive_case(plain, wrapped, receive):
    obj = large(rank)
    request = wrapped.isend(obj, right, TAG)
    sentinel = MPI.Comm.Isend(channel_of(wrapped), b"", right, SENTINEL_TAG)
    soft = Soft()
    exc = soft(raises, pkl5shim.UnwrappedReceiveError, lambda: receive(plain, left, TAG),
               "not wrapped by pkl5shim", "pkl5shim.wrap(comm)")  # fmt: skip
    soft.true(exc is None or isinstance(exc, pkl5shim.Pkl5Error), "not a Pkl5Error")
    # whatever the receive did, the payload is still on the channel: take it off
    drain_channel(wrapped, left)
    request.wait()
    sentinel.Wait()
    soft.done()
    assert_nothing_pending(wrapped)
    assert_comm_works(wrapped)


PLAIN_RECEIVES = {
    "recv": lambda plain, source, tag: MPI.Comm.recv(plain, source=source, tag=tag),
    "irecv().wait()": lambda plain, source, tag: MPI.Comm.irecv(
        plain, source=source, tag=tag
    ).wait(),
}


def check_plain_receive_of_large_message_raises_unwrapped_receive_error():
    # On MPI.COMM_WORLD itself, the handle common.comm wraps.
    for receive in PLAIN_RECEIVES.values():
        unwrapped_receive_case(world, comm, receive)
    assert_comm_works()


def check_unwrapped_receive_on_a_dedicated_duplicate_then_free_it():
    plain = world.Dup()
    wrapped = pkl5shim.Intracomm(plain)
    for receive in PLAIN_RECEIVES.values():
        unwrapped_receive_case(plain, wrapped, receive)
    channel = channel_of(wrapped)
    wrapped.Free()
    assert channel == MPI.COMM_NULL, "freeing the communicator did not free its channel"
    assert_comm_works()


# -- (f) interoperability with plain mpi4py for small objects --------------------
def plain_objects(r):
    return {
        "int": r,
        "dict": small(r),
        "small array": np.arange(100 + r, dtype=np.int32),
        "bytes just below the eager limit": bytes([r % 256]) * (settings.eager_limit - 64),
    }


def check_plain_mpi4py_sender_is_received_by_pkl5shim():
    receives = dict(RECEIVES)
    receives["recv ANY_SOURCE"] = lambda source, tag: comm.recv(source=MPI.ANY_SOURCE, tag=tag)
    receives["irecv ANY_SOURCE"] = lambda source, tag: comm.irecv(tag=tag).wait()
    soft = Soft()
    for how, receive in receives.items():
        for what, obj in plain_objects(rank).items():
            request = world.isend(obj, right, TAG)
            got = receive(left, TAG)
            request.wait()
            expected = plain_objects(left)[what]
            soft(expect_same, got, expected, f"plain isend of {what}, pkl5shim {how}")
    # Blocking plain send, posted after the receive (so that one rank is enough).
    for what, obj in plain_objects(rank).items():
        request = comm.irecv(source=left, tag=TAG)
        world.send(obj, right, TAG)
        soft(expect_same, request.wait(), plain_objects(left)[what], f"plain send of {what}")
    soft.done()
    assert_comm_works()


def check_small_pkl5shim_message_is_received_by_plain_mpi4py():
    soft = Soft()
    for what, obj in plain_objects(rank).items():
        request = comm.isend(obj, right, TAG)
        got = world.recv(source=left, tag=TAG)
        request.wait()
        expected = plain_objects(left)[what]
        soft(expect_same, got, expected, f"pkl5shim isend of {what}, plain recv")
    soft.done()
    assert_comm_works()
