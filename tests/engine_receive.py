"""Calls made the way the engine's receive makes them, for single-process wire tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pkl5shim import wire


@wire.receives_headers
def inside_receive(function: Callable[..., Any], *arguments: Any) -> Any:
    """``function(*arguments)`` as if called by pkl5shim's receive: a header unpickled
    inside is accepted, where any other caller gets ``UnwrappedReceiveError``."""
    return function(*arguments)
