"""The Clinic stack, started for real, for end-to-end tests.

Every process runs the command line of its entry in the repository's ``Procfile`` (the one
``make run`` starts through honcho), with this stack's own ports, databases, RabbitMQ vhost
and signing-key path given through the environment. Nothing is mocked: the real Traefik
binary, real uvicorn processes, real PostgreSQL and RabbitMQ.

    stack = Stack(workdir=..., database_urls={...}, amqp_url=..., replicas={"booking": 2})
    stack.up()
    with stack.client(token) as client:
        client.get("/api/appointments/me/")
    stack.restart("booking-2")
    stack.close()

Least privilege, as in production: ``up()`` runs ``<service> provision`` with the given
(administrators') database and broker URLs, creating each service's owner and runtime roles
and its broker user for this stack alone, then ``<service> migrate`` as the owner; the service
processes get only their runtime credentials (``runtime_database_urls``, ``runtime_amqp_urls``).
``close()`` drops the roles and users again (the databases and vhost are their creators' to drop).

A process is named after its Procfile entry; extra replicas of a service are ``<name>-2``,
``<name>-3`` ... and all of a service's replicas are listed to the gateway in ``<NAME>_URLS``.
Each process writes its output to ``<workdir>/logs/<name>.log``.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx

from chassis.testkit import free_ports, wait_until

ROOT = Path(__file__).resolve().parents[2]
PROCFILE = ROOT / "Procfile"
BIN = Path(sys.executable).parent
SERVICES = ("identity", "doctor", "scheduling", "booking", "notification")
HOST = "127.0.0.1"
# The origin of a browser front end that the main stack allows (CORS_ALLOWED_ORIGINS, conftest).
FRONT_END_ORIGIN = "https://app.clinic.example"
GATEWAY = "gateway"
DOCS = "docs"  # the API documentation app (gateway/docs): Swagger UI, Redoc, the merged OpenAPI document

# What a developer's shell may hold for the local stack: a stack sets what it needs itself,
# so none of these leaks into it from the outside.
STACK_VARIABLES = frozenset(
    {
        "DATABASE_URL",
        "MIGRATION_DATABASE_URL",
        "ADMIN_DATABASE_URL",
        "AMQP_URL",
        "AMQP_ADMIN_URL",
        "RABBITMQ_MANAGEMENT_URL",
        "JWT_PRIVATE_KEY",
        "JWT_PRIVATE_KEY_FILE",
        "JWT_ISSUER",
        "JWT_AUDIENCE",
        "SERVICE_SECRETS_DIR",
        "SERVICE_SECRET",
        "SERVICE_CLIENT_SECRETS",
        "SESSION_MAX_AGE_SECONDS",
        "ACCESS_TOKEN_TTL_SECONDS",
        "REFRESH_TOKEN_TTL_SECONDS",
        "ADMIN_EMAIL",
        "ADMIN_PASSWORD",
        "ADMIN_FULL_NAME",
        "CLINIC_TIMEZONE",
        "LOG_LEVEL",
        "LOG_FORMAT",
        "DB_POOL_SIZE",
        "DB_MAX_OVERFLOW",
        "DB_READ_POOL_SIZE",
        "MESSAGING_ENABLED",
        "SERVICE_HOST",
        "SHUTDOWN_DRAIN_SECONDS",
        "TRAEFIK_BIN",
        "PORT",
        "METRICS_PORT",
        "METRICS_HOST",
        "SMTP_URL",
        "MAIL_FROM",
        "REMINDER_HOURS",
        "WEBHOOK_ALLOW_PRIVATE_TARGETS",
        "DELIVERY_RETRY_DELAYS",
    }
    | {
        f"{s.upper()}_{suffix}"
        for s in SERVICES
        for suffix in (
            "DATABASE_URL",
            "MIGRATION_DATABASE_URL",
            "ADMIN_DATABASE_URL",
            "AMQP_URL",
            "URL",
            "URLS",
            "PORT",
            "METRICS_PORT",
        )
    }
)
STACK_VARIABLE_PREFIXES = ("GATEWAY_", "AUTH_RATE_LIMIT_", "DOCS_", "OTEL_")


class StackError(RuntimeError):
    """A stack process failed to start or to become ready; the message carries its logs."""


@dataclass(frozen=True, slots=True)
class Credentials:
    email: str
    password: str


def read_procfile(path: Path = PROCFILE) -> dict[str, str]:
    """Process name → command line, parsed exactly as honcho parses it."""
    from honcho.environ import parse_procfile

    return dict(parse_procfile(path.read_text()).processes)


_source_addresses = itertools.count()


def next_source_address() -> str:
    """A loopback address no other client of this test session uses (127.10.0.1, 127.10.0.2, ...).

    The gateway rate-limits per client IP; giving each client its own source address keeps
    one test's requests from spending another test's budget.
    """
    n = next(_source_addresses)
    return f"127.{10 + n // 62500}.{n // 250 % 250}.{n % 250 + 1}"


def _probe_path(process: Process) -> str | None:
    """A public path that the gateway routes to ``process``'s kind only (None for the gateway)."""
    if process.service:
        return f"/api/schema/{process.service}/openapi.json"
    if process.name == DOCS:
        return "/api/schema/swagger-ui/"
    return None


