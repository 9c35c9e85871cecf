"""Fuzzing the receive side's decoders in one process (hypothesis).

Every input must either decode to a valid header (or table, or collective
piece) or raise ``WireError``: never another exception, and never a large
allocation (measured with ``tracemalloc``, which also sees numpy's memory).
``FUZZ_EXAMPLES=20000 pytest tests/test_fuzz_wire.py`` runs a deeper search.
"""

from __future__ import annotations

import os
import pickle
import struct
import tracemalloc
from collections.abc import Callable
from typing import Any

from engine_receive import inside_receive
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pkl5shim import WireError, collectives, wire
from pkl5shim.config import settings as pkl5_settings

FIELDS = struct.Struct("<4sBBHiiqqq")
SUFFIX = wire.encode(wire.Header(0, 1, 0, 0, 0))[-3:]
ALLOCATION_LIMIT = 1 << 20
"""Bytes a decoder may allocate for any input (the largest valid input is ~1 KiB)."""

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "500")),  # more for a deeper run
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def small_allocation(call: Callable[[], Any]) -> Any:
    """Run ``call``; fail if it allocated more than ``ALLOCATION_LIMIT`` at its peak.

    Traced around the call only: hypothesis itself runs much slower traced.
    """
    tracemalloc.start()
    try:
        return call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak <= ALLOCATION_LIMIT, f"allocated {peak} bytes"


def decoded_or_wire_error(call: Callable[[], Any]) -> Any:
    """The result of ``call``, or ``None`` if it raised ``WireError`` (anything else fails)."""
    try:
        return small_allocation(call)
    except WireError:
        return None


def as_inputs(data: bytes) -> list[bytes | memoryview]:
    """The forms a received message takes in the engine: bytes and a byte memoryview."""
    return [data, memoryview(bytearray(data))]


def valid_fields(values: tuple[Any, ...], kind: int = 0) -> bool:
    """What the protocol accepts (docs/protocol.md), written independently of wire.py."""
    magic, version, got_kind, _flags, source, tag, nbuffers, stream, total = values
    return (
        magic == wire.MAGIC
        and version == wire.VERSION
        and got_kind == kind
        and source >= 0
        and tag >= 1
        and 0 <= nbuffers <= wire.MAX_BUFFERS
        and 0 <= stream <= total <= pkl5_settings.max_message
    )


def header_bytes(values: tuple[Any, ...]) -> bytes:
    return wire.PREFIX + FIELDS.pack(*values) + SUFFIX


def inline_header_bytes(values: tuple[Any, ...], inline: bytes) -> bytes:
    """An inline header: BINBYTES of the table and stream, then TUPLE2 REDUCE STOP."""
    start = b"B" + struct.pack("<I", len(inline))
    return wire.PREFIX + FIELDS.pack(*values) + start + inline + b"\x86R."


def valid_inline(values: tuple[Any, ...], inline: bytes) -> bool:
    """An inline header is valid when its fields are, and its section holds a table that
    adds up to the buffers' bytes followed by exactly the stream."""
    nbuffers, stream, total = values[6:]
    if not valid_fields(values, kind=1) or len(inline) != 8 * nbuffers + stream:
        return False
    sizes = struct.unpack(f"<{nbuffers}q", inline[: 8 * nbuffers])
    return all(size >= 0 for size in sizes) and sum(sizes) == total - stream


def without_reserved(data: bytes) -> bytes:
    """``data`` with the reserved flags field zeroed (receivers ignore it)."""
    start = len(wire.PREFIX) + 6
    return data[:start] + bytes(2) + data[start + 2 :] if len(data) >= start + 2 else data


i32 = st.integers(-(1 << 31), (1 << 31) - 1)
i64 = st.integers(-(1 << 63), (1 << 63) - 1)
small_i64 = st.one_of(st.integers(-3, 1 << 20), i64, st.sampled_from([0, 1, 1 << 62, -(1 << 63)]))
field_values = st.tuples(
    st.one_of(st.just(wire.MAGIC), st.binary(min_size=4, max_size=4)),
    st.one_of(st.just(wire.VERSION), st.integers(0, 255)),
    st.integers(0, 255),
    st.integers(0, 65535),
    st.one_of(st.integers(-2, 8), i32),
    st.one_of(st.integers(-2, 8), i32),
    st.one_of(st.integers(-2, 8), st.just(wire.MAX_BUFFERS + 1), i64),
    small_i64,
    small_i64,
)


