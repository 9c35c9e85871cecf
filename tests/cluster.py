"""The namespace cluster of benchmarks/netns_cluster.sh, for tests: up, launch, counters, down."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from mpilaunch import ROOT, environment, mpiexec

sys.path.insert(0, str(ROOT / "benchmarks"))
import on_hosts  # the benchmark's parsers of the script's output, shared

SCRIPT = ROOT / "benchmarks" / "netns_cluster.sh"


class NoNamespaceError(RuntimeError):
    """This machine (or this user) cannot make the network namespaces."""


def cluster(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``netns_cluster.sh ARGS`` with this venv's mpiexec in the printed lines."""
    env = dict(os.environ, MPIEXEC=mpiexec())
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def up(hosts: int, rate: str) -> dict[str, str]:
    """Bring the cluster up; return its ``PKL5_CLUSTER_*`` variables (NoNamespaceError: cannot)."""
    if os.geteuid() != 0:
        raise NoNamespaceError(f"not root (uid {os.geteuid()}): network namespaces need root")
    done = cluster("up", str(hosts), rate)
    if done.returncode != 0:
        cluster("down")
        raise NoNamespaceError(f"netns_cluster.sh up {hosts} {rate} failed: {done.stderr.strip()}")
    return on_hosts.exported(done.stdout)


def down() -> list[str]:
    """Take the cluster down; return the pkl5 namespaces still there (none, normally)."""
    cluster("down").check_returncode()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30)
    return [line.split()[0] for line in listed.stdout.splitlines() if line.startswith("pkl5-")]


def counters() -> dict[str, dict[str, int]]:
    """Each host's link counters: ``{host: {"rx_bytes": ..., "tx_bytes": ..., ...}}``."""
    done = cluster("counters")
    done.check_returncode()
    return on_hosts.counters_from(done.stdout)


def run(
    variables: dict[str, str],
    ppn: int,
    args: list[str],
    timeout: float = 60,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python args...`` with ``ppn`` ranks on each host; a hang fails after ``timeout``."""
    nprocs = len(variables["PKL5_CLUSTER_HOSTS"].split(",")) * ppn
    command = shlex.split(variables["PKL5_CLUSTER_MPIEXEC"])
    command += [*on_hosts.per_host(variables, ppn), "-n", str(nprocs), sys.executable, *args]
    try:
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=environment(env),
            cwd=Path(ROOT),
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        raise AssertionError(
            f"{' '.join(command)} did not finish in {timeout}s\n{out[-4000:]}"
        ) from None
