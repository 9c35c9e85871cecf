"""No per-message memory growth (tests/programs/memory.py on 2 ranks).

Small objects (100,000 round trips) and 1 MiB arrays (1,000) by send/recv and
isend/irecv, and 1 MiB isends whose requests are freed: tracemalloc and RSS
stay flat between the end of a warm-up and the end of the loop.  Then the
arrays of freed isends are released once delivered, and a received array's
allocation goes with it.  Measured (uncontended, 2 ranks): 17 s on the MPICH and
Open MPI wheels; Intel MPI's wheel is slower per round trip (100,000 small
isend/irecv 8.8 s against 7.0 s, 1,000 of 1 MiB 3.0 s against 1.5 s, 25 s in all),
so it runs half the counts to keep the added CI time down.  A leak of one list
slot (8 bytes) per received object, injected by hand, grew the traced memory by
840 KiB over 100,000 small round trips (limit 256 KiB, noise ~1 KiB); keeping
every 50th 1 MiB array grew it by 20-40 MiB (limit 2 MiB, noise < 12 KiB).
"""

from __future__ import annotations

from pathlib import Path

from mpilaunch import flavour, run

PROGRAM = Path(__file__).parent / "programs" / "memory.py"
COUNTS = {"impi": (50_000, 500)}
PHASES = ("small send/recv", "small isend/irecv", "1 MiB send/recv", "1 MiB isend/irecv",
          "1 MiB isend+Free")  # fmt: skip


def test_memory_is_flat_per_message_and_released() -> None:
    small, large = COUNTS.get(flavour(), (100_000, 1_000))
    result = run(2, [str(PROGRAM), str(small), str(large)], timeout=240)
    report = result.stdout[-6000:] + result.stderr[-3000:]
    assert result.returncode == 0, report
    for rank in (0, 1):
        for name in PHASES:
            assert f"rank {rank} {name}: " in result.stdout, report
        assert f"OK memory rank {rank}" in result.stdout, report
    assert "rank 0: 0 of 200 freed arrays still alive" in result.stdout, report
    assert "rank 1: 0 of 200 receive allocations alive" in result.stdout, report
