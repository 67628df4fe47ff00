"""``--profile``: py-spy samples of every service process during chosen phases.

Each phase named in ``--profile`` gets one py-spy recorder per service process for the
measured seconds (``--nonblocking``: the process is never paused). The collapsed stacks
go to ``<dir>/<phase>-<service>.txt``, and a summary of the functions that held the most
samples (their own time and with what they call) is printed, so a profile is read without
a browser. py-spy comes with the dev requirements; reading another process's memory needs
root or ptrace permission.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

SERVICES = ("identity", "doctor", "scheduling", "booking", "notification")


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


@contextmanager
def recording(
    phase: str, pids: Callable[[], dict[str, list[int]]], directory: Path, say: Callable[[str], None]
) -> Iterator[None]:
    binary = py_spy()
    if binary is None:
        say("--profile: py-spy not found (pip install py-spy); not profiling")
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    recorders: list[tuple[str, Path, subprocess.Popen]] = []
    for service, service_pids in pids().items():
        if service not in SERVICES:
            continue
        for pid in service_pids:
            out = directory / f"{phase}-{service}-{pid}.txt"
            command = [binary, "record", "--pid", str(pid), "--format", "raw", "--nonblocking", "--gil",
                       "--rate", "200", "--output", str(out)]  # fmt: skip
            recorders.append(
                (
                    service,
                    out,
                    subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                )
            )
    try:
        yield
    finally:
        for _, _, process in recorders:
            process.send_signal(2)  # SIGINT: py-spy writes what it has and exits
        for service, out, process in recorders:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
            if out.exists():
                say(f"profile {phase} / {service}: {out}")
                for line in summary(out):
                    say("    " + line)


def summary(path: Path, top: int = 12) -> list[str]:
    """The functions with the most samples: own (leaf) and total (anywhere on the stack)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    if not samples:
        return ["(no samples)"]
    lines = [f"{samples} samples; own time:"]
    lines += [f"  {n / samples:6.1%}  {frame}" for frame, n in own.most_common(top)]
    lines.append("with callees (skipping the event loop and thread machinery):")
    boring = ("threading.py", "asyncio/", "concurrent/futures", "uvicorn/", "anyio/", "starlette/")
    interesting = [(f, n) for f, n in total.most_common(200) if not any(b in f for b in boring)]
    lines += [f"  {n / samples:6.1%}  {frame}" for frame, n in interesting[:top]]
    return lines
