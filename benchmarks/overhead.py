"""Where pkl5shim's time goes: its round trip against floors written the same way.

Run on two ranks::

    mpiexec -n 2 python benchmarks/overhead.py [--rounds 10] [--trips 3000]

Each row is timed for these implementations in one run, their order rotated every round
(medians over the rounds, microseconds per round trip):

- ``plain``: mpi4py's own lowercase ``send``/``recv``;
- ``pkl5``: ``mpi4py.util.pkl5.Intracomm``;
- ``upper-fresh``: ``Send``, and ``Recv`` into a fresh array (arrays only);
- ``thin``: a subclass whose ``send``/``recv`` are Python functions that only call
  mpi4py's: the least a shim written in Python can cost;
- ``thin-oob``: as ``thin``, but the send pickles out of band (``dumps_oob``) and sends
  the stream by ``Send``: the least a shim costs for an object that might hold a buffer
  (objects whose buffers stay in band only);
- ``two-msg``: a minimal out-of-band protocol in Python with the same MPI calls as
  pkl5shim's large path (``dumps_oob``; a header message with the stream and the sizes;
  the buffers on a second communicator; ``Waitall``): what pkl5shim's engine adds to it
  is its bookkeeping;
- ``pkl5shim``: ``pkl5shim.Intracomm``.

Each row ends with issue 18's target for its size (``p2p.target``), pkl5shim's ratio
and the *floor*'s: ``thin`` for what mpi4py's C send serves (``int``, ``bytes``,
``str``), ``thin-oob`` for other objects without out-of-band buffers, ``two-msg`` for
the rest.  A floor over the target means no layer written in Python meets it here.

With ``--threshold N`` the buffers of N bytes or more go out of band
(``MPI.pickle.THRESHOLD``, 256 KiB by default) for ``two-msg`` and ``pkl5shim`` alike: at
16K, the ``two-msg`` column against ``plain`` shows where one message stops paying.
Arrays have varying contents: plain mpi4py's round trip of a constant 256 KiB array
(``numpy.ones``) took 680-890 us against 86-99 for a varying one (measured).
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from mpi4py import MPI
from mpi4py.util import pkl5
from p2p import Payload, target  # benchmarks/ is the script's directory

import pkl5shim

KIB = 1 << 10


def varying(nbytes: int) -> np.ndarray:
    """A uint8 array of ``nbytes`` whose contents are not constant."""
    return (np.arange(nbytes) % 251).astype(np.uint8)


ROWS: dict[str, Any] = {
    "int": 12345,
    "dict 3 entries": {"a": 1, "b": [1, 2, 3], "c": "text"},
    "bytes 1 KiB": b"x" * KIB,
    "str 1 KiB": "y" * KIB,
    **{f"uint8 {n} KiB": varying(n * KIB) for n in (1, 16, 64, 128, 256, 1024, 4096)},
}
Pair = tuple[Callable[[Any, int], None], Callable[[int], Any]]
upper_nbytes = [0]
"""The size of the array ``upper-fresh`` receives (set per row)."""


def implementations(world: MPI.Intracomm) -> dict[str, Pair]:
    """The send and receive of each implementation, each on its own communicator."""
    raw, header_comm, payload_comm = world.Dup(), world.Dup(), world.Dup()
    shim = pkl5shim.Intracomm(world.Dup())
    c_send, c_recv = MPI.Comm.send, MPI.Comm.recv

    class Thin(MPI.Intracomm):
        def send(self, obj: Any, dest: int, tag: int = 0) -> None:
            return c_send(self, obj, dest, tag)

        def recv(self, buf: Any = None, source: int = -1, tag: int = -1, status: Any = None) -> Any:
            return c_recv(self, buf, source, tag, status)

    class ThinOutOfBand(Thin):
        def send(self, obj: Any, dest: int, tag: int = 0) -> None:
            stream, buffers = MPI.pickle.dumps_oob(obj)
            assert not buffers, "thin-oob is timed only for objects without buffers"
            MPI.Comm.Send(self, stream, dest, tag)

    thin, thin_oob = Thin(world.Dup()), ThinOutOfBand(world.Dup())
    p5 = pkl5.Intracomm(world.Dup())

    def upper_send(obj: np.ndarray, dest: int) -> None:
        raw.Send(obj, dest, 2)

    def upper_recv(source: int) -> np.ndarray:
        array = np.empty(upper_nbytes[0], np.uint8)
        raw.Recv(array, source, 2)
        return array

    def two_msg_send(obj: Any, dest: int) -> None:
        stream, buffers = MPI.pickle.dumps_oob(obj)
        sizes = [memoryview(b).nbytes for b in buffers]
        head = header_comm.Isend(pickle.dumps((stream, sizes), 5), dest, 1)
        MPI.Request.Waitall([head] + [payload_comm.Isend(b, dest, 1) for b in buffers])

    def two_msg_recv(source: int) -> Any:
        stream, sizes = header_comm.recv(None, source, 1)
        buffers = [np.empty(size, np.uint8) for size in sizes]
        MPI.Request.Waitall([payload_comm.Irecv(b, source, 1) for b in buffers])
        return MPI.pickle.loads_oob(stream, buffers)

    return {
        "plain": (lambda o, d: raw.send(o, d, 1), lambda s: raw.recv(None, s, 1)),
        "pkl5": (lambda o, d: p5.send(o, d, 1), lambda s: p5.recv(None, s, 1)),
        "upper-fresh": (upper_send, upper_recv),
        "thin": (lambda o, d: thin.send(o, d, 1), lambda s: thin.recv(None, s, 1)),
        "thin-oob": (lambda o, d: thin_oob.send(o, d, 1), lambda s: thin_oob.recv(None, s, 1)),
        "two-msg": (two_msg_send, two_msg_recv),
        "pkl5shim": (lambda o, d: shim.send(o, d, 1), lambda s: shim.recv(None, s, 1)),
    }


def round_trips(world: MPI.Intracomm, pair: Pair, obj: Any, trips: int) -> float:
    """Seconds per round trip over ``trips`` round trips (rank 0 -> 1 -> 0)."""
    send, recv = pair
    world.Barrier()
    start = time.perf_counter()
    if world.Get_rank() == 0:
        for _ in range(trips):
            send(obj, 1)
            recv(1)
    else:
        for _ in range(trips):
            send(recv(0), 0)
    return (time.perf_counter() - start) / trips


def main() -> None:
    """Print one row per object on rank 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--trips", type=int, default=3000, help="round trips per timed batch")
    parser.add_argument("--threshold", type=int, default=None, help="MPI.pickle.THRESHOLD")
    args = parser.parse_args()
    world = MPI.COMM_WORLD
    if world.Get_size() != 2:
        raise SystemExit("run with exactly 2 ranks: mpiexec -n 2 python benchmarks/overhead.py")
    if args.threshold is not None:
        MPI.pickle.THRESHOLD = args.threshold
    impls = implementations(world)
    rank = world.Get_rank()
    if rank == 0:
        library = MPI.Get_library_version().splitlines()[0].strip(" \x00")
        print(f"{library}; THRESHOLD {MPI.pickle.THRESHOLD}; rounds {args.rounds}")
        print(f"{'object':16s}" + "".join(f"{n:>12s}" for n in impls) + "   target: ratios")
    for obj_name, obj in ROWS.items():
        nbytes = getattr(obj, "nbytes", 0)
        upper_nbytes[0] = nbytes
        floor = floor_of(obj)
        names = [name for name in impls if applies(name, obj, floor)]
        trips = max(50, min(args.trips, args.trips * 64 * KIB // max(nbytes, 1)))
        times: dict[str, list[float]] = {name: [] for name in names}
        for round_number in range(args.rounds):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                round_trips(world, impls[name], obj, max(10, trips // 10))  # warm-up
                times[name].append(round_trips(world, impls[name], obj, trips))
        if rank == 0:
            medians = {name: statistics.median(values) * 1e6 for name, values in times.items()}
            cells = "".join(
                f"{medians[n]:10.1f}us" if n in medians else f"{'-':>12s}" for n in impls
            )
            row = Payload(obj_name, nbytes, lambda _seed, obj=obj: obj)
            print(f"{obj_name:16s}{cells}   {verdict(row, medians, floor)}")


def floor_of(obj: Any) -> str:
    """The floor of ``obj``'s row: what the least layer in Python would do for it."""
    if type(obj) in (int, bytes, str):
        return "thin"
    return "two-msg" if MPI.pickle.dumps_oob(obj)[1] else "thin-oob"


def applies(name: str, obj: Any, floor: str) -> bool:
    """Whether implementation ``name`` is timed for ``obj`` (``floor`` its row's floor)."""
    if name == "upper-fresh":
        return isinstance(obj, np.ndarray)
    return name != "thin-oob" or floor == "thin-oob"


def verdict(payload: Payload, medians: dict[str, float], floor: str) -> str:
    """Issue 18's target for the row, pkl5shim's ratio and the floor's."""
    label, references, bound = target(payload)
    base = medians[min(references, key=medians.__getitem__)]
    shim, lowest = medians["pkl5shim"] / base, medians[floor] / base
    reachable = "under it" if lowest <= bound else "OVER IT: not for Python"
    return f"{label}: pkl5shim {shim:.2f}, floor {floor} {lowest:.2f} {reachable}"


if __name__ == "__main__":
    main()
