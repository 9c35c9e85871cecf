"""Many threads per rank on one wrapped communicator, under MPI_THREAD_MULTIPLE.

Each rank runs SENDERS sender threads and RECEIVERS receiver threads.  Sender
thread ``t`` of rank ``src`` sends MESSAGES objects, each to a destination and
tag drawn from a seeded plan that every rank can recompute, with ``send``,
``ssend``, ``isend`` (a window of requests, some freed) or ``issend``.  Objects
are ints, small dicts, arrays whose pickle is around the eager limit, out-of-band
arrays and a few arrays of several MiB; each carries (src, t, tag, seq), where
``seq`` counts per (src, t, dest, tag), so that the receiver can rebuild the
expected content and check MPI's non-overtaking order.

Receiver threads take turns claiming one receive each (or a batch) until the
rank has received the number of messages the plan sends it, and receive with
``ANY_SOURCE``/``ANY_TAG`` by ``recv``, ``irecv`` (+ ``wait``, ``test`` loop,
batches with ``waitall``/``waitany``/``testsome``), ``mprobe``/``improbe`` +
``Message.recv``/``Message.irecv``.

Checks: every message arrives exactly once, with its content intact, and in
order: within one receiver thread, and across threads whenever one receive
completed before another was posted (two global stamps per receive).
Arguments: the number of messages per sender thread (default 400).
"""

from __future__ import annotations

import itertools
import random
import sys
import threading
from collections import Counter, defaultdict
from typing import Any

import mpi4py

mpi4py.rc.thread_level = "multiple"

import numpy as np  # noqa: E402
from mpi4py import MPI  # noqa: E402
from progutil import done  # noqa: E402

import pkl5shim  # noqa: E402
from pkl5shim.config import settings  # noqa: E402

if MPI.Query_thread() != MPI.THREAD_MULTIPLE:
    sys.stderr.write(
        f"FAIL: MPI_THREAD_MULTIPLE requested, the library provides level {MPI.Query_thread()}\n"
    )
    sys.stderr.flush()
    MPI.COMM_WORLD.Abort(3)

SENDERS = 3
RECEIVERS = 3
MESSAGES = int(sys.argv[1]) if len(sys.argv) > 1 else 400
NTAGS = 4
EAGER = settings.eager_limit
comm = pkl5shim.Intracomm(MPI.COMM_WORLD.Dup())
rank, size = comm.Get_rank(), comm.Get_size()
Key = tuple[int, int, int]  # (source, sender thread, tag)

# kind -> weight; the byte sizes of the arrays
KINDS = {"int": 30, "dict": 30, "near-eager": 20, "oob": 12, "multi": 6, "big": 2}
NEAR_EAGER = (EAGER - 400, EAGER - 161, EAGER - 160, EAGER - 159, EAGER, EAGER + 7, EAGER + 4_000)
SEND_CALLS = ("send", "ssend", "isend", "isend", "isend", "issend")


def plan(src: int, t: int) -> list[tuple[int, int, int, str, str, int]]:
    """Sender thread ``t`` of ``src``: (dest, tag, seq, kind, call, variant) per message."""
    rng = random.Random(f"{src}/{t}/{size}")
    seqs: Counter[tuple[int, int]] = Counter()
    out = []
    for _ in range(MESSAGES):
        dest, tag = rng.randrange(size), rng.randrange(NTAGS)
        kind = rng.choices(list(KINDS), weights=list(KINDS.values()))[0]
        out.append((dest, tag, seqs[dest, tag], kind, rng.choice(SEND_CALLS), rng.randrange(97)))
        seqs[dest, tag] += 1
    return out


