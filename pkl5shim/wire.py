"""The frames of the engine: one header format for point-to-point and collectives.

An object that does not travel plain (see ``codec.travels_plain``) travels as a
*header* and then, on the communicator's private channel, the parts its header
announces.  The table of buffer sizes and the pickle stream go *inline*, in the
header message itself, when they fit; otherwise the header has a fixed size and
they go first on the channel.  A *failure* header carries, inline, why a rank
could not send its object in a collective.  Point-to-point headers travel on the
user's (communicator, tag); collectives send the same headers on the channel
(``allgather`` in fixed-size blocks, ``padded``).  The header is
itself a valid pickle stream whose only instruction is a call to
``pkl5shim.wire._header_from_pickle``: mpi4py's own C ``recv`` can receive it,
and a receive that is not pkl5shim's fails with a message naming the fix.
See docs/protocol.md.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable
from types import CodeType
from typing import Any, NamedTuple

from .config import settings
from .errors import UnwrappedReceiveError, WireError

MAGIC = b"P5SH"
VERSION = 5
"""Version 5: ``bcast`` sends its first message (a plain pickle or a header) down a
binomial tree on the channel; only ``allgather`` sends blocks (version 4: a block holds
the header of a small object without buffers in the compact form ``PLAIN``; version 3:
collectives use these headers too, and a failure has a kind of its own)."""
CHANNEL = 0
"""Header kind: the table and the stream follow on the channel (fixed-size header)."""
INLINE = 1
"""Header kind: the table and the stream are inside the header message."""
FAILURE = 3
"""Header kind: inline, the UTF-8 description of a rank's failure in a collective
(kind 2 is unassigned: it was the unknown kind of version 2)."""
PLAIN = 4
"""Block kind, in ``allgather``'s blocks only: an inline header without buffers written
compactly, as magic, version, kind, flags, the stream's length (u32) and the stream."""
_KINDS = (CHANNEL, INLINE, FAILURE)
MAX_BUFFERS = 1 << 24
"""Most out-of-band buffers one message may announce."""

_FIELDS = struct.Struct("<4sBBHiiqqq")
_PLAIN_BLOCK = struct.Struct("<4sBBHI")
_MODULE = __name__.encode()
_FUNCTION = b"_header_from_pickle"
# PROTO 5, SHORT_BINUNICODE module, SHORT_BINUNICODE name, STACK_GLOBAL,
# SHORT_BINBYTES <fields>, TUPLE1, REDUCE, STOP
PREFIX = (
    b"\x80\x05"
    + b"\x8c" + bytes([len(_MODULE)]) + _MODULE
    + b"\x8c" + bytes([len(_FUNCTION)]) + _FUNCTION
    + b"\x93C" + bytes([_FIELDS.size])
)  # fmt: skip
_SUFFIX = b"\x85R."
_FIELDS_START = len(PREFIX)
_FIELDS_END = _FIELDS_START + _FIELDS.size
_PREFIX_AND_FIELDS = struct.Struct(f"<{len(PREFIX)}s{_FIELDS.format[1:]}")
HEADER_SIZE = _FIELDS_END + len(_SUFFIX)
"""Bytes of a header whose table and stream travel on the channel."""
# An inline header: after the fields, BINBYTES <u32 length> <table + stream>, then
# TUPLE2 REDUCE STOP: the pickle calls _header_from_pickle(fields, inline).
_INLINE_START = struct.Struct("<cI")
_INLINE_START_END = _FIELDS_END + _INLINE_START.size
_INLINE_SUFFIX = b"\x86R."
_INLINE_HEAD = struct.Struct(f"<{len(PREFIX)}s{_FIELDS.format[1:]}{_INLINE_START.format[1:]}")
"""The prefix, the fields and the start of the inline section, packed in one call."""
INLINE_OVERHEAD = len(PREFIX) + _FIELDS.size + _INLINE_START.size + len(_INLINE_SUFFIX)
"""Bytes of an inline header besides its table and stream."""


