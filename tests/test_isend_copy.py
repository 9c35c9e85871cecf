"""PKL5_ISEND=copy: plain mpi4py's isend semantics for legacy code that breaks the isend rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from mpilaunch import run

PROGRAM = Path(__file__).parent / "programs" / "isend_modify.py"


@pytest.mark.parametrize("nprocs", [2, 3])
def test_isend_copy_keeps_the_values_at_the_call(nprocs: int) -> None:
    plain = run(nprocs, [str(PROGRAM)], env={"PKL5_ENABLE": "0"})
    copied = run(nprocs, [str(PROGRAM)], env={"PKL5_ENABLE": "1", "PKL5_ISEND": "copy"})
    for result in (plain, copied):
        assert result.returncode == 0, result.stderr[-3000:]
        reports = sorted(line for line in result.stdout.splitlines() if line.startswith("rank"))
        assert reports == [f"rank {r} intact=True" for r in range(1, nprocs)], result.stdout
