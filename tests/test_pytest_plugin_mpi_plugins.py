"""``pytest --pkl5`` with the MPI plugins people use: pytest-isolate-mpi, mpi-pytest, and
pytest-timeout for a test that deadlocks.

The three plugins are installed once into ``build/pytest-plugins`` (``pip install
--target``, pinned) and put on ``PYTHONPATH`` of these runs only: installed in the venv,
pytest-isolate-mpi stops every pytest session that has no ``mpirun`` on ``PATH``, and
mpi-pytest imports ``mpi4py.MPI`` in every session.  pytest-isolate-mpi refuses to run
under ``mpiexec`` (it starts its own job per test), and mpi-pytest's forking mode starts
from one process, so their outer session is a plain subprocess (``mpilaunch``'s
environment, with a timeout); the jobs they start are theirs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mpilaunch import ROOT, environment, flavour, mpiexec, run

pytest_plugins = ["pytester"]

PINS = ["pytest-timeout==2.4.0", "pytest-isolate-mpi==0.4.1", "mpi-pytest==2026.0"]
ONLY = {
    "isolate": ["-p", "no:mpi-pytest"],
    "mpi-pytest": ["-p", "no:pytest_isolate_mpi"],
    "timeout": ["-p", "no:mpi-pytest", "-p", "no:pytest_isolate_mpi"],
}


@pytest.fixture(scope="session")
def plugins() -> Path:
    """The directory holding the three plugins, installed once."""
    target = ROOT / "build" / "pytest-plugins"
    done = target / "installed.txt"
    if not done.exists() or done.read_text() != " ".join(PINS):
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--upgrade",
             "--target", str(target), *PINS],
            check=True, timeout=600,
        )  # fmt: skip
        done.write_text(" ".join(PINS))
    return target


def plugin_env(plugins: Path) -> dict[str, str]:
    path = os.pathsep.join([str(Path(mpiexec()).parent), os.environ.get("PATH", "")])
    return {"PYTHONPATH": os.pathsep.join([str(plugins), str(ROOT)]), "PATH": path}


def outer(pytester: pytest.Pytester, plugins: Path, only: str, *args: str) -> pytest.RunResult:
    """A pytest session in one plain process (the MPI plugins start the jobs)."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", *ONLY[only]]
    proc = subprocess.run(
        [*command, *args, str(pytester.path)],
        capture_output=True, text=True, timeout=240, cwd=pytester.path,
        env=environment(plugin_env(plugins)),
    )  # fmt: skip
    out, err = proc.stdout.splitlines(), proc.stderr.splitlines()
    return pytest.RunResult(proc.returncode, out, err, 0)


ISOLATED = """
import numpy as np
import pytest


@pytest.mark.mpi(ranks=2, timeout=60)
def test_isolated(mpi_ranks):
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    assert type(comm).__module__ == "pkl5shim.comm"
    rank = comm.Get_rank()
    got = comm.sendrecv(np.ones(1 << 18) * rank, dest=1 - rank, source=1 - rank)
    assert got[0] == 1 - rank


@pytest.mark.mpi(ranks=2, timeout=60)
def test_isolated_modifies(mpi_ranks):
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    array = np.zeros(1 << 18)
    request = comm.isend(array, dest=1 - rank)  # ISEND
    array[0] = 5.0
    comm.recv(source=1 - rank)
    request.wait()
"""


def test_pytest_isolate_mpi(pytester: pytest.Pytester, plugins: Path) -> None:
    """Each test in its own ``mpirun`` job: the jobs run under the shim, findings come back."""
    pytester.makefile(".ini", pytest=f"[pytest]\nmpi_executable = {mpiexec()}\n")
    pytester.makepyfile(test_isolated=ISOLATED)
    source = (pytester.path / "test_isolated.py").read_text().splitlines()
    isend = next(i for i, line in enumerate(source, 1) if "# ISEND" in line)
    result = outer(pytester, plugins, "isolate", "--pkl5-stats", "--pkl5-check")
    text = result.stdout.str()
    for rank in (0, 1):
        assert f"PASSED test_isolated.py::test_isolated[2][rank={rank}]" in text, text
        assert f"FAILED test_isolated.py::test_isolated_modifies[2][rank={rank}]" in text, text
    result.stdout.fnmatch_lines(
        [
            "*pkl5shim: objects sent per test, sum of 1 rank and 4 processes of MPI jobs*",
            "test_isolated.py::test_isolated[[]2[]] * 0 * 0 B * 2 * 4.0 MiB * 2.0 MiB",
            "*pkl5shim check: 2 finding(s)*",
            "test_isolated.py::test_isolated_modifies[[]2[]] (rank 0 of a job started by the "
            "test): pkl5shim check: array(s) [[]0[]] of the object sent by isend at "
            f"*test_isolated.py:{isend}*",
        ]
    )


