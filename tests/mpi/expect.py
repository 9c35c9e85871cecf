"""Assertion helpers for checks whose ranks must keep calling in step.

A check that stopped at its first failed assertion on one rank would leave
the other ranks waiting in the next collective or receive of the loop; with
``Soft`` every rank finishes the same sequence of calls and the failures are
reported together at the end.
"""

from __future__ import annotations

import pickle
from typing import Any, Callable


def raises(kinds: Any, call: Callable[[], Any], *fragments: str) -> BaseException:
    """Run ``call``; it must raise one of ``kinds`` whose text holds every fragment."""
    try:
        call()
    except kinds as exc:
        for fragment in fragments:
            assert fragment in str(exc), f"{type(exc).__name__}: {exc!r} lacks {fragment!r}"
        return exc
    except Exception as exc:
        raise AssertionError(f"raised {type(exc).__name__}({exc}) instead of {kinds}") from exc
    raise AssertionError(f"did not raise {kinds}")


def pickle_error_of(obj: Any) -> type[BaseException]:
    """The exception type plain pickle raises for ``obj``."""
    try:
        pickle.dumps(obj, protocol=5, buffer_callback=lambda _buffer: None)
    except Exception as exc:  # noqa: BLE001 - its type is what we want
        return type(exc)
    raise AssertionError(f"{obj!r} pickles fine")


class Soft:
    """Collect assertion failures instead of stopping; ``done()`` raises them all."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def __call__(self, check: Callable[..., Any], *args: Any) -> Any:
        """Run ``check(*args)``; record its AssertionError and go on."""
        try:
            return check(*args)
        except AssertionError as exc:
            self.failures.append(str(exc))
            return None

    def true(self, condition: bool, message: str) -> None:
        """Record ``message`` unless ``condition`` holds."""
        if not condition:
            self.failures.append(message)

    def done(self) -> None:
        """Raise one AssertionError listing every recorded failure."""
        assert not self.failures, "\n".join(self.failures)
