"""Waiting for an effect that an event or another process brings, without sleeping blindly.

``wait_until`` has one meaning everywhere: call ``predicate`` until it returns something
truthy, and return that. A check that asserts is written as a predicate that returns the
thing it found (or ``True``), not as one that raises. Every suite uses this one, and so
does the harness code that runs outside tests (the e2e stack, the bench, the soak).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest


class WaitTimedOut(AssertionError, TimeoutError):
    """The effect did not come in time: a failed assertion in a test, and a ``TimeoutError`` for
    harness code that handles it (a stack that did not start, a bench phase that did not settle)."""


def wait_until(
    predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.1, *, what: str = "condition"
) -> Any:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Raises ``WaitTimedOut`` after ``timeout`` seconds, naming ``what`` and the last result:
    the way to wait for an effect that an event or another process brings, without
    sleeping blindly.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise WaitTimedOut(f"timed out after {timeout:g}s waiting for {what}; last result: {result!r}")
        time.sleep(interval)


@pytest.fixture(name="wait_until", scope="session")
def wait_until_fixture() -> Callable[..., Any]:
    return wait_until