@st.composite
def valid_headers(draw: st.DrawFn) -> wire.Header:
    """A valid header, with its table and stream inline or not."""
    nbuffers = draw(st.integers(0, 100))
    sizes = draw(st.lists(st.integers(0, 1 << 30), min_size=nbuffers, max_size=nbuffers))
    inline = draw(st.booleans())
    stream = draw(st.binary(max_size=300)) if inline else b""
    stream_nbytes = len(stream) if inline else draw(st.integers(0, 1 << 20))
    return wire.Header(
        source=draw(st.integers(0, 1000)),
        channel_tag=draw(st.integers(1, 1 << 29)),
        nbuffers=nbuffers,
        stream_nbytes=stream_nbytes,
        total_nbytes=stream_nbytes + sum(sizes),
        inline=wire.encode_table(sizes) + stream if inline else None,
    )


@st.composite
def mutated_headers(draw: st.DrawFn) -> bytes:
    """A valid header with some bytes replaced, cut off or appended."""
    message = bytearray(wire.encode(draw(valid_headers())))
    for _ in range(draw(st.integers(0, 4))):
        position = draw(st.integers(0, len(message) - 1))
        message[position] = draw(st.integers(0, 255))
    if draw(st.booleans()):  # full length: only the replaced bytes are wrong
        return bytes(message)
    cut = draw(st.integers(0, len(message)))
    return bytes(message[:cut]) + draw(st.binary(max_size=8))


# -- the header -------------------------------------------------------------------
@FUZZ
@given(st.binary(max_size=2 * wire.HEADER_SIZE))
def test_random_bytes_decode_or_wire_error(data: bytes) -> None:
    for message in as_inputs(data):
        header = decoded_or_wire_error(lambda: wire.decode(message))  # noqa: B023
        if header is not None:  # only a genuine header decodes: it encodes back to the input
            assert wire.encode(header) == without_reserved(data)


@FUZZ
@given(mutated_headers())
def test_corrupted_headers_decode_or_wire_error(data: bytes) -> None:
    for message in as_inputs(data):
        header = decoded_or_wire_error(lambda: wire.decode(message))  # noqa: B023
        if header is not None:
            assert wire.encode(header) == without_reserved(data)


@FUZZ
@given(field_values)
def test_header_fields_accepted_exactly_when_valid(values: tuple[Any, ...]) -> None:
    data = header_bytes(values)
    header = decoded_or_wire_error(lambda: wire.decode(data))
    assert (header is not None) == valid_fields(values), values
    if header is not None:
        assert wire.encode(header) == without_reserved(data)


@FUZZ
@given(field_values, st.binary(max_size=200), st.lists(st.integers(-3, 1 << 40), max_size=4))
def test_inline_headers_accepted_exactly_when_valid(
    values: tuple[Any, ...], stream: bytes, sizes: list[int]
) -> None:
    values = (*values[:2], 1, *values[3:])  # kind 1: inline
    inline = struct.pack(f"<{len(sizes)}q", *sizes) + stream
    data = inline_header_bytes(values, inline)
    header = decoded_or_wire_error(lambda: wire.decode(data))
    assert (header is not None) == valid_inline(values, inline), (values, inline)
    if header is not None:
        assert header.inline == inline and wire.encode(header) == without_reserved(data)


@FUZZ
@given(valid_headers())
def test_valid_headers_round_trip_through_bytes_and_pickle(header: wire.Header) -> None:
    message = wire.encode(header)
    assert wire.is_header(message)
    for data in as_inputs(message):
        assert wire.decode(data) == header
    assert inside_receive(pickle.loads, message) == header


@FUZZ
@given(st.one_of(st.binary(max_size=2 * wire.HEADER_SIZE), mutated_headers()))
def test_is_header_never_raises(data: bytes) -> None:
    for message in as_inputs(data):
        assert wire.is_header(message) == data.startswith(wire.PREFIX)


anything = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=50),
        st.binary(max_size=60), st.builds(lambda v: header_bytes(v)[41:81], field_values),
        st.builds(lambda v: header_bytes((*v[:2], 1, *v[3:]))[41:81], field_values),
    ),
    lambda children: st.lists(children, max_size=3) | st.tuples(children, children),
    max_leaves=5,
)  # fmt: skip


