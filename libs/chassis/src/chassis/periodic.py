"""A task repeated in a background thread while a block (an app's start-up hook) runs.

For the services' sweepers and workers: each pass is whole in itself, a pass that fails
(the database down, a peer unreachable) is logged and the next one comes after ``interval``,
and leaving the block stops the thread before the resources the task uses are closed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def running_every(
    interval: float, task: Callable[[], object], *, name: str, log: logging.Logger, join_timeout: float = 30.0
) -> Iterator[None]:
    """Run ``task`` every ``interval`` seconds in a daemon thread named ``name`` while the block runs."""
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                task()
            except Exception:  # a bad pass must not end the thread
                log.exception("%s: a pass failed; retrying in %ss", name, interval)
            stop.wait(interval)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=join_timeout)
