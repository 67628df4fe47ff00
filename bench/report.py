"""The results table (stdout and bench/results/latest.md) and the verdict on each target."""

from __future__ import annotations

from dataclasses import dataclass

from bench.load import Result
from bench.memory import MIB

MEMORY_LIMIT_MIB = 200
P99_LIMIT_MS = 100.0
PROPAGATION_P99_LIMIT_MS = 250.0


@dataclass
class Row:
    number: str
    label: str
    result: Result | None
    ceiling: float | None = None  # req/s of the ceiling, for the ratio column
    target: str = ""
    met: bool | None = None
    compare_to: Result | None = None  # the 1x row of a 10x row


def _num(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def judge(row: Row) -> Row:
    """Fill in ``met`` from the row's target kind."""
    r = row.result
    if r is None:
        return row
    ratio = r.rps / row.ceiling if r.rps and row.ceiling else None
    p99_ok = r.p99_ms is not None and r.p99_ms < P99_LIMIT_MS
    if row.target.startswith("≥"):
        needed = float(row.target[1:].split("%")[0]) / 100
        row.met = ratio is not None and ratio >= needed and p99_ok and r.errors == 0
    elif row.target == "one winner":
        row.met = r.errors == 0
    elif row.target.startswith("p99 <"):
        row.met = r.errors == 0 and r.p99_ms is not None and r.p99_ms < PROPAGATION_P99_LIMIT_MS
    elif row.target.startswith("≤20%") and row.compare_to is not None:
        base = row.compare_to.rps
        row.met = bool(base and r.rps and r.rps >= 0.8 * base and p99_ok and r.errors == 0)
    elif row.target == "ceiling":
        row.met = r.errors == 0
    return row


def table(rows: list[Row]) -> str:
    lines = [
        "| # | scenario | req/s | p50 ms | p99 ms | errors | vs ceiling | target | met |",
        "|---|---|---:|---:|---:|---:|---:|---|:-:|",
    ]
    for row in rows:
        r = row.result
        if r is None:
            lines.append(f"| {row.number} | {row.label} | — | — | — | — | — | {row.target} | skipped |")
            continue
        ratio = r.rps / row.ceiling if r.rps and row.ceiling else None
        versus = f"{ratio:.0%}" if ratio is not None else "—"
        if row.compare_to is not None and row.compare_to.rps and r.rps:
            versus += f" ({r.rps / row.compare_to.rps:.0%} of 1×)"
        met = {True: "yes", False: "**NO**", None: ""}[row.met]
        lines.append(
            f"| {row.number} | {row.label} | {_num(r.rps, ',.0f')} | {_num(r.p50_ms, '.1f')} | "
            f"{_num(r.p99_ms, '.1f')} | {r.errors} | {versus} | {row.target} | {met} |"
        )
    return "\n".join(lines)


def notes(rows: list[Row]) -> str:
    lines = []
    for row in rows:
        r = row.result
        if r is None:
            continue
        seen = ", ".join(f"{status}×{count}" for status, count in r.statuses.items())
        parts = [p for p in (r.note, f"statuses {seen}" if seen else "") if p]
        if parts:
            lines.append(f"- {row.number} {row.label}: {'; '.join(parts)}")
    return "\n".join(lines)


CPU_COLUMNS = (
    ("gateway", "gateway"),
    ("identity", "identity"),
    ("doctor", "doctor"),
    ("scheduling", "scheduling"),
    ("booking", "booking"),
    ("postgres", "PostgreSQL"),
    ("rabbitmq", "RabbitMQ"),
    ("load", "wrk + bench"),
)


def cpu_table(rows: list[Row]) -> str:
    """µs of CPU per request of each part of the path, and the other load on the machine."""
    head = " | ".join(label for _, label in CPU_COLUMNS)
    lines = [
        f"| # | scenario | {head} | stack total | other work (cores) |",
        "|---|---|" + "---:|" * (len(CPU_COLUMNS) + 2),
    ]
    for row in rows:
        r = row.result
        if r is None or not r.cpu:
            continue
        cpu = dict(r.cpu)
        cpu["load"] = cpu.get("wrk", 0.0) + cpu.get("bench", 0.0)
        cells = " | ".join(f"{cpu.get(key, 0.0):,.0f}" for key, _ in CPU_COLUMNS)
        total = sum(cpu.get(key, 0.0) for key, _ in CPU_COLUMNS if key != "load")
        other = f"{r.other_cores:.2f}" if r.other_cores is not None else "—"
        lines.append(f"| {row.number} | {row.label} | {cells} | {total:,.0f} | {other} |")
    return "\n".join(lines)


def memory_table(peak_total: dict[str, int], peak_process: dict[str, int], counts: dict[str, int]) -> str:
    lines = [
        "| process | processes | peak RSS (all) MiB | peak RSS (largest) MiB | limit | met |",
        "|---|---:|---:|---:|---|:-:|",
    ]
    for name in sorted(peak_total, key=lambda n: (n != "gateway", n)):
        total = peak_total[name] / MIB
        largest = peak_process[name] / MIB
        if name == "gateway":
            limit, met = "—", ""
        else:
            limit, met = f"< {MEMORY_LIMIT_MIB} MiB", "yes" if total < MEMORY_LIMIT_MIB else "**NO**"
        lines.append(f"| {name} | {counts.get(name, 0)} | {total:.0f} | {largest:.0f} | {limit} | {met} |")
    return "\n".join(lines)
