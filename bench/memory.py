"""Resident memory of each stack process, sampled in the background during the whole run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

MIB = 1024 * 1024


def rss_bytes(pid: int) -> int | None:
    with suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return None


def command_name(pid: int) -> str:
    with suppress(OSError):
        return Path(f"/proc/{pid}/comm").read_text().strip()
    return ""


class MemorySampler:
    """Peak RSS per service: of its largest process, and of all its processes together.

    A service is everything in its process group or behind its port: uvicorn and, with
    WEB_CONCURRENCY > 1, each worker. The ``sh`` wrapper of a Procfile line is left out.
    """

    def __init__(self, pids: Callable[[], dict[str, list[int]]], interval: float = 0.25) -> None:
        self._pids = pids
        self.interval = interval
        self.peak_total: dict[str, int] = {}
        self.peak_process: dict[str, int] = {}
        self.process_count: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        groups: dict[str, list[int]] = {}
        refreshed = 0.0
        while not self._stop.is_set():
            if time.monotonic() - refreshed > 2:
                with suppress(Exception):
                    groups = {
                        name: [p for p in pids if command_name(p) not in {"sh", "dash", "bash"}]
                        for name, pids in self._pids().items()
                    }
                refreshed = time.monotonic()
            for name, pids in groups.items():
                sizes = [s for s in (rss_bytes(p) for p in pids) if s is not None]
                if not sizes:
                    continue
                self.peak_total[name] = max(self.peak_total.get(name, 0), sum(sizes))
                self.peak_process[name] = max(self.peak_process.get(name, 0), max(sizes))
                self.process_count[name] = len(sizes)
            self._stop.wait(self.interval)
