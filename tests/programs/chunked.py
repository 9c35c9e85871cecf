"""PKL5_CHUNK=4096 on 2 ranks: large buffers travel as many MPI messages and arrive intact."""

import math

import numpy as np
from mpi4py import MPI
from progutil import done, expect_same, receive_by_hand

import pkl5shim
from pkl5shim.config import settings

CHUNK = 4096
comm = pkl5shim.Intracomm(MPI.COMM_WORLD)
rank, size = comm.Get_rank(), comm.Get_size()
assert size == 2, "run on 2 ranks"
assert settings.chunk_limit == CHUNK, settings
other = 1 - rank


def objects(seed):
    rng = np.random.default_rng(seed)
    return {
        "odd uint8 array": rng.integers(0, 256, 1_000_003, dtype=np.uint8),
        "several buffers": {
            "float64": np.arange(300_007, dtype=np.float64) * seed,
            "int16 2-D": rng.integers(-999, 999, (513, 1021), dtype=np.int16),
            "fortran": np.asfortranarray(rng.random((301, 229))),
            "chunk multiple": np.full(70 * CHUNK, seed % 256, np.uint8),
            "one byte over": np.full(70 * CHUNK + 1, 7, np.uint8),
            "small": np.arange(5),
            "text": "several buffers",
        },
        "in-band stream only": [f"item {i} {seed}" for i in range(20_011)],
    }


def round_trips():
    for what, obj in objects(rank + 1).items():
        expected = objects(other + 1)[what]
        request = comm.isend(obj, other, tag=1)
        expect_same(comm.recv(source=other, tag=1), expected, f"isend/recv {what}")
        request.wait()
        request = comm.irecv(source=other, tag=2)
        comm.send(obj, other, tag=2)
        expect_same(request.wait(), expected, f"send/irecv {what}")
        request = comm.irecv(source=other, tag=3)
        comm.ssend(obj, other, tag=3)
        expect_same(request.wait(), expected, f"ssend/irecv {what}")
        got = comm.sendrecv(obj, other, 4, source=other, recvtag=4)
        expect_same(got, expected, f"sendrecv {what}")
        got = comm.bcast(obj if rank == 0 else None, 0)
        expect_same(got, objects(1)[what], f"bcast {what}")
        expect_same(comm.allgather(obj), [objects(1)[what], objects(2)[what]], f"allgather {what}")


def pieces(nbytes):
    return max(1, math.ceil(nbytes / CHUNK))


def messages_are_chunked():
    # Rank 0 sends, rank 1 takes the payload off the channel message by message.
    for what, obj in objects(9).items():
        if rank == 0:
            comm.isend(obj, 1, tag=5).wait()
            continue
        got = receive_by_hand(comm, 0, 5)
        header, sizes = got["header"], got["sizes"]
        assert header is not None, f"{what}: sent as a small message"
        assert max(sizes) <= CHUNK, f"{what}: a message of {max(sizes)} bytes"
        if header.inline is not None:  # the table and the stream came in the header
            parts = []
        else:
            parts = ([8 * header.nbuffers] if header.nbuffers else []) + [header.stream_nbytes]
        parts += [int(n) for n in got["table"]]
        expected = sum(pieces(n) for n in parts)
        assert len(sizes) == expected, f"{what}: {len(sizes)} messages, expected {expected}"
        assert len(sizes) >= header.total_nbytes // CHUNK, what
        expect_same(got["obj"], obj, f"{what} reassembled by hand")
        print(f"{what}: {header.total_nbytes} bytes in {len(sizes)} channel messages", flush=True)


def uneven_allgather():
    # Ranks with fewer out-of-band buffers than others contribute nothing to the
    # per-buffer exchange, which past PKL5_CHUNK goes point-to-point.
    mine = objects(3)["several buffers"] if rank == 0 else 5
    expect_same(comm.allgather(mine), [objects(3)["several buffers"], 5], "uneven allgather")


round_trips()
uneven_allgather()
messages_are_chunked()
round_trips()
done("chunked")
