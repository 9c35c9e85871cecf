"""The pytest plugin (``pytest --pkl5``): pytester builds small suites, mpiexec runs them.

Each suite is made with pytest's own ``pytester`` in a temporary directory and run by
``mpiexec -n N python -m pytest --pkl5 ...`` (``mpilaunch.run``); the outcome is read
from the terminal (``pytest.RunResult``) and from ``--pkl5-stats=json:PATH``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mpilaunch import environment, run

pytest_plugins = ["pytester"]

CONFTEST = """
from mpi4py import MPI  # at the top, before any test module: must see the shim already

WORLD_AT_CONFTEST = type(MPI.COMM_WORLD).__module__
"""

SUITE = """
import numpy as np
import pytest
from mpi4py import MPI
from mpi4py.MPI import COMM_WORLD as world

import conftest

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()


def test_patched_at_import():
    assert conftest.WORLD_AT_CONFTEST == "pkl5shim.comm"
    assert type(world).__module__ == "pkl5shim.comm"


def test_array_ring():
    array = np.arange(1 << 18, dtype="f8") + rank  # 2 MiB: out of band
    req = comm.isend(array, (rank + 1) % size, tag=1)
    got = comm.recv(source=(rank - 1) % size, tag=1)
    req.wait()
    assert got[0] == (rank - 1) % size


def test_small_objects():
    assert comm.allreduce(1) == size


def test_fixture_counts(pkl5_stats):
    comm.bcast(np.ones(1 << 17) if rank == 0 else None, root=0)  # 1 MiB
    counts = pkl5_stats()
    expected = 1 if rank == 0 else 0  # pickled once, by the root
    assert counts["out_of_band_objects"] == expected, counts
    assert counts["in_band_objects"] == 0, counts
    assert counts["methods"]["bcast"]["objects_received"] == 1, counts
    if rank == 0:
        assert counts["largest"] > 1 << 20, counts


@pytest.mark.pkl5_off
def test_marked_off():
    assert type(MPI.COMM_WORLD).__module__ == "mpi4py.MPI"
    assert MPI.COMM_WORLD.allreduce(np.ones(1 << 16))[0] == size  # counted nowhere


def test_on_again():
    assert type(MPI.COMM_WORLD).__module__ == "pkl5shim.comm"


def test_fails_on_last_rank():
    assert rank != size - 1 or size == 1
"""


def launch(
    pytester: pytest.Pytester, nprocs: int, *args: str, env: dict[str, str] | None = None
) -> pytest.RunResult:
    """Run pytest on the pytester directory under ``mpiexec -n nprocs``."""
    start = time.monotonic()
    command = ["-m", "pytest", "-p", "no:cacheprovider", "-rA", *args, str(pytester.path)]
    proc = run(nprocs, command, timeout=180, env=env)
    duration = time.monotonic() - start
    out, err = proc.stdout.splitlines(), proc.stderr.splitlines()
    return pytest.RunResult(proc.returncode, out, err, duration)


def count(result: pytest.RunResult, outcome: str, test: str) -> int:
    """How many ranks' short summaries (``-rA``) say ``outcome`` for ``test``."""
    lines = result.stdout.lines
    return sum(line.startswith(f"{outcome} ") and f"::{test}" in line for line in lines)


def make_suite(pytester: pytest.Pytester) -> None:
    pytester.makefile(".ini", pytest="[pytest]\n")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=SUITE)


