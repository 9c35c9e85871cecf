"""More than 4 GiB in one object, rank 0 to rank 1: send/recv, then isend/irecv;
then more than 4 GiB through one gather (one array over 2 GiB from each rank), then
an allgather of one array over 2 GiB from rank 0 and a string from rank 1, then a
bcast of bytes over 2 GiB (a pickle stream over 2 GiB, no out-of-band buffer).

Two uint8 arrays, each larger than 2 GiB (beyond a C int count: MPI-4 large
counts on MPICH, 2**31-1 byte pieces on Open MPI's MPI-3.1).  Contents: byte i
of array k is (i + k) % 251, checked by a full checksum and sampled slices.
"""

import time

import numpy as np
from mpi4py import MPI
from progutil import done

import pkl5shim

SIZES = (2**31 + 12345, 2**31 + 999)
TILE = 251 * (1 << 16)  # a multiple of the period: tiles line up with the pattern
CHUNK = 1 << 28
comm = pkl5shim.Intracomm(MPI.COMM_WORLD)
rank = comm.Get_rank()
assert comm.Get_size() == 2, "run on 2 ranks"


def pattern(start, stop, k):
    return ((np.arange(start, stop, dtype=np.int64) + k) % 251).astype(np.uint8)


def make(n, k):
    array = np.empty(n, np.uint8)
    tile = pattern(0, TILE, k)
    for start in range(0, n, TILE):
        stop = min(start + TILE, n)
        array[start:stop] = tile[: stop - start]
    return array


def expected_sum(n, k):
    full, rest = divmod(n, 251)
    return full * (250 * 251 // 2) + sum((i + k) % 251 for i in range(rest))


def check(array, n, k, what):
    assert isinstance(array, np.ndarray) and array.dtype == np.uint8, (what, type(array))
    assert array.shape == (n,), (what, array.shape)
    total = 0
    for start in range(0, n, CHUNK):
        total += int(np.add.reduce(array[start : start + CHUNK], dtype=np.uint64))
    assert total == expected_sum(n, k), f"{what}: checksum {total} != {expected_sum(n, k)}"
    rng = np.random.default_rng(k)
    starts = [0, 2**31 - 4096, 2**31 - 1, n - 4096, *rng.integers(0, n - 4096, 16)]
    for start in starts:
        stop = min(int(start) + 4096, n)
        assert np.array_equal(array[start:stop], pattern(start, stop, k)), f"{what} at {start}"


def objects():
    return {"first": make(SIZES[0], 0), "second": make(SIZES[1], 1), "note": "over 4 GiB"}


def check_object(obj, how):
    assert sorted(obj) == ["first", "note", "second"], sorted(obj)
    assert obj["note"] == "over 4 GiB"
    check(obj["first"], SIZES[0], 0, f"{how}: first array")
    check(obj["second"], SIZES[1], 1, f"{how}: second array")


def main():
    if rank == 0:
        check(make(5000, 1), 5000, 1, "the pattern itself")
    for how in ("send/recv", "isend/irecv"):
        comm.Barrier()
        started = time.perf_counter()
        if rank == 0:
            obj = objects()
            comm.Barrier()
            started = time.perf_counter()
            if how == "send/recv":
                comm.send(obj, 1, tag=7)
            else:
                comm.isend(obj, 1, tag=8).wait()
            del obj
        else:
            request = comm.irecv(source=0, tag=8) if how == "isend/irecv" else None
            comm.Barrier()
            status = MPI.Status()
            obj = (
                comm.recv(source=0, tag=7, status=status)
                if request is None
                else (request.wait(status))
            )
            elapsed = time.perf_counter() - started
            assert status.Get_source() == 0, status.Get_source()
            # Get_elements: on MPI-3.1 (Open MPI) Get_count is MPI.UNDEFINED past 2**31 - 1
            assert status.Get_elements(MPI.BYTE) >= sum(SIZES), status.Get_elements(MPI.BYTE)
            print(f"{how}: {sum(SIZES) / 2**30:.2f} GiB in {elapsed:.1f} s", flush=True)
            check_object(obj, how)
            del obj
    comm.Barrier()
    mine = make(SIZES[rank], rank)
    comm.Barrier()
    started = time.perf_counter()
    gathered = comm.gather(mine, root=0)
    elapsed = time.perf_counter() - started
    del mine
    if rank == 0:
        print(f"gather: {sum(SIZES) / 2**30:.2f} GiB in {elapsed:.1f} s", flush=True)
        assert len(gathered) == 2
        check(gathered[0], SIZES[0], 0, "gather: item of rank 0")
        check(gathered[1], SIZES[1], 1, "gather: item of rank 1")
    del gathered
    # Uneven: over 2 GiB from rank 0, a string from rank 1 (per-rank broadcasts,
    # chunked below 2**31 bytes on Open MPI's MPI-3.1).
    mine = make(SIZES[0], 0) if rank == 0 else "small"
    comm.Barrier()
    started = time.perf_counter()
    everyone = comm.allgather(mine)
    elapsed = time.perf_counter() - started
    del mine
    if rank == 1:
        print(f"allgather: {SIZES[0] / 2**30:.2f} GiB in {elapsed:.1f} s", flush=True)
    assert len(everyone) == 2 and everyone[1] == "small", everyone[1:]
    check(everyone[0], SIZES[0], 0, f"allgather: item of rank 0, on rank {rank}")
    del everyone
    # In band: bytes over 2 GiB are part of the pickle stream itself (no out-of-band
    # buffer), broadcast in pieces below 2**31 bytes where the library needs it.
    text = bytes(make(SIZES[0], 0)) if rank == 0 else None
    comm.Barrier()
    started = time.perf_counter()
    text = comm.bcast(text, root=0)
    elapsed = time.perf_counter() - started
    if rank == 1:
        print(f"bcast: {SIZES[0] / 2**30:.2f} GiB in {elapsed:.1f} s", flush=True)
    assert isinstance(text, bytes), type(text)
    check(np.frombuffer(text, np.uint8), SIZES[0], 0, f"bcast: bytes on rank {rank}")
    del text
    done("huge")


main()
