"""Helpers of the MPI programs launched by the pytest modules (imported on every rank)."""

from __future__ import annotations

import sys
import traceback
from typing import Any

import numpy as np
from mpi4py import MPI

from pkl5shim import transport, wire
from pkl5shim.config import settings
from tests.compare import expect_same, same

__all__ = [
    "done", "expect_same", "inline_header_nbytes", "large_first_nbytes", "receive_by_hand", "same",
]  # fmt: skip


def _abort_on_error(kind, value, tb) -> None:
    # One failing rank must not leave the others waiting: print, then abort the job.
    traceback.print_exception(kind, value, tb)
    sys.stderr.flush()
    MPI.COMM_WORLD.Abort(1)


sys.excepthook = _abort_on_error


def receive_by_hand(comm: MPI.Comm, source: int, tag: int) -> dict[str, Any]:
    """Receive one pkl5shim message with plain MPI calls, following docs/protocol.md.

    Returns the first message, the decoded header (None for a small message),
    the byte count of every message taken from the channel, and the object.
    """
    status = MPI.Status()
    message = MPI.Comm.Mprobe(comm, source, tag, status)
    first = bytearray(status.Get_count(MPI.BYTE))
    message.Recv(first)
    source = status.Get_source()
    if not wire.is_header(first):
        return {"first": first, "header": None, "sizes": [], "obj": MPI.pickle.loads(first)}
    header = wire.decode(first)
    channel = transport.lookup(comm).comm
    sizes: list[int] = []

    def take(nbytes: int) -> bytearray:
        # one part: consecutive messages (at least one) until ``nbytes`` arrived
        out = bytearray(nbytes)
        position = 0
        while True:
            piece = channel.Mprobe(source, header.channel_tag, status)
            count = status.Get_count(MPI.BYTE)
            assert position + count <= nbytes, "more bytes than the header announced"
            piece.Recv(memoryview(out)[position : position + count])
            sizes.append(count)
            position += count
            if position == nbytes:
                return out

    table = []
    if header.inline is not None:  # table and stream came in the header message
        raw, stream = header.inline_parts()
        table = list(np.frombuffer(raw, dtype="<i8"))
    else:
        if header.nbuffers:
            raw = take(8 * header.nbuffers)
            table = list(np.frombuffer(raw, dtype="<i8"))
        stream = take(header.stream_nbytes)
    buffers = [take(int(n)) for n in table]
    obj = MPI.pickle.loads_oob(stream, buffers) if buffers else MPI.pickle.loads(stream)
    return {"first": first, "header": header, "sizes": sizes, "obj": obj, "table": table}


def inline_header_nbytes(obj: Any) -> int:
    """Bytes of ``obj``'s header with its size table and stream inline (docs/protocol.md):
    the 84-byte header, plus 5 bytes, 8 per buffer and the stream."""
    stream, buffers = MPI.pickle.dumps_oob(obj)
    return wire.HEADER_SIZE + 5 + 8 * len(buffers) + len(stream)


def large_first_nbytes(obj: Any) -> int:
    """Bytes of the first message of a large ``obj``: its inline header when ``obj`` has
    out-of-band buffers and that fits ``PKL5_EAGER`` and 32 KiB, else the 84-byte one."""
    inline = inline_header_nbytes(obj)
    fits = inline <= min(settings.eager_limit, 32 * 1024)
    return inline if MPI.pickle.dumps_oob(obj)[1] and fits else wire.HEADER_SIZE


def done(name: str) -> None:
    """Print the line the pytest module looks for, once per rank."""
    MPI.COMM_WORLD.Barrier()
    print(f"OK {name} rank {MPI.COMM_WORLD.Get_rank()}", flush=True)
