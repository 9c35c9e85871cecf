"""PKL5_CHECK catches arrays modified after isend and names both places; clean runs stay quiet."""

from __future__ import annotations

from pathlib import Path

import pytest
from mpilaunch import run

PROGRAM = Path(__file__).parent / "programs" / "check_modify.py"
SOURCE = PROGRAM.read_text().splitlines()
ISEND_LINE = next(i for i, line in enumerate(SOURCE, 1) if "# ISEND LINE" in line)
WAIT_LINE = next(i for i, line in enumerate(SOURCE, 1) if "# WAIT LINE" in line)


def launch(nprocs: int, mode: str, **env: str):
    result = run(nprocs, [str(PROGRAM), mode], env={"PKL5_ENABLE": "1", **env})
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.parametrize("nprocs", [2, 3])
def test_modified_array_is_reported_with_both_places(nprocs: int) -> None:
    result = launch(nprocs, "modify", PKL5_CHECK="1")
    reports = [line for line in result.stderr.splitlines() if "BufferModifiedWarning" in line]
    assert len(reports) == nprocs - 1, result.stderr[-3000:]  # one per isend, once each
    for report in reports:
        assert f"check_modify.py:{ISEND_LINE}" in report, report
        assert f"check_modify.py:{WAIT_LINE}" in report, report
        assert "PKL5_ISEND=copy" in report, report


def test_raise_mode_raises_at_the_wait() -> None:
    result = launch(2, "modify", PKL5_CHECK="raise")
    assert "rank 0 raised BufferModifiedError" in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("mode", "env"),
    [("correct", {"PKL5_CHECK": "1"}), ("modify", {"PKL5_CHECK": "1", "PKL5_ISEND": "copy"})],
)
def test_clean_runs_report_nothing(mode: str, env: dict[str, str]) -> None:
    result = launch(3, mode, **env)
    assert "BufferModifiedWarning" not in result.stderr, result.stderr[-3000:]
    assert "rank 1 intact=True" in result.stdout and "rank 2 intact=True" in result.stdout


def test_request_never_completed_is_reported_at_exit() -> None:
    result = launch(2, "forget", PKL5_CHECK="1")
    assert "was never completed" in result.stderr, result.stderr[-3000:]
    assert f"check_modify.py:{ISEND_LINE}" in result.stderr


def test_without_check_mode_nothing_is_checked() -> None:
    result = launch(2, "modify")
    assert "BufferModifiedWarning" not in result.stderr
    assert "rank 1 intact=False" in result.stdout, result.stdout  # what check mode is for
