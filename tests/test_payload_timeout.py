"""PKL5_PAYLOAD_TIMEOUT: a large message whose payload never comes fails instead of hanging."""

from __future__ import annotations

from pathlib import Path

from mpilaunch import run

PROGRAM = Path(__file__).parent / "programs" / "payload_timeout.py"


def test_missing_payload_raises_wire_error_after_the_timeout() -> None:
    result = run(2, [str(PROGRAM)], timeout=150, env={"PKL5_PAYLOAD_TIMEOUT": "1"})
    report = result.stdout[-4000:] + result.stderr[-4000:]
    assert result.returncode == 0, report
    for rank in range(2):
        assert f"OK payload timeout rank {rank}" in result.stdout, report


def test_bad_timeout_value_raises_value_error_naming_it() -> None:
    result = run(1, ["-c", "from pkl5shim import Intracomm"], timeout=120,
                 env={"PKL5_PAYLOAD_TIMEOUT": "soon"})  # fmt: skip
    assert result.returncode != 0, result.stdout + result.stderr
    assert "ValueError" in result.stderr, result.stderr[-3000:]
    assert "PKL5_PAYLOAD_TIMEOUT='soon'" in result.stderr, result.stderr[-3000:]
