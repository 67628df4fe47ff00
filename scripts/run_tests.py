"""Runs the test suites one after another, each in its own pytest process, and reports them all.

    run_tests.py                  chassis, the five services (each alone), docs, deploy, then e2e
    run_tests.py identity e2e     only these suites

Tests use the machine's servers: TEST_DATABASE_URL and TEST_AMQP_URL default to the local
PostgreSQL and RabbitMQ unless already set; CI and everything else in the environment is
passed on. Extra pytest arguments come from PYTEST_ARGS (e.g. PYTEST_ARGS="-x -k login").
Exits non-zero if any suite failed, after running all of them.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from xml.etree import ElementTree

from preflight import (
    DEFAULT_TEST_AMQP_URL,
    DEFAULT_TEST_DATABASE_URL,
    PreflightError,
    check_connection_slots,
    check_servers,
)

ROOT = Path(__file__).resolve().parents[1]
PYTEST = Path(sys.executable).parent / "pytest"

# suite name -> (working directory, pytest arguments); each service's tests run alone.
SUITES: dict[str, tuple[Path, list[str]]] = {
    "chassis": (ROOT / "libs" / "chassis", ["tests"]),
    "identity": (ROOT / "identity-service", []),
    "doctor": (ROOT / "doctor-service", []),
    "scheduling": (ROOT / "scheduling-service", []),
    "booking": (ROOT / "booking-service", []),
    "notification": (ROOT / "notification-service", []),
    "docs": (ROOT / "gateway" / "docs", []),
    "deploy": (ROOT, ["tests/deploy"]),
    # The two longest suites list their slowest tests and fixtures (where make test's time goes).
    "e2e": (ROOT, ["tests/e2e", "--durations=25"]),
    # The fuzzer, the authorization matrix, hostile input and a short soak (tests/robustness/README.md).
    "robustness": (ROOT, ["tests/robustness", "--durations=15"]),
}
# Run only when asked for by name (make fuzz): the fuzzer alone, with FUZZ_EXAMPLES from the environment.
ON_DEMAND: dict[str, tuple[Path, list[str]]] = {
    "robustness-fuzz": (ROOT, ["tests/robustness/test_fuzz.py"]),
}

# PostgreSQL connections a suite holds at its peak: its fixtures' pools and apps and, for e2e and
# robustness, the stacks they start (every process with DB_POOL_SIZE=2, DB_MAX_OVERFLOW=2,
# DB_READ_POOL_SIZE=1 and its listeners; replicas in some tests). Measured by sampling
# pg_stat_activity for one run's databases (CLINIC_TEST_RUN_ID), rounded up: e2e 59, robustness
# 51, the largest of chassis and the four services 53. Suites run one after another, so a run
# needs its heaviest suite's; next to `make run` (about 31 of the default 100 in use) they fit.
CONNECTIONS_NEEDED = {
    "chassis": 55,
    "identity": 55,
    "doctor": 55,
    "scheduling": 55,
    "booking": 55,
    "notification": 30,
    "docs": 0,
    "deploy": 0,
    "e2e": 60,
    "robustness": 55,
    "robustness-fuzz": 55,
}

OUTCOMES = {0: "passed", 1: "FAILED", 2: "INTERRUPTED", 3: "INTERNAL ERROR", 4: "USAGE ERROR", 5: "NO TESTS"}


def say(message: str) -> None:
    sys.stdout.write(f"{message}\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    unknown = [name for name in argv if name not in SUITES and name not in ON_DEMAND]
    if unknown:
        say(f"unknown suite(s): {', '.join(unknown)}; choose from {', '.join(SUITES)}")
        return 2
    names = argv or list(SUITES)

    os.environ.setdefault("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    os.environ.setdefault("TEST_AMQP_URL", DEFAULT_TEST_AMQP_URL)
    try:
        check_servers([os.environ["TEST_DATABASE_URL"]], os.environ["TEST_AMQP_URL"])
    except PreflightError as exc:
        say(f"the test servers are not ready:\n{exc}")
        return 1
    needed = max(CONNECTIONS_NEEDED[name] for name in names)
    heaviest = max(names, key=CONNECTIONS_NEEDED.__getitem__)
    try:
        check_connection_slots(os.environ["TEST_DATABASE_URL"], needed, f"the {heaviest} suite")
    except PreflightError as exc:
        say(f"not enough PostgreSQL connections for the tests:\n{exc}")
        return 1

    extra = shlex.split(os.environ.get("PYTEST_ARGS", ""))
    results: dict[str, tuple[str, float]] = {}
    passed = failed_tests = 0
    with tempfile.TemporaryDirectory(prefix="clinic-tests-") as reports:
        for name in names:
            cwd, args = SUITES[name] if name in SUITES else ON_DEMAND[name]
            report = Path(reports) / f"{name}.xml"
            command = [str(PYTEST), *args, *extra]
            say(f"\n===== {name}: {shlex.join(command)} (in {cwd.relative_to(ROOT)}) =====")
            started = time.monotonic()
            code = subprocess.run([*command, f"--junitxml={report}"], cwd=cwd).returncode
            outcome = OUTCOMES.get(code, f"FAILED (exit {code})")
            results[name] = (outcome if code == 0 else f"{outcome} (exit {code})", time.monotonic() - started)
            suite_passed, suite_failed = _counts(report)
            passed += suite_passed
            failed_tests += suite_failed

    say("\n===== test suites =====")
    for name, (outcome, seconds) in results.items():
        say(f"  {name:<11} {outcome:<36} {seconds:6.1f}s")
    failed = [name for name, (outcome, _) in results.items() if outcome != "passed"]
    if failed:
        say(f"failed suites: {', '.join(failed)}")
    say(f"tests: {passed} passed, {failed_tests} failed")
    return 1 if failed else 0


def _counts(report: Path) -> tuple[int, int]:
    """(passed, failed) of one suite's JUnit XML report; (0, 0) when pytest wrote none."""
    if not report.exists():
        return 0, 0
    passed = failed = 0
    for suite in ElementTree.parse(report).getroot().iter("testsuite"):
        total, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
        broken = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        passed += total - skipped - broken
        failed += broken
    return passed, failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
