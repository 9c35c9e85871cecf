"""Run the ``check_*`` functions of one module on every rank (launched by mpiexec).

Each check runs on all ranks in the order of the file; its failures are printed
with the rank, and the exit code is 1 if any check failed on this rank.  Ranks
agree on every check's outcome after it (an allreduce), so one rank's failure
does not leave the others waiting in the next check.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback

from mpi4py import MPI


def _load(path: str):
    spec = importlib.util.spec_from_file_location("mpi_checks", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mpi_checks"] = module
    spec.loader.exec_module(module)
    return module


def main(path: str, selected: list[str]) -> int:
    module = _load(path)
    world = MPI.COMM_WORLD
    rank = world.Get_rank()
    names = [
        name
        for name, value in vars(module).items()
        if name.startswith("check_") and getattr(value, "__module__", None) == module.__name__
    ]
    if selected:
        names = [name for name in names if name in selected]
    failed = 0
    for name in names:
        ok = True
        try:
            getattr(module, name)()
        except Exception:  # noqa: BLE001 - reported, then counted
            ok = False
            print(f"[rank {rank}] FAIL {name}\n{traceback.format_exc()}", flush=True)
        all_ok = world.allreduce(ok, op=MPI.LAND)
        if not all_ok:
            failed += 1
        if rank == 0:
            print(f"{'PASS' if all_ok else 'FAIL'} {name} (size {world.Get_size()})", flush=True)
    if rank == 0:
        print(f"{len(names) - failed} passed, {failed} failed", flush=True)
    if not names:
        print(f"no check_* functions in {path}", flush=True)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
