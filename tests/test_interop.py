"""A rank with the shim and a rank without it in one job (tests/programs/interop.py).

MPMD launch: ``mpiexec -n 1 env PKL5_ENABLE=1 python interop.py : -n 1 env PKL5_ENABLE=0
python interop.py``.  Small objects interoperate both ways; a large one from the shim
rank raises ``UnwrappedReceiveError`` on the plain rank (recv and irecv) instead of
hanging or returning something else.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mpilaunch import ROOT, environment, flavour, mpiexec

PROGRAM = Path(__file__).parent / "programs" / "interop.py"


def test_shim_rank_and_plain_rank_interoperate() -> None:
    extra = ["--oversubscribe"] if flavour() == "openmpi" else []
    ranks = [["env", f"PKL5_ENABLE={flag}", sys.executable, str(PROGRAM)] for flag in (1, 0)]
    command = [mpiexec(), *extra, "-n", "1", *ranks[0], ":", "-n", "1", *ranks[1]]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=120, env=environment(), cwd=ROOT
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{' '.join(command)} did not finish in 120 s (hang?)") from None
    report = result.stdout[-4000:] + result.stderr[-4000:]
    assert result.returncode == 0, report
    assert "OK interop rank 0" in result.stdout and "OK interop rank 1" in result.stdout, report
