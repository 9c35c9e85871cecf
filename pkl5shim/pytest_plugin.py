"""pytest plugin: run an existing test suite under pkl5shim with one flag.

Registered through the ``pytest11`` entry point.  Without its options it does
nothing but add them, the ``pkl5_stats`` fixture and the ``pkl5_off`` marker:
it imports neither mpi4py nor pkl5shim's engine.

``mpiexec -n 2 python -m pytest --pkl5 tests/``

- ``--pkl5``: the shim is switched on before conftest files and test modules
  are imported (``enable()`` runs when ``mpi4py.MPI`` is first imported, as
  with ``PKL5_ENABLE=1``); processes the tests start inherit ``PKL5_ENABLE=1``;
- ``--pkl5-check``: check mode; an array modified after ``isend`` fails the
  test that modified it, and sends a test left open are reported against it;
- ``--pkl5-stats``: a summary per test, summed over the ranks, on rank 0
  (``--pkl5-stats=json:PATH`` writes it as JSON too).

The work is done by ``pkl5shim.pertest``, imported only when an option is given
(or when this process was started by a test of a session that gave one).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

CHILD_ENV = "PKL5_PYTEST_CHILD"
"""Set for processes started by the tests: the options and where to write their records."""
STATS_TERMINAL = "terminal"


def pytest_addoption(parser: pytest.Parser) -> None:
    """The ``--pkl5*`` options."""
    group = parser.getgroup("pkl5shim", "pkl5shim (pickle protocol 5 for mpi4py)")
    group.addoption(
        "--pkl5",
        action="store_true",
        default=False,
        help="run the tests with pkl5shim enabled (as PKL5_ENABLE=1), switched on before "
        "collection",
    )
    group.addoption(
        "--pkl5-check",
        action="store_true",
        default=False,
        help="implies --pkl5: an array modified after isend fails the test that modified it",
    )
    group.addoption(
        "--pkl5-stats",
        nargs="?",
        const=STATS_TERMINAL,
        default=None,
        metavar="json:PATH",
        help="implies --pkl5: on rank 0, objects and bytes each test sent (summed over the "
        "ranks); =json:PATH also writes them to PATH",
    )


def _fix_bare_stats_option(args: list[str]) -> None:
    # ``--pkl5-stats tests/`` must not read ``tests/`` as the option's value.
    for index, arg in enumerate(args):
        if arg == "--":
            return
        if arg == "--pkl5-stats":
            args[index] = f"--pkl5-stats={STATS_TERMINAL}"


def requested(config: pytest.Config) -> dict[str, Any] | None:
    """The plugin's settings for this session, or ``None`` if it stays inert."""
    child = os.environ.get(CHILD_ENV)
    if child:
        import json

        return {**json.loads(child), "json": None, "child": True, "env": CHILD_ENV}
    option = config.known_args_namespace
    stats = getattr(option, "pkl5_stats", None)
    check = getattr(option, "pkl5_check", False)
    if not (getattr(option, "pkl5", False) or check or stats):
        return None
    if stats not in (None, STATS_TERMINAL) and not (
        stats.startswith("json:") and len(stats) > len("json:")
    ):
        raise pytest.UsageError(f"--pkl5-stats={stats}: expected no value or json:PATH")
    json_path = stats[len("json:") :] if stats and stats.startswith("json:") else None
    return {"check": check, "stats": bool(stats), "json": json_path, "child": False,
            "env": CHILD_ENV}  # fmt: skip


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    """Switch the shim on before conftest files (and later test modules) are imported."""
    if "--pkl5-stats" in args:
        import copy

        _fix_bare_stats_option(args)
        early_config.known_args_namespace = parser.parse_known_args(
            args, namespace=copy.copy(early_config.known_args_namespace)
        )
    wanted = requested(early_config)
    if wanted is None:
        return
    from . import pertest

    early_config.stash[_SESSION] = pertest.Session(early_config, wanted)


_SESSION = pytest.StashKey[Any]()


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker; hand the hooks to the session, if the plugin is active."""
    config.addinivalue_line(
        "markers",
        "pkl5_off: run this test with pkl5shim disabled (MPI.COMM_WORLD and MPI.COMM_SELF are "
        "mpi4py's own during the test)",
    )
    session = config.stash.get(_SESSION, None)
    if session is not None:
        config.pluginmanager.register(session, "pkl5shim-session")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Put mpi4py back as it was (for in-process runs of pytest)."""
    session = config.stash.get(_SESSION, None)
    if session is not None:
        session.close()


@pytest.fixture
def pkl5_stats(request: pytest.FixtureRequest) -> Any:
    """This test's own counts on this rank: call it for a dictionary (see ``pertest``).

    Needs ``--pkl5``; turns counting on if ``--pkl5-stats`` did not.
    """
    session = request.config.stash.get(_SESSION, None)
    if session is None:
        raise pytest.UsageError("the pkl5_stats fixture needs pytest --pkl5")
    return session.test_counts(request.node)