class Process:
    """One Procfile entry running as a child process group, its output appended to a log file."""

    def __init__(
        self,
        name: str,
        command: str,
        env: Mapping[str, str],
        log_path: Path,
        *,
        ready_url: str,
        service: str | None = None,
        url: str | None = None,
    ) -> None:
        self.name = name
        self.command = command
        self.env = dict(env)
        self.log_path = log_path
        self.ready_url = ready_url
        self.service = service
        self.url = url
        self.metrics_url: str | None = None  # a service process's Prometheus endpoint (chassis.metrics)
        self._popen: subprocess.Popen[bytes] | None = None
        self._starts = 0

    def __repr__(self) -> str:
        state = "running" if self.running else f"stopped ({self.returncode})"
        return f"<Process {self.name} {state} {self.url or ''}>"

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    @property
    def pid(self) -> int | None:
        return None if self._popen is None else self._popen.pid

    def start(self) -> None:
        if self.running:
            raise StackError(f"{self.name} is already running")
        self._starts += 1
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(
                f"----- start #{self._starts} at {time.strftime('%H:%M:%S')}: {self.command}\n".encode()
            )
            log.flush()
            # Its own session: a terminal's Ctrl-C reaches only pytest, which stops the group.
            self._popen = subprocess.Popen(
                ["sh", "-c", self.command],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the whole process group, then SIGKILL whatever is left after ``timeout``."""
        self._end(signal.SIGTERM, timeout)

    def interrupt(self, timeout: float = 15.0) -> None:
        """SIGINT to the whole process group (Ctrl-C): a clean stop without the SIGTERM drain
        (chassis.shutdown), for the end of a stack; then SIGKILL whatever is left."""
        self._end(signal.SIGINT, timeout)

    def kill(self) -> None:
        """SIGKILL to the whole process group: a crash, not a shutdown."""
        self._end(signal.SIGKILL, 5.0)

    def _end(self, sig: signal.Signals, timeout: float) -> None:
        if self._popen is None:
            return
        self._signal_group(sig)
        deadline = time.monotonic() + timeout
        with suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout)
        # The shell may be gone before the server it started: wait for the whole group.
        while self._group_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._group_alive():
            self._signal_group(signal.SIGKILL)
        if self._popen.poll() is None:
            self._popen.wait(5)

    def _signal_group(self, sig: signal.Signals) -> None:
        if self._popen is not None:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(self._popen.pid, sig)

    def _group_alive(self) -> bool:
        if self._popen is None:
            return False
        try:
            os.killpg(self._popen.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_text(self, since: int = 0) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(since)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 20, since: int = 0) -> str:
        return "\n".join(self.log_text(since).splitlines()[-lines:])


_live_groups: list[ProcessGroup] = []
_live_lock = threading.Lock()


def live_groups() -> list[ProcessGroup]:
    with _live_lock:
        return list(_live_groups)


@atexit.register
def _close_live_groups() -> None:
    for group in live_groups():
        group.close()


class ProcessGroup:
    """Processes started from the Procfile behind one gateway, with clients and process control."""

    gateway_port: int
    admin_port: int
    internal_port: int  # the gateway's internal entry point (ForwardAuth's token checks)

    def __init__(self, *, workdir: Path, procfile: Path = PROCFILE, startup_timeout: float = 60.0) -> None:
        self.workdir = Path(workdir)
        self.log_dir = self.workdir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.commands = read_procfile(procfile)
        self.startup_timeout = startup_timeout
        self.processes: dict[str, Process] = {}
        self.gateway_port, self.admin_port, self.internal_port = free_ports(3)
        self._closed = False

    # -- addresses -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The gateway: the only address a client of the API uses."""
        return f"http://{HOST}:{self.gateway_port}"

    @property
    def admin_url(self) -> str:
        """The gateway's ping and metrics entry point."""
        return f"http://{HOST}:{self.admin_port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def gateway_environment(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in STACK_VARIABLES and not k.startswith(STACK_VARIABLE_PREFIXES)
        }
        env.update(
            PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            PYTHONUNBUFFERED="1",
            TRAEFIK_BIN=str(BIN / "traefik"),
            GATEWAY_HOST=HOST,
            GATEWAY_PORT=str(self.gateway_port),
            GATEWAY_ADMIN_PORT=str(self.admin_port),
            GATEWAY_INTERNAL_PORT=str(self.internal_port),
            # A stopped or restarted server leaves and rejoins the rotation within a second.
            GATEWAY_HEALTHCHECK_INTERVAL="1s",
            GATEWAY_HEALTHCHECK_UNHEALTHY_INTERVAL="1s",
            AUTH_RATE_LIMIT_AVERAGE="10",
            AUTH_RATE_LIMIT_PERIOD="1m",
            AUTH_RATE_LIMIT_BURST="10",
        )
        return env

    def _add(self, process: Process) -> Process:
        self.processes[process.name] = process
        return process

    def _add_gateway(self, env: Mapping[str, str]) -> Process:
        return self._add(
            Process(
                GATEWAY,
                self.commands[GATEWAY],
                env,
                self.log_dir / f"{GATEWAY}.log",
                ready_url=f"{self.admin_url}/ping",
            )
        )

    # -- clients ---------------------------------------------------------------------------

    def client(
        self,
        token: str | None = None,
        *,
        source_address: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 15.0,
        **kwargs: Any,
    ) -> httpx.Client:
        """An HTTP client of the gateway, from its own loopback address unless one is given."""
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        transport = httpx.HTTPTransport(local_address=source_address or next_source_address())
        return httpx.Client(
            base_url=self.base_url, transport=transport, headers=all_headers, timeout=timeout, **kwargs
        )

    def access_log(
        self, request_id: str, timeout: float = 10.0, *, entry_point: str = "web"
    ) -> dict[str, Any]:
        """The gateway's access-log entry of the request sent with ``X-Request-Id: request_id``.

        Its fields include ``RouterName``, ``ServiceName``, ``ServiceURL``, ``ClientHost``,
        ``OriginStatus`` and ``DownstreamStatus``. ``entry_point="internal"`` gives the entry of
        the request's token check instead (ForwardAuth's call, with the same request id).
        """
        gateway = self.processes[GATEWAY]

        def find() -> dict[str, Any] | None:
            for line in gateway.log_text().splitlines():
                if request_id in line and line.startswith("{"):
                    with suppress(ValueError):
                        entry = json.loads(line)
                        # The token check of a protected request, through the internal entry
                        # point, carries the same request id as the request itself.
                        if (
                            entry.get("request_X-Request-Id") == request_id
                            and entry.get("entryPointName") == entry_point
                        ):
                            return entry
            return None

        return wait_until(find, timeout=timeout, what=f"access log entry of request {request_id}")

    # -- process control -------------------------------------------------------------------

    def process(self, name: str) -> Process:
        try:
            return self.processes[name]
        except KeyError:
            raise KeyError(f"no process {name!r}; there are {', '.join(self.processes)}") from None

    def start(self, name: str) -> None:
        """Start a stopped process and wait until it is ready and the gateway routes to it."""
        process = self.process(name)
        process.start()
        self._wait_ready([process])
        self._wait_routed([process])

    def stop(self, name: str) -> None:
        """Stop a process gracefully (SIGTERM to its process group)."""
        self.process(name).stop()

    def kill(self, name: str) -> None:
        """Kill a process at once (SIGKILL to its process group), as a crash would."""
        self.process(name).kill()

    def restart(self, *names: str) -> None:
        """Stop gracefully and start again each of ``names``, all at once (``start`` waits)."""

        def restart(name: str) -> None:
            self.stop(name)
            self.start(name)

        if len(names) == 1:
            restart(names[0])
            return
        with ThreadPoolExecutor(len(names)) as pool:
            list(pool.map(restart, names))

    def close(self) -> None:
        """Stop every process (idempotent); also run at interpreter exit."""
        if self._closed:
            return
        self._closed = True
        running = [p for p in self.processes.values() if p.running]
        if running:
            # The end of the stack: nothing to drain and no request worth its grace period (the
            # gateway's is 10 s while any client keeps a connection open), so SIGINT, and
            # SIGKILL what is still there after 3 s. Graceful stops have tests of their own.
            with ThreadPoolExecutor(len(running)) as pool:
                list(pool.map(lambda process: process.interrupt(timeout=3.0), running))
        with _live_lock, suppress(ValueError):
            _live_groups.remove(self)

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- start-up --------------------------------------------------------------------------

    def _register(self) -> None:
        with _live_lock:
            _live_groups.append(self)

    def _start_and_wait(self, processes: Iterable[Process]) -> None:
        processes = list(processes)
        for process in processes:
            process.start()
        self._wait_ready(processes)

    def _wait_ready(self, processes: list[Process]) -> None:
        pending = list(processes)
        deadline = time.monotonic() + self.startup_timeout
        with httpx.Client(timeout=2.0) as http:
            while pending:
                for process in list(pending):
                    if not process.running:
                        raise StackError(
                            f"{process.name} exited with code {process.returncode} while starting.\n"
                            + self.describe()
                        )
                    with suppress(httpx.TransportError):
                        if http.get(process.ready_url).status_code == 200:
                            pending.remove(process)
                if pending and time.monotonic() >= deadline:
                    names = ", ".join(p.name for p in pending)
                    raise StackError(
                        f"not ready after {self.startup_timeout:.0f}s: {names} "
                        f"(polling {', '.join(p.ready_url for p in pending)}).\n" + self.describe()
                    )
                if pending:
                    time.sleep(0.1)

    def _wait_routed(self, processes: list[Process]) -> None:
        """Wait until the gateway sends requests to each of ``processes`` (the gateway: to anything)."""
        for process in processes:
            if process.name == GATEWAY:
                targets = [p for p in self.processes.values() if _probe_path(p) and p.running]
            else:
                targets = [process]
            for target in targets:
                self._wait_gateway_reaches(target)

    def _wait_gateway_reaches(self, target: Process) -> None:
        self._wait_probe_reaches(target, _probe_path(target), 200, "web")
        if target.service == "identity":
            # Identity's replicas are also the token check's servers, health-checked on their
            # own: every protected request needs them.
            self._wait_probe_reaches(target, "/api/auth/me/", 401, "internal")

    def _wait_probe_reaches(self, target: Process, path: str, status: int, entry_point: str) -> None:
        """Wait until a GET of ``path`` answers ``status`` with ``target`` serving ``entry_point``'s part."""
        with self.client(timeout=5.0) as client:

            def routed_to_target() -> bool:
                request_id = uuid.uuid4().hex
                try:
                    response = client.get(path, headers={"X-Request-Id": request_id})
                except httpx.TransportError:
                    return False
                if response.status_code == status:
                    entry = self.access_log(request_id, entry_point=entry_point)
                    if entry.get("ServiceURL") == target.url:
                        return True
                # A random pause: two of these loops (replicas started together) polling in step
                # interleave their requests exactly, and the gateway's round robin then gives each
                # loop the other's replica every time.
                time.sleep(random.uniform(0, 0.1))
                return False

            try:
                wait_until(
                    routed_to_target,
                    timeout=self.startup_timeout,
                    what=f"gateway routes {path} to {target.name}",
                )
            except TimeoutError as exc:
                raise StackError(f"{exc}\n" + self.describe()) from None

    def describe(self, lines: int = 15) -> str:
        """Every process's state and the last lines of its log, for error messages."""
        parts = [f"process logs in {self.log_dir}:"]
        for process in self.processes.values():
            state = "running" if process.running else f"exited with {process.returncode}"
            parts.append(f"--- {process.name} ({state}), last {lines} lines of {process.log_path.name}:")
            parts.append(process.log_tail(lines) or "(empty)")
        return "\n".join(parts)

    def log_marks(self) -> dict[str, int]:
        return {name: process.log_size() for name, process in self.processes.items()}

    def logs_since(self, marks: Mapping[str, int], lines: int = 30) -> str:
        """What each process logged since ``marks`` (from ``log_marks()``), its last ``lines`` lines."""
        parts = []
        for name, process in self.processes.items():
            text = process.log_tail(lines, since=marks.get(name, 0))
            state = "" if process.running else f" (exited with {process.returncode})"
            if text or state:
                parts.append(f"--- {name}{state}:\n{text}")
        return "\n".join(parts)


