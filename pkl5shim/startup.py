"""Start-up activation: with ``PKL5_ENABLE=1``, ``enable()`` runs when ``mpi4py.MPI`` is imported.

Imported by the ``pkl5shim.pth`` line the wheel installs (only when the variable
is set), by ``sitecustomize/`` and by ``python -m pkl5shim``.  It imports
neither mpi4py nor the engine: the program's own import of ``mpi4py.MPI``
(after it set ``mpi4py.rc``) triggers the patch, before the program sees the module.
"""

from __future__ import annotations

import os
import sys
import threading
from types import ModuleType

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


def _on_mpi_import(module: ModuleType) -> None:
    from .patch import enable

    enable()


def activate() -> None:
    """Install the hook if ``PKL5_ENABLE`` asks for it; a bad value is reported, never fatal."""
    try:
        wanted = requested()
    except ValueError as exc:
        sys.stderr.write(f"pkl5shim: {exc}; the shim stays off\n")
        return
    if wanted:
        install_hook()
