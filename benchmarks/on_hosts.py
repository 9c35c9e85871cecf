"""Run an MPI program across the namespace hosts of ``benchmarks/netns_cluster.sh``.

::

    python benchmarks/on_hosts.py --hosts 2 --ppn 1 --rate 1gbit -- benchmarks/p2p.py --quick
    python benchmarks/on_hosts.py --hosts 2 --ppn 2 --rate 10gbit -- benchmarks/collectives.py

Brings the cluster up (``netns_cluster.sh up HOSTS RATE``), runs ``python PROGRAM ARGS``
on HOSTS x PPN ranks (PPN consecutive ranks per host) through the printed
``PKL5_CLUSTER_MPIEXEC`` under a timeout, then prints where the ranks ran and the bytes
each host's link carried during the run (the proof that the ranks talked over the
network), and takes the cluster down again (``--keep`` leaves it up). ``--hosts 1`` runs
the same launcher on one host: the one-machine baseline, over shared memory. Needs root;
the mpiexec is the one next to this Python (MPICH, Intel MPI or Open MPI wheel).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLUSTER = HERE / "netns_cluster.sh"
WHERE = (
    "from mpi4py import MPI; c = MPI.COMM_WORLD; "
    "names = c.gather(MPI.Get_processor_name()); "
    "local = c.Split_type(MPI.COMM_TYPE_SHARED).Get_size(); "
    "sizes = c.gather(local); "
    "c.Get_rank() or print('ranks on hosts:', names, '; node sizes (COMM_TYPE_SHARED):', sizes)"
)


def cluster(*args: str, env: dict[str, str] | None = None) -> str:
    """Run ``netns_cluster.sh ARGS``; return its output, or raise with its error."""
    done = subprocess.run(
        [str(CLUSTER), *args], capture_output=True, text=True, timeout=120, env=env
    )
    if done.returncode != 0:
        raise RuntimeError(f"netns_cluster.sh {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def up(hosts: int, rate: str) -> dict[str, str]:
    """Bring the cluster up; return its ``PKL5_CLUSTER_*`` variables."""
    env = dict(os.environ, MPIEXEC=str(Path(sys.executable).parent / "mpiexec"))
    return exported(cluster("up", str(hosts), rate, env=env))


def exported(text: str) -> dict[str, str]:
    """The ``export NAME=VALUE`` lines that ``netns_cluster.sh up`` prints, as a dict."""
    variables = {}
    for line in text.splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            variables[name] = shlex.split(value)[0] if value else ""
    return variables


def counters() -> dict[str, dict[str, int]]:
    """Each host's link counters: ``{host: {"rx_bytes": ..., "tx_bytes": ..., ...}}``."""
    return counters_from(cluster("counters"))


def counters_from(text: str) -> dict[str, dict[str, int]]:
    """The lines of ``netns_cluster.sh counters`` as ``{host: {counter: value}}``."""
    table = {}
    for line in text.splitlines():
        host, *pairs = line.split()
        table[host] = {key: int(value) for key, value in zip(pairs[::2], pairs[1::2])}
    return table


def per_host(variables: dict[str, str], ppn: int) -> list[str]:
    """The launcher's options for ``ppn`` consecutive ranks on each host."""
    if variables.get("PKL5_CLUSTER_LAUNCHER") == "openmpi":
        return ["--map-by", f"ppr:{ppn}:node"]
    return ["-ppn", str(ppn)]


def launch(
    variables: dict[str, str], ppn: int, args: list[str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` on every host, ``ppn`` ranks each, output passed through."""
    nprocs = len(variables["PKL5_CLUSTER_HOSTS"].split(",")) * ppn
    command = shlex.split(variables["PKL5_CLUSTER_MPIEXEC"])
    command += [*per_host(variables, ppn), "-n", str(nprocs), sys.executable, *args]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), env.get("PYTHONPATH")]))
    return subprocess.run(command, timeout=timeout, env=env, text=True)


def main() -> int:
    """Up, run, report the link bytes, down."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=2, help="namespace hosts (2)")
    parser.add_argument("--ppn", type=int, default=1, help="ranks per host (1)")
    parser.add_argument("--rate", default="1gbit", help="link rate for tbf, or none (1gbit)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for mpiexec")
    parser.add_argument("--keep", action="store_true", help="leave the cluster up")
    parser.add_argument("program", nargs=argparse.REMAINDER, help="-- PROGRAM ARGS...")
    args = parser.parse_args()
    program = args.program[1:] if args.program[:1] == ["--"] else args.program
    if not program:
        parser.error("give the program to run after --")
    variables = up(args.hosts, args.rate)
    try:
        print(f"cluster: {args.hosts} hosts x {args.ppn} ranks, links {args.rate}", flush=True)
        launch(variables, args.ppn, ["-c", WHERE], timeout=120).check_returncode()
        before = counters()
        done = launch(variables, args.ppn, program, args.timeout)
        after = counters()
        for host, values in after.items():
            sent = values["tx_bytes"] - before[host]["tx_bytes"]
            received = values["rx_bytes"] - before[host]["rx_bytes"]
            print(f"link of {host} during the run: sent {sent:,} B, received {received:,} B")
        return done.returncode
    finally:
        if not args.keep:
            cluster("down")


if __name__ == "__main__":
    sys.exit(main())