PARALLEL = """
import numpy as np
import pytest
from mpi4py import MPI


@pytest.mark.parallel(nprocs=2)
def test_parallel():
    comm = MPI.COMM_WORLD
    assert type(comm).__module__ == "pkl5shim.comm"
    got = comm.bcast(np.ones(1 << 18) if comm.Get_rank() == 0 else None, root=0)
    assert got.sum() == 1 << 18


def test_serial():
    assert type(MPI.COMM_WORLD).__module__ == "pkl5shim.comm"
"""


def test_mpi_pytest(pytester: pytest.Pytester, plugins: Path) -> None:
    """mpi-pytest's forking mode: its ``mpiexec`` job runs under the shim and is counted."""
    pytester.makefile(".ini", pytest="[pytest]\n")
    pytester.makepyfile(test_parallel=PARALLEL)
    result = outer(pytester, plugins, "mpi-pytest", "--pkl5-stats")
    if flavour() == "impi":  # mpi-pytest's forking mode knows MPICH, Open MPI and MS-MPI only
        result.stdout.fnmatch_lines(["*RuntimeError: MPI distribution is not recognised*"])
        return
    assert result.ret == 0, result.stdout.str()[-4000:] + result.stderr.str()[-2000:]
    result.stdout.fnmatch_lines(
        [
            "*pkl5shim: objects sent per test, sum of 1 rank and 2 processes of MPI jobs*",
            "test_parallel.py::test_parallel * 0 * 0 B * 1 * 2.0 MiB * 2.0 MiB",
            "*PASSED test_parallel.py::test_parallel*",
            "*PASSED test_parallel.py::test_serial*",
        ]
    )


DEADLOCK = """
from mpi4py import MPI

comm = MPI.COMM_WORLD


def test_deadlocks_on_rank_0():
    if comm.Get_rank() == 0:
        comm.recv(source=1, tag=99)  # NEVER SENT
"""


def test_deadlock_with_pytest_timeout(pytester: pytest.Pytester, plugins: Path) -> None:
    """pytest-timeout's thread method ends the job and shows where the rank waits.

    (Its signal method cannot: the rank waits inside MPI, where no Python signal handler
    runs; measured, the job hung.)  Rank 1 waits in the plugin's gather at the end.
    """
    pytester.makefile(".ini", pytest="[pytest]\n")
    pytester.makepyfile(test_deadlock=DEADLOCK)
    args = ["-m", "pytest", "-p", "no:cacheprovider", *ONLY["timeout"], "--pkl5"]
    args += ["--timeout=3", "--timeout-method=thread", str(pytester.path)]
    proc = run(2, args, timeout=90, env=plugin_env(plugins))
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text[-3000:]
    assert "Timeout" in text, text[-3000:]
    assert "in test_deadlocks_on_rank_0" in text and "# NEVER SENT" in text, text[-3000:]


def test_mpi_pytest_inside_mpiexec(pytester: pytest.Pytester, plugins: Path) -> None:
    """mpi-pytest's other mode: the session itself under ``mpiexec``, its marker selecting."""
    pytester.makefile(".ini", pytest="[pytest]\n")
    pytester.makepyfile(test_parallel=PARALLEL)
    out = pytester.path / "stats.json"
    args = ["-m", "pytest", "-p", "no:cacheprovider", "-rA", *ONLY["mpi-pytest"]]
    args += ["-m", "parallel[2]", f"--pkl5-stats=json:{out}", str(pytester.path)]
    proc = run(2, args, timeout=120, env=plugin_env(plugins))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    tests = json.loads(out.read_text())["tests"]
    assert list(tests) == ["test_parallel.py::test_parallel"], tests
    assert tests["test_parallel.py::test_parallel"]["total"]["out_of_band_objects"] == 1
    assert [p["outcome"] for p in tests["test_parallel.py::test_parallel"]["processes"]] == [
        "passed",
        "passed",
    ]
