"""Message counts and memory of the lowercase collectives at large scale, from the algorithms.

Three implementations: plain mpi4py (``msgpickle.pxi``: one pickle, two MPI
collectives per call; reductions on a binomial tree / recursive doubling of
point-to-point messages), ``mpi4py.util.pkl5`` (collectives as loops of
point-to-point messages, 2 + nbuffers messages per object; bcast as 3 + nbuffers
MPI_Bcast; reductions inherited from plain mpi4py) and pkl5shim
(``collectives.py``, ``reductions.py``, ``neighbors.py``).

Model of MPI's own algorithms (they vary with the library and sizes; these are
the usual defaults): Bcast, Gather and Scatter of fixed counts on a binomial
tree (p - 1 messages, log2 p at the root); Gatherv and Scatterv linear (p - 1
messages at the root); Allgather(v) by recursive doubling or Bruck (L = ceil(log2 p)
messages sent per rank); Alltoall(v) pairwise (p - 1 sent per rank).  A
"message" is one MPI point-to-point transfer, inside a collective or not.

Columns: messages in the whole job; messages the busiest rank sends plus
receives; bookkeeping memory at the busiest rank (count/displacement arrays,
pre-posted first blocks, MPI requests counted at ~256 bytes each), beyond the
objects themselves; bytes the busiest rank receives.

Usage: python benchmarks/scale_model.py [ranks] (default 10000).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

BLOCK = 1024  # pkl5shim: first message of a collective piece (head + inline payload)
HEAD = 16
EAGER = 256 * 1024  # PKL5_EAGER's default
REQUEST = 256  # rough size of one MPI request object


@dataclass(frozen=True)
class Obj:
    """A pickled object: stream bytes and out-of-band buffers (pkl5shim and pkl5)."""

    name: str
    stream: int
    buffers: tuple[int, ...] = ()

    @property
    def n(self) -> int:
        return len(self.buffers)

    @property
    def total(self) -> int:
        return self.stream + sum(self.buffers)

    def engine_messages(self) -> int:
        """pkl5shim point-to-point: one plain message, or header, table, stream, buffers."""
        if not self.buffers and self.stream <= EAGER:
            return 1
        return 1 + (1 if self.buffers else 0) + 1 + self.n

    def piece_messages(self) -> int:
        """pkl5shim collective piece: first block, payload if it does not fit, buffers."""
        payload = 8 * self.n + self.stream
        return 1 + (payload > BLOCK - HEAD) + self.n

    def pkl5_messages(self) -> int:
        return 2 + self.n


@dataclass
class Row:
    collective: str
    impl: str
    messages: int
    busiest: int
    bookkeeping: int
    received: int
    note: str = ""


def scan_pairs(p: int) -> int:
    """Pairs (r, r ^ mask) with both below p, over the rounds of recursive doubling."""
    pairs, mask = 0, 1
    while mask < p:
        pairs += sum(1 for r in range(p) if (r ^ mask) < p and r < (r ^ mask))
        mask <<= 1
    return pairs


def model(p: int, obj: Obj) -> list[Row]:
    L = max(1, math.ceil(math.log2(p)))  # noqa: N806 - the usual name
    S = obj.total  # noqa: N806 - plain mpi4py's in-band pickle
    k, m, k5 = obj.piece_messages(), obj.engine_messages(), obj.pkl5_messages()
    shim_piece = max(BLOCK, HEAD + 8 * obj.n + obj.stream) + sum(obj.buffers)  # padded block
    shim_p2p = HEAD + 8 * obj.n + obj.stream + sum(obj.buffers)  # gather/scatter/alltoall
    pairs = scan_pairs(p)
    inline_payload = 8 * obj.n + obj.stream <= BLOCK - HEAD
    rows = [
        Row("bcast", "plain", 2 * (p - 1), 2 * L, 0, S),
        Row("bcast", "pkl5", (3 + obj.n) * (p - 1), (3 + obj.n) * L, 0, S),
        Row("bcast", "pkl5shim", k * (p - 1), k * L, BLOCK, shim_piece),
        Row("gather", "plain", 2 * (p - 1), p - 1 + L, 16 * p, p * S,
            "Gatherv linear at the root"),
        Row("gather", "pkl5", p * k5, (p + 1) * k5, p * k5 * REQUEST, p * S,
            "root: blocking probe+recv per rank, in rank order"),
        Row("gather", "pkl5shim", (p - 1) * k, (p - 1) * k, (p - 1) * (BLOCK + REQUEST),
            (p - 1) * shim_p2p, "root pre-posts p - 1 first blocks of 1 KiB"),
        Row("scatter", "plain", 2 * (p - 1), p - 1 + L, 16 * p, S),
        Row("scatter", "pkl5", p * k5, (p + 1) * k5, p * k5 * REQUEST, S),
        Row("scatter", "pkl5shim", (p - 1) * k, (p - 1) * k, (p - 1) * k * REQUEST, shim_p2p),
        Row("allgather", "plain", 2 * p * L, 4 * L, 16 * p, p * S),
        Row("allgather", "pkl5", p * p * k5, 2 * p * k5, p * k5 * REQUEST, p * S,
            "p^2 point-to-point messages; receives in rank order"),
        Row("allgather", "pkl5shim", (1 + (not inline_payload) + obj.n) * p * L,
            2 * (1 + (not inline_payload) + obj.n) * L, p * BLOCK,
            p * shim_piece, "1 KiB block per rank even for an int"),
        Row("alltoall", "plain", 2 * p * (p - 1), 4 * (p - 1), 32 * p, p * S),
        Row("alltoall", "pkl5", p * p * k5, 2 * p * k5, p * k5 * REQUEST, p * S),
        Row("alltoall", "pkl5shim", p * (p - 1) * k, 2 * (p - 1) * k,
            (p - 1) * (BLOCK + (k + 1) * REQUEST), p * shim_p2p,
            "all 2(p - 1) sends and first receives posted at once"),
        Row("reduce", "plain = pkl5", 2 * (p - 1), 2 * L, 0, L * S, "binomial tree, 2 msgs/hop"),
        Row("reduce", "pkl5shim", (p - 1) * m, L * m, 0, L * S, "same tree, engine messages"),
        Row("allreduce", "plain = pkl5", 4 * (p - 1), 4 * L, 0, (L + 1) * S, "reduce + bcast"),
        Row("allreduce", "pkl5shim", (p - 1) * (m + k), L * (m + k), BLOCK, L * S + shim_piece),
        Row("scan/exscan", "plain = pkl5", 4 * pairs, 4 * L, 0, L * S, "recursive doubling"),
        Row("scan/exscan", "pkl5shim", 2 * pairs * m, 2 * L * m, 0, L * S),
    ]  # fmt: skip
    return rows


def human(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if nbytes < 1024 or unit == "TiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    raise AssertionError


def table(p: int, obj: Obj) -> str:
    lines = [
        f"### {p:,} ranks, {obj.name}",
        "",
        "| collective | implementation | messages (job) | busiest rank | bookkeeping "
        "(busiest) | received (busiest) | note |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in model(p, obj):
        lines.append(
            f"| {row.collective} | {row.impl} | {row.messages:,} | {row.busiest:,} | "
            f"{human(row.bookkeeping)} | {human(row.received)} | {row.note} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    small = Obj("small object (100-byte pickle)", 100)
    large = Obj("large object (one 1 MiB array, 200-byte stream)", 200, (1 << 20,))
    for obj in (small, large):
        print(table(p, obj))
        print()


if __name__ == "__main__":
    main()
