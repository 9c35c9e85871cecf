"""Watch which threads pkl5shim calls MPI from (for the FUNNELED and SERIALIZED programs).

``watch(allowed)`` replaces the request class that the engine's progress loop
uses to test and wait for its MPI requests (``RawRequest`` of ``ops`` and ``transfer``: every
completion of a send or receive goes through it) with a subclass that records
each call made by a thread for which ``allowed()`` is false.  ``new_threads()``
lists the Python threads that the program did not start itself.
"""

from __future__ import annotations

import threading
import traceback
from typing import Any, Callable

from mpi4py import MPI

from pkl5shim import ops, transfer

violations: list[str] = []
_ours: set[threading.Thread] = set()


def watch(allowed: Callable[[], bool]) -> None:
    """Record every engine test/wait of MPI requests made where ``allowed()`` is false."""
    raw = MPI.Request

    def record(name: str) -> None:
        if not allowed():
            stack = "".join(traceback.format_stack(limit=8)[:-2])
            violations.append(f"{name} in thread {threading.current_thread().name}\n{stack}")

    class Watched(raw):  # type: ignore[misc, valid-type]
        @classmethod
        def Testall(cls, requests: Any, statuses: Any = None) -> bool:  # noqa: N802
            record("MPI_Testall")
            return raw.Testall(requests, statuses)

        @classmethod
        def Waitall(cls, requests: Any, statuses: Any = None) -> bool:  # noqa: N802
            record("MPI_Waitall")
            return raw.Waitall(requests, statuses)

    assert all(m.RawRequest is raw for m in (ops, transfer)), (
        "RawRequest moved: update this watcher"
    )
    for module in (ops, transfer):  # where the engine completes its requests
        module.RawRequest = Watched  # type: ignore[misc]


def start(target: Callable[..., None], *args: Any) -> threading.Thread:
    """Start a daemon thread of the program (it is not counted by ``new_threads``)."""
    thread = threading.Thread(target=target, args=args, daemon=True)
    _ours.add(thread)
    thread.start()
    return thread


def new_threads() -> list[str]:
    """Names of live Python threads that are neither the main thread nor started by ``start``."""
    main = threading.main_thread()
    return [t.name for t in threading.enumerate() if t is not main and t not in _ours]


class Holder:
    """Keeps an object in a reference cycle: only the garbage collector frees it."""

    def __init__(self, item: Any) -> None:
        self.item = item
        self.me = self
