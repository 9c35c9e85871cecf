"""Round trips of many kinds of objects in a ring, for every send method.

Every check sends each sample object to ``right`` and receives the one of
``left``, then compares it with what ``left`` built (``expect_same``).  Arrays
that travel out of band (contiguous, at least ``MPI.pickle.THRESHOLD`` bytes)
must arrive writable and 64-byte aligned; every array must arrive writable.
"""

import pickle
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from common import comm, expect_same, left, rank, right, size
from mpi4py import MPI

from pkl5shim.config import settings

EAGER = settings.eager_limit
RECORD = np.dtype([("id", "<i4"), ("value", "<f8"), ("name", "S6")])
KB300 = 300 * 1024


def _large(dtype: str, r: int) -> np.ndarray:
    count = KB300 // np.dtype(dtype).itemsize
    values = np.arange(count) % 251 + r
    if dtype == "?":
        return values % 3 == 0
    return values.astype(dtype)


def _records(count: int, r: int) -> np.ndarray:
    out = np.zeros(count, RECORD)
    out["id"] = np.arange(count) + r
    out["value"] = np.arange(count) * 0.5 - r
    out["name"] = [f"n{i % 1000}".encode() for i in range(count)]
    return out


def _grid(r: int) -> np.ndarray:
    return np.arange(300 * 200, dtype="f8").reshape(300, 200) + r


def _scalars(r: int) -> dict[str, Any]:
    return {
        "none": None,
        "true": True,
        "int_small": 42 + r,
        "int_negative": -7 - r,
        "int_2_64": 2**64 + r,
        "int_huge": 10**100 + r,
        "int_huge_negative": -(10**100) - r,
        "float": 1.5 + r,
        "float_inf": float("-inf"),
        "complex": complex(r, -1.25),
        "np_float64": np.float64(2.5 + r),
        "np_int8": np.int8(-3 - r),
    }


