"""No memory grows per message: small and large objects, blocking and nonblocking, freed sends.

2 ranks ping-pong.  Each phase runs a warm-up, measures this process's traced
Python memory (tracemalloc: every Python object and numpy buffer) and its RSS,
runs the main loop, collects garbage and measures again.  A phase fails when
the traced memory grows by more than its limit, or the RSS by more than its
limit.  The limits are far below what one leaked object per message adds over
the loop, and far above the noise (measured: see docs/reliability.md).
Arguments: small round trips, large round trips (default 100000 and 1000).

Then: the sender's arrays of freed isend requests are released once MPI is
done, and the receiver's allocation goes away with the received array.
"""

from __future__ import annotations

import gc
import os
import sys
import time
import tracemalloc
import weakref
from typing import Any, Callable

import numpy as np
from mpi4py import MPI
from progutil import done

import pkl5shim

comm = pkl5shim.Intracomm(MPI.COMM_WORLD)
rank = comm.Get_rank()
assert comm.Get_size() == 2, "run on 2 ranks"
peer = 1 - rank
SMALL = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
LARGE = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000
MiB = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")
failures: list[str] = []


def rss() -> int:
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * PAGE


def small_object(i: int) -> Any:
    return {"i": i, "name": "small", "values": [i, i + 1, i + 2]}


def large_object(i: int) -> np.ndarray:
    array = np.empty(MiB // 8)
    array[:] = i
    return array


def ping_pong_blocking(make: Callable[[int], Any], count: int) -> None:
    for i in range(count):
        if rank == 0:
            comm.send(make(i), peer, 1)
            got = comm.recv(source=peer, tag=2)
        else:
            got = comm.recv(source=peer, tag=1)
            comm.send(got, peer, 2)
        del got


def ping_pong_nonblocking(make: Callable[[int], Any], count: int) -> None:
    for i in range(count):
        if rank == 0:
            request = comm.irecv(source=peer, tag=4)
            comm.isend(make(i), peer, 3).wait()
            got = request.wait()
        else:
            got = comm.irecv(source=peer, tag=3).wait()
            comm.isend(got, peer, 4).wait()
        del got


def freed_sends(make: Callable[[int], Any], count: int) -> None:
    """Rank 0 frees every isend request at once; rank 1 receives with irecv."""
    for i in range(count):
        if rank == 0:
            comm.isend(make(i), peer, 5).Free()
            comm.recv(source=peer, tag=6)  # rank 1 got it: keeps the memory in flight bounded
        else:
            got = comm.irecv(source=peer, tag=5).wait()
            comm.send(None, peer, 6)
            del got


def settle() -> None:
    """Let the engine forget completed freed sends: a pending irecv's test() polls it."""
    request = comm.irecv(source=peer, tag=11)
    for _ in range(20):
        request.test()
        time.sleep(0.001)
    comm.send(None, peer, 11)
    request.wait()
    gc.collect()


def phase(
    name: str,
    run: Callable[[Callable[[int], Any], int], None],
    make: Callable[[int], Any],
    count: int,
    traced_limit: int,
    rss_limit: int,
) -> None:
    warm = max(count // 20, 10)
    run(make, warm)
    settle()
    comm.Barrier()
    traced0, rss0 = tracemalloc.get_traced_memory()[0], rss()
    snapshot0 = tracemalloc.take_snapshot()
    started = time.perf_counter()
    run(make, count)
    elapsed = time.perf_counter() - started
    settle()
    comm.Barrier()
    traced = tracemalloc.get_traced_memory()[0] - traced0
    grown = rss() - rss0
    print(
        f"rank {rank} {name}: {count} round trips in {elapsed:.1f} s, traced memory "
        f"{traced / 1024:+.1f} KiB (limit {traced_limit / 1024:.0f}), RSS {grown / MiB:+.1f} MiB "
        f"(limit {rss_limit / MiB:.0f})",
        flush=True,
    )
    if traced > traced_limit or grown > rss_limit:
        top = tracemalloc.take_snapshot().compare_to(snapshot0, "lineno")[:5]
        failures.append(f"{name}: grew; largest differences:\n" + "\n".join(map(str, top)))


def deepest_array(obj: Any) -> np.ndarray:
    """The array that owns the memory under ``obj`` (through .base and memoryview.obj)."""
    found = obj
    while True:
        base = found.obj if isinstance(found, memoryview) else getattr(found, "base", None)
        if not isinstance(base, (np.ndarray, memoryview)):
            return found
        found = base


def check_allocations_released() -> None:
    """Freed sends release the sender's arrays; dropped results release the receive memory."""
    count = 200
    if rank == 0:
        refs = []
        for i in range(count):
            array = large_object(i)
            refs.append(weakref.ref(array))
            comm.isend(array, peer, 7).Free()
            del array
        comm.recv(source=peer, tag=8)  # rank 1 has every object: MPI is done with them
        # The engine forgets completed freed sends when it polls (or at the next
        # isend/Free once enough piled up): a pending irecv's test() polls.
        request = comm.irecv(source=peer, tag=9)
        for _ in range(500):
            request.test()
            alive = sum(ref() is not None for ref in refs)
            if not alive:
                break
            time.sleep(0.001)
        comm.send(None, peer, 10)
        request.wait()
        print(f"rank 0: {alive} of {count} freed arrays still alive after delivery", flush=True)
        if alive:
            failures.append(f"{alive} of {count} arrays of freed isends still alive")
    else:
        refs = []
        for _ in range(count):
            got = comm.recv(source=peer, tag=7)
            refs.append(weakref.ref(deepest_array(got)))
            del got
        comm.send(None, peer, 8)
        comm.recv(source=peer, tag=10)
        comm.send(None, peer, 9)
        gc.collect()
        alive = sum(ref() is not None for ref in refs)
        print(f"rank 1: {alive} of {count} receive allocations alive after dropping", flush=True)
        if alive:
            failures.append(f"{alive} of {count} receive allocations outlived their arrays")


def main() -> None:
    tracemalloc.start()
    phase("small send/recv", ping_pong_blocking, small_object, SMALL, 256 * 1024, 8 * MiB)
    phase("small isend/irecv", ping_pong_nonblocking, small_object, SMALL, 256 * 1024, 8 * MiB)
    phase("1 MiB send/recv", ping_pong_blocking, large_object, LARGE, 2 * MiB, 24 * MiB)
    phase("1 MiB isend/irecv", ping_pong_nonblocking, large_object, LARGE, 2 * MiB, 24 * MiB)
    phase("1 MiB isend+Free", freed_sends, large_object, LARGE, 2 * MiB, 24 * MiB)
    tracemalloc.stop()
    check_allocations_released()
    for failure in failures:
        print(f"rank {rank} FAIL {failure}", flush=True)
    if comm.allreduce(len(failures)):
        MPI.COMM_WORLD.Abort(1)
    done("memory")


main()
