"""probe/iprobe/mprobe/improbe and pkl5shim.Message, for small and large objects.

A probe's status describes the first message: the whole pickle for a small
object, the header for a large one (with its size table and stream inline when they
fit ``PKL5_EAGER``).  A receive's status counts the
whole object (pickle stream plus out-of-band buffers).
"""

from typing import Any

import numpy as np
from common import comm, expect_same, left, rank, right, world
from mpi4py import MPI

import pkl5shim
from pkl5shim import wire
from pkl5shim.config import settings

Message = pkl5shim.Message
KINDS = ("small", "large")


def make(kind: str, r: int) -> dict[str, Any]:
    if kind == "small":
        return {"kind": kind, "from": r, "text": "probe me"}
    return {"kind": kind, "from": r, "array": np.arange(50_000, dtype="f8") - r}


def first_nbytes(obj: Any) -> int:
    """The first message (docs/protocol.md): the pickle of a small object; for a large
    one the 84-byte header, plus 5 bytes, its size table and stream when they fit
    ``PKL5_EAGER`` and 32 KiB."""
    stream, buffers = MPI.pickle.dumps_oob(obj)
    if not buffers:
        return len(stream) if len(stream) <= settings.eager_limit else wire.HEADER_SIZE
    inline = wire.HEADER_SIZE + 5 + 8 * len(buffers) + len(stream)
    return inline if inline <= min(settings.eager_limit, 32 * 1024) else wire.HEADER_SIZE


def total_nbytes(obj: Any) -> int:
    stream, buffers = MPI.pickle.dumps_oob(obj)
    return len(stream) + sum(memoryview(b).nbytes for b in buffers)


def expect_status(status: MPI.Status, tag: int, count: int, what: str) -> None:
    got = (status.Get_source(), status.Get_tag(), status.Get_count(MPI.BYTE))
    expect_same(got, (left, tag, count), f"{what}: (source, tag, count)")


def check_probe_then_recv():
    for kind in KINDS:
        sreq = comm.isend(make(kind, rank), right, 1)
        status = MPI.Status()
        assert comm.probe(source=left, tag=1, status=status) is True
        expect_status(status, 1, first_nbytes(make(kind, left)), f"probe {kind}")
        got = comm.recv(source=left, tag=1, status=status)
        expect_same(got, make(kind, left), kind)
        expect_status(status, 1, total_nbytes(got), f"recv {kind}")
        sreq.wait()


def check_probe_any_source_any_tag():
    for kind in KINDS:
        sreq = comm.isend(make(kind, rank), right, 2)
        status = MPI.Status()
        comm.probe(MPI.ANY_SOURCE, MPI.ANY_TAG, status)
        expect_status(status, 2, first_nbytes(make(kind, left)), f"probe {kind}")
        expect_same(comm.recv(source=status.Get_source(), tag=status.Get_tag()), make(kind, left))
        sreq.wait()


def check_iprobe_loop_then_recv():
    for kind in KINDS:
        world.Barrier()
        assert not comm.iprobe(source=left, tag=3), "nothing was sent yet"
        world.Barrier()
        sreq = comm.isend(make(kind, rank), right, 3)
        status = MPI.Status()
        while not comm.iprobe(source=left, tag=3, status=status):
            pass
        expect_status(status, 3, first_nbytes(make(kind, left)), f"iprobe {kind}")
        expect_same(comm.recv(source=left, tag=3), make(kind, left), kind)
        sreq.wait()


def check_mprobe_returns_message_and_recv_fills_status():
    for kind in KINDS:
        sreq = comm.isend(make(kind, rank), right, 4)
        status = MPI.Status()
        message = comm.mprobe(source=left, tag=4, status=status)
        assert isinstance(message, Message), type(message)
        assert message, "a matched message is true"
        expect_status(status, 4, first_nbytes(make(kind, left)), f"mprobe {kind}")
        status = MPI.Status()
        got = message.recv(status)
        expect_same(got, make(kind, left), kind)
        expect_status(status, 4, total_nbytes(got), f"Message.recv {kind}")
        assert not message, "a received message is false"
        sreq.wait()


