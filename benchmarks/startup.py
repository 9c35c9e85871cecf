"""Start-up cost of the installed ``pkl5shim.pth`` line, and of enabling the shim.

Run without mpiexec, in the venv where pkl5shim is installed::

    python benchmarks/startup.py [--rounds 60]

Every variant is a fresh interpreter; the variants are interleaved, one of each
per round, and medians are reported.

* ``site, no .pth`` / ``site, pkl5shim.pth``: the same interpreter start-up plus
  ``site.addsitedir`` of an empty directory, or of one holding a copy of the
  installed ``pkl5shim.pth`` (``PKL5_ENABLE`` unset).  Their ratio is the cost of
  the line a pip install adds to every interpreter.
* ``import mpi4py.MPI``: plain, then with ``PKL5_ENABLE=1`` (import hook, wrapt,
  the engine, the channels of COMM_WORLD and COMM_SELF), as a singleton.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ADD_SITE = "import site, sys; site.addsitedir(sys.argv[1])"
IMPORT_MPI = "from mpi4py import MPI; MPI.COMM_WORLD.Barrier()"


def installed_pth() -> Path:
    path = Path(sysconfig.get_paths()["purelib"]) / "pkl5shim.pth"
    if not path.exists():
        sys.exit(f"{path} is missing: pip install pkl5shim (or -e .) into this Python first")
    return path


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], env=env, check=True, timeout=120)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=60)
    rounds = parser.parse_args().rounds
    base = {k: v for k, v in os.environ.items() if not k.startswith("PKL5_")}
    with tempfile.TemporaryDirectory() as empty, tempfile.TemporaryDirectory() as with_pth:
        shutil.copy(installed_pth(), with_pth)
        variants = {
            "site, no .pth": (["-c", ADD_SITE, empty], base),
            "site, pkl5shim.pth": (["-c", ADD_SITE, with_pth], base),
            "import mpi4py.MPI, plain": (["-c", IMPORT_MPI], base),
            "import mpi4py.MPI, PKL5_ENABLE=1": (["-c", IMPORT_MPI], {**base, "PKL5_ENABLE": "1"}),
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for round_index in range(rounds):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                args, env = variants[name]
                times[name].append(timed(args, env))
    median = {name: statistics.median(values) * 1e3 for name, values in times.items()}
    print(f"{'variant':<34} {'median ms':>10} {'stdev ms':>9}")
    for name, values in times.items():
        print(f"{name:<34} {median[name]:>10.2f} {statistics.stdev(values) * 1e3:>9.2f}")
    pth_ratio = median["site, pkl5shim.pth"] / median["site, no .pth"]
    enable_ratio = median["import mpi4py.MPI, PKL5_ENABLE=1"] / median["import mpi4py.MPI, plain"]
    print(f"\n.pth line, PKL5_ENABLE unset: {pth_ratio:.3f}x an interpreter without it")
    print(f"PKL5_ENABLE=1 start-up + import mpi4py.MPI: {enable_ratio:.3f}x plain")


if __name__ == "__main__":
    main()
