"""The short soak of ``make test``: a minute of mixed traffic with faults, then the checker.

``make soak`` runs the same for ten minutes (``python -m tests.robustness.soak``); see
``soak.py`` for what traffic, which faults and which checks, and README.md for the report.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Iterator

import pytest

from ..e2e.stack import Stack, StackFactory
from .soak import soak, soak_stack

SECONDS = float(os.environ.get("SOAK_SECONDS", "60"))


@pytest.fixture(scope="module")
def soaked(stacks: StackFactory, make_database, tmp_path_factory) -> Iterator[tuple[Stack, object, str]]:
    if stacks.make_vhost is None:
        pytest.fail("the soak needs a vhost of its own: set TEST_AMQP_URL")
    amqp_url = stacks.make_vhost(f"{stacks.amqp_url.rsplit('/', 1)[-1] or 'clinic_test'}_soak")
    with soak_stack(
        workdir=tmp_path_factory.mktemp("soak"), make_database=make_database, amqp_url=amqp_url
    ) as (
        stack,
        proxy,
    ):
        yield stack, proxy, amqp_url


def test_a_minute_of_traffic_with_faults_leaves_every_database_consistent(soaked):
    stack, proxy, amqp_url = soaked
    seed = int(os.environ.get("SOAK_SEED") or random.randrange(10**6))
    report = soak(stack, proxy, amqp_url, seconds=SECONDS, seed=seed)
    sys.stdout.write(f"\nseed {seed}\n{report.render()}\n")
    assert sum(report.ledger.faults.values()) > 0, "no fault was injected"
    assert report.ledger.appointments, "no booking succeeded: the soak exercised nothing"
    assert report.counts["waitlist offers"], "no waitlist offer was made: the soak exercised no waitlist"
    assert report.ok, f"seed {seed}\n{report.render()}"
