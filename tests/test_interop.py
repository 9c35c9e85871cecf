"""A rank using pkl5shim and a plain mpi4py rank in one job (tests/programs/interop.py).

Rank 0 wraps ``COMM_WORLD`` in ``pkl5shim.Intracomm``, rank 1 uses mpi4py alone.  Small
objects interoperate both ways; a large one from the pkl5shim rank raises
``UnwrappedReceiveError`` on the plain rank (recv and irecv) instead of hanging or
returning something else.  (``PKL5_ENABLE=1`` on some ranks only is a launch mistake
that ends with an error, tested in tests/test_first_hour.py.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mpilaunch import ROOT, environment, flavour, mpiexec

PROGRAM = Path(__file__).parent / "programs" / "interop.py"


def test_shim_rank_and_plain_rank_interoperate() -> None:
    extra = ["--oversubscribe"] if flavour() == "openmpi" else []
    program = ["env", "PKL5_ENABLE=0", sys.executable, str(PROGRAM)]
    command = [mpiexec(), *extra, "-n", "2", *program]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=120, env=environment(), cwd=ROOT
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{' '.join(command)} did not finish in 120 s (hang?)") from None
    report = result.stdout[-4000:] + result.stderr[-4000:]
    assert result.returncode == 0, report
    assert "OK interop rank 0" in result.stdout and "OK interop rank 1" in result.stdout, report
