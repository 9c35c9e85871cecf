"""enable()/disable(): the patched mpi4py module, its communicators, requests and messages."""

import os
import tempfile
import threading

import numpy as np
from common import expect_same, left, rank, right, size
from mpi4py import MPI
from mpi4py.util import pkl5

import pkl5shim
from pkl5shim import transport

ORIGINAL_WORLD = MPI.COMM_WORLD
ORIGINAL_SELF = MPI.COMM_SELF
ORIGINAL_REQUEST = MPI.Request
ORIGINAL_MESSAGE = MPI.Message


def big(r: int, tag: int = 0) -> dict:
    return {"rank": r, "tag": tag, "data": np.arange(200_000 + r, dtype="f8") * (tag + 1)}


def ring(c: MPI.Comm, tag: int) -> None:
    """A large object to the right neighbour of ``c``, checked at the left one."""
    me, count = c.Get_rank(), c.Get_size()
    request = c.isend(big(me, tag), (me + 1) % count, tag)
    expect_same(c.recv(source=(me - 1) % count, tag=tag), big((me - 1) % count, tag))
    request.wait()


def carried_out_of_band(action) -> int:
    """How many large objects this rank received through the engine during ``action()``."""
    before = pkl5shim.stats()["out_of_band_received"]
    action()
    return pkl5shim.stats()["out_of_band_received"] - before


def check_enable_disable_cycles_restore_identity():
    assert not pkl5shim.enabled()
    pkl5shim.enable()
    try:
        assert pkl5shim.enabled()
        patched = MPI.COMM_WORLD
        assert patched is not ORIGINAL_WORLD and type(patched) is pkl5shim.Intracomm
        assert patched == ORIGINAL_WORLD and MPI.COMM_SELF == ORIGINAL_SELF
        assert isinstance(MPI.COMM_SELF, pkl5shim.Intracomm)
        pkl5shim.enable()  # idempotent
        assert MPI.COMM_WORLD is patched
        assert carried_out_of_band(lambda: ring(MPI.COMM_WORLD, 1)) == 1
    finally:
        pkl5shim.disable()
    assert not pkl5shim.enabled()
    assert MPI.COMM_WORLD is ORIGINAL_WORLD and MPI.COMM_SELF is ORIGINAL_SELF
    assert MPI.Request is ORIGINAL_REQUEST and MPI.Message is ORIGINAL_MESSAGE
    pkl5shim.disable()  # idempotent
    assert MPI.COMM_WORLD is ORIGINAL_WORLD
    ring(patched, 2)  # made while enabled: keeps working after disable
    pkl5shim.enable()
    try:
        assert MPI.COMM_WORLD is patched  # the same wrapper in every cycle
    finally:
        pkl5shim.disable()


