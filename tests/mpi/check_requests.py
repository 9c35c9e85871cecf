"""Request idioms with small and large objects, mixed communicators and plain MPI requests."""

import gc
from typing import Any

import numpy as np
from common import comm, expect_same, left, rank, right, world
from mpi4py import MPI

import pkl5shim

Request = pkl5shim.Request
other = pkl5shim.Intracomm(world.Dup())  # a second wrapped communicator
KINDS = ("small", "large")


def make(kind: str, r: int, i: int = 0) -> dict[str, Any]:
    if kind == "small":
        return {"kind": kind, "from": r, "i": i, "values": list(range(i % 7))}
    return {"kind": kind, "from": r, "i": i, "array": np.arange(40_000 + i, dtype="f8") * (r + 1)}


def sizes_of(obj: Any) -> int:
    stream, buffers = MPI.pickle.dumps_oob(obj)
    return len(stream) + sum(memoryview(b).nbytes for b in buffers)


def post(tag: int, count: int = 4) -> tuple[list[Request], list[Request], list[Any]]:
    """Post ``count`` irecvs from left and ``count`` isends (sizes mixed) to right."""
    recvs = [comm.irecv(source=left, tag=tag) for _ in range(count)]
    sends = [comm.isend(make(KINDS[i % 2], rank, i), right, tag) for i in range(count)]
    return recvs, sends, [make(KINDS[i % 2], left, i) for i in range(count)]


def expect_null(req: Any, what: str) -> None:
    assert req == MPI.REQUEST_NULL, f"{what}: {req!r} is not null"
    assert not req, f"{what}: {req!r} is still true"


# -- single requests ------------------------------------------------------------
def check_test_loop_until_done():
    for kind in KINDS:
        rreq = comm.irecv(source=left, tag=1)
        sreq = comm.isend(make(kind, rank), right, 1)
        flag, got = rreq.test()
        while not flag:
            flag, got = rreq.test()
        expect_same(got, make(kind, left), kind)
        expect_same(rreq.test(), (True, None), "test of a null request")
        expect_same(sreq.wait(), None, "send result")
        expect_null(rreq, "after test")
        expect_null(sreq, "after wait")


def check_wait_fills_status_like_mpi4py():
    for kind in KINDS:
        rreq = comm.irecv(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG)
        sreq = comm.isend(make(kind, rank), right, 2)
        status = MPI.Status()
        got = rreq.wait(status)
        sreq.Wait()
        expect_same(got, make(kind, left), kind)
        expect_same((status.Get_source(), status.Get_tag()), (left, 2), "source, tag")
        expect_same(status.Get_count(MPI.BYTE), sizes_of(got), "count")
        assert not status.Is_cancelled()


def check_small_status_equals_plain_mpi4py():
    obj = {"rank": rank, "text": "same pickle"}
    plain = world.isend(obj, right, 3)
    ours = comm.isend(obj, right, 4)
    plain_status, our_status = MPI.Status(), MPI.Status()
    world.recv(source=left, tag=3, status=plain_status)
    comm.recv(source=left, tag=4, status=our_status)
    plain.wait()
    ours.wait()
    expect_same(our_status.Get_source(), plain_status.Get_source(), "source")
    expect_same(our_status.Get_count(MPI.BYTE), plain_status.Get_count(MPI.BYTE), "count")


def check_request_true_while_active_null_after():
    for kind in KINDS:
        rreq = comm.irecv(source=left, tag=5)
        assert rreq and rreq != MPI.REQUEST_NULL, "an unmatched irecv is active"
        world.Barrier()  # nobody has sent yet
        assert rreq, "still active"
        sreq = comm.isend(make(kind, rank), right, 5)
        expect_same(rreq.wait(), make(kind, left), kind)
        sreq.wait()
        expect_null(rreq, "received")
        expect_null(sreq, "sent")
        assert rreq.wait() is None, "waiting again on a null request"


def check_get_status_does_not_consume():
    for kind in KINDS:
        rreq = comm.irecv(source=left, tag=6)
        sreq = comm.isend(make(kind, rank), right, 6)
        status = MPI.Status()
        while not rreq.get_status(status):
            pass
        expect_same((status.Get_source(), status.Get_tag()), (left, 6), "get_status")
        assert rreq, "get_status left the request active"
        assert rreq.Get_status(), "and it stays complete"
        expect_same(rreq.wait(), make(kind, left), kind)
        sreq.wait()


