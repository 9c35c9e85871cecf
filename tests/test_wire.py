"""The wire format in one process: encoding, recognition and every validation error."""

from __future__ import annotations

import pickle
import struct

import pytest

from pkl5shim import UnwrappedReceiveError, WireError, wire


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
    wire.receiving.active = True
    try:
        assert pickle.loads(wire.encode(header())) == header()
    finally:
        wire.receiving.active = False


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
