"""The stack under test: one the bench starts (default), or a running one (``--attach``).

Either way the bench needs the same few things: the gateway's URL, each service's
database (for the bulk seed and for checks), identity's signing key (to mint tokens),
and the processes of each service (to sample their memory).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("identity", "doctor", "scheduling", "booking", "notification")
PROCESSES = ("gateway", *SERVICES)
# docs/CONVENTIONS.md's local ports, for a stack started by `make run`.
DEFAULT_PORTS = {
    "gateway": 8000,
    "identity": 8001,
    "doctor": 8002,
    "scheduling": 8003,
    "booking": 8004,
    "notification": 8006,
}
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"

# The services' own defaults (DB pool, log level, password hashing) are what `make run` runs with:
# the bench's stack must not inherit the e2e harness's test settings for these.
HARNESS_TEST_SETTINGS = (
    "DB_POOL_SIZE",
    "DB_MAX_OVERFLOW",
    "DB_READ_POOL_SIZE",
    "LOG_LEVEL",
    "PASSWORD_HASH_TIME_COST",
    "PASSWORD_HASH_MEMORY_COST",
)


def libpq_url(url: str) -> str:
    """A SQLAlchemy-style URL (``postgresql+psycopg://``) as a libpq one."""
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


@dataclass
class Target:
    """What the bench drives and inspects."""

    base_url: str
    database_urls: dict[str, str]  # libpq URLs
    jwt_private_key_file: Path
    jwt_issuer: str = "clinic-identity"
    jwt_audience: str = "clinic"
    clinic_timezone: str = "UTC"
    description: str = ""
    log_dir: Path | None = None
    _pids: dict[str, object] = field(default_factory=dict)

    def pids(self) -> dict[str, list[int]]:
        """Each process name (gateway, identity, ...) → the pids of its processes now."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop what the bench started (nothing for an attached stack)."""


# -- a stack of the bench's own ----------------------------------------------------------


def _import_harness():
    # The e2e harness (tests/e2e/stack.py) starts the Procfile's command lines for real.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.e2e import stack as harness

    return harness


def create_databases(server_url: str, run_id: str) -> dict[str, str]:
    """A fresh database per service on ``server_url``: ``clinic_bench_<run>_<service>``."""
    server = libpq_url(server_url)
    urls = {}
    with psycopg.connect(server, autocommit=True) as conn:
        for service in SERVICES:
            name = f"clinic_bench_{run_id}_{service}"
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            parts = urlsplit(server)
            urls[service] = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
    return urls


def drop_databases(server_url: str, urls: Mapping[str, str]) -> None:
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        for url in urls.values():
            name = urlsplit(url).path.lstrip("/")
            with suppress(psycopg.Error):
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _rabbitmqctl(*args: str) -> None:
    ctl = os.environ.get("RABBITMQCTL", "rabbitmqctl")
    if shutil.which(ctl) is None:
        raise RuntimeError(f"{ctl} not found: the bench creates a RabbitMQ vhost of its own with it")
    subprocess.run([ctl, "-q", *args], check=True, capture_output=True, timeout=60)


def create_vhost(server_url: str, vhost: str) -> str:
    parts = urlsplit(server_url)
    with suppress(subprocess.CalledProcessError):
        _rabbitmqctl("delete_vhost", vhost)
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, parts.username or "guest", ".*", ".*", ".*")
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), parts.query, ""))


