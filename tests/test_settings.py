"""The PKL5_* settings and mpi4py's MPI.pickle settings, each in its own MPI job."""

from __future__ import annotations

from pathlib import Path

import pytest
from mpilaunch import run

PROGRAMS = Path(__file__).parent / "programs"


def run_program(name: str, nprocs: int, env: dict[str, str] | None = None) -> str:
    """Run ``programs/name`` on ``nprocs`` ranks; every rank must print its "OK" line."""
    result = run(nprocs, [str(PROGRAMS / name)], timeout=180, env=env)
    report = result.stdout[-4000:] + result.stderr[-4000:]
    assert result.returncode == 0, report
    done = name.removesuffix(".py").replace("_", " ")
    for rank in range(nprocs):
        assert f"OK {done} rank {rank}" in result.stdout, report
    return result.stdout


def test_chunk_setting_splits_large_buffers_into_many_messages() -> None:
    out = run_program("chunked.py", 2, {"PKL5_CHUNK": "4096"})
    assert "odd uint8 array: " in out and "channel messages" in out


def test_custom_pickle_and_threshold_are_honoured() -> None:
    run_program("pickle_settings.py", 2)


@pytest.mark.parametrize("nprocs", [2, 3])
def test_eager_setting_moves_the_small_large_boundary(nprocs: int) -> None:
    run_program("eager.py", nprocs, {"PKL5_EAGER": "2048"})


PRINT_SETTINGS = "import pkl5shim.config as c; print('settings', c.settings)"


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("PKL5_EAGER", "abc", "expected a byte count"),
        ("PKL5_EAGER", "12Q", "expected a byte count"),
        ("PKL5_EAGER", "100", "at least 1024"),
        ("PKL5_CHUNK", "-1", "at least 0"),
        ("PKL5_CHUNK", "4.5K", "expected a byte count"),
        ("PKL5_MAX_MESSAGE", "lots", "expected a byte count"),
        ("PKL5_ISEND", "sometimes", "expected 'copy' or 'zero-copy'"),
        ("PKL5_STATS", "csv:/tmp/x", "or json:PATH"),
        ("PKL5_LOG", "verbose", "expected debug"),
        ("PKL5_CHECK", "maybe", "expected 1 (warn) or raise"),
    ],
)
def test_bad_setting_raises_value_error_naming_it_when_the_engine_loads(
    name: str, value: str, problem: str
) -> None:
    result = run(1, ["-c", "from pkl5shim import Intracomm"], timeout=120, env={name: value})
    assert result.returncode != 0, result.stdout + result.stderr
    assert "ValueError" in result.stderr, result.stderr[-3000:]
    assert f"{name}={value!r}" in result.stderr and problem in result.stderr, result.stderr[-3000:]


def test_good_settings_are_parsed_with_their_units() -> None:
    env = {"PKL5_EAGER": "4K", "PKL5_CHUNK": "1MiB", "PKL5_MAX_MESSAGE": " 2G "}
    result = run(1, ["-c", PRINT_SETTINGS], timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = f"eager_limit={4 << 10}, max_message={2 << 30}, chunk_limit={1 << 20}"
    assert expected in result.stdout, result.stdout


def test_bad_enable_value_is_reported_and_leaves_the_shim_off() -> None:
    code = "from mpi4py import MPI; import pkl5shim; print('enabled', pkl5shim.enabled())"
    result = run(1, ["-c", code], timeout=120, env={"PKL5_ENABLE": "maybe"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "enabled False" in result.stdout, result.stdout
    assert "PKL5_ENABLE='maybe'" in result.stderr and "stays off" in result.stderr, result.stderr
