"""The start-up handshake of ``enable()``: every rank runs the shim, with agreeing settings.

Enabling is collective over ``COMM_WORLD`` (it duplicates it for the channel).  A rank
started without the shim never joins, and the duplicate would wait forever.  So before
it, every rank posts one nonblocking ``Iallgather`` of the settings that must agree and
waits for it at most ``PKL5_LAUNCH_TIMEOUT`` seconds.  When it completes, every rank
compares the same table and raises the same ``SettingsMismatchError`` on a difference.
"""

from __future__ import annotations

import time
from array import array

from mpi4py import MPI

from . import wire
from .config import settings
from .errors import Pkl5Error

_MAGIC = 0x504B4C35  # "PKL5": a plain rank that somehow matches the Iallgather differs here

FIX = (
    "start every rank with the shim: PKL5_ENABLE=1 on every rank (Open MPI across nodes: "
    "mpiexec -x PKL5_ENABLE), or python -m pkl5shim on every rank, or pkl5shim.enable() "
    "called by every rank; if some ranks are just slow to start, raise PKL5_LAUNCH_TIMEOUT "
    "(0: wait forever)"
)


class LaunchError(Pkl5Error, RuntimeError):
    """Not every rank of ``COMM_WORLD`` enabled pkl5shim within ``PKL5_LAUNCH_TIMEOUT``."""


class SettingsMismatchError(Pkl5Error, ValueError):
    """A setting that must be equal on every rank differs between ranks."""


def _agreed() -> list[tuple[str, int]]:
    """``(name, value as an integer)`` of each setting that must agree across ranks."""
    return [
        ("pkl5shim wire version", wire.VERSION),
        ("PKL5_EAGER", settings.eager_limit),
        ("PKL5_CHUNK", settings.chunk_limit),
        ("PKL5_STATS=total", int(settings.stats == "total")),
    ]


def handshake(world: MPI.Intracomm, timeout: float | None = None) -> None:
    """Check that every rank of ``world`` enables the shim with the same agreed settings.

    Collective over ``world``.  Raises ``LaunchError`` on this rank if the others have
    not joined within ``timeout`` seconds (``PKL5_LAUNCH_TIMEOUT`` by default, 0: no
    limit), and ``SettingsMismatchError`` on every rank if an agreed setting differs.
    """
    limit = settings.launch_timeout if timeout is None else timeout
    agreed = _agreed()
    # array, not numpy: importing numpy would double the start-up cost of enabling
    mine = array("q", [_MAGIC] + [value for _name, value in agreed])
    table = array("q", bytes(mine.itemsize * len(mine) * world.Get_size()))
    request = MPI.Intracomm(world).Iallgather(mine, table)
    _wait(request, limit, world)
    width = len(mine)
    rows = [table[start : start + width].tolist() for start in range(0, len(table), width)]
    _compare(rows, agreed, world.Get_rank())


def _wait(request: MPI.Request, limit: float, world: MPI.Intracomm) -> None:
    deadline = time.monotonic() + limit
    pause = 0.0
    while not request.Test():
        if limit and time.monotonic() > deadline:
            raise LaunchError(
                f"rank {world.Get_rank()} of {world.Get_size()} enabled pkl5shim, but not "
                f"every rank joined within PKL5_LAUNCH_TIMEOUT={limit:g} s (enabling is "
                f"collective over COMM_WORLD: some ranks run without the shim); fix: {FIX}"
            )
        time.sleep(pause)
        pause = min(0.01, pause * 2 or 1e-4)


def _compare(rows: list[list[int]], agreed: list[tuple[str, int]], rank: int) -> None:
    if any(row[0] != _MAGIC for row in rows):
        raise LaunchError(f"a rank answered the start-up handshake with something else; {FIX}")
    for column, (name, mine) in enumerate(agreed, start=1):
        values = [row[column] for row in rows]
        if len(set(values)) == 1:
            continue
        groups: dict[int, list[int]] = {}
        for other, value in enumerate(values):
            groups.setdefault(value, []).append(other)
        listed = "; ".join(
            f"{_shown(name, value)} on {_ranks(ranks)}" for value, ranks in groups.items()
        )
        if name.startswith("pkl5shim"):
            fix = "install the same pkl5shim release for every rank"
        else:
            variable = name.split("=")[0]
            fix = (
                f"set the same {variable} for every rank (export it before mpiexec; "
                f"Open MPI across nodes: mpiexec -x {variable})"
            )
        raise SettingsMismatchError(
            f"{name} differs between ranks ({listed}; this is rank {rank}, "
            f"{_shown(name, mine)}): it must be equal on every rank; fix: {fix}"
        )


def _shown(name: str, value: int) -> str:
    if name == "PKL5_STATS=total":
        return "total" if value else "not total"
    if name == "PKL5_CHUNK" and value == 0:
        return "library limit"
    return str(value)


def _ranks(ranks: list[int]) -> str:
    if len(ranks) == 1:
        return f"rank {ranks[0]}"
    if ranks == list(range(ranks[0], ranks[-1] + 1)):
        return f"ranks {ranks[0]}-{ranks[-1]}"
    return "ranks " + ",".join(map(str, ranks))
