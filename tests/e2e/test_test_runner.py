"""The test runner's preflight: it stops at once when PostgreSQL lacks the connections a run needs.

`make test` next to `make run` shares one PostgreSQL: rather than fail half-way with "too many
clients already", scripts/run_tests.py compares the free slots (max_connections minus the open
connections) with what the heaviest suite it runs needs, before running any.
"""

from __future__ import annotations

import importlib
import os
import sys

import pytest

from .stack import ROOT


@pytest.fixture
def scripts(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    for name in ("preflight", "run_tests"):
        sys.modules.pop(name, None)
    return importlib.import_module("preflight"), importlib.import_module("run_tests")


def database_url() -> str:
    return os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def test_the_free_slots_are_max_connections_minus_the_open_connections(scripts):
    preflight, _ = scripts
    free, maximum = preflight.free_connection_slots(database_url())
    assert 0 <= free < maximum


def test_too_few_free_slots_stop_the_check_with_both_numbers(scripts):
    preflight, _ = scripts
    free, _ = preflight.free_connection_slots(database_url())
    with pytest.raises(preflight.PreflightError) as raised:
        preflight.check_connection_slots(database_url(), free + 1000, "the e2e suite")
    message = str(raised.value)
    assert f"the e2e suite needs {free + 1000}" in message
    assert "free connections of max_connections=" in message
    preflight.check_connection_slots(database_url(), 0, "nothing")


def test_the_runner_stops_before_any_suite_when_slots_are_missing(scripts, monkeypatch, capsys):
    _, run_tests = scripts
    monkeypatch.setitem(run_tests.CONNECTIONS_NEEDED, "deploy", 1_000_000)
    monkeypatch.setattr(run_tests.subprocess, "run", None)  # a suite started would crash here
    assert run_tests.main(["deploy"]) == 1
    output = capsys.readouterr().out
    assert "not enough PostgreSQL connections" in output and "the deploy suite needs 1000000" in output


def test_every_suite_states_what_it_needs(scripts):
    _, run_tests = scripts
    assert set(run_tests.SUITES) | set(run_tests.ON_DEMAND) == set(run_tests.CONNECTIONS_NEEDED)
