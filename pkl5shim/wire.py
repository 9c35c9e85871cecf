"""The header of a large message and its table of buffer sizes (see docs/protocol.md).

A large object travels as a fixed-size *header* on the user's (communicator,
tag), then a table of buffer sizes, the pickle stream and the out-of-band
buffers on the communicator's private channel under the header's channel tag.
The header is itself a valid pickle stream whose only instruction is a call to
``pkl5shim.wire._header_from_pickle``: mpi4py's own C ``recv`` can receive it,
and a receive that is not pkl5shim's fails with a message naming the fix.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass

from .config import settings
from .errors import UnwrappedReceiveError, WireError

MAGIC = b"P5SH"
VERSION = 1
MAX_BUFFERS = 1 << 24
"""Most out-of-band buffers one message may announce."""

_FIELDS = struct.Struct("<4sBBHiiqqq")
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
HEADER_SIZE = len(PREFIX) + _FIELDS.size + len(_SUFFIX)


@dataclass(frozen=True)
class Header:
    """What a receiver needs to fetch a large message from the channel."""

    source: int
    channel_tag: int
    nbuffers: int
    stream_nbytes: int
    total_nbytes: int

    @property
    def buffers_nbytes(self) -> int:
        """Bytes in the out-of-band buffers together."""
        return self.total_nbytes - self.stream_nbytes


def encode(header: Header) -> bytes:
    """Return the bytes of ``header`` as they travel on the user's communicator."""
    fields = _FIELDS.pack(
        MAGIC, VERSION, 0, 0,
        header.source, header.channel_tag,
        header.nbuffers, header.stream_nbytes, header.total_nbytes,
    )  # fmt: skip
    return PREFIX + fields + _SUFFIX


def is_header(message: bytes | memoryview) -> bool:
    """Tell whether a received first message is a header (not a plain pickle)."""
    return len(message) >= len(PREFIX) and message[: len(PREFIX)] == PREFIX


def decode(message: bytes | memoryview) -> Header:
    """Parse and validate a header message, as given by ``encode``."""
    if len(message) != HEADER_SIZE:
        raise WireError(
            f"pkl5shim header of {len(message)} bytes, expected {HEADER_SIZE} "
            "(truncated or corrupted message)"
        )
    if bytes(message[: len(PREFIX)]) != PREFIX:
        raise WireError("pkl5shim header with a corrupted start (not a pkl5shim header)")
    if bytes(message[-len(_SUFFIX) :]) != _SUFFIX:
        raise WireError("pkl5shim header with a corrupted end marker")
    return _decode_fields(bytes(message[len(PREFIX) : -len(_SUFFIX)]))


def _decode_fields(fields: bytes) -> Header:
    if type(fields) is not bytes:  # a crafted pickle may pass anything
        raise WireError(f"pkl5shim header fields of type {type(fields).__name__}, expected bytes")
    if len(fields) != _FIELDS.size:
        raise WireError(f"pkl5shim header fields of {len(fields)} bytes, expected {_FIELDS.size}")
    magic, version, _kind, _flags, source, tag, nbuffers, stream, total = _FIELDS.unpack(fields)
    if magic != MAGIC:
        raise WireError(f"pkl5shim header with wrong magic {magic!r} (expected {MAGIC!r})")
    if version != VERSION:
        raise WireError(
            f"pkl5shim wire version {version} received, this pkl5shim speaks "
            f"version {VERSION}: use the same pkl5shim release on every rank"
        )
    header = Header(source, tag, nbuffers, stream, total)
    _check_sizes(header)
    return header


def _check_sizes(header: Header) -> None:
    if header.source < 0 or header.channel_tag < 1:
        raise WireError(
            f"pkl5shim header with invalid source {header.source} "
            f"or channel tag {header.channel_tag}"
        )
    if not 0 <= header.nbuffers <= MAX_BUFFERS:
        raise WireError(
            f"pkl5shim header announces {header.nbuffers} buffers (allowed: 0 to {MAX_BUFFERS})"
        )
    if header.stream_nbytes < 0 or header.total_nbytes < header.stream_nbytes:
        raise WireError(
            f"pkl5shim header with inconsistent sizes: stream {header.stream_nbytes} "
            f"bytes, total {header.total_nbytes} bytes"
        )
    if header.total_nbytes > settings.max_message:
        raise WireError(
            f"pkl5shim header announces {header.total_nbytes} bytes, more than "
            f"PKL5_MAX_MESSAGE={settings.max_message}; raise PKL5_MAX_MESSAGE if "
            "this message is expected"
        )


_TABLE_ITEM = struct.Struct("<q")


def encode_table(sizes: list[int]) -> bytes:
    """Return the table of out-of-band buffer sizes."""
    return struct.pack(f"<{len(sizes)}q", *sizes)


def table_nbytes(header: Header) -> int:
    """Size in bytes of the table announced by ``header``."""
    return header.nbuffers * _TABLE_ITEM.size


def decode_table(table: bytes | memoryview, header: Header) -> list[int]:
    """Parse the table of buffer sizes and check it against ``header``."""
    if len(table) != table_nbytes(header):
        raise WireError(
            f"pkl5shim size table of {len(table)} bytes, expected {table_nbytes(header)}"
        )
    sizes = list(struct.unpack(f"<{header.nbuffers}q", table))
    if any(size < 0 for size in sizes) or sum(sizes) != header.buffers_nbytes:
        raise WireError(
            f"pkl5shim size table does not add up: {header.nbuffers} buffers, "
            f"header announces {header.buffers_nbytes} bytes of buffers"
        )
    return sizes


# The header is a pickle: unpickling it calls this function.  It returns the
# parsed header only inside the engine's own receive (a thread-local flag), and
# otherwise raises, so that a plain mpi4py receive never returns a Header as if
# it were the user's object.
receiving = threading.local()
"""``receiving.active`` is true while this thread is inside a pkl5shim receive."""


def _header_from_pickle(fields: bytes) -> Header:
    if not getattr(receiving, "active", False):
        raise UnwrappedReceiveError(
            "received a pkl5shim large-message header on a communicator that is not "
            "wrapped by pkl5shim: wrap it on every rank, with pkl5shim.wrap(comm) "
            "(or pkl5shim.Intracomm(comm)), and receive through the wrapper"
        )
    return _decode_fields(fields)