# -- many requests ---------------------------------------------------------------
def check_waitall_fills_statuses():
    recvs, sends, expected = post(10)
    statuses = [MPI.Status()]  # shorter than the list: extended
    expect_same(Request.waitall(recvs, statuses), expected, "waitall")
    expect_same(len(statuses), len(recvs), "statuses")
    for status, obj in zip(statuses, expected):
        expect_same((status.Get_source(), status.Get_tag()), (left, 10), "status")
        expect_same(status.Get_count(MPI.BYTE), sizes_of(obj), "count")
    expect_same(Request.waitall(sends), [None] * len(sends), "send results")
    for req in recvs + sends:
        expect_null(req, "after waitall")


def check_testall_loop_fills_statuses():
    recvs, sends, expected = post(11)
    statuses: list[MPI.Status] = []
    flag, got = Request.testall(recvs, statuses)
    while not flag:
        flag, got = Request.testall(recvs, statuses)
    expect_same(got, expected, "testall")
    expect_same([s.Get_count(MPI.BYTE) for s in statuses], [sizes_of(o) for o in expected])
    while not Request.testall(sends)[0]:
        pass
    for req in recvs + sends:
        expect_null(req, "after testall")


def check_waitany_returns_each_index_once():
    recvs, sends, expected = post(12, count=6)
    seen = {}
    for _ in recvs:
        status = MPI.Status()
        index, obj = Request.waitany(recvs, status)
        assert index not in seen, f"index {index} twice"
        seen[index] = obj
        expect_null(recvs[index], "completed by waitany")
        expect_same(status.Get_count(MPI.BYTE), sizes_of(obj), "count")
    expect_same([seen[i] for i in range(len(recvs))], expected, "by index")
    expect_same(Request.waitany(recvs), (MPI.UNDEFINED, None), "all null")
    Request.waitall(sends)


def check_testany_returns_each_index_once():
    recvs, sends, expected = post(13, count=6)
    seen = {}
    while len(seen) < len(recvs):
        index, flag, obj = Request.testany(recvs)
        if flag:
            assert index not in seen, f"index {index} twice"
            seen[index] = obj
        else:
            expect_same((index, obj), (MPI.UNDEFINED, None), "nothing done")
    expect_same([seen[i] for i in range(len(recvs))], expected, "by index")
    expect_same(Request.testany(recvs), (MPI.UNDEFINED, True, None), "all null")
    Request.waitall(sends)


def check_waitsome_and_testsome_return_matching_indices_and_objects():
    for some in (Request.waitsome, Request.testsome):
        recvs, sends, expected = post(14, count=6)
        seen = {}
        while len(seen) < len(recvs):
            statuses: list[MPI.Status] = []
            indices, objs = some(recvs, statuses)
            if indices is None:
                raise AssertionError(f"{some.__name__}: no active request left")
            expect_same(len(objs), len(indices), "one object per index")
            for index, obj, status in zip(indices, objs, statuses):
                assert index not in seen, f"index {index} twice"
                seen[index] = obj
                expect_same(status.Get_count(MPI.BYTE), sizes_of(obj), "count")
                expect_null(recvs[index], "completed")
        expect_same([seen[i] for i in range(len(recvs))], expected, some.__name__)
        expect_same(some(recvs), (None, None), "all null")
        Request.waitall(sends)


def check_get_status_all_and_any_do_not_consume():
    recvs, sends, expected = post(15)
    statuses: list[MPI.Status] = []
    while not Request.get_status_all(recvs, statuses):
        pass
    expect_same([s.Get_tag() for s in statuses], [15] * len(recvs), "tags")
    expect_same([s.Get_count(MPI.BYTE) for s in statuses], [sizes_of(o) for o in expected])
    status = MPI.Status()
    index, flag = Request.get_status_any(recvs, status)
    assert flag and 0 <= index < len(recvs), (index, flag)
    expect_same(status.Get_count(MPI.BYTE), sizes_of(expected[index]), "count")
    assert all(recvs), "requests are still active"
    expect_same(Request.waitall(recvs), expected, "objects still there")
    expect_same(Request.get_status_any(recvs), (MPI.UNDEFINED, True), "all null")
    assert Request.get_status_all(recvs), "null requests are complete"
    Request.waitall(sends)


def check_waitall_mixes_communicators_and_plain_requests():
    for kind in KINDS:
        inbox = np.zeros(1000, "i8")
        outbox = np.arange(1000, dtype="i8") + rank
        requests = [
            comm.irecv(source=left, tag=20),
            other.irecv(source=left, tag=20),
            world.Irecv(inbox, source=left, tag=21),
            comm.isend(make(kind, rank, 1), right, 20),
            other.isend(make(kind, rank, 2), right, 20),
            world.Isend(outbox, right, 21),
        ]
        statuses: list[MPI.Status] = []
        got = Request.waitall(requests, statuses)
        expect_same(got[:2], [make(kind, left, 1), make(kind, left, 2)], kind)
        expect_same(inbox, np.arange(1000, dtype="i8") + left, "plain Irecv")
        expect_same(statuses[2].Get_tag(), 21, "plain status")
        expect_same(statuses[2].Get_count(MPI.BYTE), inbox.nbytes, "plain count")
        for req in requests:
            expect_null(req, "after mixed waitall")


