"""MPI.pickle settings are honoured by pkl5shim (2 ranks).

* a custom ``MPI.pickle.__init__(dumps, loads)`` is what pkl5shim pickles with,
  for small and for large objects;
* ``MPI.pickle.THRESHOLD = 0`` sends even small arrays out of band (a header);
* ``MPI.pickle.THRESHOLD = 2**40`` keeps big arrays in band: header + stream.
"""

import pickle
from collections import Counter

import numpy as np
from mpi4py import MPI
from progutil import done, expect_same, large_first_nbytes, receive_by_hand

import pkl5shim
from pkl5shim import wire
from pkl5shim.config import settings

comm = pkl5shim.Intracomm(MPI.COMM_WORLD)
rank, size = comm.Get_rank(), comm.Get_size()
assert size == 2, "run on 2 ranks"
other = 1 - rank
calls = Counter()
DEFAULT_THRESHOLD = MPI.pickle.THRESHOLD


def counting_dumps(obj, *args, **kwargs):
    calls["dumps"] += 1
    return pickle.dumps(obj, *args, **kwargs)


def counting_loads(data, *args, **kwargs):
    calls["loads"] += 1
    return pickle.loads(data, *args, **kwargs)


def small(r):
    return {"rank": r, "values": [1.5, "two", None]}


def large(r):
    return {"rank": r, "array": np.arange(400_000, dtype=np.float64) + r}


def exchange(obj, tag):
    request = comm.isend(obj, other, tag)
    got = comm.recv(source=other, tag=tag)
    request.wait()
    return got


def custom_pickle_is_used():
    MPI.pickle.__init__(counting_dumps, counting_loads)
    for make in (small, large):
        for how in ("isend/recv", "send/irecv", "bcast"):
            calls.clear()
            if how == "isend/recv":
                got, expected = exchange(make(rank), 1), make(other)
            elif how == "send/irecv":
                request = comm.irecv(source=other, tag=2)
                comm.send(make(rank), other, 2)
                got, expected = request.wait(), make(other)
            else:
                got, expected = comm.bcast(make(0) if rank == 0 else None, 0), make(0)
            expect_same(got, expected, f"{make.__name__} by {how}")
            what = f"{make.__name__} by {how}: custom calls {dict(calls)}"
            if how == "bcast":
                assert calls["dumps" if rank == 0 else "loads"] >= 1, what
            else:
                assert calls["dumps"] >= 1 and calls["loads"] >= 1, what
    MPI.pickle.__init__()


def first_message_kind(obj, tag):
    """Send ``obj`` from rank 0; rank 1 receives it by hand and returns what it saw."""
    if rank == 0:
        comm.isend(obj, 1, tag).wait()
        return None
    got = receive_by_hand(comm, 0, tag)
    expect_same(got["obj"], obj, f"tag {tag}: object received by hand")
    return got


def threshold_zero_sends_small_arrays_out_of_band():
    MPI.pickle.THRESHOLD = 0
    try:
        tiny = np.arange(10, dtype=np.int32)
        # through pkl5shim's own receive
        expect_same(exchange(tiny + rank, 3), tiny + other, "tiny array, THRESHOLD 0")
        status = MPI.Status()
        request = comm.isend({"a": tiny, "b": tiny * 2}, other, 4)
        comm.probe(other, 4, status)
        expected = large_first_nbytes({"a": tiny, "b": tiny * 2})
        assert expected > wire.HEADER_SIZE, "the table and stream should fit inline"
        assert status.Get_count(MPI.BYTE) == expected, "not sent as an inline header"
        expect_same(comm.recv(source=other, tag=4), {"a": tiny, "b": tiny * 2}, "two arrays")
        request.wait()
        # what is on the wire
        got = first_message_kind(tiny, 5)
        if got is not None:
            assert got["header"] is not None and got["header"].nbuffers == 1, got["header"]
            assert got["table"] == [tiny.nbytes], got["table"]
    finally:
        MPI.pickle.THRESHOLD = DEFAULT_THRESHOLD


def huge_threshold_keeps_big_arrays_in_band():
    MPI.pickle.THRESHOLD = 2**40
    try:
        big = np.arange(300_000, dtype=np.float64)  # 2.4 MB, far above PKL5_EAGER
        expect_same(exchange(big + rank, 6), big + other, "big array in band")
        got = first_message_kind(big, 7)
        if got is not None:
            header = got["header"]
            assert header is not None, "a big stream was sent as a small message"
            assert header.nbuffers == 0 and header.stream_nbytes > big.nbytes, header
            assert header.stream_nbytes > settings.eager_limit, header
        small_array = np.arange(100, dtype=np.int64)
        got = first_message_kind(small_array, 8)
        if got is not None:
            assert got["header"] is None, "a small in-band array was sent with a header"
    finally:
        MPI.pickle.THRESHOLD = DEFAULT_THRESHOLD


custom_pickle_is_used()
threshold_zero_sends_small_arrays_out_of_band()
huge_threshold_keeps_big_arrays_in_band()
done("pickle settings")
