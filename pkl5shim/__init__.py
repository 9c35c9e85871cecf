"""pkl5shim: pickle protocol 5 out-of-band communication for mpi4py programs."""

from .comm import Cartcomm, Comm, Distgraphcomm, Graphcomm, Intercomm, Intracomm, wrap
from .errors import (
    ChannelError,
    Pkl5Error,
    RemoteError,
    UnwrappedReceiveError,
    WireError,
)
from .p2p import Message, Request

__version__ = "0.1.0"

__all__ = [
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
    "__version__",
    "wrap",
]
