"""Run every ``tests/mpi/check_*.py`` module under mpiexec on 1, 2, 3 and 4 ranks.

The conformance check runs on 1 and 2 ranks only: it calls about 1200 names with
agreement between ranks after each call, which takes 3-5 s on 1-2 ranks and over 4
minutes oversubscribed at 3 (measured); what it compares does not depend on the
rank count beyond the intercommunicator, which 2 ranks have.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mpilaunch import flavour, run

MPI_DIR = Path(__file__).parent / "mpi"
MODULES = sorted(path.name for path in MPI_DIR.glob("check_*.py"))
SIZES = [1, 2, 3, 4]


# The conformance check is finished on MPICH only: on the Open MPI wheel some of its calls
# on mpi4py's own objects reach MPI's fatal error handler and abort the job, and it was not
# yet run on Intel MPI (not done, see docs/reliability.md).
SIZES_OF = {"check_conformance.py": [1, 2] if flavour() == "mpich" else []}
CASES = [(module, nprocs) for module in MODULES for nprocs in SIZES_OF.get(module, SIZES)]


@pytest.mark.parametrize(("module", "nprocs"), CASES, ids=[f"{m}-{n}" for m, n in CASES])
def test_checks(module: str, nprocs: int) -> None:
    result = run(nprocs, [str(MPI_DIR / "runner.py"), str(MPI_DIR / module)], timeout=240)
    report = result.stdout[-6000:] + result.stderr[-3000:]
    assert result.returncode == 0, report
    assert " 0 failed" in result.stdout, report
