"""PKL5_EAGER=2048 moves the small/large boundary; everything still round-trips (2+ ranks)."""

import numpy as np
from mpi4py import MPI
from progutil import done, expect_same, inline_header_nbytes, large_first_nbytes

import pkl5shim
from pkl5shim import wire
from pkl5shim.config import settings

EAGER = 2048
comm = pkl5shim.Intracomm(MPI.COMM_WORLD)
rank, size = comm.Get_rank(), comm.Get_size()
assert size >= 2, "run on 2 or more ranks"
assert settings.eager_limit == EAGER, settings


def padded(r, pickle_size):
    """A dict from rank ``r`` whose pickle is exactly ``pickle_size`` bytes."""
    n = pickle_size
    while len(MPI.pickle.dumps({"r": r, "pad": b"x" * n})) > pickle_size:
        n -= 1
    obj = {"r": r, "pad": b"x" * n}
    assert len(MPI.pickle.dumps(obj)) == pickle_size, "cannot hit the size exactly"
    return obj


def with_array(r, inline_size):
    """An array (out of band) beside padding whose header message, with its table and
    stream inline, would be ``inline_size`` bytes."""
    array = np.full(40_000, r, np.int64)
    n = inline_size
    while inline_header_nbytes({"a": array, "pad": b"x" * n}) > inline_size:
        n -= 1
    obj = {"a": array, "pad": b"x" * n}
    assert len(MPI.pickle.dumps_oob(obj)[1]) == 1, "the array should go out of band"
    assert inline_header_nbytes(obj) == inline_size, "cannot hit the size exactly"
    return obj


def objects(r):
    """(object, expected first-message size) pairs around the boundary."""
    items = [(padded(r, n), n) for n in (EAGER - 100, EAGER - 1, EAGER)]
    items += [(padded(r, n), wire.HEADER_SIZE) for n in (EAGER + 1, EAGER + 500)]
    items += [
        (b"b" * (EAGER + 10) + bytes([r]), wire.HEADER_SIZE),
        ("s" * (EAGER * 2) + str(r), wire.HEADER_SIZE),
        (np.full(EAGER // 8 + 1, r, np.int64), wire.HEADER_SIZE),  # in band, over the limit
        (np.full(400_000, r, np.int64), large_first_nbytes(np.full(400_000, r, np.int64))),
        (with_array(r, EAGER), EAGER),  # out of band, table and stream inline: just fits
        (with_array(r, EAGER + 1), wire.HEADER_SIZE),  # one byte too many: on the channel
        (r, None),
    ]
    return items


def ring_round_trips():
    right, left = (rank + 1) % size, (rank - 1) % size
    for (obj, _), (expected, first_size) in zip(objects(rank), objects(left)):
        request = comm.isend(obj, right, 1)
        status = MPI.Status()
        comm.probe(left, 1, status)
        if first_size is not None:
            got_size = status.Get_count(MPI.BYTE)
            assert got_size == first_size, f"first message of {got_size} bytes, not {first_size}"
        expect_same(comm.recv(source=left, tag=1), expected, "ring recv")
        request.wait()
        request = comm.isend(obj, right, 2)
        expect_same(comm.irecv(source=left, tag=2).wait(), expected, "ring irecv")
        request.wait()


def any_source_at_rank_0():
    # Every other rank sends its objects to rank 0, which receives them with
    # ANY_SOURCE: by blocking recv, then by several irecvs posted together.
    count = len(objects(0))
    senders = range(1, size)
    for tag, how in ((3, "recv"), (4, "irecv")):
        if rank != 0:
            requests = [comm.isend(obj, 0, tag) for obj, _ in objects(rank)]
            pkl5shim.Request.waitall(requests)
            continue
        statuses = [MPI.Status() for _ in range(count * len(senders))]
        if how == "recv":
            got = [comm.recv(source=MPI.ANY_SOURCE, tag=tag, status=st) for st in statuses]
        else:
            requests = [comm.irecv(source=MPI.ANY_SOURCE, tag=tag) for _ in statuses]
            got = pkl5shim.Request.waitall(requests, statuses)
        position = dict.fromkeys(senders, 0)
        for obj, status in zip(got, statuses):
            source = status.Get_source()
            expected = objects(source)[position[source]][0]
            expect_same(obj, expected, f"ANY_SOURCE {how}: item {position[source]} of {source}")
            position[source] += 1
        assert all(n == count for n in position.values()), position


ring_round_trips()
any_source_at_rank_0()
ring_round_trips()
done("eager")
