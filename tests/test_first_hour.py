"""A new user's first hour: launch mistakes, bad values and missing programs end with one line.

MPMD launches (``mpiexec -n 1 python x : -n 1 env VAR=value python x``) give ranks
different environments, as a forgotten ``-x PKL5_ENABLE`` does with Open MPI across nodes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mpilaunch import ROOT, environment, run

LEGACY = str(Path(__file__).parent / "programs" / "first_hour_legacy.py")
QUICK = {"PKL5_LAUNCH_TIMEOUT": "3"}


def second_rank(*words: str) -> list[str]:
    """The arguments that add a second MPMD rank running ``[env words] python LEGACY``."""
    prefix = ["env", *words] if words else []
    return [":", "-n", "1", *prefix, sys.executable, LEGACY]


def pkl5_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("pkl5shim: ")]


@pytest.mark.parametrize(
    ("first", "env", "second", "shim_rank"),
    [
        ([LEGACY], {"PKL5_ENABLE": "1", **QUICK}, second_rank("-u", "PKL5_ENABLE"), 0),
        ([LEGACY], QUICK, second_rank("PKL5_ENABLE=1"), 1),
        (["-m", "pkl5shim", LEGACY], QUICK, second_rank(), 0),
    ],
    ids=["variable-on-rank-0", "variable-on-rank-1", "launcher-on-rank-0"],
)
def test_a_rank_without_the_shim_ends_the_job_with_the_cause_and_fix(
    first: list[str], env: dict[str, str], second: list[str], shim_rank: int
) -> None:
    result = run(1, [*first, *second], timeout=60, env=env)
    report = result.stdout + result.stderr
    assert result.returncode != 0, report
    lines = pkl5_lines(result.stderr)
    assert len(lines) == 1, report
    assert f"rank {shim_rank} of 2 enabled pkl5shim, but not every rank joined" in lines[0]
    assert "PKL5_LAUNCH_TIMEOUT=3 s" in lines[0] and "PKL5_ENABLE=1 on every rank" in lines[0]
    assert "-x PKL5_ENABLE" in lines[0] and "Traceback" not in result.stderr, report
    assert f"OK first hour legacy rank {shim_rank}" not in result.stdout, report


def test_every_rank_with_the_shim_in_either_form_passes_the_handshake() -> None:
    result = run(1, ["-m", "pkl5shim", LEGACY, *second_rank("PKL5_ENABLE=1")], timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    for rank in (0, 1):
        assert f"OK first hour legacy rank {rank} enabled=True" in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("variable", "value", "shown"),
    [
        ("PKL5_EAGER", "1M", "1048576 on rank 1; 65536 on rank 0"),
        ("PKL5_STATS", "total", "total on rank 1; not total on rank 0"),
    ],
)
def test_a_setting_that_differs_between_ranks_raises_on_every_rank(
    variable: str, value: str, shown: str
) -> None:
    args = [LEGACY, *second_rank(f"{variable}={value}")]
    # rank 0 states the value too: the test does not depend on the default
    base = {"PKL5_EAGER": "64K"} if variable == "PKL5_EAGER" else {}
    result = run(1, args, timeout=60, env={"PKL5_ENABLE": "1", **base})
    report = result.stdout + result.stderr
    assert result.returncode != 0, report
    lines = sorted(pkl5_lines(result.stderr))
    assert len(lines) == 2 and "Traceback" not in result.stderr, report
    for rank, line in enumerate(lines):
        name = "PKL5_STATS=total" if variable == "PKL5_STATS" else variable
        assert line.startswith(f"pkl5shim: {name} differs between ranks ("), line
        assert shown[: shown.index(";")] in line and shown[shown.index(";") + 2 :] in line, line
        assert f"this is rank {rank}" in line and f"set the same {variable}" in line, line
    assert "OK first hour legacy" not in result.stdout, report


def test_a_bad_value_under_the_variable_is_one_line_per_rank_and_a_failure() -> None:
    result = run(2, [LEGACY], timeout=60, env={"PKL5_ENABLE": "1", "PKL5_EAGER": "abc"})
    report = result.stdout + result.stderr
    assert result.returncode != 0, report
    expected = "pkl5shim: PKL5_EAGER='abc': expected a byte count such as 65536, 64K or 2G"
    assert pkl5_lines(result.stderr) == [expected, expected], report
    assert "Traceback" not in result.stderr, report


def launcher(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m pkl5shim args`` as a singleton, without mpiexec (these end before MPI)."""
    return subprocess.run(
        [sys.executable, "-m", "pkl5shim", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=environment(env),
    )


@pytest.mark.parametrize(
    ("args", "env", "status", "line"),
    [
        (["nosuch.py"], {}, 2, f"can't open file {str(ROOT / 'nosuch.py')!r}: [Errno 2]"),
        (["-m", "nosuch_module"], {}, 1, "No module named nosuch_module"),
        ([LEGACY], {"PKL5_EAGER": "abc"}, 1, "PKL5_EAGER='abc': expected a byte count"),
        ([LEGACY], {"PKL5_ENABLE": "maybe"}, 1, "PKL5_ENABLE='maybe': expected 1"),
        (["--info"], {"PKL5_CHUNK": "-1"}, 1, "PKL5_CHUNK='-1': must be at least 0"),
    ],
    ids=["missing-script", "missing-module", "bad-value", "bad-enable", "info-bad-value"],
)
def test_launcher_reports_bad_input_in_one_line(
    args: list[str], env: dict[str, str], status: int, line: str
) -> None:
    result = launcher(*args, **env)
    assert result.returncode == status, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == "", result.stderr
    assert result.stderr.startswith(f"python -m pkl5shim: {line}"), result.stderr
    if "PKL5_ENABLE" in env:
        assert "unset PKL5_ENABLE or set it to 1" in result.stderr
        assert "stays off" not in result.stderr


def test_info_reports_an_invalid_enable_value_and_aligns_its_rows() -> None:
    result = launcher("--info", PKL5_ENABLE="maybe", PKL5_MAX_MESSAGE="2G")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("  PKL5_")]
    assert len(rows) >= 10, result.stdout
    assert len({row.index(" ", 2 + len("PKL5_PAYLOAD_TIMEOUT")) for row in rows}) == 1, rows
    assert len({row.rindex("(") for row in rows if "invalid" not in row}) == 1, rows
    by_name = {row.split()[0]: row for row in rows}
    assert "'maybe' (invalid, ignored)" in by_name["PKL5_ENABLE"], rows
    assert "2 GiB (2147483648 bytes)" in by_name["PKL5_MAX_MESSAGE"], rows
    assert "patched:          nothing (not enabled)" in result.stdout, result.stdout


def test_a_missing_script_under_mpiexec_is_one_line_per_rank_and_a_failure() -> None:
    result = run(2, ["-m", "pkl5shim", "nosuch.py"], timeout=60)
    report = result.stdout + result.stderr
    assert result.returncode != 0, report
    lines = [line for line in result.stderr.splitlines() if line.startswith("python -m pkl5shim")]
    expected = (
        f"python -m pkl5shim: can't open file {str(ROOT / 'nosuch.py')!r}: "
        "[Errno 2] No such file or directory"
    )
    # one line per rank that got to write it: Open MPI's launcher ends the job at the
    # first rank's non-zero exit, which may be before the other rank wrote
    assert 1 <= len(lines) <= 2 and set(lines) == {expected}, report
    assert "Traceback" not in result.stderr, report
