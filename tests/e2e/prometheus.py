"""A real Prometheus server (Debian's ``prometheus`` package) for the observability tests.

``prometheus_binaries()`` finds ``prometheus`` and ``promtool``, installing the package with
apt-get when they are missing and this runs as root (a policy-rc.d keeps the package from
starting its system service, as scripts/bootstrap.sh does); without them a test is skipped
on a developer's machine and fails under ``CI=true``.

``PrometheusServer`` runs the binary on a free loopback port with a configuration and a
storage directory of its own, and queries its HTTP API:

    with PrometheusServer(workdir, scrape_configs=[...], scrape_interval="1s") as prometheus:
        prometheus.wait_for_targets(5)
        prometheus.query('sum(clinic_bookings_total)')
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from chassis.testkit import free_ports

from .stack import HOST, wait_until

POLICY_RC = Path("/usr/sbin/policy-rc.d")


def _install() -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "prometheus"]
    added = False
    if not POLICY_RC.exists():
        POLICY_RC.write_text("#!/bin/sh\nexit 101\n")
        POLICY_RC.chmod(0o755)
        added = True
    try:
        if subprocess.run(command, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=True)
            subprocess.run(command, env=env, capture_output=True, check=True)
    finally:
        if added:
            POLICY_RC.unlink(missing_ok=True)


def prometheus_binaries() -> tuple[str, str]:
    """``(prometheus, promtool)``: installed when missing (as root), else skip, or fail under CI."""
    found = shutil.which("prometheus"), shutil.which("promtool")
    if not all(found) and os.geteuid() == 0 and shutil.which("apt-get"):
        try:
            _install()
        except subprocess.CalledProcessError as exc:
            pytest.fail(f"apt-get install prometheus failed: {exc.stderr!r}")
        found = shutil.which("prometheus"), shutil.which("promtool")
    if not all(found):
        message = "Debian's prometheus package is missing: sudo apt-get install -y prometheus"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found  # type: ignore[return-value]


class PrometheusServer:
    """A Prometheus process scraping ``scrape_configs``, on its own port and storage; a context manager."""

    def __init__(
        self,
        workdir: Path,
        *,
        scrape_configs: list[dict[str, Any]],
        scrape_interval: str = "1s",
        rule_files: list[str] | None = None,
    ) -> None:
        self.binary, _ = prometheus_binaries()
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.port,) = free_ports(1)
        self.url = f"http://{HOST}:{self.port}"
        self.config = self.workdir / "prometheus.yml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
                    "rule_files": rule_files or [],
                    "scrape_configs": scrape_configs,
                }
            )
        )
        self.log_path = self.workdir / "prometheus.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrometheusServer:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address={HOST}:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until(self._ready, timeout=60, what="prometheus ready")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        self._process = None

    def _ready(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise RuntimeError(f"prometheus exited: {self.log_path.read_text()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def _api(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def targets(self) -> list[dict[str, Any]]:
        return self._api("targets", state="active")["activeTargets"]

    def wait_for_targets(self, count: int, timeout: float = 60) -> list[dict[str, Any]]:
        """Wait until ``count`` targets were scraped successfully; returns them all."""

        def all_up() -> list[dict[str, Any]] | None:
            targets = self.targets()
            healthy = [t for t in targets if t["health"] == "up"]
            return targets if len(targets) == count and len(healthy) == count else None

        try:
            return wait_until(all_up, timeout=timeout, interval=0.5, what=f"{count} targets up")
        except TimeoutError:
            raise AssertionError(f"targets not all up: {self.targets()}") from None

    def query(self, expression: str) -> list[dict[str, Any]]:
        """The instant vector of ``expression`` (``[{"metric": {...}, "value": [t, "v"]}, ...]``)."""
        return self._api("query", query=expression)["result"]

    def value(self, expression: str) -> float | None:
        """The single value of ``expression``, or None when it has no sample."""
        result = self.query(expression)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def wait_for_value(self, expression: str, predicate: Any, timeout: float = 60) -> float:
        """Wait until ``expression`` has a value ``predicate`` accepts; returns it."""
        seen: list[float | None] = []

        def accepted() -> tuple[float] | None:  # a tuple: a value of 0 is an answer too
            value = self.value(expression)
            seen.append(value)
            return (value,) if value is not None and predicate(value) else None

        try:
            return wait_until(accepted, timeout=timeout, interval=0.5, what=expression)[0]
        except TimeoutError:
            raise AssertionError(f"{expression}: last values {seen[-5:]}") from None


def run_promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``promtool *args`` (its output captured)."""
    _, promtool = prometheus_binaries()
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
