"""The active part of the pytest plugin: per-test counts, check findings, the summary.

Loaded by ``pkl5shim.pytest_plugin`` only when one of its options is given.  One
``Session`` per pytest session (per rank).  Each test gets a record per process:
its outcome, the objects it sent (in band: one plain message; out of band:
header plus payload), their bytes, the largest object, and with ``--pkl5-check``
the arrays it modified after ``isend`` and the sends it left open.  At the end
rank 0 gathers every rank's records (and those written by MPI jobs the tests
started, which inherit ``PKL5_PYTEST_CHILD``) and prints the summary.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

LIMIT = (1 << 31) - 1
"""Largest message (bytes) of MPI-3 libraries: plain mpi4py fails beyond it."""
TABLE_ROWS = 30
_COUNTS = ("in_band_objects", "in_band_bytes", "out_of_band_objects", "out_of_band_bytes")


def new_entry() -> dict[str, Any]:
    """The record of one test in one process, before it runs."""
    return {
        "outcome": "passed",
        "shim": True,
        **dict.fromkeys(_COUNTS, 0),
        "buffer_bytes": 0,
        "largest": 0,
        "findings": [],
        "unfinished": [],
    }


class Counts:
    """What ``pkl5_stats`` gives a test: call it for this test's counts on this rank."""

    def __init__(self, entry: dict[str, Any], baseline: dict[str, Any]) -> None:
        self._entry, self._baseline = entry, baseline

    def __call__(self) -> dict[str, Any]:
        """``in_band_objects``/``_bytes``, ``out_of_band_objects``/``_bytes``,
        ``buffer_bytes`` (out-of-band buffers), ``largest``, and ``methods``: the
        counts of ``pkl5shim.stats()`` per method since the test started."""
        from . import metrics

        now = metrics.stats()["methods"]
        methods = {}
        for name, row in now.items():
            before = self._baseline.get(name, {})
            diff = {key: value - before.get(key, 0) for key, value in row.items()}
            if any(diff.values()):
                methods[name] = diff
        keys = (*_COUNTS, "buffer_bytes", "largest")
        return {**{key: self._entry[key] for key in keys}, "methods": methods}


class Records:
    """Each test's record in this process; the objects sent, counted into the running one.

    A subscriber of ``metrics``: it hears every object sent while observation is on.
    """

    def __init__(self) -> None:
        self.by_test: dict[str, dict[str, Any]] = {}
        self.current: dict[str, Any] | None = None
        self.outside = new_entry()  # sends outside any test (at import, in collection)
        self._lock = threading.Lock()

    def listen(self) -> None:
        """Count the objects sent from now on (idempotent)."""
        from . import metrics

        metrics.subscribe(self.count)

    def stop_listening(self) -> None:
        """Count no more objects."""
        from . import metrics

        metrics.unsubscribe(self.count)

    def count(self, transfer: Any) -> None:
        """Count an object sent (a ``metrics.Transfer``) for the running test."""
        if transfer.direction != "sent":
            return
        nbytes = transfer.nbytes
        kind = "out_of_band" if transfer.out_of_band else "in_band"
        with self._lock:
            entry = self.current if self.current is not None else self.outside
            entry[f"{kind}_objects"] += 1
            entry[f"{kind}_bytes"] += nbytes
            entry["buffer_bytes"] += transfer.buffer_nbytes
            entry["largest"] = max(entry["largest"], nbytes)

    def begin(self, entry: dict[str, Any]) -> None:
        """``entry`` is the running test's record from now on."""
        with self._lock:
            self.current = entry

    def end(self, nodeid: str) -> None:
        """Keep the running test's record under ``nodeid``; no test is running."""
        with self._lock:
            if self.current is not None:
                self.by_test[nodeid] = self.current
            self.current = None

    def mine(self, rank: int) -> dict[str, Any]:
        """This process's records, as gathered at the end."""
        records = self.by_test
        if self.outside["in_band_objects"] or self.outside["out_of_band_objects"]:
            records = {"(outside tests)": self.outside, **records}
        return {"rank": rank, "records": records}


