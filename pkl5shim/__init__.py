"""pkl5shim: pickle protocol 5 out-of-band communication for mpi4py programs.

Importing this package is cheap and does not import ``mpi4py.MPI`` (so it does
not initialize MPI): each name below is loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_HOMES = {
    "Cartcomm": "comm",
    "Comm": "comm",
    "Distgraphcomm": "comm",
    "Graphcomm": "comm",
    "Intercomm": "comm",
    "Intracomm": "comm",
    "wrap": "comm",
    "Message": "p2p",
    "Request": "p2p",
    "disable": "patch",
    "enable": "patch",
    "enabled": "patch",
    "info": "report",
    "stats": "metrics",
    "BufferModifiedError": "errors",
    "BufferModifiedWarning": "check",
    "ChannelError": "errors",
    "Pkl5Error": "errors",
    "RemoteError": "errors",
    "UnwrappedReceiveError": "errors",
    "WireError": "errors",
}

__all__ = [
    "BufferModifiedError",
    "BufferModifiedWarning",
    "Cartcomm",
    "ChannelError",
    "Comm",
    "Distgraphcomm",
    "Graphcomm",
    "Intercomm",
    "Intracomm",
    "Message",
    "Pkl5Error",
    "RemoteError",
    "Request",
    "UnwrappedReceiveError",
    "WireError",
    "disable",
    "enable",
    "enabled",
    "info",
    "stats",
    "wrap",
    "__version__",
]

if TYPE_CHECKING:
    from .check import BufferModifiedWarning
    from .comm import Cartcomm, Comm, Distgraphcomm, Graphcomm, Intercomm, Intracomm, wrap
    from .errors import (
        BufferModifiedError,
        ChannelError,
        Pkl5Error,
        RemoteError,
        UnwrappedReceiveError,
        WireError,
    )
    from .metrics import stats
    from .p2p import Message, Request
    from .patch import disable, enable, enabled
    from .report import info


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'pkl5shim' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
