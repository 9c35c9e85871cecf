"""The wire format in one process: encoding, recognition and every validation error."""

from __future__ import annotations

import dataclasses
import pickle
import struct

import pytest
from engine_receive import inside_receive

from pkl5shim import UnwrappedReceiveError, WireError, wire
from pkl5shim.config import settings


def header(**fields: int) -> wire.Header:
    values = dict(source=1, channel_tag=7, nbuffers=2, stream_nbytes=100, total_nbytes=1100)
    values.update(fields)
    return wire.Header(**values)


def raw_fields(message: bytes) -> bytearray:
    return bytearray(message[len(wire.PREFIX) : len(wire.PREFIX) + 40])


def with_fields(fields: bytes) -> bytes:
    return wire.PREFIX + bytes(fields) + wire.encode(header())[-3:]


def test_round_trip_and_fixed_size() -> None:
    message = wire.encode(header())
    assert len(message) == wire.HEADER_SIZE == 84
    assert wire.is_header(message)
    assert wire.decode(message) == header()


def test_header_is_a_pickle_that_refuses_plain_receives() -> None:
    with pytest.raises(UnwrappedReceiveError, match="not wrapped by pkl5shim"):
        pickle.loads(wire.encode(header()))
    assert inside_receive(pickle.loads, wire.encode(header())) == header()


@pytest.mark.parametrize("obj", [None, 1, "pkl5shim.wire", b"P5SH", {"a": [1, 2]}, (1,) * 50])
def test_plain_pickles_are_not_headers(obj: object) -> None:
    assert not wire.is_header(pickle.dumps(obj, 5))


def test_truncated_header() -> None:
    with pytest.raises(WireError, match="84"):
        wire.decode(wire.encode(header())[:-5])


def test_wrong_magic() -> None:
    fields = raw_fields(wire.encode(header()))
    fields[0:4] = b"XXXX"
    with pytest.raises(WireError, match="magic"):
        wire.decode(with_fields(fields))


def test_wrong_version() -> None:
    fields = raw_fields(wire.encode(header()))
    fields[4] = 9
    with pytest.raises(WireError, match="version 9"):
        wire.decode(with_fields(fields))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        (dict(nbuffers=-1), "buffers"),
        (dict(nbuffers=wire.MAX_BUFFERS + 1), "buffers"),
        (dict(stream_nbytes=-5), "inconsistent"),
        (dict(total_nbytes=10), "inconsistent"),
        (dict(total_nbytes=2**62), "PKL5_MAX_MESSAGE"),
        (dict(channel_tag=0), "channel tag"),
        (dict(source=-3), "source"),
    ],
)
def test_invalid_sizes(changes: dict[str, int], match: str) -> None:
    with pytest.raises(WireError, match=match):
        wire.decode(wire.encode(header(**changes)))


def test_table_round_trip_and_checks() -> None:
    good = header(nbuffers=2, stream_nbytes=100, total_nbytes=1100)
    assert wire.decode_table(wire.encode_table([400, 600]), good) == [400, 600]
    with pytest.raises(WireError, match="does not add up"):
        wire.decode_table(wire.encode_table([400, 601]), good)
    with pytest.raises(WireError, match="does not add up"):
        wire.decode_table(wire.encode_table([-1, 1001]), good)
    with pytest.raises(WireError, match="size table of 8 bytes"):
        wire.decode_table(struct.pack("<q", 1000), good)


# -- inline headers: the size table and the stream inside the header message -------
def inline_header(sizes: list[int], stream: bytes) -> wire.Header:
    return wire.Header(
        source=1, channel_tag=7, nbuffers=len(sizes), stream_nbytes=len(stream),
        total_nbytes=len(stream) + sum(sizes), inline=wire.encode_table(sizes) + stream,
    )  # fmt: skip


def test_inline_round_trip_and_size() -> None:
    header = inline_header([400, 600], b"s" * 150)
    message = wire.encode(header)
    assert len(message) == wire.INLINE_OVERHEAD + 16 + 150 == wire.HEADER_SIZE + 5 + 16 + 150
    assert wire.is_header(message) and wire.decode(message) == header
    assert message[len(wire.PREFIX) + 5] == wire.INLINE  # the kind field
    assert header.inline_parts() == (wire.encode_table([400, 600]), b"s" * 150)
    assert inside_receive(pickle.loads, message) == header
    with pytest.raises(UnwrappedReceiveError, match="not wrapped by pkl5shim"):
        pickle.loads(message)


@pytest.mark.parametrize("eager", [2048, 64 * 1024])
def test_fits_inline_within_the_eager_limit_and_32_kib(
    eager: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wire, "settings", dataclasses.replace(settings, eager_limit=eager))
    limit = min(eager, 32 * 1024)  # plain mpi4py's irecv() posts 32 KiB
    room = limit - wire.INLINE_OVERHEAD
    assert wire.fits_inline(2, room - 16)
    assert not wire.fits_inline(2, room - 15)
    assert len(wire.encode(inline_header([1, 2], b"x" * (room - 16)))) == limit