def check_waitany_and_testsome_mix_communicators_and_plain_requests():
    inbox = np.zeros(10, "f8")
    requests = [
        other.irecv(source=left, tag=22),
        world.Irecv(inbox, source=left, tag=23),
        comm.irecv(source=left, tag=22),
    ]
    sends = [
        comm.isend(make("large", rank), right, 22),
        world.Isend(np.full(10, float(rank)), right, 23),
        other.isend(make("small", rank), right, 22),
    ]
    done: dict[int, Any] = {}
    while not done:
        indices, objs = Request.testsome(requests)
        done.update(zip(indices or [], objs or []))
    while True:
        index, obj = Request.waitany(requests)
        if index == MPI.UNDEFINED:
            break
        assert index not in done, f"index {index} twice"
        done[index] = obj
    expect_same(sorted(done), [0, 1, 2], "indices")
    expect_same(done[0], make("small", left), "other comm")
    expect_same(done[2], make("large", left), "comm")
    expect_same(inbox, np.full(10, float(left)), "plain Irecv")
    Request.waitall(sends)
    for req in requests + sends:
        expect_null(req, "after waitany/testsome")


def check_completed_requests_of_both_kinds_in_waitall():
    # Already completed and null requests mixed with active ones.
    sreq = comm.isend(make("small", rank), right, 24)
    rreq = comm.irecv(source=left, tag=24)
    rreq.wait()
    got = Request.waitall([rreq, sreq, MPI.REQUEST_NULL, Request()])
    expect_same(got, [None, None, None, None], "null results")


# -- freeing and cancelling --------------------------------------------------------
def _garbage() -> list[np.ndarray]:
    return [np.full(50_000, 0xAB, "u1") for _ in range(40)]


def check_freed_large_isend_still_delivers():
    expected = np.random.default_rng(left).random(100_000)
    array = np.random.default_rng(rank).random(100_000)
    req = comm.isend({"array": array, "from": rank}, right, 30)
    req.Free()
    expect_null(req, "freed")
    del array
    gc.collect()
    garbage = _garbage()
    world.Barrier()  # the sender freed and dropped its array before anyone receives
    got = comm.recv(source=left, tag=30)
    more_garbage = _garbage()
    expect_same(got, {"array": expected, "from": left}, "freed send")
    assert garbage[0][0] == 0xAB and more_garbage[-1][-1] == 0xAB


def check_dropped_large_isend_still_delivers():
    # Legacy code sometimes never waits for an isend: the request is simply dropped.
    # Before pkl5shim detached such sends, MPICH hung and Open MPI crashed here.
    for i in range(4):
        array = np.full(500_000, float(10 * rank + i))
        comm.isend({"array": array, "i": i}, right, 32)  # the request is dropped at once
        del array
        gc.collect()
        garbage = _garbage()
    world.Barrier()  # every sender dropped its requests and arrays before anyone receives
    for i in range(4):
        got = comm.recv(source=left, tag=32)
        expect_same(got, {"array": np.full(500_000, float(10 * left + i)), "i": i}, "dropped")
    del garbage


def check_dropped_small_isends_still_deliver():
    # Small isends whose requests are dropped at once, as legacy code does.  Left
    # to mpi4py, each dropped request frees the pickle while MPI may still send it:
    # before pkl5shim kept them, 56 of 300 arrived corrupted on Open MPI and Intel
    # MPI hung (plain mpi4py does the same).
    def small(r: int, i: int) -> dict[str, Any]:
        return {"from": r, "i": i, "pad": "x" * (i * 37 % 5000)}

    for i in range(300):
        comm.isend(small(rank, i), right, 33)  # the request is dropped at once
        garbage = [bytearray(1000) for _ in range(3)]
    world.Barrier()
    got = [comm.recv(source=left, tag=33) for _ in range(300)]
    expect_same(got, [small(left, i) for i in range(300)], "dropped small isends")
    del garbage


def check_freed_small_and_large_isends_many_times():
    for i in range(12):
        kind = KINDS[i % 2]
        req = comm.isend(make(kind, rank, i), right, 31)
        req.free()
        expect_null(req, "freed")
    gc.collect()
    garbage = _garbage()
    got = [comm.recv(source=left, tag=31) for _ in range(12)]
    expect_same(got, [make(KINDS[i % 2], left, i) for i in range(12)], "freed sends")
    del garbage


