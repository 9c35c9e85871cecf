"""A rank's pending pkl5shim operations, dumped on a signal (PKL5_DUMP_SIGNAL)."""

from __future__ import annotations

from pathlib import Path

from mpilaunch import run

PROGRAM = str(Path(__file__).parent / "programs" / "first_hour_pending.py")


def test_signal_dumps_the_pending_irecv_while_the_main_thread_is_blocked_in_mpi() -> None:
    env = {"PKL5_ENABLE": "1", "PKL5_DUMP_SIGNAL": "USR1"}
    result = run(2, [PROGRAM], timeout=60, env=env)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    for rank in (0, 1):
        assert f"OK first hour pending rank {rank}" in result.stdout, report
    lines = [line for line in result.stderr.splitlines() if line.startswith("pkl5shim[rank 1]")]
    assert "pkl5shim[rank 1]: pending operations: 1" in lines, report
    first = (
        "pkl5shim[rank 1]:   receive on MPI_COMM_WORLD from rank 0, tag 5: "
        "waiting for its first message"
    )
    assert first in lines, report
    assert "pkl5shim[rank 1]: thread MainThread:" in lines, report
    stack = "\n".join(lines[lines.index("pkl5shim[rank 1]: thread MainThread:") :])
    assert "world.Barrier()" in stack, report
    assert not any(line.startswith("pkl5shim[rank 0]") for line in result.stderr.splitlines())
