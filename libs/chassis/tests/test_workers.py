"""chassis.workers: a step run again at once while it finds work, after the interval (or a wake)
when it finds none, again after a failure, stopped with the app, and woken by the commit of a
transaction that made its work due."""

import threading
import time
from contextlib import ExitStack

import pytest
from fastapi import FastAPI
from sqlalchemy import text

from chassis.testkit import wait_until
from chassis.workers import PollingWorker, due_now, wake_on_commit, worker_hook


def test_a_worker_runs_again_at_once_while_it_finds_work_then_waits_for_a_wake():
    work = [3]
    calls = threading.Event()

    def step() -> int:
        calls.set()
        if work[0]:
            work[0] -= 1
            return 1
        return 0

    worker = PollingWorker("test", step, interval=60)
    worker.start()
    try:
        wait_until(lambda: work[0] == 0, timeout=5)
        calls.clear()
        work[0] = 1
        worker.wake()  # without it the next step would come a minute later
        wait_until(lambda: work[0] == 0 and calls.is_set(), timeout=5)
    finally:
        worker.stop()


def test_a_failing_step_is_tried_again():
    attempts = []

    def step() -> int:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("the database is down")
        return 0

    worker = PollingWorker("test", step, interval=0.01)
    worker.start()
    try:
        wait_until(lambda: len(attempts) >= 3, timeout=5)
    finally:
        worker.stop()


def test_the_hook_starts_the_worker_with_the_app_and_stops_then_closes_it():
    closed = []
    worker = PollingWorker("test", lambda: 0, interval=0.01)
    app = FastAPI()
    with ExitStack() as stack:
        stack.enter_context(worker_hook(worker, "test_worker", close=lambda: closed.append(True))(app))
        assert app.state.test_worker is worker
        assert not closed
    assert closed == [True]
    assert worker.stopping


def test_a_commit_that_made_work_due_wakes_the_worker_and_a_rollback_does_not(db):
    steps = []

    def step() -> int:
        steps.append(1)
        return 0

    worker = PollingWorker("test", step, interval=60)
    wake_on_commit(db, "letters", worker)
    worker.start()
    try:
        wait_until(lambda: len(steps) == 1, timeout=5)  # the first step, at start
        with pytest.raises(RuntimeError), db.transaction() as session:
            session.execute(text("SELECT 1"))
            due_now(session, "letters")
            raise RuntimeError("the use case failed")
        with db.transaction() as session:  # committed, but made only other work due
            session.execute(text("SELECT 1"))
            due_now(session, "parcels")
        time.sleep(0.3)
        assert len(steps) == 1  # nothing woke it: the next poll is a minute away
        with db.transaction() as session:
            session.execute(text("SELECT 1"))
            due_now(session, "letters")
        wait_until(lambda: len(steps) == 2, timeout=5)
        session = db.sessions()  # a session's next transaction starts with nothing due
        with session.begin():
            session.execute(text("SELECT 1"))
            due_now(session, "letters")
        wait_until(lambda: len(steps) == 3, timeout=5)
        with session.begin():
            session.execute(text("SELECT 1"))
        session.close()
        time.sleep(0.3)
        assert len(steps) == 3
    finally:
        worker.stop()
