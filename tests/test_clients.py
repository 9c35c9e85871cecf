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
# The MPICH 5.0.2 wheel hangs in its CMA path (single-copy large messages) on the
# pattern of mpi4py.futures with one worker, with plain mpi4py too
# (clients/intercomm_pingpong.py shows it): those runs leave CMA to larger messages.
NO_CMA = {"MPIR_CVAR_CH4_IPC_CMA_P2P_THRESHOLD": str(1 << 30)} if flavour() == "mpich" else {}
FUTURES = [str(CLIENTS / "futures_map.py")]
CASES = [
    ("executor", 3, ["-m", "mpi4py.futures", *FUTURES, "executor"], {}),
    (
        "executor-pkl5",
        3,
        ["-m", "mpi4py.futures", *FUTURES, "executor"],
        {"MPI4PY_FUTURES_USE_PKL5": "1"},
    ),
    ("executor", 2, ["-m", "mpi4py.futures", *FUTURES, "executor"], NO_CMA),
    ("pool", 2, ["-m", "mpi4py.futures", *FUTURES, "pool"], NO_CMA),
    ("pool", 3, ["-m", "mpi4py.futures", *FUTURES, "pool"], {}),
    ("intercomm", 2, [str(CLIENTS / "intercomm_pingpong.py")], NO_CMA),
    ("sync", 2, [str(CLIENTS / "sync_sections.py")], {}),
    ("sync", 4, [str(CLIENTS / "sync_sections.py")], {}),
]


def _launch(
    nprocs: int, args: list[str], env: dict[str, str], enable: str, stats: Path
) -> tuple[str, list[dict]]:
    stats.mkdir()
    env = {**env, "PKL5_ENABLE": enable, "PKL5_STATS": f"json:{stats}/{{pid}}.json"}
    result = run(nprocs, args, timeout=180, env=env)
    assert result.returncode == 0, (
        f"PKL5_ENABLE={enable}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout, [json.loads(path.read_text()) for path in stats.glob("*.json")]


@pytest.mark.parametrize(
    ("name", "nprocs", "args", "env"), CASES, ids=[f"{case[0]}-{case[1]}" for case in CASES]
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