class Header(NamedTuple):
    """What a receiver needs to fetch a large message from the channel (immutable)."""

    source: int
    channel_tag: int
    nbuffers: int
    stream_nbytes: int
    total_nbytes: int
    inline: bytes | None = None
    """The size table and the stream, when they travel in the header message."""
    failed: bool = False
    """A failure header: ``inline`` is the description (``failure_text``)."""

    @property
    def buffers_nbytes(self) -> int:
        """Bytes in the out-of-band buffers together."""
        return self.total_nbytes - self.stream_nbytes

    def inline_parts(self) -> tuple[bytes, bytes]:
        """The size table and the stream of an inline header."""
        assert self.inline is not None
        split = table_nbytes(self)
        return self.inline[:split], self.inline[split:]

    def inline_payload(self) -> tuple[list[int], bytes]:
        """The buffer sizes and the stream of an inline header that ``decode`` checked (the
        table is not checked again: 0.8 us less per message than ``decode_table``, measured)."""
        inline, nbuffers = self.inline, self.nbuffers
        assert inline is not None
        if nbuffers == 1:  # the common case, as in decode_table
            return list(_TABLE_ITEM.unpack_from(inline)), inline[_TABLE_ITEM.size :]
        split = nbuffers * _TABLE_ITEM.size
        return list(struct.unpack_from(f"<{nbuffers}q", inline)), inline[split:]

    @property
    def failure_text(self) -> str:
        """What a failure header says."""
        assert self.failed and self.inline is not None
        return self.inline.decode(errors="replace")


def failure(source: int, text: str) -> Header:
    """A failure header: its receivers raise ``RemoteError`` saying ``text``."""
    data = text.encode()
    return Header(source, BROADCAST_TAG, 0, len(data), len(data), data, failed=True)


BROADCAST_TAG = 1
"""The channel tag of headers whose parts follow by MPI's collectives (``bcast``,
``allgather``) or that announce none (failures): tags do not apply there."""


def frame(
    source: int, channel_tag: int, parts: tuple[Any, list[Any]], limit: int
) -> tuple[Header, list[Any]]:
    """The header of a pickled object, and the parts that follow it in order.

    The table and the stream go inline when the header then fits ``limit`` bytes;
    otherwise the table (if there are buffers) and the stream follow, then the buffers.
    """
    stream, buffers = parts
    nbytes = len(stream)
    if not buffers and INLINE_OVERHEAD + nbytes <= limit:  # the common small case: no copy
        return Header(source, channel_tag, 0, nbytes, nbytes, stream), []
    sizes = [memoryview(buffer).nbytes for buffer in buffers]
    table = encode_table(sizes) if sizes else b""
    # fits_inline's sum, written out: a call per message cost 0.1 us (measured)
    inline = INLINE_OVERHEAD + len(table) + nbytes <= limit
    header = Header(
        source, channel_tag, len(sizes), nbytes, nbytes + sum(sizes),
        table + stream if inline else None,
    )  # fmt: skip
    if inline:
        return header, list(buffers)
    return header, ([table, stream, *buffers] if buffers else [stream])


def encode(header: Header) -> bytes:
    """Return the bytes of ``header`` as they travel."""
    source, channel_tag, nbuffers, stream_nbytes, total_nbytes, inline, failed = header
    kind = FAILURE if failed else CHANNEL if inline is None else INLINE
    fields = (MAGIC, VERSION, kind, 0, source, channel_tag, nbuffers, stream_nbytes, total_nbytes)
    if inline is None:
        return _PREFIX_AND_FIELDS.pack(PREFIX, *fields) + _SUFFIX
    return b"".join((_INLINE_HEAD.pack(PREFIX, *fields, b"B", len(inline)), inline, _INLINE_SUFFIX))


PLAIN_IRECV_NBYTES = 32 * 1024
"""What plain mpi4py's ``irecv()`` posts: an inline header stays within it, so that a
rank which does not use pkl5shim gets ``UnwrappedReceiveError``, not a truncation."""


def point_to_point_limit() -> int:
    """Largest point-to-point header: ``PKL5_EAGER`` (what pkl5shim's ``irecv`` posts) and
    32 KiB."""
    return min(settings.eager_limit, PLAIN_IRECV_NBYTES)


