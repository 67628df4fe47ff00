"""End-to-end fixtures: the whole stack, started for real and driven through the gateway.

``stack`` is the session's main stack, started on first use. A test that needs a stack of
its own (replicas, other settings) starts one from a fixture of its own scope:

    @pytest.fixture(scope="module")
    def replicated(stacks):
        stack = stacks.start("replicated", replicas={"booking": 2})
        yield stack
        stack.close()

When a test fails, what each stack process logged during that test is added to its report.
"""

from __future__ import annotations

import os
import signal
import warnings
from collections.abc import Iterator
from types import FrameType

import pytest

from chassis.testkit import RabbitVhosts

from .api import User, new_user
from .stack import FRONT_END_ORIGIN, ROOT, Credentials, Stack, StackFactory, live_groups

_LOG_MARKS = pytest.StashKey[dict[int, dict[str, int]]]()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def stacks(make_database, amqp_url, tmp_path_factory) -> Iterator[StackFactory]:
    if (ROOT / ".env").is_file():
        warnings.warn(
            "the services of the e2e stack also read .env (from the repository root) for every variable "
            "the harness does not set itself; move it aside if a test behaves unlike CI",
            stacklevel=1,
        )
    server = os.environ.get("TEST_AMQP_URL")
    vhosts = RabbitVhosts(server) if server else None
    factory = StackFactory(
        workdir=tmp_path_factory.mktemp("stacks"),
        make_database=make_database,
        amqp_url=amqp_url,
        make_vhost=vhosts,
    )
    # A SIGTERM (CI timeout, kill) tears the session down like Ctrl-C does, stopping the stacks.
    previous = signal.getsignal(signal.SIGTERM)
    if previous == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield factory
    finally:
        factory.close_all()
        if vhosts is not None and not os.environ.get("CLINIC_KEEP_TEST_DATABASES"):
            vhosts.delete_all()
        if previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="session")
def stack(stacks: StackFactory) -> Stack:
    """The whole stack, shared by the session: gateway, the five services, their databases; CORS
    on for one front-end origin, as a clinic with a browser front end elsewhere runs it."""
    return stacks.start("main", env={"CORS_ALLOWED_ORIGINS": FRONT_END_ORIGIN})


@pytest.fixture(scope="session")
def admin(stack: Stack) -> Credentials:
    """The bootstrap admin (ADMIN_EMAIL / ADMIN_PASSWORD given to identity)."""
    return stack.admin


@pytest.fixture
def patient(stack: Stack) -> User:
    return new_user(stack, "patient", full_name="Pat Patient")


@pytest.fixture
def doctor(stack: Stack) -> User:
    return new_user(stack, "doctor", full_name="Dora Doctor")


def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_LOG_MARKS] = {id(group): group.log_marks() for group in live_groups()}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.failed and call.when == "call":
        marks = item.stash.get(_LOG_MARKS, {})
        for group in live_groups():
            logs = group.logs_since(marks.get(id(group), {}))
            if logs:
                report.sections.append((f"stack logs during the test ({group.workdir.name})", logs))
    return report