class Stack(ProcessGroup):
    """The whole stack: the gateway, every service (with replicas) and the docs app (``docs``), on
    this stack's own resources.

    ``database_urls`` maps each service to a fresh database (as a role that may create roles:
    the test server's superuser), ``amqp_url`` names a vhost of this stack's own (as the
    broker's administrator); the services run as roles and users made for them from these
    (module docstring). ``replicas`` asks for more than one process of a service
    (``{"booking": 2}``); ``env`` adds or overrides variables of every process
    (``{"ACCESS_TOKEN_TTL_SECONDS": "5"}``). ``up()`` migrates and starts everything.
    """

    def __init__(
        self,
        *,
        workdir: Path,
        database_urls: Mapping[str, str],
        amqp_url: str,
        replicas: Mapping[str, int] | None = None,
        env: Mapping[str, str] | None = None,
        admin: Credentials | None = None,
        procfile: Path = PROCFILE,
        startup_timeout: float = 60.0,
    ) -> None:
        super().__init__(workdir=workdir, procfile=procfile, startup_timeout=startup_timeout)
        missing = [name for name in (GATEWAY, *SERVICES, DOCS) if name not in self.commands]
        if missing:
            raise StackError(f"{procfile} has no entry for {', '.join(missing)}")
        unknown = set(replicas or {}) - set(SERVICES)
        if unknown:
            raise StackError(f"replicas of unknown services: {', '.join(sorted(unknown))}")
        self.database_urls = {service: database_urls[service] for service in SERVICES}
        self.amqp_url = amqp_url
        # Each service's own roles and broker user, named after its database and the vhost.
        secret = uuid.uuid4().hex
        self.runtime_database_urls = {
            s: _with_login(url, _database_of(url), secret) for s, url in self.database_urls.items()
        }
        self.migration_database_urls = {
            s: _with_login(url, f"{_database_of(url)}_owner", secret) for s, url in self.database_urls.items()
        }
        vhost = _vhost_of(amqp_url)
        self.runtime_amqp_urls = {s: _with_login(amqp_url, f"{vhost}_{s}", secret) for s in SERVICES}
        self.replica_counts = dict.fromkeys(SERVICES, 1) | dict(replicas or {})
        self.admin = admin or Credentials(
            email=f"admin-{uuid.uuid4().hex[:8]}@clinic.example.com", password=f"Adm1n-{uuid.uuid4().hex}"
        )
        self.jwt_private_key_file = self.workdir / "jwt" / "private.pem"

        ports = iter(free_ports(2 * sum(self.replica_counts.values()) + 1))
        self.service_urls = {
            service: [f"http://{HOST}:{next(ports)}" for _ in range(count)]
            for service, count in self.replica_counts.items()
        }
        # Each service process's own metrics port (<SERVICE>_METRICS_PORT, read by the Procfile line).
        metrics_ports = {url: next(ports) for urls in self.service_urls.values() for url in urls}
        self.docs_url = f"http://{HOST}:{next(ports)}"
        self.env = self._environment(env or {})
        self._add_gateway(self.env)
        for service in SERVICES:
            for index, url in enumerate(self.service_urls[service]):
                name = service if index == 0 else f"{service}-{index + 1}"
                port = url.rsplit(":", 1)[1]
                process = self._add(
                    Process(
                        name,
                        self.commands[service],
                        {
                            **self.env,
                            f"{service.upper()}_PORT": port,
                            f"{service.upper()}_METRICS_PORT": str(metrics_ports[url]),
                        },
                        self.log_dir / f"{name}.log",
                        ready_url=f"{url}/health/ready",
                        service=service,
                        url=url,
                    )
                )
                process.metrics_url = f"http://{HOST}:{metrics_ports[url]}/metrics"
        self._add(
            Process(
                DOCS,
                self.commands[DOCS],
                {**self.env, "DOCS_PORT": self.docs_url.rsplit(":", 1)[1]},
                self.log_dir / f"{DOCS}.log",
                ready_url=f"{self.docs_url}/health/ready",
                url=self.docs_url,
            )
        )

    def _environment(self, extra: Mapping[str, str]) -> dict[str, str]:
        env = self.gateway_environment()
        env.update(
            SERVICE_HOST=HOST,
            JWT_PRIVATE_KEY_FILE=str(self.jwt_private_key_file),
            # The services' client secrets (identity reads them all, each service its own).
            SERVICE_SECRETS_DIR=str(self.workdir / "service-secrets"),
            ADMIN_EMAIL=self.admin.email,
            ADMIN_PASSWORD=self.admin.password,
            ADMIN_FULL_NAME="Ada Admin",
            LOG_LEVEL="INFO",
            LOG_FORMAT="json",
            # Stacks share one PostgreSQL (100 connections by default) with each other and with
            # a developer's `make run` (about 31 idle): at most 2 + 2 + 1 (the hot reads' async
            # pool) per process, plus its listeners (scripts/run_tests.py CONNECTIONS_NEEDED).
            DB_POOL_SIZE="2",
            DB_MAX_OVERFLOW="2",
            DB_READ_POOL_SIZE="1",
            # SIGTERM: not ready at once, serving on for 2 s (the gateway checks every second).
            SHUTDOWN_DRAIN_SECONDS="2",
            # A cheap Argon2id (1 pass, 1 MiB; production: 2 passes, 19 MiB): every test user
            # registers and logs in, and at production cost that is ~55 ms of identity's CPU
            # each. Identity's own tests check the hashing at its real settings.
            PASSWORD_HASH_TIME_COST="1",
            PASSWORD_HASH_MEMORY_COST="1024",
            # As `make run`: webhook receivers on this machine are allowed (tests run them).
            WEBHOOK_ALLOW_PRIVATE_TARGETS="true",
        )
        for service in SERVICES:
            prefix = service.upper()
            env[f"{prefix}_DATABASE_URL"] = self.runtime_database_urls[service]
            env[f"{prefix}_AMQP_URL"] = self.runtime_amqp_urls[service]
            env[f"{prefix}_URL"] = self.service_urls[service][0]
            env[f"{prefix}_URLS"] = ",".join(self.service_urls[service])
        env["DOCS_URL"] = env["DOCS_URLS"] = self.docs_url
        env.update(extra)
        return env

    def service_secret(self, service: str) -> str:
        """The client secret of ``service`` in this stack (created by its processes at start-up)."""
        return (self.workdir / "service-secrets" / service).read_text().strip()

    def service_headers(self, client: str, audience: str) -> dict[str, str]:
        """What ``client`` sends on its calls to ``audience``: a service token from identity."""
        response = httpx.post(
            self.service_url("identity") + "/internal/service-tokens",
            json={"grant_type": "client_credentials", "audience": audience},
            auth=(client, self.service_secret(client)),
            timeout=10,
        )
        response.raise_for_status()
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def replicas(self, service: str) -> list[str]:
        """Names of ``service``'s processes: ``["booking", "booking-2", ...]``."""
        return [p.name for p in self.processes.values() if p.service == service]

    def service_url(self, name: str) -> str:
        """The direct address of a service process, bypassing the gateway (for test set-up only)."""
        url = self.process(name).url
        if url is None:
            raise KeyError(f"{name} is not a service process")
        return url

    def migration_environment(self, service: str) -> dict[str, str]:
        """What ``<service> provision`` and ``migrate`` run with: the administrators' URLs too."""
        prefix = service.upper()
        return {
            **self.env,
            f"{prefix}_MIGRATION_DATABASE_URL": self.migration_database_urls[service],
            f"{prefix}_ADMIN_DATABASE_URL": self.database_urls[service],
            "AMQP_ADMIN_URL": self.amqp_url,
        }

    def migrate(self, services: Iterable[str] = SERVICES) -> None:
        """Run ``<service> setup`` (``provision``, then ``migrate``) for each service (in parallel),
        as ``make migrate`` does."""
        services = list(services)
        with ThreadPoolExecutor(len(services)) as pool:
            failures = [f for f in pool.map(self._migrate, services) if f]
        if failures:
            raise StackError("migrations failed:\n" + "\n".join(failures))

    def _migrate(self, service: str) -> str | None:
        """Provision and migrate one service (``<service> setup``); a description of the failure, or None."""
        result = subprocess.run(
            [str(BIN / service), "setup"],
            cwd=ROOT,
            env=self.migration_environment(service),
            capture_output=True,
            text=True,
            timeout=self.startup_timeout,
        )
        if result.returncode == 0:
            return None
        output = "\n".join((result.stdout + result.stderr).splitlines()[-25:])
        return f"--- `{service} setup` exited with {result.returncode}:\n{output}"

    def close(self) -> None:
        """Stop every process, then drop the roles and broker users made for this stack."""
        closed = self._closed
        super().close()
        if not closed:
            self._drop_accounts()

    def _drop_accounts(self) -> None:
        import psycopg
        from psycopg import sql

        for service, admin_url in self.database_urls.items():
            roles = [
                _user_of(self.runtime_database_urls[service]),
                _user_of(self.migration_database_urls[service]),
            ]
            # Objects and grants go to the administrator (the database stays as it was, for its
            # creator to keep or drop); then the roles own nothing and can go.
            with suppress(psycopg.Error), psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
                existing = [
                    r
                    for r in roles
                    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (r,)).fetchone()
                ]
                if existing:
                    names = sql.SQL(", ").join(map(sql.Identifier, existing))
                    conn.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(names))
                    conn.execute(sql.SQL("DROP OWNED BY {}").format(names))
                    conn.execute(sql.SQL("DROP ROLE {}").format(names))
        # One rabbitmqctl (an Erlang VM) per user, all at once.
        ctl = os.environ.get("RABBITMQCTL", "rabbitmqctl")
        deletions: list[subprocess.Popen[bytes]] = []
        for url in self.runtime_amqp_urls.values():
            with suppress(OSError):
                deletions.append(
                    subprocess.Popen(
                        [ctl, "-q", "delete_user", _user_of(url)],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
        for deletion in deletions:
            try:
                deletion.wait(60)
            except subprocess.TimeoutExpired:
                deletion.kill()
                deletion.wait()

    def up(self) -> Stack:
        """Migrate, start every process and wait until the gateway routes to every server.

        The gateway and the docs app start at once, the services once every migration is
        done (``<service> migrate`` also declares the service's queues, so an event published
        at start-up, like the first admin's, reaches every consumer); extra replicas start
        once the first of each service is ready (identity's first replica creates the
        signing key that the others then read).
        """
        self._register()
        try:
            self.jwt_private_key_file.parent.mkdir(parents=True, exist_ok=True)
            self.processes[GATEWAY].start()
            self.processes[DOCS].start()
            self.migrate()
            for service in SERVICES:
                self.processes[service].start()
            first = [self.processes[name] for name in (GATEWAY, *SERVICES, DOCS)]
            self._wait_ready(first)
            self._start_and_wait(p for p in self.processes.values() if p not in first)
            self._wait_routed([p for p in self.processes.values() if _probe_path(p)])
        except BaseException:
            self.close()
            raise
        return self


class Gateway(ProcessGroup):
    """The gateway alone (the Procfile's ``gateway`` entry), routing to the given backends.

    For tests of the routing file itself: ``backends`` maps each service to the URLs of
    stand-in servers, ``identity`` (its first URL) also answers ForwardAuth.
    """

    def __init__(
        self,
        *,
        workdir: Path,
        backends: Mapping[str, list[str]],
        env: Mapping[str, str] | None = None,
        procfile: Path = PROCFILE,
        startup_timeout: float = 30.0,
    ) -> None:
        super().__init__(workdir=workdir, procfile=procfile, startup_timeout=startup_timeout)
        self.backends = {service: list(backends[service]) for service in SERVICES}
        self.env = self.gateway_environment()
        for service in SERVICES:
            self.env[f"{service.upper()}_URLS"] = ",".join(self.backends[service])
        self.env["IDENTITY_URL"] = self.backends["identity"][0]
        self.env.update(env or {})
        self._add_gateway(self.env)

    def up(self) -> Gateway:
        self._register()
        try:
            self._start_and_wait(self.processes.values())
            with self.client() as client:
                wait_until(
                    lambda: client.get("/api/schema/booking/openapi.json").status_code == 200,
                    timeout=self.startup_timeout,
                    what="the gateway routes",
                )
        except BaseException:
            self.close()
            raise
        return self


class StackFactory:
    """Starts stacks for a test session, each on its own databases and vhost; closes them at the end.

    ``start("main")`` uses ``amqp_url``; any other label asks ``make_vhost`` for a vhost of its
    own, so that two stacks' consumers never share queues.
    """

    def __init__(
        self,
        *,
        workdir: Path,
        make_database: Callable[[str], str],
        amqp_url: str,
        make_vhost: Callable[[str], str] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.make_database = make_database
        self.amqp_url = amqp_url
        self.make_vhost = make_vhost
        self.stacks: dict[str, Stack] = {}

    def start(self, label: str = "main", **options: Any) -> Stack:
        """A new, started stack; ``options`` go to ``Stack`` (``replicas=``, ``env=``, ...)."""
        if label in self.stacks:
            raise StackError(f"a stack labelled {label!r} was already started in this session")
        if label == "main":
            amqp_url = self.amqp_url
        elif self.make_vhost is None:
            raise StackError("a second stack needs a vhost of its own: set TEST_AMQP_URL")
        else:
            amqp_url = self.make_vhost(f"{_vhost_of(self.amqp_url)}_{label}")
        names = {s: s if label == "main" else f"{label}_{s}" for s in SERVICES}
        stack = Stack(
            workdir=self.workdir / label,
            database_urls={service: self.make_database(name) for service, name in names.items()},
            amqp_url=amqp_url,
            **options,
        )
        self.stacks[label] = stack
        return stack.up()

    def close_all(self) -> None:
        for stack in self.stacks.values():
            stack.close()


def _user_of(url: str) -> str:
    return unquote(urlsplit(url).username or "")


def _database_of(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _with_login(url: str, user: str, password: str) -> str:
    """``url`` with its user and password replaced."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _libpq(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def _vhost_of(amqp_url: str) -> str:
    vhost = unquote(urlsplit(amqp_url).path.lstrip("/")) or "clinic_test"
    return "clinic_test" if vhost == "/" else vhost
