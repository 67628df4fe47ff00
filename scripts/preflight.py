"""Gets the machine ready for the local stack, and says exactly what is missing when it is not.

    preflight.py servers    PostgreSQL and RabbitMQ answer (TEST_* URLs with --test)
    preflight.py migrate    ... and each service is provisioned and migrated
    preflight.py run        ... and the stack's ports are free and identity's key folder exists

The environment is read the way ``honcho start`` reads it: the process environment with
``.env`` (if present) on top, so preflight prepares exactly what the Procfile will run.

Least privilege: the servers are checked, and each service provisioned, with the
administrators' URLs (``<SERVICE>_ADMIN_DATABASE_URL`` / ``ADMIN_DATABASE_URL``, default the
``postgres`` superuser; ``AMQP_ADMIN_URL``, default guest). ``<service> provision`` creates the
service's database, its owner role (``clinic_<service>_owner``, which ``<service> migrate`` runs
as) and its runtime role and broker user (``clinic_<service>``), which the Procfile's processes
run as (docs/local-stack.md).
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SERVICES = ("identity", "doctor", "scheduling", "booking", "notification")

DEFAULT_ADMIN_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_AMQP_ADMIN_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_TEST_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_JWT_PRIVATE_KEY_FILE = "var/jwt/private.pem"

START_POSTGRES = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
START_RABBITMQ = "rabbitmq-server -detached"

# Process-environment variables naming each port of the Procfile, with CONVENTIONS.md's defaults.
PORTS = {
    "GATEWAY_PORT": ("GATEWAY_HOST", 8000),
    "GATEWAY_ADMIN_PORT": ("GATEWAY_HOST", 8080),
    "IDENTITY_PORT": ("SERVICE_HOST", 8001),
    "DOCTOR_PORT": ("SERVICE_HOST", 8002),
    "SCHEDULING_PORT": ("SERVICE_HOST", 8003),
    "BOOKING_PORT": ("SERVICE_HOST", 8004),
    "DOCS_PORT": ("SERVICE_HOST", 8005),
    "NOTIFICATION_PORT": ("SERVICE_HOST", 8006),
}


class PreflightError(Exception):
    """Something the stack needs is missing; the message says what and how to fix it."""


def say(message: str) -> None:
    sys.stderr.write(f"preflight: {message}\n")


def stack_environment(root: Path = ROOT) -> dict[str, str]:
    """``os.environ`` with ``.env`` on top: what honcho gives each Procfile process."""
    from honcho.environ import parse

    env = dict(os.environ)
    dotenv = root / ".env"
    if dotenv.is_file():
        env.update(parse(dotenv.read_text()))
    return env


def database_urls(env: Mapping[str, str]) -> dict[str, str]:
    """Each service's database URL, read as the services read it (chassis.settings)."""
    urls = {}
    for service in SERVICES:
        urls[service] = (
            env.get(f"{service.upper()}_DATABASE_URL")
            or env.get("DATABASE_URL")
            or f"postgresql+psycopg://clinic_{service}@127.0.0.1:5432/clinic_{service}"
        )
    if len({_maintenance_conninfo(url)[1] for url in urls.values()}) < len(urls):
        names = [_maintenance_conninfo(url)[1] for url in urls.values()]
        shared = ", ".join(sorted(s for s, n in zip(urls, names, strict=True) if names.count(n) > 1))
        raise PreflightError(
            f"{shared} would share one database (is DATABASE_URL set?); each service owns its own: set "
            "IDENTITY_DATABASE_URL, DOCTOR_DATABASE_URL, SCHEDULING_DATABASE_URL, BOOKING_DATABASE_URL and "
            "NOTIFICATION_DATABASE_URL."
        )
    return urls


def migration_database_urls(env: Mapping[str, str]) -> dict[str, str]:
    """Each service's schema owner's URL, read as the services read it (chassis.settings)."""
    urls = {}
    for service in SERVICES:
        explicit = env.get(f"{service.upper()}_DATABASE_URL") or env.get("DATABASE_URL")
        urls[service] = (
            env.get(f"{service.upper()}_MIGRATION_DATABASE_URL")
            or env.get("MIGRATION_DATABASE_URL")
            or explicit
            or f"postgresql+psycopg://clinic_{service}_owner@127.0.0.1:5432/clinic_{service}"
        )
    return urls


def admin_database_urls(env: Mapping[str, str]) -> dict[str, str]:
    """Each service's administrator URL, which ``<service> provision`` creates its roles with."""
    return {
        service: env.get(f"{service.upper()}_ADMIN_DATABASE_URL")
        or env.get("ADMIN_DATABASE_URL")
        or DEFAULT_ADMIN_DATABASE_URL
        for service in SERVICES
    }