def fits_inline(nbuffers: int, stream_nbytes: int, limit: int | None = None) -> bool:
    """Whether an object's table and stream fit in a header message of ``limit`` bytes
    (by default the point-to-point limit)."""
    if limit is None:
        limit = point_to_point_limit()
    return INLINE_OVERHEAD + 8 * nbuffers + stream_nbytes <= limit


_PREFIX_NBYTES = len(PREFIX)
_PREFIX_THIRD = PREFIX[2]
"""The byte where headers and plain pickles differ first (``FRAME`` in most pickles)."""


def is_header(message: bytes | memoryview) -> bool:
    """Tell whether a received first message is a header (not a plain pickle)."""
    # The third byte first: comparing a slice of a memoryview took 0.15 us more.
    return (
        len(message) >= _PREFIX_NBYTES
        and message[2] == _PREFIX_THIRD
        and message[:_PREFIX_NBYTES] == PREFIX
    )


def decode(message: bytes | memoryview, padded: bool = False) -> Header:
    """Parse and validate a header message, as given by ``encode``.

    ``padded``: the header is at the start of a fixed-size block (``allgather``'s);
    the bytes after it are ignored.
    """
    size = len(message)
    if size < HEADER_SIZE:
        raise WireError(
            f"pkl5shim header of {size} bytes, expected at least {HEADER_SIZE} "
            "(truncated or corrupted message)"
        )
    values = _PREFIX_AND_FIELDS.unpack_from(message)
    if values[0] != PREFIX:
        raise WireError("pkl5shim header with a corrupted start (not a pkl5shim header)")
    fields = values[1:]
    _check_fields(fields)
    if fields[2] == CHANNEL:
        if padded:
            size = HEADER_SIZE
        if size != HEADER_SIZE:
            raise WireError(
                f"pkl5shim header of {size} bytes, expected {HEADER_SIZE} (corrupted message)"
            )
        if message[_FIELDS_END:HEADER_SIZE] != _SUFFIX:
            raise WireError("pkl5shim header with a corrupted end marker")
        return Header(*fields[4:])
    nbytes = fields[6] * _TABLE_ITEM.size + fields[7]  # the table and the stream
    stop = _INLINE_START_END + nbytes + len(_INLINE_SUFFIX)
    if padded and size > stop:
        size = stop
    if size != stop:
        raise WireError(
            f"pkl5shim inline header with {size - _FIELDS_END} bytes after its fields, "
            f"expected {stop - _FIELDS_END} (truncated or corrupted message)"
        )
    opcode, length = _INLINE_START.unpack_from(message, _FIELDS_END)
    if opcode != b"B" or length != nbytes:
        raise WireError("pkl5shim inline header with a corrupted table and stream section")
    if message[stop - len(_INLINE_SUFFIX) : stop] != _INLINE_SUFFIX:
        raise WireError("pkl5shim header with a corrupted end marker")
    inline = bytes(message[_INLINE_START_END : stop - len(_INLINE_SUFFIX)])
    return _with_inline(fields, inline)


def encode_block(header: Header, size: int) -> bytearray:
    """``header`` at the start of a block of ``size`` bytes (``allgather``'s first message).

    A header whose stream is inline and that announces no buffers is written as a
    ``PLAIN`` block; any other as ``encode`` makes it, padded.
    """
    inline = header.inline
    if inline is not None and not header.nbuffers and not header.failed:
        plain = plain_block(inline, size)
        if plain is not None:
            return plain
    block = bytearray(size)
    message = encode(header)
    block[: len(message)] = message
    return block


def plain_block(stream: bytes, size: int) -> bytearray | None:
    """The ``PLAIN`` block of ``size`` bytes holding ``stream``; ``None`` if it does not fit."""
    end = _PLAIN_BLOCK.size + len(stream)
    if end > size:
        return None
    block = bytearray(size)
    _PLAIN_BLOCK.pack_into(block, 0, MAGIC, VERSION, PLAIN, 0, len(stream))
    block[_PLAIN_BLOCK.size : end] = stream
    return block


