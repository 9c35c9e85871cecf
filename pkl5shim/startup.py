"""Start-up activation: with ``PKL5_ENABLE=1``, ``enable()`` runs when ``mpi4py.MPI`` is imported.

Imported by the ``pkl5shim.pth`` line the wheel installs (only when the variable
is set), by ``sitecustomize/`` and by ``python -m pkl5shim``.  It imports
neither mpi4py nor the engine: the program's own import of ``mpi4py.MPI``
(after it set ``mpi4py.rc``) triggers the patch, before the program sees the module.
"""

from __future__ import annotations

import os
import stat
import sys
import threading
import time
from types import ModuleType
from typing import NoReturn, TextIO

_ON = frozenset({"1", "true", "yes", "on"})
_OFF = frozenset({"", "0", "false", "no", "off"})
_lock = threading.Lock()
_hook_installed = False


def requested(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Read ``PKL5_ENABLE``; a value neither on nor off raises ``ValueError`` naming it."""
    raw = environ.get("PKL5_ENABLE", "")
    value = raw.strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise ValueError(f"PKL5_ENABLE={raw!r}: expected 1, true, yes, on (or 0, false, no, off)")


def install_hook() -> None:
    """Run ``pkl5shim.enable()`` when ``mpi4py.MPI`` is imported (at once if it already is)."""
    global _hook_installed
    with _lock:
        if _hook_installed:
            return
        _hook_installed = True
    import wrapt

    wrapt.register_post_import_hook(_on_mpi_import, "mpi4py.MPI")


def fail(message: str, abort: bool = False, together: bool = False) -> NoReturn:
    """End this process with one line on stderr: exit status 1, or ``MPI_Abort`` of the job.

    Aborting is for a rank whose peers may never finish (a launch mismatch): it leaves
    a collective posted, and MPI's finalization could wait for the others forever.
    ``together`` is for a failure every rank of ``COMM_WORLD`` reaches (a settings
    mismatch): once all wrote their line (a barrier), each exits at once, without the
    exit handlers, whose collectives (``PKL5_STATS=total``'s gather) would not match.
    """
    sys.stderr.write(f"pkl5shim: {message}\n")
    sys.stderr.flush()
    if abort or together:
        from mpi4py import MPI

        from .transport import RawComm

        if abort:
            sys.stdout.flush()
            _wait_until_read((sys.stdout, sys.stderr))
            RawComm.Abort(MPI.COMM_WORLD, 1)
        RawComm.Barrier(MPI.COMM_WORLD)
        sys.stdout.flush()
        os._exit(1)
    raise SystemExit(1)


def _wait_until_read(streams: tuple[TextIO, ...], limit: float = 2.0) -> None:
    """Wait, at most ``limit`` s, until the launcher has read what we wrote to these pipes.

    ``MPI_Abort`` makes the launcher kill the job at once: a line still in the pipe
    between this rank and its launcher daemon is then lost (seen with MPICH's hydra
    under load).  ``FIONREAD`` on a pipe counts its unread bytes, from either end.
    """
    import fcntl
    import termios

    deadline = time.monotonic() + limit
    for stream in streams:
        try:
            fd = stream.fileno()
            if not stat.S_ISFIFO(os.fstat(fd).st_mode):
                continue
            while time.monotonic() < deadline:
                unread = int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, bytes(4)), sys.byteorder)
                if unread == 0:
                    break
                time.sleep(0.002)
        except (OSError, ValueError, AttributeError):
            continue


def _on_mpi_import(module: ModuleType) -> None:
    try:
        from . import config  # a bad PKL5_* value raises ValueError here
    except ValueError as exc:
        fail(str(exc))
    from .launch import LaunchError, SettingsMismatchError
    from .patch import enable

    try:
        enable()
    except LaunchError as exc:
        fail(str(exc), abort=True)
    except SettingsMismatchError as exc:
        fail(str(exc), together=True)  # every rank gets here
    if config.settings.dump_signal and threading.current_thread() is threading.main_thread():
        from .pending import install

        install(config.settings.dump_signal)


def _under_launcher() -> bool:
    """Tell whether this interpreter runs ``python -m pkl5shim`` (which reads the variable).

    Reads the interpreter's own options (``sys.orig_argv``, Python 3.10+) up to the
    first that ends them; on Python 3.9 the answer is always no.
    """
    args = list(getattr(sys, "orig_argv", []))[1:]
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "-m":
            return args[index + 1 : index + 2] == ["pkl5shim"]
        if arg.startswith("-m"):
            return arg == "-mpkl5shim"
        if arg in ("-X", "-W", "--check-hash-based-pycs"):
            index += 2
            continue
        if arg in ("-c", "-") or not arg.startswith("-"):
            return False
        index += 1
    return False


def activate() -> None:
    """Install the hook if ``PKL5_ENABLE`` asks for it; a bad value is reported, never fatal.

    Under ``python -m pkl5shim`` nothing is done here: the launcher enables the shim
    itself and reports a bad ``PKL5_ENABLE`` as an error.
    """
    if _under_launcher():
        return
    try:
        wanted = requested()
    except ValueError as exc:
        sys.stderr.write(f"pkl5shim: {exc}; the shim stays off\n")
        return
    if wanted:
        install_hook()
