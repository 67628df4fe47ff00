"""Load generation with wrk (bench/replay.lua), and the result of one measured run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT = Path(__file__).with_name("replay.lua")


def ensure_wrk() -> str:
    """The wrk executable; installed with apt-get when missing and running as root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        sys.stdout.write("bench: wrk is missing; installing it with apt-get (Debian package wrk)\n")
        sys.stdout.flush()
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        install = ["apt-get", "install", "-y", "-q", "wrk"]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
            subprocess.run(install, env=env, check=True, capture_output=True)
        found = shutil.which("wrk")
        if found:
            return found
    raise SystemExit(
        "bench: wrk is not installed. Install it with `sudo apt-get install wrk` (Debian/Ubuntu) "
        "or `brew install wrk` (macOS), then run `make bench` again."
    )


@dataclass
class Result:
    """One scenario's numbers: throughput, latency (ms), errors and what was seen."""

    name: str
    requests: int = 0
    seconds: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    note: str = ""
    rps_override: float | None = None
    # µs of CPU per request by process group (bench.cpu), and cores busy with other work.
    cpu: dict[str, float] = field(default_factory=dict)
    other_cores: float | None = None

    @property
    def rps(self) -> float | None:
        if self.rps_override is not None:
            return self.rps_override
        return self.requests / self.seconds if self.seconds else None


def write_requests(path: Path, lines: Iterable[tuple[str, ...]]) -> int:
    """Write ``(method, path, token, body[, idempotency key])`` lines for replay.lua; returns how many."""
    n = 0
    with path.open("w") as out:
        for line in lines:
            out.write("\t".join(line) + "\n")
            n += 1
    return n


def run_wrk(
    wrk: str,
    base_url: str,
    requests_file: Path,
    *,
    name: str,
    connections: int,
    duration: float,
    threads: int,
    once: bool = False,
    expected: Iterable[int] = (200,),
    timeout: float = 5.0,
) -> Result:
    """Run wrk for ``duration`` seconds over ``requests_file``; any other status is an error."""
    connections = max(connections, threads)
    command = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={timeout:g}s",
        "-s",
        str(SCRIPT),
        base_url,
        "--",
        str(requests_file),
        str(threads),
    ]
    if once:
        command.append("--once")
    completed = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120)
    line = next((ln for ln in completed.stdout.splitlines() if ln.startswith("@@RESULT ")), None)
    if completed.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}")
    data = json.loads(line.removeprefix("@@RESULT "))
    expected = {str(code) for code in expected}
    statuses = dict(sorted(data["statuses"].items()))
    note = ""
    if data["exhausted"]:
        # The stand-in requests past the end of the file got the gateway's 404: not counted.
        statuses["404"] = statuses.get("404", 0) - data["exhausted"]
        statuses = {k: v for k, v in statuses.items() if v}
        note = f"ran out of prepared requests after {data['requests'] - data['exhausted']}"
    unexpected = sum(v for k, v in statuses.items() if k not in expected)
    socket_errors = data["connect"] + data["read"] + data["write"] + data["timeout"]
    return Result(
        name=name,
        requests=data["requests"] - data["exhausted"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=unexpected + socket_errors,
        statuses=statuses,
        note=note,
    )


def combined(name: str, runs: list[Result]) -> Result:
    """Several measured runs of one scenario as one: their requests over their seconds, their
    errors and statuses added, the median of their p50s and the worst of their p99s, and CPU
    per request weighted by each run's requests."""
    total = Result(name)
    for run in runs:
        total.requests += run.requests
        total.seconds += run.seconds
        total.errors += run.errors
        for status, count in run.statuses.items():
            total.statuses[status] = total.statuses.get(status, 0) + count
        for part, micros in run.cpu.items():
            total.cpu[part] = total.cpu.get(part, 0.0) + micros * run.requests
    if total.requests:
        total.cpu = {part: micros / total.requests for part, micros in total.cpu.items()}
    p50s = sorted(run.p50_ms for run in runs if run.p50_ms is not None)
    p99s = [run.p99_ms for run in runs if run.p99_ms is not None]
    total.p50_ms = p50s[len(p50s) // 2] if p50s else None
    total.p99_ms = max(p99s) if p99s else None
    others = [run.other_cores for run in runs if run.other_cores is not None]
    total.other_cores = sum(others) / len(others) if others else None
    return total