class OwnStack(Target):
    """The whole stack, started from the Procfile by the e2e harness, on databases of its own."""

    def __init__(self, *, postgres_url: str, amqp_url: str, env: Mapping[str, str], keep: bool) -> None:
        harness = _import_harness()
        self.run_id = uuid.uuid4().hex[:8]
        self.postgres_url = postgres_url
        self.amqp_server = amqp_url
        self.keep = keep
        self.workdir = Path(tempfile.mkdtemp(prefix=f"clinic-bench-{self.run_id}-"))
        self.vhost = f"clinic_bench_{self.run_id}"
        database_urls = create_databases(postgres_url, self.run_id)
        vhost_url = create_vhost(amqp_url, self.vhost)

        class BenchStack(harness.Stack):
            def _environment(self, extra: Mapping[str, str]) -> dict[str, str]:
                environment = super()._environment(extra)
                for name in HARNESS_TEST_SETTINGS:
                    if name not in extra:
                        environment.pop(name, None)
                # The harness checks health every second (tests restart servers); use the default.
                for name in ("GATEWAY_HEALTHCHECK_INTERVAL", "GATEWAY_HEALTHCHECK_UNHEALTHY_INTERVAL"):
                    if name not in extra:
                        environment.pop(name, None)
                return environment

        stack_env = {"GATEWAY_BENCH_ROUTES": "1", **env}
        self.stack = BenchStack(
            workdir=self.workdir,
            database_urls=dict(database_urls),
            amqp_url=vhost_url,
            env=stack_env,
            startup_timeout=90.0,
        )
        super().__init__(
            base_url=self.stack.base_url,
            database_urls=database_urls,
            jwt_private_key_file=self.stack.jwt_private_key_file,
            clinic_timezone=self.stack.env.get("CLINIC_TIMEZONE", "UTC"),
            description=f"a stack of its own (databases clinic_bench_{self.run_id}_*, vhost {self.vhost})",
            log_dir=self.stack.log_dir,
        )

    def up(self) -> OwnStack:
        self.stack.up()
        return self

    def pids(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for name, process in self.stack.processes.items():
            if process.pid is None or not process.running:
                continue
            found[name] = process_group_members(process.pid)
        return found

    def close(self) -> None:
        self.stack.close()
        if not self.keep:
            drop_databases(self.postgres_url, self.database_urls)
            with suppress(Exception):
                _rabbitmqctl("delete_vhost", self.vhost)
            shutil.rmtree(self.workdir, ignore_errors=True)


def process_group_members(pgid: int) -> list[int]:
    """The pids of the processes of group ``pgid`` (the shell, uvicorn and its workers)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


# -- a running stack (make run) ------------------------------------------------------------


class AttachedStack(Target):
    """A stack started elsewhere (``make run``); settings read as preflight reads them (.env on top)."""

    def __init__(self, base_url: str) -> None:
        if str(ROOT / "scripts") not in sys.path:
            sys.path.insert(0, str(ROOT / "scripts"))
        import preflight

        env = preflight.stack_environment()
        self.env = env
        # The schema owners' URLs: seeding ends with VACUUM ANALYZE, which the services' own roles
        # may not run (docs/local-stack.md, "Roles and users").
        urls = {service: libpq_url(url) for service, url in preflight.migration_database_urls(env).items()}
        key_file = Path(env.get("JWT_PRIVATE_KEY_FILE") or preflight.DEFAULT_JWT_PRIVATE_KEY_FILE)
        if not key_file.is_absolute():
            key_file = ROOT / key_file
        if env.get("JWT_PRIVATE_KEY"):
            raise SystemExit("bench: JWT_PRIVATE_KEY is set; --attach mints tokens from JWT_PRIVATE_KEY_FILE")
        super().__init__(
            base_url=base_url.rstrip("/"),
            database_urls=urls,
            jwt_private_key_file=key_file,
            jwt_issuer=env.get("JWT_ISSUER") or "clinic-identity",
            jwt_audience=env.get("JWT_AUDIENCE") or "clinic",
            clinic_timezone=env.get("CLINIC_TIMEZONE") or "UTC",
            description=f"the running stack at {base_url}",
        )

    def _port(self, name: str) -> int:
        return int(self.env.get(f"{name.upper()}_PORT") or DEFAULT_PORTS[name])

    def pids(self) -> dict[str, list[int]]:
        listeners = listening_inodes()
        owners = socket_owners()
        found = {}
        for name in PROCESSES:
            inodes = listeners.get(self._port(name), set())
            pids = sorted({pid for inode in inodes for pid in owners.get(inode, ())})
            if pids:
                found[name] = pids
        return found


def listening_inodes() -> dict[int, set[int]]:
    """Port → inodes of the TCP sockets listening on it."""
    ports: dict[int, set[int]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if fields[3] != "0A":  # LISTEN
                    continue
                port = int(fields[1].rsplit(":", 1)[1], 16)
                ports.setdefault(port, set()).add(int(fields[9]))
    return ports


def socket_owners() -> dict[int, list[int]]:
    """Socket inode → pids holding it open (uvicorn's workers share their parent's socket)."""
    owners: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with suppress(OSError):
                    link = os.readlink(fd)
                    if link.startswith("socket:["):
                        owners.setdefault(int(link[8:-1]), []).append(int(entry.name))
    return owners