class Findings:
    """Check mode (``--pkl5-check``): the reports of modified arrays and open sends, per test."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._heard: list[str] = []  # check reports of sends completed during a phase
        self._plain_report: Any = None
        self._reported_open: set[int] = set()

    def listen(self) -> None:
        """Hear every report of ``check`` from now on (idempotent)."""
        from . import check

        if self._plain_report is None:
            self._plain_report = check.report
            check.report = self._heard_report

    def stop_listening(self) -> None:
        """Give ``check`` its own report back."""
        if self._plain_report is not None:
            from . import check

            check.report = self._plain_report
            self._plain_report = None

    def _heard_report(self, message: str, raising: bool) -> Any:
        with self._lock:
            self._heard.append(message)
        return self._plain_report(message, raising)

    def of_phase(self, item: pytest.Item, when: str) -> list[str]:
        """The findings of one phase of ``item``: reports heard, arrays modified meanwhile."""
        from . import check

        with self._lock:
            heard, self._heard = self._heard, []
        path, line, _name = item.location
        where = f"{item.nodeid} ({path}:{(line or 0) + 1}, {when})"
        found = [f"{message}\nFound in {where}." for message in heard]
        for guard, changed in check.recheck_open():
            found.append(
                f"pkl5shim check: array(s) {changed} of the object sent by isend at "
                f"{guard.site} ({guard.target}) were modified by {where} before the request "
                "completed; the receiver may get the modified data. Wait for the request "
                "before modifying the arrays, or run with PKL5_ISEND=copy."
            )
        return found

    @staticmethod
    def open_ids() -> set[int]:
        """The checked sends open right now."""
        from . import check

        return {id(guard) for guard in check.open_sends()}

    def report_open(self, item: pytest.Item, entry: dict[str, Any], opened: set[int]) -> None:
        """Warn about the sends ``item`` started and left open (not in ``opened``)."""
        from . import check

        path, line, _name = item.location
        for guard in check.open_sends():
            if id(guard) in opened or id(guard) in self._reported_open:
                continue
            self._reported_open.add(id(guard))
            message = (
                f"pkl5shim check: the request of isend at {guard.site} ({guard.target}) "
                f"was not completed by the end of {item.nodeid}"
            )
            entry["unfinished"].append(message)
            filename = str(Path(str(self.config.rootpath)) / path)
            warnings.warn_explicit(message, check.BufferModifiedWarning, filename, (line or 0) + 1)


class Session:
    """The plugin's state and hooks for one pytest session in one process."""

    def __init__(self, config: pytest.Config, wanted: dict[str, Any]) -> None:
        self.config = config
        self.check: bool = bool(wanted["check"])
        self.stats: bool = bool(wanted["stats"])
        self.json_path: str | None = wanted.get("json")
        self.child: bool = bool(wanted["child"])
        self.records = Records()
        self.findings = Findings(config)
        self.jobs: list[dict[str, Any]] = []  # records written by MPI jobs the tests started
        self.merged: dict[str, list[dict[str, Any]]] | None = None
        self.nranks = 1
        self._mpi = False
        child_env = wanted["env"]
        self._environ = {k: os.environ.get(k) for k in ("PKL5_ENABLE", "PKL5_CHECK", child_env)}
        self.child_dir = wanted.get("dir") if self.child else tempfile.mkdtemp(prefix="pkl5-")
        os.environ["PKL5_ENABLE"] = "1"  # for the processes the tests start
        if self.check:
            os.environ["PKL5_CHECK"] = "1"
        child = {"check": self.check, "stats": self.stats, "dir": self.child_dir}
        os.environ[child_env] = json.dumps(child)
        import wrapt

        from . import startup

        startup.install_hook()  # enable() as PKL5_ENABLE=1 would, when mpi4py.MPI is imported
        wrapt.register_post_import_hook(self._on_mpi_import, "mpi4py.MPI")

    # -- switching on ------------------------------------------------------------------
    def _on_mpi_import(self, module: Any) -> None:
        self._mpi = True
        self._enable()

    def _enable(self) -> None:
        from . import patch

        patch.enable(check=True if self.check else None, stats=True if self.stats else None)
        if self.stats:
            self.records.listen()
        if self.check:
            self.findings.listen()

    def test_counts(self, item: pytest.Item) -> Counts:
        """The ``pkl5_stats`` fixture's value for ``item`` (turns counting on if needed)."""
        import mpi4py.MPI  # noqa: F401  (enables the shim through the import hook)

        from . import metrics

        if not self.stats:
            self.stats = True
            self._enable()
        baseline = getattr(item, "_pkl5_baseline", None)
        if baseline is None:
            baseline = metrics.stats()["methods"]
        assert self.records.current is not None
        return Counts(self.records.current, baseline)

    def close(self) -> None:
        """Undo what the session changed in this process (pytest_unconfigure)."""
        for key, value in self._environ.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self.findings.stop_listening()
        self.records.stop_listening()
        if self._mpi:
            from . import patch

            patch.disable()
        if not self.child and self.child_dir:
            shutil.rmtree(self.child_dir, ignore_errors=True)

    # -- per test --------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: Any) -> Iterator[None]:
        """Give the test its record; run it with the shim off if it is marked ``pkl5_off``."""
        entry = new_entry()
        off = item.get_closest_marker("pkl5_off") is not None
        if off:
            import mpi4py.MPI  # noqa: F401  (first import: enable() on every rank, then off)

            from . import patch

            patch.disable()
            entry["shim"] = False
        if self.stats and "pkl5_stats" in getattr(item, "fixturenames", ()):
            from . import metrics

            item._pkl5_baseline = metrics.stats()["methods"]  # type: ignore[attr-defined]
        opened = self.findings.open_ids() if self.check else set()
        self.records.begin(entry)
        try:
            return (yield)
        finally:
            if off:
                self._enable()
            if self.check:
                self.findings.report_open(item, entry, opened)
            self.records.end(item.nodeid)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: Any) -> Iterator[None]:
        """Keep the outcome; fail the phase that modified an array after ``isend``."""
        report = yield
        entry = self.records.current
        if entry is None:
            return report
        if self.check:
            found = self.findings.of_phase(item, call.when)
            if found:
                entry["findings"] += found
                text = "\n\n".join(found)
                if report.passed:
                    report.outcome = "failed"
                    report.longrepr = text
                else:
                    report.sections.append(("pkl5shim check", text))
        if report.failed:
            entry["outcome"] = "failed" if call.when == "call" else "error"
        elif report.skipped and entry["outcome"] == "passed":
            entry["outcome"] = "xfailed" if hasattr(report, "wasxfail") else "skipped"
        return report

    # -- the end -------------------------------------------------------------------------
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Write the records (a child job), or gather them on rank 0."""
        rank, world = _world()
        mine = self.records.mine(rank)
        if self.child:
            if self.child_dir and os.path.isdir(self.child_dir):
                target = Path(self.child_dir) / f"{os.getpid()}.json"
                target.write_text(json.dumps(mine))
            return
        mine["jobs"] = _read_jobs(self.child_dir)
        everyone = [mine]
        if world is not None and world.Get_size() > 1:
            from .transport import RawComm

            everyone = RawComm.gather(world, mine, 0)  # mpi4py's own gather: not counted
            self.nranks = world.Get_size()
        if everyone is None:
            return
        self.merged = merge(everyone)
        self.jobs = [job for part in everyone for job in part["jobs"]]
        if self.json_path:
            write_json(self.json_path, self.merged, self.nranks, len(self.jobs))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """Rank 0: the summary (see ``summary``)."""
        if self.merged is not None:
            for line in summary(self.merged, self.nranks, len(self.jobs), self.stats):
                if line.startswith("="):
                    terminalreporter.write_sep("=", line.strip("= "))
                else:
                    terminalreporter.write_line(line)


def _world() -> tuple[int, Any]:
    """This rank and mpi4py's own ``COMM_WORLD``, if MPI is running (else 0, ``None``)."""
    if "mpi4py.MPI" not in sys.modules:
        return 0, None
    from mpi4py import MPI

    if not MPI.Is_initialized() or MPI.Is_finalized():
        return 0, None
    from . import patch

    world = patch.original("COMM_WORLD")
    return world.Get_rank(), world