def check_enable_and_disable_from_two_threads_at_once():
    def run_both(action) -> None:
        errors: list[BaseException] = []

        def target() -> None:
            try:
                action()
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                errors.append(exc)

        threads = [threading.Thread(target=target) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors

    run_both(pkl5shim.enable)
    try:
        assert pkl5shim.enabled() and isinstance(MPI.COMM_WORLD, pkl5shim.Intracomm)
        ring(MPI.COMM_WORLD, 3)
    finally:
        run_both(pkl5shim.disable)
    assert MPI.COMM_WORLD is ORIGINAL_WORLD and not pkl5shim.enabled()


def check_disable_with_requests_in_flight():
    pkl5shim.enable()
    try:
        patched = MPI.COMM_WORLD
        receive = patched.irecv(source=left, tag=4)
        send = patched.isend(big(rank, 4), right, tag=4)
    finally:
        pkl5shim.disable()
    expect_same(receive.wait(), big(left, 4))
    send.wait()


def check_patched_world_is_accepted_wherever_mpi4py_accepts_it():
    pkl5shim.enable()
    try:
        patched = MPI.COMM_WORLD
        assert isinstance(patched, MPI.Intracomm) and isinstance(patched, MPI.Comm)
        assert MPI.Comm.Compare(patched, ORIGINAL_WORLD) == MPI.IDENT
        assert MPI.Intracomm(patched) == ORIGINAL_WORLD
        assert MPI.Comm.f2py(patched.py2f()) == ORIGINAL_WORLD
        window = MPI.Win.Create(np.zeros(4), comm=patched)
        window.Free()
        allocated = MPI.Win.Allocate(64, comm=patched)
        allocated.Free()
        keyval = MPI.Comm.Create_keyval()
        patched.Set_attr(keyval, "value")
        assert patched.Get_attr(keyval) == "value"
        patched.Delete_attr(keyval)
        MPI.Comm.Free_keyval(keyval)
        previous = patched.Get_errhandler()
        patched.Set_errhandler(MPI.ERRORS_RETURN)
        patched.Set_errhandler(previous)
        previous.Free()
        assert patched.Get_name() == ORIGINAL_WORLD.Get_name()
        # uppercase calls stay mpi4py's
        data = np.full(10, rank, dtype="i4")
        patched.Bcast(data, root=0)
        assert (data == 0).all()
        got = np.empty(10, dtype="i4")
        patched.Sendrecv(np.full(10, rank, dtype="i4"), right, 9, got, left, 9)
        assert (got == left).all()
        # a pkl5 communicator on top of a patched one
        theirs = pkl5.Intracomm(patched)
        request = theirs.isend(big(rank, 5), right, tag=5)
        expect_same(theirs.recv(source=left, tag=5), big(left, 5))
        request.wait()
        assert carried_out_of_band(lambda: ring(MPI.COMM_SELF, 6)) == 1
    finally:
        pkl5shim.disable()


def check_patched_world_opens_files():
    pkl5shim.enable()
    try:
        patched = MPI.COMM_WORLD
        path = patched.bcast(tempfile.mktemp(suffix=".bin") if rank == 0 else None)
        handle = MPI.File.Open(patched, path, MPI.MODE_CREATE | MPI.MODE_RDWR)
        handle.Write_at_all(rank * 8, np.array([rank], dtype="i8"))
        handle.Close()
        patched.Barrier()
        if rank == 0:
            assert (np.fromfile(path, dtype="i8") == np.arange(size)).all()
            os.remove(path)
    finally:
        pkl5shim.disable()


def check_request_class_methods_take_every_kind_of_request():
    pkl5shim.enable()
    try:
        patched = MPI.COMM_WORLD
        upper_in = np.empty(3, dtype="i8")
        requests = [
            patched.isend(big(rank, 7), right, tag=7),
            patched.irecv(source=left, tag=7),
            ORIGINAL_WORLD.Isend(np.full(3, rank, dtype="i8"), right, tag=8),
            ORIGINAL_WORLD.Irecv(upper_in, left, tag=8),
        ]
        assert all(isinstance(request, MPI.Request) for request in requests)
        assert issubclass(MPI.Prequest, MPI.Request) and isinstance(MPI.REQUEST_NULL, MPI.Request)
        results = MPI.Request.waitall(requests)
        expect_same(results[1], big(left, 7))
        assert (upper_in == left).all()
        # uppercase class calls: on mpi4py's requests alone, and mixed with pkl5shim's
        plain = [ORIGINAL_WORLD.Isend(np.full(3, rank, "i8"), right, 10)]
        plain.append(ORIGINAL_WORLD.Irecv(upper_in, left, 10))
        assert MPI.Request.Waitall(plain) is True
        mixed = [patched.isend(big(rank, 11), right, 11), patched.irecv(source=left, tag=11)]
        statuses = [MPI.Status(), MPI.Status()]
        MPI.Request.Waitall(mixed, statuses)
        assert statuses[1].Get_source() == left and statuses[1].Get_tag() == 11
        pending = [patched.irecv(source=left, tag=12)]
        send = patched.isend(big(rank, 12), right, 12)
        index, obj = MPI.Request.waitany(pending)
        assert index == 0
        expect_same(obj, big(left, 12))
        while not MPI.Request.Testall([send]):
            pass
        pair = [patched.irecv(source=left, tag=18), patched.isend(big(rank, 18), right, 18)]
        flag, objs = MPI.Request.testall(pair)
        while not flag:
            flag, objs = MPI.Request.testall(pair)
        expect_same(objs[0], big(left, 18))
        some = [patched.irecv(source=left, tag=13), patched.isend(big(rank, 13), right, 13)]
        done: set[int] = set()
        while len(done) < 2:
            done.update(MPI.Request.Waitsome(some) or [])
    finally:
        pkl5shim.disable()


def check_message_class_probe_goes_through_the_engine():
    pkl5shim.enable()
    try:
        patched = MPI.COMM_WORLD
        send = patched.isend(big(rank, 14), right, 14)
        status = MPI.Status()
        message = MPI.Message.probe(patched, source=left, tag=14, status=status)
        assert isinstance(message, MPI.Message) and status.Get_source() == left
        expect_same(message.recv(), big(left, 14))
        send.wait()
        send = patched.isend({"small": rank}, right, 15)
        found = None
        while found is None:
            found = MPI.Message.iprobe(patched, source=left, tag=15)
        assert found.recv() == {"small": left}
        send.wait()
        # a communicator pkl5shim does not wrap keeps mpi4py's own matching probe
        plain_send = ORIGINAL_WORLD.isend("plain", right, 16)
        plain_message = MPI.Message.probe(ORIGINAL_WORLD, source=left, tag=16)
        assert type(plain_message) is ORIGINAL_MESSAGE and plain_message.recv() == "plain"
        plain_send.wait()
    finally:
        pkl5shim.disable()


def check_communicators_derived_from_patched_world_are_wrapped():
    pkl5shim.enable()
    try:
        patched = MPI.COMM_WORLD
        channels = len(transport.live_channels())
        duplicate = patched.Dup()
        started, request = patched.Idup()
        request.Wait()
        with_info = patched.Dup_with_info(MPI.INFO_NULL)
        split = patched.Split(rank % 2, rank)
        shared = patched.Split_type(MPI.COMM_TYPE_SHARED)
        cart = patched.Create_cart([size], periods=[True])
        made = [duplicate, started, with_info, split, shared, cart]
        for c in made:
            assert isinstance(c, pkl5shim.Comm), type(c)
            assert carried_out_of_band(lambda c=c: ring(c, 17)) == 1
        assert type(cart) is pkl5shim.Cartcomm and cart.Shift(0, 1) == (left, right)
        assert len(transport.live_channels()) == channels + len(made)
        for c in made[:-1]:
            c.Free()
        cart.Disconnect()
        assert len(transport.live_channels()) == channels  # Free/Disconnect release them
    finally:
        pkl5shim.disable()


def check_unreached_communicators_say_how_to_wrap():
    pkl5shim.enable()
    try:
        plain = MPI.Intracomm(MPI.COMM_WORLD)  # a handle pkl5shim never saw: like Get_parent()
        assert not isinstance(plain, pkl5shim.Comm)
        # sending a large object through pkl5shim on it names the fix
        unwrapped = plain.Dup()
        try:
            pkl5shim.Comm.send(unwrapped, big(rank), right)
        except pkl5shim.ChannelError as exc:
            assert "pkl5shim.wrap" in str(exc), exc
        else:
            raise AssertionError("no ChannelError")
        finally:
            unwrapped.Free()
    finally:
        pkl5shim.disable()