@pytest.mark.parametrize(
    ("mangle", "match"),
    [
        (lambda m: m[:-1], "bytes after its fields"),
        (lambda m: m[:-40], "bytes after its fields"),
        (lambda m: m[: wire.HEADER_SIZE], "bytes after its fields"),
        (lambda m: m + b"x", "bytes after its fields"),
        (lambda m: m[:81] + b"C" + m[82:], "corrupted table and stream"),  # not BINBYTES
        (lambda m: m[:82] + struct.pack("<I", 165) + m[86:], "corrupted table and stream"),
        (lambda m: m[:-3] + b"\x85R.", "end marker"),
    ],
)
def test_corrupted_inline_header(mangle: object, match: str) -> None:
    message = wire.encode(inline_header([400, 600], b"s" * 150))
    with pytest.raises(WireError, match=match):
        wire.decode(mangle(message))  # type: ignore[operator]


def test_inline_table_must_add_up() -> None:
    header = inline_header([400, 600], b"s" * 150)
    bad = wire.Header(*[getattr(header, f) for f in ("source", "channel_tag", "nbuffers",
                                                      "stream_nbytes", "total_nbytes")],
                      inline=wire.encode_table([400, 601]) + b"s" * 150)  # fmt: skip
    with pytest.raises(WireError, match="does not add up"):
        wire.decode(wire.encode(bad))


def test_unknown_kind_and_mismatched_sections() -> None:
    fields = raw_fields(wire.encode(header()))
    fields[5] = 2
    with pytest.raises(WireError, match="unknown kind 2"):
        wire.decode(with_fields(fields))
    fields[5] = wire.INLINE  # kind 1 without its inline section
    with pytest.raises(WireError, match="bytes after its fields"):
        wire.decode(with_fields(fields))
    with pytest.raises(WireError, match="without its table and stream"):
        inside_receive(wire._header_from_pickle, bytes(fields))
    fields[5] = wire.CHANNEL
    with pytest.raises(WireError, match="kind 0 with an inline section"):
        inside_receive(wire._header_from_pickle, bytes(fields), b"")
    with pytest.raises(WireError, match="3 arguments"):
        inside_receive(wire._header_from_pickle, bytes(fields), b"", b"")


def test_a_small_object_without_buffers_travels_as_a_plain_block() -> None:
    stream = pickle.dumps({"a": 1}, protocol=5)
    header = wire.Header(3, wire.BROADCAST_TAG, 0, len(stream), len(stream), stream)
    block = wire.encode_block(header, 1024)
    assert len(block) == 1024 and block[:4] == wire.MAGIC and block[5] == wire.PLAIN
    assert block[12 : 12 + len(stream)] == stream  # the stream itself, not a header pickle
    assert wire.decode_block(block, 3) == header
    table = wire.encode_table([8])
    with_buffers = header._replace(nbuffers=1, total_nbytes=len(stream) + 8, inline=table + stream)
    assert wire.decode_block(wire.encode_block(with_buffers, 1024), 3) == with_buffers
    failure = wire.failure(3, "it broke")
    assert wire.decode_block(wire.encode_block(failure, 1024), 3) == failure
    with pytest.raises(WireError, match="names source 3 but came from 4"):
        wire.decode_block(wire.encode_block(with_buffers, 1024), 4)


def test_plain_block_holds_a_stream_up_to_the_block_less_its_head() -> None:
    fits, too_long = b"x" * (1024 - 12), b"x" * (1024 - 11)
    block = wire.plain_block(fits, 1024)
    assert block is not None and len(block) == 1024
    stream = wire.plain_stream(block)
    assert isinstance(stream, memoryview) and bytes(stream) == fits
    assert wire.plain_block(too_long, 1024) is None
    header = wire.Header(3, wire.BROADCAST_TAG, 1, 4, 12, wire.encode_table([8]) + b"abcd")
    assert wire.plain_stream(wire.encode_block(header, 1024)) is None  # not a plain block
    assert wire.plain_stream(wire.encode_block(wire.failure(3, "it broke"), 1024)) is None


def test_corrupted_plain_blocks() -> None:
    header = wire.Header(0, wire.BROADCAST_TAG, 0, 5, 5, b"hello")
    block = wire.encode_block(header, 64)
    too_long = bytearray(block)
    too_long[8:12] = (60).to_bytes(4, "little")
    with pytest.raises(WireError, match="stream of 60 bytes in a block of 64"):
        wire.decode_block(too_long, 0)
    old = bytearray(block)
    old[4] = wire.VERSION - 1
    with pytest.raises(WireError, match=f"wire version {wire.VERSION - 1} received"):
        wire.decode_block(old, 0)
    with pytest.raises(WireError, match="block of 8 bytes"):
        wire.decode_block(block[:8], 0)
    garbage = bytearray(64)
    with pytest.raises(WireError):
        wire.decode_block(garbage, 0)
