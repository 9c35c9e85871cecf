"""Basic point-to-point round trips in a ring (works on any number of ranks)."""

import numpy as np
from common import comm, expect_same, left, rank, right


def payload(r: int, kind: str):
    if kind == "small":
        return {"rank": r, "values": list(range(r + 3))}
    return {"rank": r, "array": np.arange(200_000 + r, dtype="f8")}


def check_isend_recv_small_and_large():
    for kind in ("small", "large"):
        req = comm.isend(payload(rank, kind), right, tag=3)
        got = comm.recv(source=left, tag=3)
        req.wait()
        expect_same(got, payload(left, kind), kind)


def check_irecv_then_isend():
    for kind in ("small", "large"):
        rreq = comm.irecv(source=left, tag=4)
        sreq = comm.isend(payload(rank, kind), right, tag=4)
        got = rreq.wait()
        sreq.wait()
        expect_same(got, payload(left, kind), kind)
