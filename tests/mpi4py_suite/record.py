"""Run mpi4py's own test runner (its ``test/main.py``) and record every test's outcome.

Launched on every rank by mpiexec: ``python record.py TESTDIR OUTDIR [main.py args...]``.
Each rank writes ``OUTDIR/rank-<r>.json``: ``{test id: [outcome, seconds]}``, with
outcome one of ok, fail, error, skip, xfail, xpass.  Nothing here changes how
mpi4py's runner loads, orders or runs the tests.
"""

from __future__ import annotations

import json
import os
import sys
import time
import unittest
from pathlib import Path
from typing import Any

WORLD_KEY = "__comm_world_class_module__"
"""Recorded too: whose class ``MPI.COMM_WORLD`` had (``pkl5shim.comm`` when the shim was on)."""


class RecordingResult(unittest.TextTestResult):
    """A text result that also keeps each test's outcome and duration."""

    outcomes: dict[str, list[Any]]

    def startTest(self, test: unittest.TestCase) -> None:  # noqa: N802 - unittest's name
        self._started = time.perf_counter()
        super().startTest(test)

    def _record(self, test: unittest.TestCase, outcome: str) -> None:
        elapsed = time.perf_counter() - getattr(self, "_started", time.perf_counter())
        self.outcomes[test.id()] = [outcome, round(elapsed, 3)]

    def addSuccess(self, test: unittest.TestCase) -> None:  # noqa: N802
        super().addSuccess(test)
        self._record(test, "ok")

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:  # noqa: N802
        super().addFailure(test, err)
        self._record(test, "fail")

    def addError(self, test: unittest.TestCase, err: Any) -> None:  # noqa: N802
        super().addError(test, err)
        self._record(test, "error")

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:  # noqa: N802
        super().addSkip(test, reason)
        self._record(test, "skip")

    def addExpectedFailure(self, test: unittest.TestCase, err: Any) -> None:  # noqa: N802
        super().addExpectedFailure(test, err)
        self._record(test, "xfail")

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:  # noqa: N802
        super().addUnexpectedSuccess(test)
        self._record(test, "xpass")


def main() -> None:
    testdir, outdir, args = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    sys.path.insert(0, str(testdir))
    sys.dont_write_bytecode = True
    import main as mpi4py_main  # mpi4py's runner, from its sdist

    outcomes: dict[str, list[Any]] = {}

    class Runner(unittest.TextTestRunner):
        def _makeResult(self) -> RecordingResult:  # noqa: N802 - unittest's name
            result = RecordingResult(self.stream, self.descriptions, self.verbosity)
            result.outcomes = outcomes
            return result

        def run(self, test: Any) -> Any:
            try:
                return super().run(test)
            finally:
                from mpi4py import MPI

                rank = MPI.COMM_WORLD.Get_rank() if MPI.Is_initialized() else 0
                outcomes[WORLD_KEY] = [type(MPI.COMM_WORLD).__module__, 0]
                outdir.mkdir(parents=True, exist_ok=True)
                path = outdir / f"rank-{rank}.json"
                path.write_text(json.dumps(outcomes, indent=0, sort_keys=True))

    os.chdir(testdir)
    mpi4py_main.TestProgram(module=None, argv=[str(testdir / "main.py"), *args], testRunner=Runner)


if __name__ == "__main__":
    main()
