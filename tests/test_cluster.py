"""Legacy programs across two hosts of a simulated network (benchmarks/netns_cluster.sh).

Two network namespaces on this machine, each a "host" with its own address, host name
and a 10 Gbit/s link, are brought up once for the module and taken down after it. Each
program runs plain and with ``PKL5_ENABLE=1`` under the cluster's mpiexec (this venv's
wheel: hydra for MPICH and Intel MPI, prterun for Open MPI, started inside pkl5-h0 and
reaching pkl5-h1 through benchmarks/netns_ssh.sh), and must print the same. The links'
byte counters must show the large messages crossing the network, and the ranks must see
themselves on different hosts (COMM_TYPE_SHARED).

Where namespaces cannot be made (not root, no CAP_NET_ADMIN) the tests fail and say so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cluster
import pytest

APPS = Path(__file__).parent / "apps"
PROBE = (
    "from mpi4py import MPI; c = MPI.COMM_WORLD; "
    "names = c.gather(MPI.Get_processor_name()); "
    "local = c.gather(c.Split_type(MPI.COMM_TYPE_SHARED).Get_size()); "
    "c.Get_rank() or print(names, local)"
)
# (program, ranks per host, bytes the program's large messages put on each link at least)
CASES = [
    ("sweep.py", 1, 2_000_000),  # to pkl5-h1: bcast 3.2 MB + scatter 2.4 MB; back: 2.4 MB
    ("ring.py", 1, 8_000_000),  # 3 x 4 MB around the ring each way
    ("master_worker.py", 2, 3_000_000),  # pkl5-h1 gets 2 tasks or more (3.9 MB) and echoes them
]


@pytest.fixture(scope="module")
def hosts() -> Iterator[dict[str, str]]:
    """Two namespace hosts at 10 Gbit/s for the module; taken down afterwards, whatever happens."""
    try:
        variables = cluster.up(2, "10gbit")
    except cluster.NoNamespaceError as exc:
        pytest.fail(f"cannot make the namespace hosts on this machine: {exc}")
    try:
        yield variables
    finally:
        left = cluster.down()
        assert left == [], f"namespaces left after down: {left}"


def test_ranks_are_on_different_hosts(hosts: dict[str, str]) -> None:
    """Each rank reports its namespace's host name, and no peer shares its node."""
    done = cluster.run(hosts, 1, ["-c", PROBE])
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "['pkl5-h0', 'pkl5-h1'] [1, 1]", done.stdout


def launch(
    hosts: dict[str, str], app: str, ppn: int, enabled: bool, workdir: Path
) -> tuple[str, list[dict], dict[str, int]]:
    """Run ``app``; return rank 0's output, the engine's counters and each link's bytes sent."""
    mode = "env" if enabled else "plain"
    stats = workdir / f"stats-{mode}"
    stats.mkdir()
    out = workdir / f"out-{mode}"
    out.mkdir()
    env = {"PKL5_ENABLE": "1" if enabled else "0", "PKL5_STATS": f"json:{stats}/{{pid}}.json"}
    before = cluster.counters()
    done = cluster.run(hosts, ppn, [str(APPS / app), str(out)], env=env)
    after = cluster.counters()
    assert done.returncode == 0, f"{mode}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    sent = {host: after[host]["tx_bytes"] - before[host]["tx_bytes"] for host in after}
    records = [json.loads(path.read_text()) for path in sorted(stats.glob("*.json"))]
    return done.stdout, records, sent


@pytest.mark.parametrize(("app", "ppn", "least"), CASES)
def test_app_across_hosts(
    hosts: dict[str, str], app: str, ppn: int, least: int, tmp_path: Path
) -> None:
    """The same output plain and under the shim, with the large messages on the links."""
    plain, plain_records, plain_sent = launch(hosts, app, ppn, False, tmp_path)
    assert plain.strip(), "the plain run printed nothing"
    assert plain_records == [], "the plain run loaded pkl5shim"
    shim, records, sent = launch(hosts, app, ppn, True, tmp_path)
    assert shim == plain, f"PKL5_ENABLE=1 differs from plain:\n{shim}\n---\n{plain}"
    assert len(records) == 2 * ppn, f"the shim was not active in every rank: {records}"
    received = sum(item["out_of_band_received"] for item in records)
    assert received == sum(item["out_of_band_sent"] for item in records) > 0, records
    for run, bytes_sent in (("plain", plain_sent), ("shim", sent)):
        for host, count in bytes_sent.items():
            assert count >= least, f"{run}: {host}'s link sent {count} B, expected >= {least}"
