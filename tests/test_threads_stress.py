"""Threads against the engine: MPI_THREAD_MULTIPLE under load, FUNNELED and SERIALIZED rules,
and request finalizers run by the garbage collector.

* ``threads_stress.py``: 3 sender and 3 receiver threads per rank on one wrapped
  communicator, every point-to-point call, ANY_SOURCE/ANY_TAG, 1200 messages of
  mixed sizes per rank; each arrives once, intact, in MPI's order.  It failed
  before the fix (4 ranks, MPICH: corrupted MPI requests, then a hang): two threads
  tested the same freed send's requests at once.
* ``threads_funneled.py`` / ``threads_serialized.py``: pkl5shim calls MPI only
  from the main thread / the thread holding the program's lock, also when a
  worker thread drops requests, and starts no thread.  Both failed before the
  fix: a dropped request's finalizer tested MPI requests in the worker.
* ``gc_requests.py``: requests in reference cycles collected inside the engine.
  It hung before the fix (the finalizer took a lock its own thread held).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mpilaunch import run

PROGRAMS = Path(__file__).parent / "programs"


def launch(program: str, nprocs: int, *args: str) -> str:
    result = run(nprocs, [str(PROGRAMS / program), *args], timeout=180)
    report = result.stdout[-4000:] + result.stderr[-4000:]
    assert result.returncode == 0, report
    name = program.removesuffix(".py")
    for rank in range(nprocs):
        assert f"OK {name} rank {rank}" in result.stdout, report
    return result.stdout


@pytest.mark.parametrize("nprocs", [2, 3, 4])
def test_thread_multiple_every_message_once_intact_in_order(nprocs: int) -> None:
    out = launch("threads_stress.py", nprocs)
    assert f"messages {nprocs * 3 * 400} " in out, out


def test_funneled_no_mpi_outside_the_main_thread() -> None:
    out = launch("threads_funneled.py", 3)
    assert out.count("workers ran the finalizers") == 3, out


def test_serialized_no_mpi_outside_the_lock() -> None:
    out = launch("threads_serialized.py", 3)
    assert out.count("3 threads x 60 rounds") == 3, out


def test_requests_collected_in_cycles_inside_the_engine() -> None:
    launch("gc_requests.py", 2)