def amqp_admin_url(env: Mapping[str, str]) -> str:
    """The broker administrator's URL, as ``chassis.settings`` reads it."""
    return env.get("AMQP_ADMIN_URL") or env.get("AMQP_URL") or DEFAULT_AMQP_ADMIN_URL


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def _reachable(host: str, port: int) -> str | None:
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _maintenance_conninfo(database_url: str) -> tuple[str, str]:
    """A libpq URL of the server's ``postgres`` database, and the database name of ``database_url``."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    server = url.set(drivername="postgresql", database="postgres")
    return server.render_as_string(hide_password=False), url.database or ""


def check_postgres(database_url: str) -> None:
    import psycopg

    host, port = _host_port(database_url, 5432)
    problem = _reachable(host, port)
    if problem:
        raise PreflightError(
            f"PostgreSQL is not reachable at {host}:{port} ({problem}). Start it with:\n    {START_POSTGRES}"
        )
    conninfo, _ = _maintenance_conninfo(database_url)
    try:
        psycopg.connect(conninfo, connect_timeout=5).close()
    except psycopg.Error as exc:
        raise PreflightError(f"PostgreSQL at {host}:{port} refused the connection: {exc}".strip()) from exc


def free_connection_slots(database_url: str) -> tuple[int, int]:
    """(free, max_connections) of the PostgreSQL server: max_connections minus the client
    connections open now (every database, every user)."""
    import psycopg

    conninfo, _ = _maintenance_conninfo(database_url)
    with psycopg.connect(conninfo, connect_timeout=5) as conn:
        maximum, current = conn.execute(
            "SELECT current_setting('max_connections')::int,"
            " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
        ).fetchone()
    return maximum - current, maximum


def check_connection_slots(database_url: str, needed: int, what: str) -> None:
    """Fail at once when the server has fewer free connection slots than ``needed``."""
    free, maximum = free_connection_slots(database_url)
    if free < needed:
        raise PreflightError(
            f"PostgreSQL has {free} free connections of max_connections={maximum}; {what} needs "
            f"{needed}. Something else holds the rest (make run, another test run: "
            "SELECT datname, count(*) FROM pg_stat_activity GROUP BY 1): stop it, or raise "
            "max_connections."
        )


def check_rabbitmq(amqp_url: str) -> None:
    import pika
    import pika.exceptions

    host, port = _host_port(amqp_url, 5672)
    problem = _reachable(host, port)
    if problem:
        raise PreflightError(
            f"RabbitMQ is not reachable at {host}:{port} ({problem}). Start it with:\n    {START_RABBITMQ}"
        )
    params = pika.URLParameters(amqp_url)
    params.socket_timeout = params.blocked_connection_timeout = 5
    params.connection_attempts = 1
    try:
        pika.BlockingConnection(params).close()
    except pika.exceptions.AMQPError as exc:
        raise PreflightError(
            f"RabbitMQ at {host}:{port} refused the login or virtual host of {_redacted(amqp_url)}: {exc!r}"
        ) from exc


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


def check_servers(database_urls: list[str], amqp_url: str) -> None:
    """Both servers answer; otherwise one error that names every server that is down."""
    problems = []
    for url in dict.fromkeys(database_urls):
        try:
            check_postgres(url)
        except PreflightError as exc:
            problems.append(str(exc))
    try:
        check_rabbitmq(amqp_url)
    except PreflightError as exc:
        problems.append(str(exc))
    if problems:
        raise PreflightError("\n".join(problems))


def provision_and_migrate(service: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``<service> setup``: ``provision`` (roles, database, broker user), then ``migrate``."""
    result = subprocess.run(
        [str(BIN / service), "setup"], cwd=ROOT, env=dict(env), capture_output=True, text=True, timeout=300
    )
    result.args = f"{service} setup"
    return result


def prepare_databases(env: Mapping[str, str]) -> None:
    urls = database_urls(env)
    with ThreadPoolExecutor(len(urls)) as pool:
        results = dict(zip(urls, pool.map(lambda s: provision_and_migrate(s, env), urls), strict=True))
    failed = {service: result for service, result in results.items() if result.returncode != 0}
    for result in failed.values():
        sys.stderr.write(result.stdout + result.stderr)
        say(f"`{result.args}` failed (exit {result.returncode})")
    if failed:
        raise PreflightError(f"provisioning or migrations failed: {', '.join(failed)}")
    say(f"databases provisioned and migrated: {', '.join(urls)}")


def check_ports_free(env: Mapping[str, str]) -> None:
    busy = []
    for variable, (host_variable, default) in PORTS.items():
        host = env.get(host_variable) or "127.0.0.1"
        port = int(env.get(variable) or default)
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                busy.append(f"{host}:{port} ({variable})")
    if busy:
        raise PreflightError(
            f"already in use: {', '.join(busy)}. Is the stack already running? "
            "Stop it, or choose other ports in .env."
        )


def prepare_signing_key_folder(env: Mapping[str, str]) -> None:
    if env.get("JWT_PRIVATE_KEY"):
        return
    key_file = ROOT / (env.get("JWT_PRIVATE_KEY_FILE") or DEFAULT_JWT_PRIVATE_KEY_FILE)
    key_file.parent.mkdir(parents=True, exist_ok=True)
    if not key_file.exists():
        say(f"identity will create its signing key in {key_file}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("step", choices=["servers", "migrate", "run"])
    parser.add_argument(
        "--test", action="store_true", help="check the servers of TEST_DATABASE_URL and TEST_AMQP_URL"
    )
    args = parser.parse_args(argv)
    env = stack_environment()
    try:
        if args.test:
            check_servers(
                [env.get("TEST_DATABASE_URL") or DEFAULT_TEST_DATABASE_URL],
                env.get("TEST_AMQP_URL") or DEFAULT_TEST_AMQP_URL,
            )
            return 0
        database_urls(env)  # each service its own database
        check_servers(list(admin_database_urls(env).values()), amqp_admin_url(env))
        if args.step in {"migrate", "run"}:
            prepare_databases(env)
        if args.step == "run":
            check_ports_free(env)
            prepare_signing_key_folder(env)
            if not env.get("SMTP_URL"):
                say(
                    "SMTP_URL is not set: notification-service sends no mail (webhooks still go out); "
                    "README.md shows how to watch mail locally with a small SMTP sink"
                )
    except PreflightError as exc:
        say(str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
