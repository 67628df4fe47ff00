"""``running_every``: a task repeated in the background, surviving failed passes, stopped on exit."""

import logging
import threading

from chassis.periodic import running_every

log = logging.getLogger("test.periodic")


def test_the_task_runs_again_after_a_failed_pass_and_stops_with_the_block():
    passes: list[int] = []
    third = threading.Event()

    def task() -> None:
        passes.append(len(passes))
        if len(passes) == 1:
            raise RuntimeError("the database is down")
        if len(passes) >= 3:
            third.set()

    with running_every(0.01, task, name="test-periodic", log=log):
        assert third.wait(10)
    done = len(passes)
    assert not [t for t in threading.enumerate() if t.name == "test-periodic"]
    assert len(passes) == done