def plain_stream(block: bytes | bytearray | memoryview) -> memoryview | None:
    """The stream inside a ``PLAIN`` block (a view, not a copy); ``None`` for a block of
    another kind.  A ``PLAIN`` block of another version or too short raises ``WireError``."""
    if len(block) < _PLAIN_BLOCK.size:
        raise WireError(f"pkl5shim block of {len(block)} bytes (truncated or corrupted message)")
    magic, version, kind, _flags, nbytes = _PLAIN_BLOCK.unpack_from(block)
    if magic != MAGIC or kind != PLAIN:
        return None
    _check_version(version)
    end = _PLAIN_BLOCK.size + nbytes
    if end > len(block):
        raise WireError(
            f"pkl5shim plain block announces a stream of {nbytes} bytes in a block of "
            f"{len(block)} (corrupted message)"
        )
    return memoryview(block)[_PLAIN_BLOCK.size : end]


def decode_block(block: bytes | bytearray | memoryview, source: int) -> Header:
    """Parse and validate the header of a block from ``source``, as ``encode_block`` made it."""
    stream = plain_stream(block)
    if stream is not None:
        return Header(source, BROADCAST_TAG, 0, len(stream), len(stream), bytes(stream))
    header = decode(block, padded=True)
    if header.source != source:
        raise WireError(f"pkl5shim header names source {header.source} but came from {source}")
    return header


def _with_inline(fields: tuple[Any, ...], inline: bytes) -> Header:
    """The header of checked ``fields`` carrying ``inline``, once its length and its size
    table are checked."""
    kind, source, tag, nbuffers, stream, total = fields[2], *fields[4:]
    table_end = nbuffers * _TABLE_ITEM.size
    if len(inline) != table_end + stream:
        raise WireError(
            f"pkl5shim inline table and stream of {len(inline)} bytes, expected "
            f"{table_end + stream} (corrupted message)"
        )
    if kind == FAILURE and nbuffers:
        raise WireError(f"pkl5shim failure header announces {nbuffers} buffers")
    header = Header(source, tag, nbuffers, stream, total, inline, kind == FAILURE)
    if nbuffers or total != stream:
        decode_table(inline[:table_end], header)
    return header


def _fields_of(fields: object) -> tuple[Any, ...]:
    """The checked values of a header's packed ``fields`` (from its pickle)."""
    if type(fields) is not bytes:  # a crafted pickle may pass anything
        raise WireError(f"pkl5shim header fields of type {type(fields).__name__}, expected bytes")
    if len(fields) != _FIELDS.size:
        raise WireError(f"pkl5shim header fields of {len(fields)} bytes, expected {_FIELDS.size}")
    values = _FIELDS.unpack(fields)
    _check_fields(values)
    return values


def _check_version(version: int) -> None:
    if version != VERSION:
        raise WireError(
            f"pkl5shim wire version {version} received, this pkl5shim speaks "
            f"version {VERSION}: use the same pkl5shim release on every rank"
        )


def _check_fields(values: tuple[Any, ...]) -> None:
    """Raise ``WireError`` unless unpacked header ``values`` are valid (the inline section
    is checked apart)."""
    magic, version, kind, _flags, source, tag, nbuffers, stream, total = values
    if (
        magic == MAGIC
        and version == VERSION
        and kind in _KINDS
        and source >= 0
        and tag >= 1
        and 0 <= nbuffers <= MAX_BUFFERS
        and 0 <= stream <= total <= settings.max_message
    ):  # all at once: the valid header pays one test (0.6 us less, measured)
        return
    if magic != MAGIC:
        raise WireError(f"pkl5shim header with wrong magic {magic!r} (expected {MAGIC!r})")
    _check_version(version)
    if kind not in _KINDS:
        raise WireError(f"pkl5shim header of unknown kind {kind} (expected one of {_KINDS})")
    if source < 0 or tag < 1:
        raise WireError(f"pkl5shim header with invalid source {source} or channel tag {tag}")
    if not 0 <= nbuffers <= MAX_BUFFERS:
        raise WireError(
            f"pkl5shim header announces {nbuffers} buffers (allowed: 0 to {MAX_BUFFERS})"
        )
    if stream < 0 or total < stream:
        raise WireError(
            f"pkl5shim header with inconsistent sizes: stream {stream} bytes, total {total} bytes"
        )
    raise WireError(
        f"pkl5shim header announces {total} bytes, more than "
        f"PKL5_MAX_MESSAGE={settings.max_message}; raise PKL5_MAX_MESSAGE if "
        "this message is expected"
    )


