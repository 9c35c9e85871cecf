"""Real clients of mpi4py run unchanged under the shim: mpi4py.futures' MPIPoolExecutor
(under ``python -m mpi4py.futures``, with and without ``MPI4PY_FUTURES_USE_PKL5=1``),
mpi4py.util.pool and mpi4py.util.sync, with large payloads.

Each runs plain and with ``PKL5_ENABLE=1``; the output must be the same, and
``PKL5_STATS`` must show that the engine carried the arrays out of band.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mpilaunch import flavour, run

CLIENTS = Path(__file__).parent / "clients"
# One worker on an intercommunicator with 8 MiB messages (mpi4py.futures at 2 ranks, and
# clients/intercomm_pingpong.py) hangs on the MPICH 5.0.2 wheel: an iprobe never sees a
# message the peer sent.  Plain mpi4py hangs on the ping-pong too (after 4 of 12 round
# trips, measured), and pkl5shim's futures runs hang with one worker (not with two).
# Not solved: these cases are expected failures on MPICH, with a short timeout.
MPICH_HANG = pytest.mark.xfail(
    flavour() == "mpich",
    reason="MPICH 5.0.2: one-worker intercommunicator hang (plain mpi4py's ping-pong too)",
    strict=False,
)
FUTURES = [str(CLIENTS / "futures_map.py")]
CASES = [
    ("executor", 3, ["-m", "mpi4py.futures", *FUTURES, "executor"], {}),
    (
        "executor-pkl5",
        3,
        ["-m", "mpi4py.futures", *FUTURES, "executor"],
        {"MPI4PY_FUTURES_USE_PKL5": "1"},
    ),
    pytest.param(
        "executor", 2, ["-m", "mpi4py.futures", *FUTURES, "executor"], {}, marks=MPICH_HANG
    ),
    pytest.param("pool", 2, ["-m", "mpi4py.futures", *FUTURES, "pool"], {}, marks=MPICH_HANG),
    ("pool", 3, ["-m", "mpi4py.futures", *FUTURES, "pool"], {}),
    pytest.param("intercomm", 2, [str(CLIENTS / "intercomm_pingpong.py")], {}, marks=MPICH_HANG),
    ("sync", 2, [str(CLIENTS / "sync_sections.py")], {}),
    ("sync", 4, [str(CLIENTS / "sync_sections.py")], {}),
]


def _launch(
    nprocs: int, args: list[str], env: dict[str, str], enable: str, stats: Path
) -> tuple[str, list[dict]]:
    stats.mkdir()
    env = {**env, "PKL5_ENABLE": enable, "PKL5_STATS": f"json:{stats}/{{pid}}.json"}
    result = run(
        nprocs,
        args,
        timeout=30 if flavour() == "mpich" and nprocs == 2 and "sync" not in args[-1] else 180,
        # the MPICH hang above: a run that works takes a few seconds (measured 2-15 s)
        env=env,
    )
    assert result.returncode == 0, (
        f"PKL5_ENABLE={enable}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout, [json.loads(path.read_text()) for path in stats.glob("*.json")]


@pytest.mark.parametrize(
    ("name", "nprocs", "args", "env"),
    CASES,
    ids=[f"{values[0]}-{values[1]}" for values in (getattr(c, "values", c) for c in CASES)],
)
def test_client_runs_unchanged(
    name: str, nprocs: int, args: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    plain, plain_counters = _launch(nprocs, args, env, "0", tmp_path / "plain")
    assert plain.strip(), "the plain run printed nothing"
    assert plain_counters == [], "the plain run loaded pkl5shim"
    shim, counters = _launch(nprocs, args, env, "1", tmp_path / "shim")
    assert sorted(shim.splitlines()) == sorted(plain.splitlines()), f"{shim}\n---\n{plain}"
    assert len(counters) == nprocs, f"the shim was not active in every rank: {counters}"
    sent = sum(item["out_of_band_sent"] for item in counters)
    received = sum(item["out_of_band_received"] for item in counters)
    assert sent == received, counters
    if env.get("MPI4PY_FUTURES_USE_PKL5"):
        # mpi4py.util.pkl5's classes on the executor's intercommunicator carry the
        # arrays themselves (their own protocol-5 path, not pkl5shim's engine).
        return
    assert received >= (nprocs if name in ("sync", "intercomm") else 8), counters
