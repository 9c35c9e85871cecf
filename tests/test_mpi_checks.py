"""Every ``check_*`` function of ``tests/mpi/check_*.py`` under mpiexec on 1, 2, 3 and 4 ranks.

Each check is a test of its own, named ``test_check[<module>-<ranks>-<check>]``, so
``pytest -k check_pickles_around_the_eager_limit`` runs that one check (at every rank
count) and a failure names it.  The checks of one module and rank count still run in one
mpiexec job, in the file's order (``tests/mpi/runner.py``), with only the selected ones
when pytest selected some; the job runs the first time one of its tests is reached.

The conformance check runs on 1 and 2 ranks only: it calls about 1200 names with
agreement between ranks after each call, which takes 3-5 s on 1-2 ranks and over 4
minutes oversubscribed at 3 (measured); what it compares does not depend on the
rank count beyond the intercommunicator, which 2 ranks have.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
from mpilaunch import flavour, run

MPI_DIR = Path(__file__).parent / "mpi"
MODULES = sorted(path.name for path in MPI_DIR.glob("check_*.py"))
SIZES = [1, 2, 3, 4]


# The conformance check is finished on MPICH only: on the Open MPI wheel some of its calls
# on mpi4py's own objects reach MPI's fatal error handler and abort the job, and it was not
# yet run on Intel MPI (not done, see docs/reliability.md).
SIZES_OF = {"check_conformance.py": [1, 2] if flavour() == "mpich" else []}


def check_names(module: str) -> list[str]:
    """The ``check_*`` functions a module defines at its top level, in its order."""
    tree = ast.parse((MPI_DIR / module).read_text())
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("check_")
    ]


CHECKS = {module: check_names(module) for module in MODULES}
CASES = [
    (module, nprocs, check)
    for module in MODULES
    for nprocs in SIZES_OF.get(module, SIZES)
    for check in CHECKS[module]
]
Job = tuple[dict[str, str], str, "int | None"]
"""A job's outcome per check, its output and its exit code (None: it timed out)."""
_OUTCOME = re.compile(r"^(PASS|FAIL) (check_\w+) \(size \d+\)$", re.MULTILINE)


@pytest.fixture(scope="session")
def job(request: pytest.FixtureRequest) -> Callable[[str, int], Job]:
    """The outcomes of one module's selected checks at one rank count, launched once."""
    selected: dict[tuple[str, int], set[str]] = defaultdict(set)
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if getattr(item, "originalname", "") == "test_check":
            selected[(params["module"], params["nprocs"])].add(params["check"])
    done: dict[tuple[str, int], Job] = {}

    def launch(module: str, nprocs: int) -> Job:
        key = (module, nprocs)
        if key not in done:
            names = selected[key]
            every = names == set(CHECKS[module])
            args = [str(MPI_DIR / "runner.py"), str(MPI_DIR / module)]
            try:
                result = run(nprocs, args if every else [*args, *sorted(names)], timeout=240)
                text, code = result.stdout + result.stderr, result.returncode
            except AssertionError as exc:  # the timeout: every check of the job reports it
                text, code = str(exc), None
            outcomes = {name: verdict for verdict, name in _OUTCOME.findall(text)}
            if every and code == 0:  # the runner found what this file found
                assert set(outcomes) <= names, f"checks not seen by ast: {set(outcomes) - names}"
            done[key] = (outcomes, text, code)
        return done[key]

    return launch


def _failure(text: str, check: str) -> str:
    """What the job printed about ``check`` (each rank's traceback), or the job's end."""
    blocks = re.findall(rf"^\[rank \d+\] FAIL {check}\n.*?(?=^\[rank|^PASS|^FAIL|\Z)",
                        text, re.MULTILINE | re.DOTALL)  # fmt: skip
    return "".join(blocks)[-6000:] or text[-6000:]


@pytest.mark.parametrize(
    ("module", "nprocs", "check"), CASES, ids=["-".join(map(str, c)) for c in CASES]
)
def test_check(module: str, nprocs: int, check: str, job: Callable[[str, int], Job]) -> None:
    outcomes, text, code = job(module, nprocs)
    assert outcomes.get(check) == "PASS", _failure(text, check)
    if check == list(outcomes)[-1] and all(v == "PASS" for v in outcomes.values()):
        # the job's last check also answers for how the job ended (finalize, exit)
        assert code == 0, f"the job ended with {code} after its checks passed:\n{text[-4000:]}"