def pattern(nbytes: int, seed: int) -> np.ndarray:
    """A byte pattern that depends on ``seed``: any misplaced or foreign byte shows."""
    words = np.arange(-(-nbytes // 4), dtype=np.uint32) * np.uint32(2654435761) + np.uint32(seed)
    return words.view(np.uint8)[:nbytes]


def make(src: int, t: int, tag: int, seq: int, kind: str, variant: int) -> Any:
    """The object of one planned message."""
    ident = ((src * 8 + t) * 8 + tag) * 1_000_000 + seq
    seed = ident & 0xFFFFFFFF
    if kind == "int":
        return ident
    head = {"src": src, "t": t, "tag": tag, "seq": seq}
    if kind == "dict":
        return {**head, "text": "x" * (variant % 40), "items": list(range(variant % 9))}
    if kind == "near-eager":  # in band: a plain message or a header (around the eager limit)
        return {**head, "array": pattern(NEAR_EAGER[variant % len(NEAR_EAGER)], seed)}
    if kind == "oob":  # one out-of-band buffer
        return {**head, "array": pattern(256 * 1024 + 64 * variant, seed)}
    if kind == "multi":  # several buffers, in-band parts, a non-contiguous view
        base = pattern(600_000, seed)
        return {
            **head,
            "arrays": [pattern(300_000 + variant, seed + 1), base[::2], pattern(10, seed)],
            "float": np.full(40_000, float(ident)),
        }
    return {**head, "array": pattern((1 << 20) * (1 + variant % 3) + variant, seed)}  # big


def identify(obj: Any) -> Key | tuple[int, int, int, int]:
    """(src, t, tag, seq) carried by a received object."""
    if isinstance(obj, int):
        rest, seq = divmod(obj, 1_000_000)
        rest, tag = divmod(rest, 8)
        src, t = divmod(rest, 8)
        return (src, t, tag, seq)
    return (obj["src"], obj["t"], obj["tag"], obj["seq"])


def same(a: Any, b: Any) -> bool:
    """Deep equality with arrays compared by dtype, shape and bytes."""
    if isinstance(a, np.ndarray):
        return (
            isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b)
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


# -- senders ---------------------------------------------------------------------
def sender(t: int) -> None:
    window: list[pkl5shim.Request] = []
    for number, (dest, tag, seq, kind, call, variant) in enumerate(plan(rank, t)):
        obj = make(rank, t, tag, seq, kind, variant)
        if call in ("send", "ssend"):
            getattr(comm, call)(obj, dest, tag)
            continue
        request = getattr(comm, call)(obj, dest, tag)
        if call == "isend" and variant % 11 == 0:
            request.Free()  # the engine keeps the object alive until MPI is done
            continue
        window.append(request)
        if len(window) >= 8:
            how = number % 3
            if how == 0:
                pkl5shim.Request.waitall(window)
                window = []
            elif how == 1:
                index, _ = pkl5shim.Request.waitany(window)
                window.pop(index)
            else:
                indices, _ = pkl5shim.Request.testsome(window)
                window = [r for i, r in enumerate(window) if i not in set(indices or [])]
    pkl5shim.Request.waitall(window)


# -- receivers -------------------------------------------------------------------
clock = itertools.count()  # global stamps: next() is atomic under the GIL
expected_total = sum(
    1 for src in range(size) for t in range(SENDERS) for item in plan(src, t) if item[0] == rank
)
claim_lock = threading.Lock()
unclaimed = [expected_total]
# per receiver thread: (src, t, tag, seq, posted stamp, completed stamp, status ok)
records: list[list[tuple[int, int, int, int, int, int, bool]]] = [[] for _ in range(RECEIVERS)]
RECV_CALLS = (
    "recv", "irecv-wait", "irecv-test", "mprobe-recv", "mprobe-irecv", "improbe-recv",
    "batch-waitall", "batch-waitany", "batch-testsome",
)  # fmt: skip


def claim(want: int) -> int:
    """Take up to ``want`` of the receives this rank still has to post."""
    with claim_lock:
        got = min(want, unclaimed[0])
        unclaimed[0] -= got
        return got


def status_ok(obj: Any, status: MPI.Status) -> bool:
    src, _t, tag, _seq = identify(obj)
    return status.Get_source() == src and status.Get_tag() == tag


def receive_one(call: str) -> tuple[Any, MPI.Status]:
    status = MPI.Status()
    if call == "recv":
        return comm.recv(None, MPI.ANY_SOURCE, MPI.ANY_TAG, status), status
    if call == "irecv-wait":
        return comm.irecv().wait(status), status
    if call == "irecv-test":
        request = comm.irecv(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG)
        while True:
            flag, obj = request.test(status)
            if flag:
                return obj, status
    if call == "mprobe-recv":
        return comm.mprobe(status=status).recv(), status
    if call == "mprobe-irecv":
        return comm.mprobe(status=status).irecv().wait(), status
    message = None  # improbe-recv
    while message is None:
        message = comm.improbe(MPI.ANY_SOURCE, MPI.ANY_TAG, status)
    return message.recv(), status


def receive_batch(call: str, count: int) -> list[tuple[Any, MPI.Status, int]]:
    """Post ``count`` irecvs; results in posting order, with completion stamps."""
    requests = [comm.irecv() for _ in range(count)]
    statuses = [MPI.Status() for _ in range(count)]
    results: list[Any] = [None] * count
    stamps = [0] * count
    if call == "batch-waitall":
        results = pkl5shim.Request.waitall(requests, statuses)
        stamps = [next(clock)] * count
    elif call == "batch-waitany":
        for _ in range(count):
            status = MPI.Status()
            index, obj = pkl5shim.Request.waitany(requests, status)
            results[index], statuses[index], stamps[index] = obj, status, next(clock)
    else:
        left = count
        while left:
            got: list[MPI.Status] = []
            indices, objs = pkl5shim.Request.testsome(requests, got)
            for index, obj, status in zip(indices or [], objs or [], got):
                results[index], statuses[index], stamps[index] = obj, status, next(clock)
                left -= 1
    return list(zip(results, statuses, stamps))


def receiver(r: int) -> None:
    mine = records[r]
    for number in itertools.count():
        call = RECV_CALLS[(number + 3 * r) % len(RECV_CALLS)]
        count = claim(3 if call.startswith("batch") else 1)
        if count == 0:
            return
        posted = next(clock)
        if call.startswith("batch"):
            arrivals = receive_batch(call, count)
        else:
            obj, status = receive_one(call)
            arrivals = [(obj, status, next(clock))]
        for obj, status, completed in arrivals:
            src, t, tag, seq = identify(obj)
            _dest, ptag, pseq, kind, _call, variant = plan_of[src, t][index_of[src, t, tag, seq]]
            intact = (ptag, pseq) == (tag, seq) and same(obj, make(src, t, tag, seq, kind, variant))
            mine.append((src, t, tag, seq, posted, completed, intact and status_ok(obj, status)))


plan_of = {(src, t): plan(src, t) for src in range(size) for t in range(SENDERS)}
index_of = {
    (src, t, tag, seq): i
    for (src, t), items in plan_of.items()
    for i, (dest, tag, seq, _kind, _call, _variant) in enumerate(items)
    if dest == rank
}


def run_threads() -> None:
    errors: list[BaseException] = []

    def body(target: Any, arg: int) -> None:
        try:
            target(arg)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(sender, t), daemon=True) for t in range(SENDERS)]
    threads += [
        threading.Thread(target=body, args=(receiver, r), daemon=True) for r in range(RECEIVERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    if errors:
        raise errors[0]
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck"


def verify() -> list[str]:
    """Every planned message once, intact, in order; return the problems found."""
    problems = []
    got = [item for items in records for item in items]
    keys = Counter(item[:4] for item in got)
    expected = set(index_of)
    missing = expected - set(keys)
    duplicated = [key for key, n in keys.items() if n > 1]
    foreign = set(keys) - expected
    for what, found in (("missing", missing), ("duplicated", duplicated), ("foreign", foreign)):
        if found:
            problems.append(f"{len(found)} {what} messages, e.g. {sorted(found)[:5]}")
    damaged = [item[:4] for item in got if not item[6]]
    if damaged:
        problems.append(f"{len(damaged)} damaged (content or status), e.g. {damaged[:5]}")
    for r, items in enumerate(records):  # one thread's receives are posted one after another
        last: dict[Key, int] = {}
        for src, t, tag, seq, *_ in items:
            if last.get((src, t, tag), -1) > seq:
                previous = last[src, t, tag]
                problems.append(f"receiver {r}: {(src, t, tag)} seq {seq} after {previous}")
            last[src, t, tag] = seq
    by_key: dict[Key, list[tuple[int, int, int]]] = defaultdict(list)
    for src, t, tag, seq, posted, completed, _ok in got:
        by_key[src, t, tag].append((seq, posted, completed))
    for key, items in by_key.items():
        # A receive that completed before another was posted matched an earlier message.
        items.sort()
        later_completed = float("inf")  # min completion stamp of the messages with larger seq
        for seq, posted, completed in reversed(items):
            if later_completed < posted:
                problems.append(f"{key}: seq {seq} received after a later message was")
            later_completed = min(later_completed, completed)
    return problems


def main() -> None:
    comm.Barrier()
    run_threads()
    comm.Barrier()
    problems = verify()
    sizes = Counter(kind for items in plan_of.values() for (_d, _g, _s, kind, _c, _v) in items)
    for problem in problems[:20]:
        print(f"[rank {rank}] {problem}", flush=True)
    totals = comm.gather((len(problems), expected_total), root=0)
    if rank == 0:
        print(f"messages {sum(n for _, n in totals)} kinds {dict(sizes)}", flush=True)
    if comm.allreduce(len(problems)):
        MPI.COMM_WORLD.Abort(1)
    done("threads_stress")


main()
