"""The large objects users send besides plain arrays, through send/recv, isend/irecv, bcast
and gather: what travels out of band without a copy, and what does not.

Out of band, zero-copy: a pandas DataFrame of numeric, string (pyarrow-backed, pandas'
default with pyarrow installed) and categorical columns, a pyarrow Table, a dict and a
list of arrays, a ``pickle.PickleBuffer`` (of a bytearray or of a memoryview).  Each
object's data must be the pickler's out-of-band buffers themselves on the sender, and
the received object's data must lie inside the buffers the engine received into
(a DataFrame's string column is copied once by pandas' own pickling, then sent out of
band).

In band (pickle protocol 5 copies them into the stream, plain mpi4py does the same):
``bytes``, ``bytearray`` and a non-contiguous array view.  ``memoryview`` cannot be
pickled at all, by plain mpi4py either.  (Measured costs: ``benchmarks/objects.py``.)
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from common import comm, left, rank, right, size, world

from pkl5shim import codec

ROWS = 3 << 17  # 3 MiB per float64 column; 384 KiB of categorical codes (over THRESHOLD)
MIB = 1 << 20


@functools.cache
def _strings(prefix: str, r: int) -> list[str]:
    return [f"{prefix}{i % 997}-{r}" for i in range(ROWS)]


def frame(r: int) -> pd.DataFrame:
    index = np.arange(ROWS)
    return pd.DataFrame(
        {
            "x": index * 0.5 + r,
            "n": index + r,
            "s": pd.array(_strings("s", r), dtype="str"),
            "c": pd.Categorical.from_codes((index + r) % 7, list("abcdefg")),
        }
    )


def table(r: int) -> pa.Table:
    return pa.table({"x": np.arange(ROWS, dtype="f8") + r, "s": _strings("t", r)})


@functools.cache
def _bytes(r: int, nbytes: int = 6 * MIB) -> bytes:
    return np.random.default_rng(r).integers(0, 256, nbytes, dtype="u1").tobytes()


ZERO_COPY: dict[str, Callable[[int], Any]] = {
    "dataframe": frame,
    "pyarrow_table": table,
    "dict_of_arrays": lambda r: {"a": np.arange(ROWS) + r, "b": np.ones((512, 1024)) * r},
    "list_of_arrays": lambda r: [np.arange(ROWS, dtype="f4") - r, np.full(ROWS, r, "i8")],
    "picklebuffer_of_bytearray": lambda r: pickle.PickleBuffer(bytearray(_bytes(r))),
    "picklebuffer_of_memoryview": lambda r: pickle.PickleBuffer(memoryview(_bytes(r))),
}
IN_BAND: dict[str, Callable[[int], Any]] = {
    "bytes": _bytes,
    "bytearray": lambda r: bytearray(_bytes(r)),
    "non_contiguous_view": lambda r: (np.arange(1024 * 1024, dtype="f8") + r).reshape(1024, 1024)[
        :, ::2
    ],
}


# -- what an object's data is, and where it lies ---------------------------------------
def _address(buffer: Any) -> tuple[int, int]:
    view = np.frombuffer(buffer, dtype=np.uint8)
    return view.ctypes.data, view.nbytes


def data_of(obj: Any, sending: bool = False) -> list[tuple[int, int]]:
    """(address, nbytes) of each large piece of data ``obj`` holds.

    ``sending``: without a DataFrame's string column, which pandas' own pickling copies
    once (``__getstate__`` of an arrow-backed column calls ``combine_chunks``) before
    its buffers go out of band.
    """
    if isinstance(obj, pd.DataFrame):
        pieces = [_address(obj["x"].to_numpy())]
        pieces += [_address(obj["n"].to_numpy()), _address(obj["c"].array.codes)]
        chunks = [] if sending else obj["s"].array.__arrow_array__().chunks
        return pieces + [_address(b) for c in chunks for b in c.buffers() if b is not None]
    if isinstance(obj, pa.Table):
        chunks = [chunk for column in obj.columns for chunk in column.chunks]
        return [_address(b) for chunk in chunks for b in chunk.buffers() if b is not None]
    if isinstance(obj, dict):
        return [piece for value in obj.values() for piece in data_of(value)]
    if isinstance(obj, list):
        return [piece for value in obj for piece in data_of(value)]
    if isinstance(obj, np.ndarray):
        return [_address(obj)]
    return [_address(obj.raw() if isinstance(obj, pickle.PickleBuffer) else obj)]


def inside(pieces: list[tuple[int, int]], buffers: list[Any], what: str) -> None:
    spans = [_address(buffer) for buffer in buffers]
    for address, nbytes in pieces:
        if nbytes < 4096:
            continue  # small pieces (validity bitmaps of no nulls, ...) may stay in band
        ok = any(start <= address and address + nbytes <= start + n for start, n in spans)
        assert ok, f"{what}: {nbytes} bytes at {address:#x} are not in the buffers {spans}"


def expect_equal(got: Any, expected: Any, what: str) -> None:
    if isinstance(expected, pd.DataFrame):  # (assert_frame_equal: seconds per categorical)
        assert list(got.columns) == list(expected.columns), what
        assert got.dtypes.equals(expected.dtypes), (what, got.dtypes)
        for column in ("x", "n"):
            assert np.array_equal(got[column].to_numpy(), expected[column].to_numpy()), what
        assert np.array_equal(got["c"].array.codes, expected["c"].array.codes), what
        assert list(got["c"].cat.categories) == list(expected["c"].cat.categories), what
        strings = got["s"].array.__arrow_array__()
        assert strings.equals(expected["s"].array.__arrow_array__()), what
    elif isinstance(expected, pa.Table):
        assert got.equals(expected), what
    elif isinstance(expected, dict):
        assert got.keys() == expected.keys(), what
        for key in expected:
            expect_equal(got[key], expected[key], f"{what}[{key}]")
    elif isinstance(expected, list):
        assert len(got) == len(expected), what
        for index, (g, e) in enumerate(zip(got, expected)):
            expect_equal(g, e, f"{what}[{index}]")
    elif isinstance(expected, np.ndarray):
        assert got.dtype == expected.dtype and np.array_equal(got, expected), what
    elif isinstance(expected, pickle.PickleBuffer):  # arrives as the engine's buffer
        assert bytes(memoryview(got)) == bytes(expected.raw()), what
    else:
        assert type(got) is type(expected) and got == expected, what


@contextmanager
def received_buffers() -> Iterator[list[list[Any]]]:
    """The out-of-band buffers of every object unpickled meanwhile."""
    seen: list[list[Any]] = []
    inner = codec.loads

    def loads(stream: Any, buffers: list[Any]) -> Any:
        seen.append(list(buffers))
        return inner(stream, buffers)

    codec.loads = loads
    try:
        yield seen
    finally:
        codec.loads = inner


# -- the exchanges --------------------------------------------------------------------
def send_recv(obj: Any, tag: int) -> Any:
    if size == 1:
        req = comm.irecv(source=left, tag=tag)
        comm.send(obj, right, tag)
        return req.wait()
    if rank % 2 == 0:
        comm.send(obj, right, tag)
        return comm.recv(source=left, tag=tag)
    got = comm.recv(source=left, tag=tag)
    comm.send(obj, right, tag)
    return got


def isend_irecv(obj: Any, tag: int) -> Any:
    receive = comm.irecv(source=left, tag=tag)
    send = comm.isend(obj, right, tag)
    got = receive.wait()
    send.wait()
    return got


def _exchange(build: Callable[[int], Any], name: str, zero_copy: bool) -> None:
    for method, exchange in (("send/recv", send_recv), ("isend/irecv", isend_irecv)):
        mine = build(rank)
        if zero_copy:
            inside(data_of(mine, sending=True), codec.dumps(mine)[1], f"{name} pickled")
        with received_buffers() as seen:
            got = exchange(mine, 11)
        expect_equal(got, build(left), f"{name} {method}")
        if zero_copy:
            inside(data_of(got), seen[-1], f"{name} {method} received")
        else:
            assert seen[-1] == [], f"{name} {method}: expected in band, got {len(seen[-1])}"
    with received_buffers() as seen:
        got = comm.bcast(build(0) if rank == 0 else None, root=0)
    expect_equal(got, build(0), f"{name} bcast")
    if zero_copy:
        inside(data_of(got), seen[-1], f"{name} bcast received")
    with received_buffers() as seen:
        gathered = comm.gather(build(rank), root=0)
    if rank == 0:
        assert len(gathered) == size
        for r, got in enumerate(gathered):
            expect_equal(got, build(r), f"{name} gather from {r}")
            if zero_copy:
                inside(data_of(got), [b for bufs in seen for b in bufs], f"{name} gather {r}")
    world.barrier()


def check_zero_copy_objects() -> None:
    for name, build in ZERO_COPY.items():
        _exchange(build, name, zero_copy=True)


def check_in_band_objects() -> None:
    for name, build in IN_BAND.items():
        assert codec.dumps(build(rank))[1] == [], f"{name} is out of band today"
        _exchange(build, name, zero_copy=False)


def check_memoryview_is_not_picklable_as_in_plain_mpi4py() -> None:
    view = memoryview(_bytes(rank, 1024))
    errors = []
    for send in (comm.isend, world.isend):  # pkl5shim's, then plain mpi4py's
        try:
            send(view, right, 12).wait()
        except TypeError as exc:
            errors.append(str(exc))
    assert len(errors) == 2 and all("memoryview" in error for error in errors), errors