def check_matched_message_is_gone_for_probes():
    for kind in KINDS:
        world.Barrier()  # the previous round is over everywhere
        sreq = comm.isend(make(kind, rank), right, 5)
        message = comm.mprobe(source=left, tag=5)
        world.Barrier()  # every message of tag 5 was sent, and each one is matched
        assert not comm.iprobe(source=left, tag=5), "a matched message cannot be probed"
        assert comm.improbe(source=left, tag=5) is None
        expect_same(message.recv(), make(kind, left), kind)
        sreq.wait()


def check_message_irecv_wait():
    for kind in KINDS:
        sreq = comm.isend(make(kind, rank), right, 6)
        message = comm.mprobe(source=left, tag=6)
        req = message.irecv()
        assert isinstance(req, pkl5shim.Request), type(req)
        assert not message
        status = MPI.Status()
        expect_same(req.wait(status), make(kind, left), kind)
        expect_status(status, 6, total_nbytes(make(kind, left)), f"Message.irecv {kind}")
        assert req == MPI.REQUEST_NULL
        sreq.wait()


def check_improbe_none_when_nothing_then_message():
    for kind in KINDS:
        world.Barrier()
        assert comm.improbe(source=left, tag=7) is None
        assert comm.improbe(MPI.ANY_SOURCE, 7) is None
        world.Barrier()
        sreq = comm.isend(make(kind, rank), right, 7)
        status = MPI.Status()
        message = comm.improbe(source=left, tag=7, status=status)
        while message is None:
            message = comm.improbe(source=left, tag=7, status=status)
        assert isinstance(message, Message), type(message)
        expect_status(status, 7, first_nbytes(make(kind, left)), f"improbe {kind}")
        expect_same(message.irecv().wait(), make(kind, left), kind)
        sreq.wait()


def check_message_from_proc_null():
    status = MPI.Status()
    message = comm.mprobe(MPI.PROC_NULL, status=status)
    assert isinstance(message, Message), type(message)
    expect_same(status.Get_source(), MPI.PROC_NULL, "source")
    assert message.recv() is None
    message = comm.improbe(MPI.PROC_NULL)
    assert message is not None, "improbe of PROC_NULL gives a message"
    assert message.irecv().wait() is None
    assert comm.probe(MPI.PROC_NULL) and comm.iprobe(MPI.PROC_NULL)
    expect_same(comm.recv(source=MPI.PROC_NULL), None, "recv from PROC_NULL")


def check_message_probe_and_iprobe_classmethods():
    for kind in KINDS:
        sreq = comm.isend(make(kind, rank), right, 8)
        status = MPI.Status()
        message = Message.probe(comm, left, 8, status)
        assert isinstance(message, Message)
        expect_status(status, 8, first_nbytes(make(kind, left)), f"Message.probe {kind}")
        expect_same(message.recv(), make(kind, left), kind)
        sreq.wait()
    world.Barrier()
    assert Message.iprobe(comm, left, 8) is None
    world.Barrier()
    sreq = comm.isend(make("large", rank), right, 8)
    message = Message.iprobe(comm, MPI.ANY_SOURCE, MPI.ANY_TAG)
    while message is None:
        message = Message.iprobe(comm, MPI.ANY_SOURCE, MPI.ANY_TAG)
    expect_same(message.recv(), make("large", left), "Message.iprobe")
    sreq.wait()


def check_probes_while_a_large_irecv_is_pending():
    # The blocking probes must keep advancing the pending irecv meanwhile.
    for probe in ("probe", "mprobe"):
        pending = comm.irecv(source=left, tag=9)
        world.Barrier()
        sends = [comm.isend(make("large", rank), right, tag) for tag in (9, 10)]
        status = MPI.Status()
        found = getattr(comm, probe)(source=left, tag=10, status=status)
        expect_status(status, 10, first_nbytes(make("large", left)), probe)
        got = found.recv() if probe == "mprobe" else comm.recv(source=left, tag=10)
        expect_same(got, make("large", left), f"{probe}: probed")
        expect_same(pending.wait(), make("large", left), f"{probe}: pending")
        pkl5shim.Request.waitall(sends)
