"""Fixtures of the robustness suite: its own stack (the e2e harness), and the people using it.

The stack is the e2e harness's (``tests/e2e/stack.py``), with the gateway's auth rate limit and
identity's per-address login throttling raised (the fuzzer registers and logs in, mostly with
made-up credentials, far more often than a person; both are tested in e2e) and cheap password
hashing (hashing cost is not what these tests are about).
"""

from __future__ import annotations

import pytest

from ..e2e.conftest import pytest_runtest_makereport, pytest_runtest_setup, stacks  # noqa: F401
from ..e2e.stack import Stack, StackFactory
from .people import People, make_people

ROBUSTNESS_ENV = {
    "AUTH_RATE_LIMIT_AVERAGE": "100000",
    "AUTH_RATE_LIMIT_BURST": "100000",
    "LOGIN_THROTTLE_ADDRESS_FAILURES": "100000",
    # The suite runs a second stack (the short soak) beside this one on a shared PostgreSQL.
    "DB_POOL_SIZE": "3",
    "DB_MAX_OVERFLOW": "3",
    # Subscriptions made here are never called: no webhook or mail goes out of this stack.
    "NOTIFICATION_WORKERS_ENABLED": "false",
}


@pytest.fixture(scope="session")
def stack(stacks: StackFactory) -> Stack:  # noqa: F811
    return stacks.start("main", env=ROBUSTNESS_ENV)


@pytest.fixture(scope="session")
def people(stack: Stack) -> People:
    """Two patients, two doctors (with their profiles), the admin and a deactivated patient."""
    return make_people(stack)
