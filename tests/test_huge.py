"""One object of more than 4 GiB (two arrays over 2 GiB each) between 2 ranks, a gather
of more than 4 GiB (an array over 2 GiB from each of 2 ranks), an uneven allgather of
an array over 2 GiB, and a bcast of bytes over 2 GiB (tests/programs/huge.py).

Needs about 9 GiB of memory and a minute or two.  Leave it out with ``-m 'not huge'``
(or PKL5_SKIP_HUGE=1) while developing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from mpilaunch import run

PROGRAM = Path(__file__).parent / "programs" / "huge.py"


@pytest.mark.huge
@pytest.mark.skipif(os.environ.get("PKL5_SKIP_HUGE") == "1", reason="PKL5_SKIP_HUGE=1")
def test_object_over_4_gib_with_arrays_over_2_gib() -> None:
    started = time.perf_counter()
    result = run(2, [str(PROGRAM)], timeout=600)
    elapsed = time.perf_counter() - started
    print(f"\nhuge message test took {elapsed:.0f} s\n{result.stdout}")
    report = result.stdout[-4000:] + result.stderr[-4000:]
    assert result.returncode == 0, report
    assert "OK huge rank 0" in result.stdout and "OK huge rank 1" in result.stdout, report
    assert result.stdout.count(" GiB in ") == 5, report  # p2p twice, (all)gather, bcast
