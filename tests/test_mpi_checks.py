"""Run every ``tests/mpi/check_*.py`` module under mpiexec on 1, 2, 3 and 4 ranks."""

from __future__ import annotations

from pathlib import Path

import pytest
from mpilaunch import run

MPI_DIR = Path(__file__).parent / "mpi"
MODULES = sorted(path.name for path in MPI_DIR.glob("check_*.py"))
SIZES = [1, 2, 3, 4]


@pytest.mark.parametrize("nprocs", SIZES)
@pytest.mark.parametrize("module", MODULES)
def test_checks(module: str, nprocs: int) -> None:
    result = run(nprocs, [str(MPI_DIR / "runner.py"), str(MPI_DIR / module)], timeout=240)
    report = result.stdout[-6000:] + result.stderr[-3000:]
    assert result.returncode == 0, report
    assert " 0 failed" in result.stdout, report
