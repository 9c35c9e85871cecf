"""Every legacy program of tests/apps/ across namespace hosts, plain and with PKL5_ENABLE=1.

Run as root with any wheel's venv (Open MPI: with the run-as-root variables), holding the MPI lock::

    python tests/cluster_apps.py --rate 10gbit --rate 1gbit

For each rate, hosts x ranks per host of 2x1 and 2x2: each program runs plain and with
``PKL5_ENABLE=1``; a line per program says whether rank 0's output is identical, how
many objects went out of band, and the bytes the links sent during the shim's run.
Exits 1 if any output differs or any run fails. The cluster is taken down at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import cluster

APPS = ["sweep.py", "ring.py", "master_worker.py", "cartesian.py", "win_file.py", "spawn_master.py"]
LAYOUTS = [(2, 1), (2, 2)]


def one(variables: dict[str, str], app: str, ppn: int, enabled: bool, work: Path) -> tuple:
    """One run: (returncode, rank 0's output, out-of-band objects received, link bytes, s)."""
    mode = "env" if enabled else "plain"
    stats, out = work / f"stats-{mode}", work / f"out-{mode}"
    stats.mkdir()
    out.mkdir()
    env = {"PKL5_ENABLE": str(int(enabled)), "PKL5_STATS": f"json:{stats}/{{pid}}.json"}
    before = cluster.counters()
    start = time.perf_counter()
    done = cluster.run(variables, ppn, [str(Path(__file__).parent / "apps" / app), str(out)],
                       timeout=120, env=env)  # fmt: skip
    seconds = time.perf_counter() - start
    after = cluster.counters()
    sent = sum(after[h]["tx_bytes"] - before[h]["tx_bytes"] for h in after)
    oob = sum(json.loads(p.read_text())["out_of_band_received"] for p in stats.glob("*.json"))
    output = done.stdout + (done.stderr if done.returncode else "")
    return done.returncode, output, oob, sent, seconds


def main() -> int:
    """Run every program in every layout at every rate; print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", action="append", help="link rate (repeatable; 10gbit)")
    rates = parser.parse_args().rate or ["10gbit"]
    failed = 0
    print("rate    layout program            identical  oob-objects", end="")
    print("  link-bytes(shim)  plain-s  shim-s")
    try:
        for rate in rates:
            for hosts, ppn in LAYOUTS:
                variables = cluster.up(hosts, rate)
                for app in APPS:
                    with tempfile.TemporaryDirectory() as tmp:
                        work = Path(tmp)
                        rc0, plain, _, _, t0 = one(variables, app, ppn, False, work)
                        rc1, shim, oob, sent, t1 = one(variables, app, ppn, True, work)
                    same = rc0 == 0 and rc1 == 0 and plain == shim and plain.strip() != ""
                    failed += not same
                    print(f"{rate:7} {hosts}x{ppn}    {app:18} {'yes' if same else 'NO':9} "
                          f"{oob:12} {sent:17,} {t0:8.2f} {t1:7.2f}", flush=True)  # fmt: skip
                    if not same:
                        print(f"--- plain (rc {rc0}):\n{plain[-2000:]}")
                        print(f"--- shim (rc {rc1}):\n{shim[-2000:]}")
    finally:
        cluster.down()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
