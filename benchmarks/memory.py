"""Peak memory of sending one large numpy array from rank 0 to rank 1.

One implementation per run, on two ranks (peak RSS cannot be reset inside a process)::

    mpiexec -n 2 python benchmarks/memory.py pkl5shim [--size 1G]

or every implementation, each in its own ``mpiexec -n 2`` (run this without mpiexec)::

    python benchmarks/memory.py --all [--size 1G]

Each rank reports its peak RSS (``ru_maxrss``) minus its RSS when the transfer
starts: for the sender, right after the array was allocated and filled; for
the receiver, right before receiving.  The difference is given in copies of
the payload: the receiver needs at least one (the received array), the
sender ideally none.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
from typing import Any

import numpy as np

# mpi4py is imported inside functions: the --all driver runs outside mpiexec and must
# not initialize MPI.

IMPLEMENTATIONS = ["upper-fresh", "plain", "pkl5", "pkl5shim"]
CHUNK = 4 << 20
RESULT_PREFIX = "RESULT "
MPIEXEC_TIMEOUT = 600


def parse_size(text: str) -> int:
    """Parse a byte count such as ``4096``, ``64K``, ``16M`` or ``1G``."""
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    scales = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text and text[-1] in scales:
        return int(text[:-1]) * scales[text[-1]]
    return int(text)


def current_rss() -> int:
    """Resident set size of this process now, in bytes."""
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    """Largest resident set size this process ever had, in bytes (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# -- one implementation, under mpiexec -------------------------------------------
def base_pattern() -> np.ndarray:
    """The contents of the first chunk of the payload; chunk k holds these bytes plus k."""
    return (np.arange(CHUNK, dtype=np.int32) % 251).astype(np.uint8)


def make_payload(nbytes: int) -> np.ndarray:
    """Allocate and fill the payload chunk by chunk (no temporary as large as the payload)."""
    base = base_pattern()
    array = np.empty(nbytes, dtype=np.uint8)
    for index, start in enumerate(range(0, nbytes, CHUNK)):
        piece = array[start : start + CHUNK]
        np.add(base[: len(piece)], np.uint8(index % 256), out=piece)
    return array


def check_payload(array: Any, nbytes: int) -> bool:
    """Tell whether a received payload has the expected size and contents (chunk by chunk)."""
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.size != nbytes:
        return False
    base = base_pattern()
    for index, start in enumerate(range(0, nbytes, CHUNK)):
        piece = array[start : start + CHUNK]
        if not np.array_equal(piece, base[: len(piece)] + np.uint8(index % 256)):
            return False
    return True


def make_comm(impl: str) -> Any:
    """The communicator of a lowercase implementation (``COMM_WORLD`` for uppercase)."""
    from mpi4py import MPI

    if impl == "pkl5":
        from mpi4py.util import pkl5

        return pkl5.Intracomm(MPI.COMM_WORLD)
    if impl == "pkl5shim":
        import pkl5shim

        return pkl5shim.Intracomm(MPI.COMM_WORLD)
    return MPI.COMM_WORLD


def transfer(impl: str, comm: Any, nbytes: int) -> dict[str, Any]:
    """Send (rank 0) or receive (rank 1) the payload; return this rank's measurements."""
    rank = comm.Get_rank()
    payload = make_payload(nbytes) if rank == 0 else None
    comm.Barrier()
    baseline = current_rss()
    if rank == 0:
        if impl == "upper-fresh":
            comm.Send(payload, 1, 0)
        else:
            comm.send(payload, 1, 0)
    elif impl == "upper-fresh":
        payload = np.empty(nbytes, dtype=np.uint8)
        comm.Recv(payload, 0, 0)
    else:
        payload = comm.recv(None, 0, 0)
    peak = peak_rss()
    return {
        "rank": rank,
        "baseline": baseline,
        "peak": peak,
        "ok": True if rank == 0 else check_payload(payload, nbytes),
    }


def run_one(impl: str, nbytes: int) -> None:
    """Measure one implementation (under mpiexec -n 2) and print the result line on rank 0."""
    from mpi4py import MPI

    world = MPI.COMM_WORLD
    if world.Get_size() != 2:
        if world.Get_rank() == 0:
            print("run with exactly 2 ranks, or use --all without mpiexec")
        world.Abort(2)
    comm = make_comm(impl)
    measured = transfer(impl, comm, nbytes)
    results = world.gather(measured, root=0)
    if world.Get_rank() == 0:
        print(RESULT_PREFIX + json.dumps({"impl": impl, "nbytes": nbytes, "ranks": results}))
        print(format_table([(impl, nbytes, results)]))


# -- printing -----------------------------------------------------------------------
def copies(rank_result: dict[str, Any], nbytes: int) -> str:
    """Peak RSS above the baseline, in copies of the payload."""
    return f"{(rank_result['peak'] - rank_result['baseline']) / nbytes:.2f}"


def gib(nbytes: int) -> str:
    """A byte count in GiB with two decimals."""
    return f"{nbytes / (1 << 30):.2f}"


def format_table(rows: list[tuple[str, int, list[dict[str, Any]] | None]]) -> str:
    """The table of extra peak memory per rank, one row per implementation."""
    header = ["impl", "sender extra", "receiver extra", "sender peak", "receiver peak", "data"]
    lines = ["".join(cell.rjust(16) for cell in header)]
    for impl, nbytes, ranks in rows:
        if ranks is None:
            cells = [impl, "failed", "", "", "", ""]
        else:
            sender, receiver = ranks
            cells = [
                impl,
                f"{copies(sender, nbytes)} copies",
                f"{copies(receiver, nbytes)} copies",
                f"{gib(sender['peak'])} GiB",
                f"{gib(receiver['peak'])} GiB",
                "ok" if receiver["ok"] else "WRONG",
            ]
        lines.append("".join(cell.rjust(16) for cell in cells))
    return "\n".join(lines)


# -- driver: every implementation, each in its own mpiexec ---------------------------
def mpiexec_command() -> tuple[list[str], dict[str, str]]:
    """The mpiexec next to this Python, with Open MPI's flags if it is Open MPI."""
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    version = subprocess.run(
        [mpiexec, "--version"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    env = dict(os.environ)
    command = ["timeout", str(MPIEXEC_TIMEOUT), mpiexec, "-n", "2"]
    if "Open MPI" in version or "OpenRTE" in version:
        command.append("--oversubscribe")
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return command, env


def run_all(nbytes: int) -> None:
    """Run each implementation in its own ``mpiexec -n 2`` and print one table."""
    launcher, env = mpiexec_command()
    rows: list[tuple[str, int, list[dict[str, Any]] | None]] = []
    print(f"payload: one uint8 array of {gib(nbytes)} GiB, rank 0 -> rank 1")
    for impl in IMPLEMENTATIONS:
        command = [*launcher, sys.executable, os.path.abspath(__file__), impl, "--size",
                   str(nbytes)]  # fmt: skip
        print(f"$ {shlex.join(command)}", flush=True)
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
        if done.returncode != 0 or not lines:
            print(f"  failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
            rows.append((impl, nbytes, None))
            continue
        rows.append((impl, nbytes, json.loads(lines[0][len(RESULT_PREFIX) :])["ranks"]))
    print()
    print(format_table(rows))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("impl", nargs="?", choices=IMPLEMENTATIONS, help="one implementation")
    parser.add_argument("--all", action="store_true", help="drive every implementation")
    parser.add_argument("--size", type=parse_size, default=1 << 30, help="payload bytes (1G)")
    args = parser.parse_args(argv)
    if args.all == (args.impl is not None):
        parser.error("give one implementation (under mpiexec -n 2) or --all (without mpiexec)")
    return args


def main() -> None:
    """Entry point."""
    args = parse_args()
    if args.all:
        run_all(args.size)
    else:
        run_one(args.impl, args.size)


if __name__ == "__main__":
    main()