def _read_jobs(child_dir: str | None) -> list[dict[str, Any]]:
    """The records the MPI jobs started by the tests wrote into ``child_dir``."""
    found = []
    if child_dir and os.path.isdir(child_dir):
        for path in sorted(Path(child_dir).glob("*.json")):
            found.append(json.loads(path.read_text()))
    return found


# -- merging and formatting (plain data: unit-tested without MPI) -------------------------
def merge(everyone: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Every process's records of each test: the ranks', then those of the jobs they started.

    Each record gets ``rank`` and ``job`` (``None`` for a rank of the session itself,
    else the job's number).
    """
    merged: dict[str, list[dict[str, Any]]] = {}
    parts = [(part, None) for part in everyone]
    number = 0
    for part in everyone:
        for job in part.get("jobs", []):
            parts.append((job, number))
            number += 1
    for part, job in parts:
        for nodeid, entry in part["records"].items():
            merged.setdefault(nodeid, []).append({**entry, "rank": part["rank"], "job": job})
    return merged


def totals(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """One test's counts summed over its processes (the largest object: the largest)."""
    total = {key: sum(entry[key] for entry in entries) for key in (*_COUNTS, "buffer_bytes")}
    total["largest"] = max((entry["largest"] for entry in entries), default=0)
    return total


def _size(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return ""  # pragma: no cover - the loop returns


def _who(entry: dict[str, Any]) -> str:
    if entry["job"] is None:
        return f"rank {entry['rank']}"
    return f"rank {entry['rank']} of a job started by the test"


def summary(
    merged: dict[str, list[dict[str, Any]]], nranks: int, njobs: int, stats: bool
) -> list[str]:
    """The lines of the terminal summary (a line starting with ``=`` is a section title)."""
    where = f"sum of {nranks} rank{'s' if nranks > 1 else ''}"
    if njobs:
        where += f" and {njobs} process{'es' if njobs > 1 else ''} of MPI jobs started by tests"
    lines: list[str] = []
    if stats:
        lines += _table(merged, where)
    lines += _outcomes(merged, nranks)
    findings = [
        (nodeid, entry, text)
        for nodeid, entries in merged.items()
        for entry in entries
        for text in entry["findings"] + entry["unfinished"]
    ]
    if findings:
        lines.append(f"= pkl5shim check: {len(findings)} finding(s) =")
        for nodeid, entry, text in findings:
            lines.append(f"{nodeid} ({_who(entry)}): {text.splitlines()[0]}")
    return lines


def _table(merged: dict[str, list[dict[str, Any]]], where: str) -> list[str]:
    rows = [(nodeid, totals(entries)) for nodeid, entries in merged.items()]
    moved = [row for row in rows if row[1]["in_band_objects"] + row[1]["out_of_band_objects"]]
    moved.sort(key=lambda row: -(row[1]["in_band_bytes"] + row[1]["out_of_band_bytes"]))
    lines = [f"= pkl5shim: objects sent per test, {where} ="]
    header = ["test", "in band", "bytes", "out of band", "bytes", "largest"]
    cells = [
        [
            nodeid,
            str(t["in_band_objects"]),
            _size(t["in_band_bytes"]),
            str(t["out_of_band_objects"]),
            _size(t["out_of_band_bytes"]),
            _size(t["largest"]),
        ]
        for nodeid, t in moved[:TABLE_ROWS]
    ]
    grand = totals([t for _n, t in rows] or [totals([])])
    cells.append(
        [
            f"all {len(rows)} tests",
            str(grand["in_band_objects"]),
            _size(grand["in_band_bytes"]),
            str(grand["out_of_band_objects"]),
            _size(grand["out_of_band_bytes"]),
            _size(grand["largest"]),
        ]
    )
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
    for line in [header, *cells]:
        first = line[0].ljust(widths[0])
        lines.append("  ".join([first, *(c.rjust(w) for c, w in zip(line[1:], widths[1:]))]))
    if len(moved) > TABLE_ROWS:
        lines.append(f"({len(moved) - TABLE_ROWS} more tests sent objects: see --pkl5-stats=json)")
    lines.append(f"{len(rows) - len(moved)} tests sent nothing through pkl5shim")
    over = [nodeid for nodeid, t in rows if t["largest"] > LIMIT]
    if over:
        lines.append(
            f"{len(over)} test(s) sent an object over 2 GiB (plain mpi4py fails there on MPI-3 "
            "libraries): " + ", ".join(over)
        )
    else:
        lines.append("no test sent an object over 2 GiB")
    off = [nodeid for nodeid, entries in merged.items() if not entries[0]["shim"]]
    if off:
        lines.append("run with the shim off (pkl5_off): " + ", ".join(off))
    return lines


def _outcomes(merged: dict[str, list[dict[str, Any]]], nranks: int) -> list[str]:
    lines = []
    for nodeid, entries in merged.items():
        ranks = [entry for entry in entries if entry["job"] is None]
        outcomes = {entry["outcome"] for entry in ranks}
        if nranks > 1 and (len(outcomes) > 1 or len(ranks) < nranks):
            by: dict[str, list[int]] = {}
            for entry in ranks:
                by.setdefault(entry["outcome"], []).append(entry["rank"])
            seen = {entry["rank"] for entry in ranks}
            missing = [rank for rank in range(nranks) if rank not in seen]
            if missing:
                by["not run"] = missing
            parts = [f"{outcome} on rank(s) {', '.join(map(str, r))}" for outcome, r in by.items()]
            lines.append(f"{nodeid}: " + "; ".join(parts))
    if lines:
        return ["= pkl5shim: tests whose outcome differs between ranks =", *lines]
    return []


def write_json(path: str, merged: dict[str, list[dict[str, Any]]], nranks: int, njobs: int) -> None:
    """``--pkl5-stats=json:PATH``: every test's totals and its record per process."""
    tests = {
        nodeid: {"total": totals(entries), "processes": entries}
        for nodeid, entries in merged.items()
    }
    document = {"ranks": nranks, "job_processes": njobs, "limit_bytes": LIMIT, "tests": tests}
    Path(path).write_text(json.dumps(document, indent=1))