def _strings_and_bytes(r: int) -> dict[str, Any]:
    rng = np.random.default_rng(100 + r)
    return {
        "str_short": f"héllo {r} ✓",
        "str_empty": "",
        "str_1MB": "abc€" * (1 << 18) + str(r),
        "str_4byte_chars_at_scalar_limit": chr(0x1F600 + r) * (EAGER // 4 - 64),
        "str_4byte_chars_past_scalar_limit": chr(0x1F600 + r) * (EAGER // 4 - 63),
        "bytes_small": b"\x00\x01" + bytes([r]),
        "bytes_empty": b"",
        "bytes_at_scalar_limit": bytes([r]) * (EAGER - 64),
        "bytes_past_scalar_limit": bytes([r]) * (EAGER - 63),
        "bytes_1MB": rng.bytes(1 << 20),
        "bytearray_small": bytearray(b"xyz" + bytes([r])),
        "bytearray_1MB": bytearray(rng.bytes(1 << 20)),
    }


def _containers(r: int) -> dict[str, Any]:
    return {
        "nested": {
            "list": [1, [2, [3, (4, 5)]], {"k": (None, "v")}],
            "tuple": ((), (1,), ("a", b"b")),
            3: {"deep": [[[]]], "rank": r},
            "empty": ({}, [], ()),
        },
        "list_of_many_small": [{"i": i, "s": str(i) * 3} for i in range(2000 + r)],
        "tuple_with_large_arrays": (
            np.arange(40_000 + r, dtype="f8"),
            "x",
            [np.ones(70_000, "i4")],
        ),
    }


def _arrays(r: int) -> dict[str, Any]:
    samples: dict[str, Any] = {}
    for dtype in ("u1", "i4", "f8", "c16", "?"):
        samples[f"small_{dtype}"] = _large(dtype, r)[:10].copy()
        samples[f"large_{dtype}"] = _large(dtype, r)
    samples["small_records"] = _records(5, r)
    samples["large_records"] = _records(20_000, r)
    samples["nan_values"] = np.array([np.nan, 1.0 + r, np.inf])
    samples["c_order_2d"] = _grid(r)
    samples["fortran_order_2d"] = np.asfortranarray(_grid(r))
    samples["non_contiguous_large"] = _grid(r)[:, ::2]
    samples["non_contiguous_small"] = np.arange(20, dtype="i4").reshape(4, 5)[:, ::2] + r
    samples["zero_size_1d"] = np.empty(0, "f8")
    samples["zero_size_2d"] = np.zeros((4, 0), "i4")
    samples["zero_size_records"] = np.empty((0, 3), RECORD)
    samples["zero_d_float"] = np.array(3.25 + r)
    samples["zero_d_u1"] = np.array(7 + r, dtype="u1")
    samples["fifty_arrays_of_300KB"] = {
        "arrays": [np.full(KB300 // 8, 100 * r + i, "f8") for i in range(50)],
        "rank": r,
    }
    samples["mixed_small_and_large"] = [
        np.arange(5) + r,
        np.arange(50_000, dtype="i8") - r,
        {"tiny": np.ones(3, "?"), "text": "t" * 100},
        np.ones((600, 100), "f4") * r,  # 240 KB: below THRESHOLD, in band
        np.zeros(70_000, "u4") + r,  # 280 KB: out of band
        None,
    ]
    return samples


def samples(r: int) -> dict[str, Any]:
    """Every sample object built by rank ``r`` (deterministic in ``r``)."""
    return {**_scalars(r), **_strings_and_bytes(r), **_containers(r), **_arrays(r)}


NAMES = list(samples(0))


def array_pairs(got: Any, expected: Any) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (received, sent) array pairs found at the same place in both objects."""
    if isinstance(expected, np.ndarray):
        yield got, expected
    elif isinstance(expected, (list, tuple)):
        for g, e in zip(got, expected):
            yield from array_pairs(g, e)
    elif isinstance(expected, dict):
        for key in expected:
            yield from array_pairs(got[key], expected[key])


def expect_usable_arrays(got: Any, expected: Any, what: str) -> None:
    for g, e in array_pairs(got, expected):
        assert g.flags.writeable, f"{what}: received array is read-only"
        contiguous = e.flags.c_contiguous or e.flags.f_contiguous
        if contiguous and e.nbytes >= MPI.pickle.THRESHOLD:
            assert g.ctypes.data % 64 == 0, f"{what}: out-of-band array at {g.ctypes.data:#x}"


def round_trips(exchange: Callable[[Any, int], Any]) -> None:
    """Send every sample with ``exchange(obj, tag)`` and check what arrives."""
    mine = samples(rank)
    theirs = samples(left)
    for tag, name in enumerate(NAMES):
        got = exchange(mine[name], tag)
        expect_same(got, theirs[name], name)
        expect_usable_arrays(got, theirs[name], name)


# -- exchanges -------------------------------------------------------------------
def nonblocking(method: str) -> Callable[[Any, int], Any]:
    def exchange(obj: Any, tag: int) -> Any:
        req = getattr(comm, method)(obj, right, tag)
        got = comm.recv(source=left, tag=tag)
        req.wait()
        return got

    return exchange


def blocking(method: str) -> Callable[[Any, int], Any]:
    """Blocking send: even ranks send first, odd ranks receive first.

    On one rank the receive is posted (irecv) before sending to itself.
    """

    def exchange(obj: Any, tag: int) -> Any:
        send = getattr(comm, method)
        if size == 1:
            req = comm.irecv(source=left, tag=tag)
            send(obj, right, tag)
            return req.wait()
        if rank % 2 == 0:
            send(obj, right, tag)
            return comm.recv(source=left, tag=tag)
        got = comm.recv(source=left, tag=tag)
        send(obj, right, tag)
        return got

    return exchange


def preposted(method: str) -> Callable[[Any, int], Any]:
    """Blocking send of every mode after posting the irecv (works on any size)."""

    def exchange(obj: Any, tag: int) -> Any:
        req = comm.irecv(source=left, tag=tag)
        getattr(comm, method)(obj, right, tag)
        return req.wait()

    return exchange


def sendrecv(obj: Any, tag: int) -> Any:
    return comm.sendrecv(obj, right, sendtag=tag, source=left, recvtag=tag)


class attached_buffer:  # noqa: N801 - used like a function
    """Attach a buffer for buffered sends for the duration of a ``with`` block."""

    def __enter__(self) -> None:
        # Only first messages (at most EAGER bytes each) are sent in buffered mode.
        room = len(NAMES) * (EAGER + MPI.BSEND_OVERHEAD + 1024)
        MPI.Attach_buffer(bytearray(room))

    def __exit__(self, *exc: object) -> None:
        MPI.Detach_buffer()


# -- checks ------------------------------------------------------------------------
def check_isend_recv_round_trips():
    round_trips(nonblocking("isend"))


def check_ibsend_recv_round_trips():
    with attached_buffer():
        round_trips(nonblocking("ibsend"))


def check_issend_recv_round_trips():
    round_trips(nonblocking("issend"))


def check_send_recv_round_trips():
    round_trips(blocking("send"))


def check_bsend_recv_round_trips():
    with attached_buffer():
        round_trips(blocking("bsend"))


def check_ssend_recv_round_trips():
    round_trips(blocking("ssend"))


def check_every_blocking_mode_into_preposted_irecv():
    with attached_buffer():
        for method in ("send", "bsend", "ssend"):
            round_trips(preposted(method))


def check_sendrecv_round_trips():
    round_trips(sendrecv)


def check_array_memory_order_survives():
    req = comm.isend([_grid(rank), np.asfortranarray(_grid(rank))], right, 1)
    c_order, f_order = comm.recv(source=left, tag=1)
    req.wait()
    assert c_order.flags.c_contiguous and not c_order.flags.f_contiguous
    assert f_order.flags.f_contiguous and not f_order.flags.c_contiguous
    expect_same(f_order, np.asfortranarray(_grid(left)), "fortran")


def check_received_large_arrays_are_independent_and_writable():
    arrays = [np.full(KB300 // 8, float(i + rank)) for i in range(3)]
    req = comm.isend(arrays, right, 2)
    got = comm.recv(source=left, tag=2)
    req.wait()
    for array in got:
        assert array.ctypes.data % 64 == 0
        array[:] = -1.0  # writing one must not change another, nor what was sent
    expect_same(got, [np.full(KB300 // 8, -1.0)] * 3, "after writing")
    expect_same(arrays, [np.full(KB300 // 8, float(i + rank)) for i in range(3)], "sent")


def _bytearray_with_pickle_size(nbytes: int) -> bytearray:
    # The pickle of a bytearray grows by one byte per element, plus its framing
    # (which changes at 64 KiB): measure the overhead at about the size asked for.
    overhead = len(MPI.pickle.dumps_oob(bytearray(nbytes))[0]) - nbytes
    data = bytearray(range(256)) * ((nbytes - overhead) // 256 + 1)
    data = data[: nbytes - overhead]
    assert len(MPI.pickle.dumps_oob(data)[0]) == nbytes, (len(data), nbytes)
    return data


def check_pickles_around_the_eager_limit():
    mine = [_bytearray_with_pickle_size(EAGER + delta) for delta in (-1, 0, 1, 2)]
    for tag, obj in enumerate(mine):
        for exchange in (nonblocking("isend"), preposted("send")):
            expect_same(exchange(obj, tag), obj, f"pickle of {len(obj)} bytes")


def _views(r: int) -> list[memoryview]:
    small = bytearray(b"memoryview %d" % r)
    large = bytearray(np.arange(KB300, dtype="u1") + r)
    grid = np.arange(400 * 100, dtype="f8").reshape(400, 100) + r
    return [memoryview(small), memoryview(large), memoryview(grid), memoryview(large)[1000:2000]]


def check_pickle_buffer_contents():
    theirs = [bytes(view.cast("B")) for view in _views(left)]
    for tag, view in enumerate(_views(rank)):
        req = comm.isend(pickle.PickleBuffer(view), right, tag)
        got = comm.recv(source=left, tag=tag)
        req.wait()
        expect_same(bytes(memoryview(got).cast("B")), theirs[tag], f"view {tag}")
