"""Observation (``PKL5_STATS``, ``PKL5_LOG=debug``, ``enable(stats=True)``): on, off, log lines.

``start()`` sets ``config.modes.observing``: from then on the engine emits every
object it pickles or unpickles into ``metrics`` (the same functions move the
data, nothing of the package is patched) and this module, a subscriber of
``metrics``, writes one ``logging`` line per object when the ``pkl5shim`` logger
is at ``DEBUG`` (``PKL5_LOG=debug``).  ``stop()`` clears the mode; the counts stay.

Counting rules: *sent* is every object this rank pickled to send, *received*
every object it unpickled; a root's own object in ``bcast``/``gather``/
``scatter``/``alltoall`` (and the copy a reduction starts from) is pickled and
unpickled like the others, as in plain mpi4py, and counted on both sides.
An object is *out-of-band* when it travels as header plus payload (it has
out-of-band buffers, or its pickle exceeds ``PKL5_EAGER``), else *eager*.
Sends to or receives from ``MPI.PROC_NULL`` are not counted.  A small object
that mpi4py's C code pickles is pickled again to be counted; one that its C
receive unpickles is counted from the receive's status, with no unpickling time.
Nothing of the engine imports this module: ``patch.enable()`` starts it.
"""

from __future__ import annotations

import logging

from . import metrics
from .config import modes

logger = logging.getLogger("pkl5shim")


def observing() -> bool:
    """Tell whether observation is on."""
    return modes.observing


def start() -> None:
    """Turn observation on (idempotent): count and time every object, log if asked."""
    metrics.subscribe(log_transfer)
    modes.observing = True


def stop() -> None:
    """Turn observation off: the engine stops emitting; the counts are kept."""
    modes.observing = False


def log_to_stderr() -> None:
    """``PKL5_LOG=debug``: send the ``pkl5shim`` logger's debug lines to stderr, with the rank.

    A program that configured ``logging`` itself keeps its handlers: only the
    level of the ``pkl5shim`` logger is set.
    """
    from mpi4py import MPI

    logger.setLevel(logging.DEBUG)
    if logger.handlers or logging.getLogger().handlers:
        return
    rank = MPI.COMM_WORLD.Get_rank() if MPI.Is_initialized() else "?"
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"pkl5shim[rank {rank}] %(message)s"))
    logger.addHandler(handler)


def log_transfer(transfer: metrics.Transfer) -> None:
    """One debug line for an object sent or received (a subscriber of ``metrics``)."""
    if not logger.isEnabledFor(logging.DEBUG):
        return
    if not transfer.out_of_band:
        path = "eager"
    elif transfer.nbuffers:
        path = f"out-of-band ({transfer.nbuffers} buffer{'s' if transfer.nbuffers > 1 else ''})"
    else:
        path = "out-of-band (pickle over PKL5_EAGER, no buffer)"
    where = _where(transfer)
    where = f" {where}" if where else ""
    logger.debug(
        "%s %s%s: %d bytes, %s", transfer.method, transfer.direction, where, transfer.nbytes, path
    )


def _where(transfer: metrics.Transfer) -> str:
    """``to rank 1 tag 3`` for point-to-point, ``root 0`` for a collective (plus the source)."""
    call, source = transfer.call, transfer.source
    direction = "to" if transfer.direction == "sent" else "from"
    if call is None or call.tag is not None:  # point-to-point (or an irecv completing)
        if source is None and call is None:
            return ""
        peer, tag = source if source is not None else (call.peer, call.tag)  # type: ignore[union-attr]
        return f"{direction} rank {peer} tag {tag}"
    where = "" if call.peer is None else f"root {call.peer}"
    if source is not None:
        where += f" {direction} rank {source[0]}"
    return where.strip()
