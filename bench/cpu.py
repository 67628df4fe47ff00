"""Where the CPU went during a phase: each stack process, its PostgreSQL backends, the rest.

Throughput on a shared 2-core machine moves with whatever else runs on it; CPU time per
request does much less, and it says which part of the path costs what. A snapshot reads
``/proc`` (utime + stime of every process, and the machine's busy time from ``/proc/stat``).
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable, Iterable
from contextlib import suppress
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
GROUPS = ("gateway", "identity", "doctor", "scheduling", "booking", "postgres", "rabbitmq")


def _process_times() -> Iterable[tuple[int, str, str, float]]:
    """(pid, comm, cmdline, cpu seconds) of every process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat.rsplit(")", 1)[1].split()
            seconds = (int(fields[11]) + int(fields[12])) / TICKS
            cmdline = ""
            if comm in {"postgres", "beam.smp"}:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            yield int(entry.name), comm, cmdline, seconds


def _machine_busy() -> float:
    """Seconds of CPU the whole machine spent busy (all cores) since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / TICKS


class CpuMeter:
    """``snapshot()`` → CPU seconds so far per group; ``per_request(a, b, n)`` → µs per request."""

    def __init__(self, pids: Callable[[], dict[str, list[int]]], database_names: Iterable[str]) -> None:
        self._pids = pids
        self.database_names = tuple(database_names)

    def snapshot(self) -> dict[str, float]:
        owner = {pid: name for name, pids in self._pids().items() for pid in pids}
        totals = dict.fromkeys(GROUPS, 0.0)
        totals["ours"] = 0.0
        for pid, comm, cmdline, seconds in _process_times():
            group = owner.get(pid)
            if group is None:
                if comm == "postgres" and any(name in cmdline for name in self.database_names):
                    group = "postgres"
                elif comm == "beam.smp":
                    group = "rabbitmq"
            if group is not None:
                totals[group] = totals.get(group, 0.0) + seconds
                totals["ours"] += seconds
        # wrk runs as this process's child: its time is in RUSAGE_CHILDREN once it has exited.
        children, itself = (
            resource.getrusage(resource.RUSAGE_CHILDREN),
            resource.getrusage(resource.RUSAGE_SELF),
        )
        totals["wrk"] = children.ru_utime + children.ru_stime
        totals["bench"] = itself.ru_utime + itself.ru_stime
        totals["ours"] += totals["wrk"] + totals["bench"]
        totals["machine"] = _machine_busy()
        return totals

    @staticmethod
    def per_request(
        before: dict[str, float], after: dict[str, float], requests: int, wall: float
    ) -> tuple[dict[str, float], float | None]:
        """µs of CPU per request for each group, and how many cores other work kept busy on
        average (the machine's busy time that no process of this benchmark accounts for)."""
        if requests <= 0 or wall <= 0:
            return {}, None
        spent = {name: max(0.0, after.get(name, 0.0) - before.get(name, 0.0)) for name in after}
        per_request = {
            name: spent[name] * 1e6 / requests for name in spent if name not in {"ours", "machine"}
        }
        other = max(0.0, spent["machine"] - spent["ours"])
        per_request["other"] = other * 1e6 / requests
        return per_request, other / wall