@FUZZ
@given(st.lists(anything, max_size=3))
def test_pickled_header_call_with_any_arguments(arguments: list[Any]) -> None:
    """A crafted pickle may call ``_header_from_pickle`` with anything (blocking recv path)."""
    stream = (
        wire.PREFIX[: -len(b"C(")]  # PROTO, module, name, STACK_GLOBAL
        + pickle.dumps(tuple(arguments), protocol=5)[2:-1]  # the arguments, no PROTO, STOP
        + b"R."  # REDUCE STOP
    )
    header = decoded_or_wire_error(lambda: inside_receive(pickle.loads, stream))
    if header is not None:
        assert isinstance(header, wire.Header) and wire.decode(wire.encode(header)) == header


# -- the size table ---------------------------------------------------------------
@st.composite
def headers_and_tables(draw: st.DrawFn) -> tuple[wire.Header, bytes]:
    nbuffers = draw(st.integers(0, 64))
    buffers = draw(st.integers(0, 1 << 40))
    header = wire.Header(0, 1, nbuffers, 10, 10 + buffers)
    if draw(st.booleans()):  # a well-formed table, perhaps with one size changed
        sizes = [buffers // max(nbuffers, 1)] * nbuffers
        if sizes:
            sizes[-1] += buffers - sum(sizes)
            sizes[draw(st.integers(0, nbuffers - 1))] += draw(st.sampled_from([0, 0, 1, -1]))
        table = wire.encode_table(sizes)
    else:
        table = draw(st.binary(max_size=8 * 65))
    return header, table


@FUZZ
@given(headers_and_tables())
def test_random_tables_decode_or_wire_error(case: tuple[wire.Header, bytes]) -> None:
    header, table = case
    for message in as_inputs(table):
        sizes = decoded_or_wire_error(lambda: wire.decode_table(message, header))  # noqa: B023
        if sizes is not None:
            assert len(sizes) == header.nbuffers
            assert all(size >= 0 for size in sizes)
            assert sum(sizes) == header.buffers_nbytes


@FUZZ
@given(st.builds(wire.Header, i32, i32, i64, i64, i64), st.binary(max_size=64))
def test_table_against_any_header_object(header: wire.Header, table: bytes) -> None:
    sizes = decoded_or_wire_error(lambda: wire.decode_table(table, header))
    if sizes is not None:
        assert len(sizes) == header.nbuffers and sum(sizes) == header.buffers_nbytes


# -- the padded block of a broadcast collective ------------------------------------
@st.composite
def blocks(draw: st.DrawFn) -> bytes:
    """Random first blocks: random bytes, or a (maybe corrupted) header or plain block
    and random padding."""
    choice = draw(st.integers(0, 2))
    if choice == 0:
        return draw(st.binary(max_size=1100))
    if choice == 1:
        return draw(mutated_headers()) + draw(st.binary(max_size=1100))
    stream = draw(st.binary(max_size=64))
    header = wire.Header(0, wire.BROADCAST_TAG, 0, len(stream), len(stream), stream)
    block = wire.encode_block(header, 128)
    for _ in range(draw(st.integers(0, 3))):
        block[draw(st.integers(0, 15))] = draw(st.integers(0, 255))
    return bytes(block[: draw(st.integers(0, len(block)))])


@FUZZ
@given(blocks(), st.binary(max_size=4096))
def test_collective_blocks_decode_or_wire_error(block: bytes, rest: bytes) -> None:
    """A broadcast's padded header, and the table of a section that arrived later."""

    def parse() -> collectives.Arrival:
        item = collectives.Arrival(wire.decode_block(memoryview(bytearray(block)), 0))
        section = item.section()
        if section and sum(section) <= 1 << 16:  # larger: valid, too large to simulate
            # bcast and allgather receive exactly these byte counts
            data, parts = rest.ljust(sum(section), b"\0"), []
            for nbytes in section:
                parts.append(data[:nbytes])
                data = data[nbytes:]
            item.take_section(parts)
        return item

    item = decoded_or_wire_error(parse)
    if item is None:
        return
    header = item.header
    assert header.source == 0 and header.total_nbytes <= pkl5_settings.max_message
    assert (item.failure is not None) == header.failed
    if item.sizes:
        assert len(item.sizes) == header.nbuffers and all(size >= 0 for size in item.sizes)
        assert sum(item.sizes) == header.buffers_nbytes
    assert wire.decode(wire.encode(header)) == header
