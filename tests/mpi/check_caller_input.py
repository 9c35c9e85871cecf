"""Bad input from the caller, beyond what ``check_errors.py`` covers.

Objects whose pickling fails half-way through, after out-of-band buffers were
produced; arrays that are not contiguous or not writable; released buffers;
invalid ranks, tags and roots on the receive side, ``sendrecv`` and the
rooted collectives; calls on a freed communicator; ``MPI.PROC_NULL`` wherever MPI
allows it.  Each case must raise a clear exception on the calling rank (the
one plain mpi4py raises), send nothing, hang no rank, and leave the
communicator usable: a large numpy array travels around the ring afterwards.
Failures are collected (``Soft``) until the ring round trip at the end of each
check ran on every rank, so that one rank's failure leaves no other rank waiting.
"""

from __future__ import annotations

import gc
import pickle
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from common import comm, expect_same, left, rank, right, size, world
from expect import Soft, raises
from mpi4py import MPI

import pkl5shim
from pkl5shim import transport

TAG = 41
TAG_UB = int(world.Get_attr(MPI.TAG_UB))
BIG = 1 << 20  # bytes: above MPI.pickle.THRESHOLD and PKL5_EAGER


# -- helpers ---------------------------------------------------------------------
def large(r: int) -> dict[str, Any]:
    return {"from": r, "array": np.arange(BIG // 8 + r, dtype=np.float64) * (r + 1)}


def assert_nothing_pending() -> None:
    """No message waits for this rank on the communicator nor on its channel."""
    world.Barrier()
    status = MPI.Status()
    for where, target in (("communicator", comm), ("channel", transport.lookup(comm).comm)):
        found = MPI.Comm.iprobe(target, MPI.ANY_SOURCE, MPI.ANY_TAG, status)
        assert not found, (
            f"a message from rank {status.Get_source()} tag {status.Get_tag()} "
            f"({status.Get_count(MPI.BYTE)} bytes) is left on the {where}"
        )
    world.Barrier()


def assert_comm_works() -> None:
    """A small and a large object go around the ring; nothing is left behind."""
    for make in (lambda r: ("small", r), large):
        request = comm.isend(make(rank), right, TAG)
        expect_same(comm.recv(source=left, tag=TAG), make(left), "recv afterwards")
        request.wait()
        request = comm.isend(make(rank), right, TAG)
        expect_same(comm.irecv(source=left, tag=TAG).wait(), make(left), "irecv afterwards")
        request.wait()
    assert_nothing_pending()


def round_trip(obj: Any, how: str) -> Any:
    """Send ``obj`` to the right and return what arrives from the left."""
    request = comm.isend(obj, right, TAG)
    if how == "recv":
        got = comm.recv(source=left, tag=TAG)
    elif how == "irecv":
        got = comm.irecv(source=left, tag=TAG).wait()
    else:
        got = comm.mprobe(left, TAG).recv()
    request.wait()
    return got


def plain_round_trip(obj: Any) -> Any:
    """What plain mpi4py makes of ``obj`` (its own pickle, in band)."""
    return MPI.pickle.loads(MPI.pickle.dumps(obj))


# -- pickling that fails half-way ---------------------------------------------------
class HalfWayError(Exception):
    """Raised by HalfWay.__reduce__."""


class HalfWay:
    """Fails to pickle; placed after large arrays, it fails once their buffers were taken."""

    def __reduce__(self) -> Any:
        raise HalfWayError("refusing to be pickled half-way through")


def half_way_objects(arrays: list[np.ndarray]) -> dict[str, Any]:
    return {
        "list: array, array, failing": [arrays[0], arrays[1], HalfWay()],
        "dict: array then failing": {"a": arrays[0], "boom": HalfWay()},
        "nested: failing deep after arrays": ({"x": arrays}, [[arrays[1], [HalfWay()]]]),
    }


def check_pickling_that_fails_after_out_of_band_buffers_sends_nothing():
    arrays = [np.arange(BIG // 8, dtype=np.float64), np.ones(BIG, np.uint8)]
    references = [sys.getrefcount(a) for a in arrays]
    sends: dict[str, Callable[[Any], Any]] = {
        "send": lambda obj: comm.send(obj, right, TAG),
        "ssend": lambda obj: comm.ssend(obj, right, TAG),
        "isend": lambda obj: comm.isend(obj, right, TAG),
        "issend": lambda obj: comm.issend(obj, right, TAG),
        "sendrecv": lambda obj: comm.sendrecv(obj, right, TAG, source=left, recvtag=TAG),
    }
    soft = Soft()
    for how, send in sends.items():
        for what in half_way_objects(arrays):
            call = lambda: send(half_way_objects(arrays)[what])  # noqa: B023, E731
            soft(raises, HalfWayError, call, "half-way")
            # the next message on (comm, TAG) is the real one: nothing was sent before it
            got = round_trip(("real", how, what, rank), "recv")
            soft(expect_same, got, ("real", how, what, left), f"after {how} of {what}")
    gc.collect()
    counts = [sys.getrefcount(a) for a in arrays]
    soft.true(counts == references, f"references to the arrays kept: {references} -> {counts}")
    soft(assert_nothing_pending)
    soft(assert_comm_works)
    soft.done()


def check_collective_with_an_object_failing_half_way():
    soft = Soft()
    arrays = [np.ones(BIG, np.uint8), np.ones(BIG, np.uint8)]
    for root in range(size):
        obj = [*arrays, HalfWay()] if rank == root else None
        if rank == root:
            soft(raises, HalfWayError, lambda: comm.bcast(obj, root))  # noqa: B023
        else:
            soft(raises, pkl5shim.RemoteError, lambda: comm.bcast(obj, root),  # noqa: B023
                 f"rank {root}", "HalfWayError")  # fmt: skip
    # The others send small objects: with large ones on some ranks and none on
    # another, the Intel MPI wheel's MPI_Iallgatherv takes seconds (measured).
    mine = [*arrays, HalfWay()] if rank == size - 1 else ("small", rank)
    if rank == size - 1:
        soft(raises, HalfWayError, lambda: comm.allgather(mine))
    else:
        soft(raises, pkl5shim.RemoteError, lambda: comm.allgather(mine), "HalfWayError")
    soft(expect_same, comm.allgather(large(rank)), [large(r) for r in range(size)], "allgather")
    soft(assert_comm_works)
    soft.done()


# -- arrays that are not contiguous, not writable, or odd ------------------------------
def odd_arrays(r: int) -> dict[str, np.ndarray]:
    base = np.arange(BIG // 4, dtype=np.float64) + r  # 2 MiB
    square = base.reshape(512, 512)
    readonly = base.copy()
    readonly.setflags(write=False)
    readonly_f = np.asfortranarray(square)
    readonly_f.setflags(write=False)
    records = np.zeros(100_000, dtype=[("a", "i4"), ("b", "f8"), ("c", "S3")])
    records["a"] = np.arange(100_000) + r
    return {
        "every second element": base[::2],
        "reversed": base[::-1],
        "2-D column slice": square[:, ::3],
        "Fortran order, sliced": np.asfortranarray(square)[::2, :],
        "transposed": square.T,
        "broadcast (zero strides, read-only)": np.broadcast_to(base[:4], (100_000, 4)),
        "read-only": readonly,
        "read-only Fortran order": readonly_f,
        "read-only, every third": readonly[::3],
        "structured, every second record": records[::2],
        "empty": base[:0],
        "0-d": np.array(3.5 + r),
    }


def check_non_contiguous_and_read_only_arrays_arrive_as_plain_mpi4py_delivers_them():
    soft = Soft()
    for how in ("recv", "irecv", "mprobe"):
        for what, array in odd_arrays(rank).items():
            got = round_trip({"what": what, "array": array}, how)["array"]
            expected = plain_round_trip(odd_arrays(left)[what])
            soft(expect_same, got, expected, f"{what} by {how}")
            flags = (got.flags.writeable, got.flags.c_contiguous)
            want = (expected.flags.writeable, expected.flags.c_contiguous)
            soft.true(flags == want, f"{what} by {how}: (writeable, C order) {flags} != {want}")
    for what, array in odd_arrays(0).items():
        got = comm.bcast(array if rank == 0 else None, root=0)
        soft(expect_same, got, plain_round_trip(array), f"bcast of {what}")
    gathered = comm.allgather(odd_arrays(rank)["2-D column slice"])
    expected = [plain_round_trip(odd_arrays(r)["2-D column slice"]) for r in range(size)]
    soft(expect_same, gathered, expected, "allgather of column slices")
    soft(assert_comm_works)
    soft.done()


# -- released buffers ----------------------------------------------------------------------
def released_memoryview() -> memoryview:
    view = memoryview(bytearray(BIG))
    view.release()
    return view


def released_pickle_buffer() -> pickle.PickleBuffer:
    buffer = pickle.PickleBuffer(np.ones(BIG, np.uint8))
    buffer.release()
    return buffer


def check_released_buffers_raise_on_the_caller_and_send_nothing():
    soft = Soft()
    cases = {
        "released memoryview": (released_memoryview, TypeError),  # plain pickle refuses views
        "released PickleBuffer": (released_pickle_buffer, ValueError),
        "array then released PickleBuffer": (
            lambda: [np.ones(BIG, np.uint8), released_pickle_buffer()],
            ValueError,
        ),
    }
    for what, (make, kind) in cases.items():
        soft(raises, kind, lambda: MPI.pickle.dumps(make()))  # noqa: B023 - plain mpi4py's error
        for how in ("send", "isend"):
            call = getattr(comm, how)
            soft(raises, kind, lambda: call(make(), right, TAG))  # noqa: B023
        got = round_trip(("after", what, rank), "recv")
        soft(expect_same, got, ("after", what, left), f"message after {what}")
    soft(raises, ValueError, lambda: comm.irecv(released_memoryview(), source=left, tag=TAG))
    soft(assert_comm_works)
    soft.done()


def check_buffer_released_by_the_caller_after_isend_still_arrives():
    """The engine holds its own reference: releasing and deleting the caller's objects is safe."""
    array = np.arange(BIG // 8, dtype=np.float64) * (rank + 1)
    buffer = pickle.PickleBuffer(array)
    request = comm.isend(buffer, right, TAG)
    buffer.release()
    del buffer, array
    gc.collect()
    np.ones(4 * BIG, np.uint8)  # reuse freed memory, if any was freed
    got = comm.recv(source=left, tag=TAG)
    request.wait()
    expected = np.arange(BIG // 8, dtype=np.float64) * (left + 1)
    expect_same(np.frombuffer(got, np.float64), expected, "PickleBuffer released after isend")
    assert_comm_works()


# -- invalid ranks, tags and roots on the receive side ---------------------------------
def invalid_sources_and_tags() -> list[tuple[str, int, int, type[BaseException]]]:
    # Open MPI's TAG_UB is 2**31 - 1: a larger tag is no C int, and mpi4py raises
    # OverflowError before MPI sees it (plain mpi4py does the same).
    over_ub = MPI.Exception if TAG_UB + 1 < 1 << 31 else OverflowError
    return [
        ("source size + 5", size + 5, TAG, MPI.Exception),
        ("source -7", -7, TAG, MPI.Exception),
        ("tag -5", left, -5, MPI.Exception),
        ("tag TAG_UB + 1", left, TAG_UB + 1, over_ub),
    ]


def receive_calls(source: int, tag: int) -> dict[str, Callable[[], Any]]:
    return {
        "recv": lambda: comm.recv(source=source, tag=tag),
        "irecv": lambda: comm.irecv(source=source, tag=tag),
        "probe": lambda: comm.probe(source=source, tag=tag),
        "iprobe": lambda: comm.iprobe(source=source, tag=tag),
        "mprobe": lambda: comm.mprobe(source=source, tag=tag),
        "improbe": lambda: comm.improbe(source=source, tag=tag),
        "sendrecv small": lambda: comm.sendrecv(("s", rank), right, TAG, None, source, tag),
        "sendrecv large": lambda: comm.sendrecv(large(rank), right, TAG, None, source, tag),
    }


def plain_receive_call(name: str, source: int, tag: int) -> Callable[[], Any]:
    """The same call on plain mpi4py's COMM_WORLD (the reference for the error)."""
    method = getattr(MPI.Comm, name.split()[0])
    if name.startswith("sendrecv"):
        # to PROC_NULL: plain mpi4py's sendrecv sends before it fails on MPICH and Open MPI
        return lambda: method(world, ("s", rank), MPI.PROC_NULL, TAG, None, source, tag)
    return lambda: method(world, source=source, tag=tag)


def plain_error(call: Callable[[], Any]) -> tuple[type[BaseException], int | None]:
    try:
        call()
    except MPI.Exception as exc:
        return MPI.Exception, exc.Get_error_class()
    except Exception as exc:  # noqa: BLE001 - its type is what we want
        return type(exc), None
    raise AssertionError("plain mpi4py accepted it")


def check_invalid_source_or_tag_raises_like_plain_mpi4py_and_sends_nothing():
    soft = Soft()
    for what, source, tag, kind in invalid_sources_and_tags():
        for name, call in receive_calls(source, tag).items():
            reference = plain_error(plain_receive_call(name, source, tag))
            exc = soft(raises, kind, call)
            got = (type(exc), exc.Get_error_class() if isinstance(exc, MPI.Exception) else None)
            soft.true(exc is None or got == reference, f"{name} with {what}: {got} != {reference}")
        # with an irecv pending, receives take the engine's polling paths
        pending = comm.irecv(source=left, tag=TAG + 1)
        for name in ("recv", "probe", "mprobe", "improbe"):
            soft(raises, kind, receive_calls(source, tag)[name])
        request = comm.isend(("release", rank), right, TAG + 1)
        soft(expect_same, pending.wait(), ("release", left), "pending irecv")
        request.wait()
        soft(assert_nothing_pending)  # sendrecv must not have sent anything
    soft(assert_comm_works)
    soft.done()


def rooted_calls(c: Any, value: Any, root: int) -> dict[str, Callable[[], Any]]:
    return {
        "bcast": lambda: c.bcast(value, root=root),
        "gather": lambda: c.gather(value, root=root),
        "scatter": lambda: c.scatter([value] * size, root=root),
        "reduce": lambda: c.reduce(value, root=root),
    }


def check_invalid_roots_raise_mpi_err_root_like_plain_mpi4py():
    soft = Soft()
    for root in (size, size + 5, -7, MPI.ROOT, MPI.PROC_NULL, MPI.ANY_SOURCE):
        for value in (rank, large(rank)):
            for name, call in rooted_calls(comm, value, root).items():
                reference = plain_error(rooted_calls(world, value, root)[name])
                try:
                    exc = raises(MPI.Exception, call)
                except AssertionError as failure:
                    soft.true(False, f"{name} root {root}: {failure}")
                else:
                    got = (MPI.Exception, exc.Get_error_class())
                    soft.true(got == reference, f"{name} root {root}: {got} != {reference}")
                    soft.true(got[1] == MPI.ERR_ROOT, f"{name} root {root}: {exc}")
    soft(expect_same, comm.reduce(rank, root=0), sum(range(size)) if rank == 0 else None, "after")
    soft(assert_comm_works)
    soft.done()


# -- a freed communicator --------------------------------------------------------------------
def freed_calls(c: Any) -> dict[str, Callable[[], Any]]:
    return {
        "send small": lambda: c.send(1, 0),
        "send large": lambda: c.send(large(rank), 0),
        "isend small": lambda: c.isend(1, 0),
        "isend large": lambda: c.isend(large(rank), 0),
        "issend large": lambda: c.issend(large(rank), 0),
        "recv": lambda: c.recv(),
        "irecv": lambda: c.irecv(),
        "sendrecv large": lambda: c.sendrecv(large(rank), 0),
        "probe": lambda: c.probe(),
        "iprobe": lambda: c.iprobe(),
        "mprobe": lambda: c.mprobe(),
        "improbe": lambda: c.improbe(),
        "bcast": lambda: c.bcast(large(rank)),
        "gather": lambda: c.gather(1),
        "scatter": lambda: c.scatter([1] * size),
        "allgather": lambda: c.allgather(1),
        "alltoall": lambda: c.alltoall([1] * size),
        "reduce": lambda: c.reduce(1),
        "allreduce": lambda: c.allreduce(1),
        "scan": lambda: c.scan(1),
        "exscan": lambda: c.exscan(1),
        "barrier": lambda: c.barrier(),
        "Dup": lambda: c.Dup(),
    }


REFUSED_BEFORE_MPI = {"send large", "isend large", "issend large", "scan", "exscan"}
"""Calls on a freed communicator that pkl5shim refuses before MPI sees the null handle."""
ABORTS_ON_NULL = "Open MPI" in MPI.Get_library_version()
"""The Open MPI 5.0 wheel aborts the job on any call with a null communicator, plain
mpi4py's too (measured): there only the calls pkl5shim refuses itself are made."""


def check_calls_on_a_freed_communicator_raise_mpi_err_comm():
    freed = pkl5shim.Intracomm(world.Dup())
    freed.Free()
    plain = world.Dup()
    plain.Free()
    soft = Soft()
    for name, call in freed_calls(freed).items():
        if ABORTS_ON_NULL and name not in REFUSED_BEFORE_MPI:
            continue
        reference = (MPI.Exception, MPI.ERR_COMM)
        if not ABORTS_ON_NULL:
            reference = plain_error(freed_calls(plain)[name])
        exc = soft(raises, MPI.Exception, call)
        if exc is not None:
            got = (MPI.Exception, exc.Get_error_class())
            soft.true(got == reference, f"{name} on a freed communicator: {got} != {reference}")
    soft(raises, ValueError, lambda: pkl5shim.wrap(freed), "COMM_NULL")
    soft(assert_comm_works)
    soft.done()


# -- MPI.PROC_NULL -----------------------------------------------------------------------------
def null_status() -> tuple[int, int, int]:
    """The status plain mpi4py gives a receive from PROC_NULL."""
    status = MPI.Status()
    MPI.Comm.irecv(world, source=MPI.PROC_NULL).wait(status)
    return (status.Get_source(), status.Get_tag(), status.Get_count(MPI.BYTE))


def status_of(call: Callable[[MPI.Status], Any]) -> tuple[Any, tuple[int, int, int]]:
    status = MPI.Status()
    result = call(status)
    return result, (status.Get_source(), status.Get_tag(), status.Get_count(MPI.BYTE))


def proc_null_everywhere(soft: Soft, context: str) -> None:
    null = MPI.PROC_NULL
    for obj in (7, ("small", rank), large(rank)):
        for how in ("send", "ssend", "isend", "issend"):
            result = getattr(comm, how)(obj, null, TAG)
            if how.startswith("i"):
                result = result.wait()
            soft(expect_same, result, None, f"{how} to PROC_NULL {context}")
        result = comm.sendrecv(obj, null, TAG, source=null)
        soft(expect_same, result, None, f"sendrecv PROC_NULL {context}")
    receives: dict[str, Callable[[MPI.Status], Any]] = {
        "recv": lambda st: comm.recv(source=null, tag=TAG, status=st),
        "irecv": lambda st: comm.irecv(source=null, tag=TAG).wait(st),
        "sendrecv": lambda st: comm.sendrecv(large(rank), null, TAG, None, null, TAG, st),
        "mprobe().recv": lambda st: comm.mprobe(null, TAG).recv(st),
        "improbe().irecv": lambda st: comm.improbe(null, TAG).irecv().wait(st),
        "Request.waitall": lambda st: pkl5shim.Request.waitall(
            [comm.irecv(source=null), comm.isend(large(rank), null)], [st]
        )[0],
    }
    for name, call in receives.items():
        soft(expect_same, status_of(call), (None, null_status()), f"{name} {context}")
    soft.true(comm.probe(null, TAG) is True, f"probe PROC_NULL {context}")
    soft.true(comm.iprobe(null, TAG) is True, f"iprobe PROC_NULL {context}")
    # a real message and PROC_NULL in one sendrecv, each way round
    incoming = comm.irecv(source=left, tag=TAG)  # else every rank would wait for its send
    got = comm.sendrecv(large(rank), right, TAG, None, null, TAG)
    soft(expect_same, got, None, f"sendrecv to right from PROC_NULL {context}")
    soft(expect_same, incoming.wait(), large(left), f"its message {context}")
    request = comm.isend(large(rank), right, TAG)
    got = comm.sendrecv(large(rank), null, TAG, None, left, TAG)
    soft(expect_same, got, large(left), f"sendrecv to PROC_NULL from left {context}")
    request.wait()


def check_proc_null_everywhere_completes_at_once_like_plain_mpi4py():
    soft = Soft()
    proc_null_everywhere(soft, "(nothing pending)")
    # the same with an irecv pending: blocking calls then poll the engine
    pending = comm.irecv(source=left, tag=TAG + 2)
    proc_null_everywhere(soft, "(irecv pending)")
    request = comm.isend(large(rank), right, TAG + 2)
    soft(expect_same, pending.wait(), large(left), "the pending irecv")
    request.wait()
    soft(assert_comm_works)
    soft.done()