def check_cancel_unmatched_irecv():
    for source, tag in ((left, 40), (MPI.ANY_SOURCE, MPI.ANY_TAG)):
        req = comm.irecv(source=source, tag=tag)
        req.cancel()
        status = MPI.Status()
        expect_same(req.wait(status), None, "cancelled receive")
        assert status.Is_cancelled(), "status says cancelled"
        expect_null(req, "cancelled")
        world.Barrier()  # nobody sends before every rank's receive is cancelled
        # The communicator still works, on the same tag too.
        for kind in KINDS:
            sreq = comm.isend(make(kind, rank), right, 40)
            expect_same(comm.recv(source=left, tag=40), make(kind, left), kind)
            sreq.wait()


def check_cancel_then_test_and_irecv_again():
    req = comm.irecv(source=left, tag=41)
    req.Cancel()
    status = MPI.Status()
    while not req.Test(status):
        pass
    assert status.Is_cancelled()
    world.Barrier()
    rreq = comm.irecv(source=left, tag=41)
    sreq = comm.isend(make("large", rank), right, 41)
    expect_same(rreq.wait(), make("large", left), "after cancel")
    sreq.wait()


def check_cancel_of_completed_request_is_harmless():
    rreq = comm.irecv(source=left, tag=42)
    sreq = comm.isend(make("small", rank), right, 42)
    while not rreq.get_status():
        pass
    rreq.cancel()
    status = MPI.Status()
    expect_same(rreq.wait(status), make("small", left), "completed before cancel")
    assert not status.Is_cancelled()
    sreq.wait()


def check_statuses_of_lone_plain_receive_requests():
    # A plain MPI.Request given alone (no pkl5shim receive pending) must get its
    # status filled like any other: waitall, waitany and waitsome.
    inbox = np.zeros(8, "f8")
    got = []
    for tag, call in ((70, "waitall"), (71, "waitany"), (72, "waitsome")):
        rreq = world.Irecv(inbox, source=left, tag=tag)
        sreq = world.Isend(np.full(8, float(rank)), right, tag)
        status = MPI.Status()
        if call == "waitany":
            Request.waitany([rreq], status)
        else:
            getattr(Request, call)([rreq], [status])
        sreq.Wait()
        got.append((call, status.Get_source(), status.Get_tag(), status.Get_count(MPI.BYTE)))
    expect_same(inbox, np.full(8, float(left)), "data")
    expected = [
        (call, left, tag, inbox.nbytes)
        for call, tag in (("waitall", 70), ("waitany", 71), ("waitsome", 72))
    ]
    expect_same(got, expected, "(call, source, tag, count)")


# -- the scratch memory of first messages is recycled (codec.scratch / recycle) ----------
def _payload(round_: int, i: int) -> Any:
    """Tiny, copied-out (up to 16 KiB) and larger plain pickles, and out-of-band arrays."""
    nbytes = (10, 5_000, 20_000, 100_000)[i % 4]
    if i % 5 == 4:
        return np.full(40_000, round_ * 100 + i, dtype="f8")
    return bytes([(round_ * 31 + i) % 251]) * nbytes


def check_recycled_first_messages_keep_every_object():
    count = 3 * pkl5shim.codec.SPARES  # more receives at once than buffers kept
    kept = []
    for round_ in range(4):
        recvs = [comm.irecv(source=left, tag=40) for _ in range(count)]
        sends = [comm.isend(_payload(round_, i), right, 40) for i in range(count)]
        got = Request.waitall(recvs + sends)[:count]
        for i, obj in enumerate(got):
            expect_same(obj, _payload(round_, i), f"round {round_}, message {i}")
        kept.append(got)
    for round_, got in enumerate(kept):  # later rounds reused the memory: nothing changed
        for i, obj in enumerate(got):
            expect_same(obj, _payload(round_, i), f"kept from round {round_}, message {i}")


def check_custom_loads_returning_views_of_its_input_keeps_objects():
    def dumps(obj: Any, protocol: Any = None, buffer_callback: Any = None) -> bytes:
        return bytes(obj)

    MPI.pickle.__init__(dumps, memoryview)  # loads gives a view of the received bytes
    try:
        kept = []
        for round_ in range(3):
            count = 2 * pkl5shim.codec.SPARES
            payloads = [bytes([round_ * 16 + i]) * (50 + i) for i in range(count)]
            recvs = [comm.irecv(source=left, tag=41) for _ in payloads]
            sends = [comm.isend(p, right, 41) for p in payloads]
            got = Request.waitall(recvs + sends)[: len(payloads)]
            kept.append((payloads, got))
        for payloads, got in kept:
            assert [bytes(view) for view in got] == payloads, "a received view was overwritten"
    finally:
        MPI.pickle.__init__()