_TABLE_ITEM = struct.Struct("<q")


def encode_table(sizes: list[int]) -> bytes:
    """Return the table of out-of-band buffer sizes."""
    if len(sizes) == 1:  # the common case, as in decode_table
        return _TABLE_ITEM.pack(sizes[0])
    return struct.pack(f"<{len(sizes)}q", *sizes)


def table_nbytes(header: Header) -> int:
    """Size in bytes of the table announced by ``header``."""
    return header.nbuffers * _TABLE_ITEM.size


def decode_table(table: bytes | memoryview, header: Header) -> list[int]:
    """Parse the table of buffer sizes and check it against ``header``."""
    nbuffers, stream_nbytes, total_nbytes = header[2:5]
    if len(table) != table_nbytes(header):
        raise WireError(
            f"pkl5shim size table of {len(table)} bytes, expected {table_nbytes(header)}"
        )
    # one buffer, the common case: a precompiled format (0.5 us less than building one)
    sizes = _TABLE_ITEM.unpack(table) if nbuffers == 1 else struct.unpack(f"<{nbuffers}q", table)
    if sum(sizes) != total_nbytes - stream_nbytes or (sizes and min(sizes) < 0):
        raise WireError(
            f"pkl5shim size table does not add up: {nbuffers} buffers, "
            f"header announces {header.buffers_nbytes} bytes of buffers"
        )
    return list(sizes)


# The header is a pickle: unpickling it calls this function.  It returns the
# parsed header only inside the engine's own receive, and otherwise raises, so
# that a plain mpi4py receive never returns a Header as if it were the user's
# object.  The engine's receive is told by its code object among the callers: a
# look that costs only when a header arrives (a thread-local flag set around every
# receive, as before, cost each small message 0.1 us).
_RECEIVERS: set[int] = set()
"""The ids of the receives' code objects (hashing a code object took 0.15 us, its id 0.03)."""
_RECEIVER_CODES: list[CodeType] = []
"""The code objects themselves, kept alive so that their ids stay theirs."""
_CALLERS_SEEN = 8
"""How many callers are looked at: the receive, mpi4py's ``loads`` and a user's own."""


def receives_headers(function: Callable[..., Any]) -> Callable[..., Any]:
    """Mark ``function`` as a receive of the engine: headers unpickled inside it are valid."""
    _RECEIVER_CODES.append(function.__code__)
    _RECEIVERS.add(id(function.__code__))
    return function


def _inside_engine_receive() -> bool:
    frame = sys._getframe(2)
    for _ in range(_CALLERS_SEEN):
        if frame is None:
            return False
        if id(frame.f_code) in _RECEIVERS:
            return True
        frame = frame.f_back
    return False


def _header_from_pickle(*arguments: object) -> Header:
    if not _inside_engine_receive():
        raise UnwrappedReceiveError(
            "received a pkl5shim large-message header on a communicator that is not "
            "wrapped by pkl5shim: wrap it on every rank, with pkl5shim.wrap(comm) "
            "(or pkl5shim.Intracomm(comm)), and receive through the wrapper"
        )
    if len(arguments) not in (1, 2):  # a crafted pickle may pass any number
        raise WireError(f"pkl5shim header pickle with {len(arguments)} arguments, expected 1 or 2")
    values = _fields_of(arguments[0])
    inline = arguments[1] if len(arguments) == 2 else None
    if values[2] == CHANNEL:
        if inline is not None:
            raise WireError("pkl5shim header of kind 0 with an inline section")
        return Header(*values[4:])
    if type(inline) is not bytes:
        raise WireError(
            f"pkl5shim inline header without its table and stream ({type(inline).__name__})"
        )
    return _with_inline(values, inline)
