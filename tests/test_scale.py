"""8 and 16 ranks, oversubscribed: point-to-point, collectives, reductions and neighbour
collectives of pkl5shim (tests/scale/check_scale.py, run by tests/mpi/runner.py).

Each check compares with plain mpi4py on the same data and with the expected values;
one runs every collective while a wildcard irecv is pending.  Measured on 2 cores:
6-7 s at 8 ranks and 14-18 s at 16 ranks per wheel.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mpilaunch import run

TESTS = Path(__file__).parent
RUNNER = TESTS / "mpi" / "runner.py"
MODULE = TESTS / "scale" / "check_scale.py"
CHECKS = 8


@pytest.mark.parametrize("nprocs", [8, 16])
def test_checks_at_scale(nprocs: int) -> None:
    result = run(nprocs, [str(RUNNER), str(MODULE)], timeout=240)
    report = result.stdout[-6000:] + result.stderr[-3000:]
    assert result.returncode == 0, report
    assert f"{CHECKS} passed, 0 failed" in result.stdout, report