def test_inert_without_options(pytester: pytest.Pytester) -> None:
    """No option: nothing of MPI or of the engine is imported, the marker is known."""
    pytester.makefile(".ini", pytest="[pytest]\naddopts = --strict-markers\n")
    pytester.makepyfile(
        test_inert="""
        import sys
        import pytest

        @pytest.mark.pkl5_off
        def test_nothing_loaded():
            assert "pkl5shim.pytest_plugin" in sys.modules
            loaded = [m for m in sys.modules if m.startswith(("mpi4py", "pkl5shim."))]
            assert loaded == ["pkl5shim.pytest_plugin"], loaded
            assert "numpy" not in sys.modules

        def test_fixture_needs_the_option(pkl5_stats):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*the pkl5_stats fixture needs pytest --pkl5*"])
    help_text = pytester.runpytest_subprocess("--help").stdout.str()
    assert "--pkl5-check" in help_text and "--pkl5-stats=[json:PATH]" in help_text


@pytest.mark.parametrize("nprocs", [1, 2, 3])
def test_suite_under_the_shim(pytester: pytest.Pytester, nprocs: int) -> None:
    make_suite(pytester)
    out = pytester.path / "stats.json"
    result = launch(pytester, nprocs, "--pkl5-stats", f"--pkl5-stats=json:{out}")
    failing = 0 if nprocs == 1 else 1
    assert result.ret == (1 if failing else 0), result.stdout.str()[-3000:]
    if failing:  # rank 0 passes it: the summary names the rank that failed
        result.stdout.fnmatch_lines(
            [
                f"*pkl5shim: objects sent per test, sum of {nprocs} ranks*",
                "*pkl5shim: tests whose outcome differs between ranks*",
                "test_suite.py::test_fails_on_last_rank: passed on rank(s) "
                f"{', '.join(map(str, range(nprocs - 1)))}; failed on rank(s) {nprocs - 1}",
            ]
        )
    report = json.loads(out.read_text())
    assert report["ranks"] == nprocs
    tests = report["tests"]
    for name in ("patched_at_import", "array_ring", "fixture_counts", "marked_off", "on_again"):
        outcomes = [p["outcome"] for p in tests[f"test_suite.py::test_{name}"]["processes"]]
        assert outcomes == ["passed"] * nprocs, (name, outcomes)
    ring = tests["test_suite.py::test_array_ring"]["total"]
    assert ring["out_of_band_objects"] == nprocs and ring["in_band_objects"] == 0, ring
    assert ring["buffer_bytes"] == nprocs * (1 << 21) and ring["largest"] > 1 << 21, ring
    small = tests["test_suite.py::test_small_objects"]["total"]
    assert small["out_of_band_objects"] == 0 and small["in_band_objects"] >= nprocs, small
    off = tests["test_suite.py::test_marked_off"]
    assert [p["shim"] for p in off["processes"]] == [False] * nprocs
    assert off["total"]["in_band_objects"] + off["total"]["out_of_band_objects"] == 0
    text = result.stdout.str()
    assert "run with the shim off (pkl5_off): test_suite.py::test_marked_off" in text
    assert "no test sent an object over 2 GiB" in text


CHECKED = """
import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
peer = (rank + 1) % size
held = {}


def test_a_sends_and_leaves_it_open():
    held["array"] = np.zeros(1 << 17)
    held["request"] = comm.isend(held["array"], peer, tag=5)  # ISEND A


def test_b_modifies_the_array():
    held["array"][7] = 1.0  # MODIFY B


def test_c_waits():
    got = comm.recv(source=(rank - 1) % size, tag=5)
    held["request"].wait()
    assert got.shape == (1 << 17,)


def test_d_modifies_then_waits():
    array = np.zeros(1 << 17)
    request = comm.isend(array, peer, tag=6)  # ISEND D
    array[:] = 2.0
    got = comm.recv(source=(rank - 1) % size, tag=6)
    request.wait()  # WAIT D
    assert got.shape == array.shape


def test_e_correct():
    array = np.zeros(1 << 17)
    request = comm.isend(array, peer, tag=7)
    comm.recv(source=(rank - 1) % size, tag=7)
    request.wait()
    array[:] = 3.0
"""


def _line(source: str, marker: str) -> int:
    return next(i for i, line in enumerate(source.splitlines(), 1) if marker in line)


@pytest.mark.parametrize("nprocs", [1, 2])
def test_check_fails_the_test_that_modified(pytester: pytest.Pytester, nprocs: int) -> None:
    pytester.makefile(".ini", pytest="[pytest]\n")
    pytester.makepyfile(test_checked=CHECKED)
    source = (pytester.path / "test_checked.py").read_text()
    result = launch(pytester, nprocs, "--pkl5-check")
    text = result.stdout.str()
    # On every rank: b and d fail, the others pass.
    assert count(result, "FAILED", "test_b_modifies_the_array") == nprocs, text
    assert count(result, "FAILED", "test_d_modifies_then_waits") == nprocs, text
    for name in ("a_sends_and_leaves_it_open", "c_waits", "e_correct"):
        assert count(result, "PASSED", f"test_{name}") == nprocs, text
    isend_a = f"test_checked.py:{_line(source, '# ISEND A')}"
    isend_d = f"test_checked.py:{_line(source, '# ISEND D')}"
    wait_d = f"test_checked.py:{_line(source, '# WAIT D')}"
    result.stdout.fnmatch_lines(
        [f"*isend at *{isend_a} (rank *, tag 5) were modified by "
         "test_checked.py::test_b_modifies_the_array*"]
    )  # fmt: skip
    result.stdout.fnmatch_lines([f"*isend at *{isend_d}*seen at *{wait_d}*"])
    result.stdout.fnmatch_lines(["*Found in test_checked.py::test_d_modifies_then_waits*"])
    # a left its send open: reported against a, as a warning; c's wait reports nothing again
    result.stdout.fnmatch_lines(
        ["*test_checked.py::test_a_sends_and_leaves_it_open*",
         f"*the request of isend at *{isend_a}*was not completed by the end of "
         "test_checked.py::test_a_sends_and_leaves_it_open*"]
    )  # fmt: skip
    # the summary on rank 0: b's, d's and a's findings on every rank
    assert f"pkl5shim check: {3 * nprocs} finding(s)" in text, text[-3000:]

def test_summary_formatting_of_a_huge_object() -> None:
    """The 2 GiB line from records (sending 2 GiB per run would cost seconds and 4 GiB)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from pkl5shim import pertest

    small = {**pertest.new_entry(), "in_band_objects": 2, "in_band_bytes": 40, "largest": 20}
    huge = {**pertest.new_entry(), "out_of_band_objects": 1, "largest": (1 << 31) + 8}
    huge["out_of_band_bytes"] = huge["buffer_bytes"] = (1 << 31) + 8
    ranks = [
        {"rank": 0, "records": {"t.py::test_small": small, "t.py::test_huge": huge}, "jobs": []},
        {"rank": 1, "records": {"t.py::test_small": {**small, "outcome": "failed"}}, "jobs": []},
    ]
    merged = pertest.merge(ranks)
    lines = pertest.summary(merged, 2, 0, stats=True)
    assert lines[0] == "= pkl5shim: objects sent per test, sum of 2 ranks ="
    assert lines[2].split() == ["t.py::test_huge", "0", "0", "B", "1", "2.0", "GiB", "2.0", "GiB"]
    assert any("1 test(s) sent an object over 2 GiB" in line and "t.py::test_huge" in line
               for line in lines), lines  # fmt: skip
    assert "t.py::test_small: passed on rank(s) 0; failed on rank(s) 1" in lines
    assert "t.py::test_huge: passed on rank(s) 0; not run on rank(s) 1" in lines
    assert pertest.totals(merged["t.py::test_small"])["in_band_bytes"] == 80


def test_start_up_cost_is_small(pytester: pytest.Pytester) -> None:
    """The plugin module imports only pytest and the standard library."""
    code = (
        "import sys; before = set(sys.modules); import pkl5shim.pytest_plugin; "
        "new = sorted(set(sys.modules) - before); print(new)"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import pytest; " + code],
        capture_output=True, text=True, timeout=60, env=environment(), check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "['pkl5shim', 'pkl5shim.pytest_plugin']", out.stdout
