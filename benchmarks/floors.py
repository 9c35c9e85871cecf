"""The floors under issue 18's point-to-point targets: what any Python layer can reach.

Run on two ranks::

    mpiexec -n 2 python benchmarks/floors.py [--rounds R]

Ping-pong round trips, as in ``p2p.py``, against implementations that are not
pkl5shim but bound what pkl5shim can do:

* small objects: ``floor`` is a Python method around mpi4py's own C ``send`` and
  ``recv`` on both ranks, the least that any layer written in Python adds to plain
  mpi4py; for the dict, which might hold an array, the send pickles out of band first
  (``MPI.pickle.dumps_oob``) and sends the stream by ``Send``.  The target is 1.05x plain;
* large arrays: ``two-msg`` sends a small header (``Send``) and the array (``Isend`` on a
  duplicate communicator), received by ``Recv`` and ``Irecv`` into a fresh buffer: the
  least an out-of-band protocol moves.  ``two-msg+pickle`` adds the array's pickle
  (``MPI.pickle.dumps_oob``/``loads_oob``) on both ranks, the least a protocol that
  pickles does.  The target is 0.9x the faster of plain and pkl5.

Each round rotates the order of the implementations and warms each one up right
before timing it; rank 0 prints medians over the rounds and, per row, whether the
floor itself is under the target (if not, no Python layer can meet it here).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from mpi4py import MPI
from mpi4py.util import pkl5

import pkl5shim

RoundTrips = Callable[[int], None]
"""Run n round trips (this rank's side)."""

world = MPI.COMM_WORLD
rank = world.Get_rank()
peer = 1 - rank
_send, _recv, _Send = MPI.Comm.send, MPI.Comm.recv, MPI.Comm.Send
_dumps_oob = MPI.pickle.dumps_oob


class Floor(MPI.Intracomm):
    """mpi4py's C ``send`` and ``recv`` behind one Python call each (for objects whose
    kind says they hold no out-of-band buffer: ``int``, short ``str``...)."""

    def send(self, obj: Any, dest: int, tag: int = 0) -> None:
        """mpi4py's send."""
        _send(self, obj, dest, tag)

    def recv(
        self,
        buf: Any = None,
        source: int = MPI.ANY_SOURCE,
        tag: int = MPI.ANY_TAG,
        status: MPI.Status | None = None,
    ) -> Any:
        """mpi4py's recv."""
        return _recv(self, buf, source, tag, status)


class FloorOutOfBand(Floor):
    """As ``Floor``, but the object is pickled out of band first and its stream sent by
    ``Send``: the least a layer does for an object that may hold buffers (a dict)."""

    def send(self, obj: Any, dest: int, tag: int = 0) -> None:
        """Pickle out of band; the stream (there are no buffers here) by ``Send``."""
        stream, buffers = _dumps_oob(obj)
        assert not buffers
        _Send(self, stream, dest, tag)


def lowercase(comm: MPI.Comm, obj: Any) -> RoundTrips:
    """Round trips through ``comm.send``/``comm.recv`` (rank 1 sends back what it got)."""

    def trips(n: int) -> None:
        for _ in range(n):
            if rank == 0:
                comm.send(obj, 1)
                comm.recv(None, 1)
            else:
                comm.send(comm.recv(None, 0), 0)

    return trips


def uppercase(array: np.ndarray) -> RoundTrips:
    """``Send``, and ``Recv`` into a fresh array."""

    def trips(n: int) -> None:
        for _ in range(n):
            received = np.empty_like(array)
            if rank == 0:
                world.Send(array, 1)
                world.Recv(received, 1)
            else:
                world.Recv(received, 0)
                world.Send(received, 0)

    return trips


def two_messages(array: np.ndarray, channel: MPI.Comm, pickled: bool) -> RoundTrips:
    """A header, then the array on ``channel``; with ``pickled``, through the pickle."""
    header = bytearray(128)

    def send(obj: np.ndarray) -> None:
        buffer = MPI.pickle.dumps_oob(obj)[1][0] if pickled else obj
        world.Send(header, peer, 1)
        channel.Isend(buffer, peer, 2).Wait()

    def receive() -> np.ndarray:
        world.Recv(header, peer, 1)
        buffer = pkl5shim.codec.allocate(array.nbytes)
        channel.Irecv(buffer, peer, 2).Wait()
        if pickled:
            return MPI.pickle.loads_oob(stream, [buffer])
        return np.frombuffer(buffer, np.uint8)

    stream = MPI.pickle.dumps_oob(array)[0]

    def trips(n: int) -> None:
        for _ in range(n):
            if rank == 0:
                send(array)
                receive()
            else:
                send(receive())

    return trips


def timed(trips: RoundTrips, n: int) -> float:
    """Seconds per round trip of a batch of ``n``, after one untimed batch of ``n // 10``."""
    trips(max(1, n // 10))
    world.Barrier()
    start = time.perf_counter()
    trips(n)
    return (time.perf_counter() - start) / n


def medians(implementations: dict[str, RoundTrips], n: int, rounds: int) -> dict[str, float]:
    """Median seconds per round trip of each implementation, order rotated per round."""
    names = list(implementations)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(timed(implementations[name], n))
    return {name: statistics.median(values) for name, values in times.items()}


def report(title: str, results: dict[str, float], base: str, floor: str, goal: float) -> None:
    """Print one row: times, ratios to ``base``, and the floor against the target."""
    if rank != 0:
        return
    cells = "  ".join(f"{name} {seconds * 1e6:8.2f} us" for name, seconds in results.items())
    shim, lowest = results["pkl5shim"] / results[base], results[floor] / results[base]
    reachable = "reachable" if lowest <= goal else "NOT reachable by a Python layer here"
    print(f"{title:14s} {cells}")
    print(
        f"{'':14s} target <= {goal:.2f}x {base}: pkl5shim {shim:.2f}x, "
        f"floor ({floor}) {lowest:.2f}x: {reachable}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    if world.Get_size() != 2:
        raise SystemExit("floors.py runs on exactly 2 ranks")
    shim = pkl5shim.Intracomm(world)
    floors = {"int": Floor(world), "dict 3 entries": FloorOutOfBand(world)}
    channel = world.Dup()
    if rank == 0:
        print(MPI.Get_library_version().replace("\0", "").splitlines()[0])
        print(f"ranks: 2, rounds: {args.rounds}, medians of the time per round trip")
    for title, obj in (("int", 12345), ("dict 3 entries", {"a": 1, "b": [1, 2, 3], "c": "x"})):
        comms = {"plain": world, "floor": floors[title], "pkl5shim": shim}
        implementations = {name: lowercase(comm, obj) for name, comm in comms.items()}
        report(title, medians(implementations, 20000, args.rounds), "plain", "floor", 1.05)
    for nbytes in (256 << 10, 1 << 20):
        array = (np.arange(nbytes) % 251).astype(np.uint8)  # as p2p.py's: not constant
        implementations = {
            "upper-fresh": uppercase(array),
            "two-msg": two_messages(array, channel, pickled=False),
            "two-msg+pickle": two_messages(array, channel, pickled=True),
            "plain": lowercase(world, array),
            "pkl5": lowercase(pkl5.Intracomm(world), array),
            "pkl5shim": lowercase(shim, array),
        }
        results = medians(implementations, 200, args.rounds)
        base = "plain" if results["plain"] < results["pkl5"] else "pkl5"
        report(f"uint8 {nbytes >> 10} KiB", results, base, "two-msg+pickle", 0.9)
    channel.Free()


if __name__ == "__main__":
    main()
