"""Exceptions raised by pkl5shim."""


class Pkl5Error(Exception):
    """Base class of every error pkl5shim raises itself."""


class WireError(Pkl5Error, ValueError):
    """A received message does not follow the pkl5shim wire format."""


class ChannelError(Pkl5Error, RuntimeError):
    """A communicator has no pkl5shim channel where one is needed."""


class UnwrappedReceiveError(Pkl5Error, RuntimeError):
    """A pkl5shim large-message header reached a receive outside pkl5shim."""


class RemoteError(Pkl5Error, RuntimeError):
    """Another rank failed in a collective operation this rank takes part in."""


class BufferModifiedError(Pkl5Error, RuntimeError):
    """Check mode: an array was modified after ``isend`` and before its request completed."""
