"""Gets the machine ready for the local stack, and says exactly what is missing when it is not.

    preflight.py servers    PostgreSQL and RabbitMQ answer (TEST_* URLs with --test)
    preflight.py migrate    ... and each service's database exists and is migrated
    preflight.py run        ... and the stack's ports are free and identity's key folder exists

The environment is read the way ``honcho start`` reads it: the process environment with
``.env`` (if present) on top, so preflight prepares exactly what the Procfile will run.
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
SERVICES = ("identity", "doctor", "scheduling", "booking")

DEFAULT_POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
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
    """Each service's database URL, read as the services read it."""
    urls = {}
    for service in SERVICES:
        urls[service] = (
            env.get(f"{service.upper()}_DATABASE_URL")
            or env.get("DATABASE_URL")
            or f"{DEFAULT_POSTGRES_SERVER}/clinic_{service}"
        )
    if len(set(urls.values())) < len(urls):
        shared = ", ".join(sorted(s for s in urls if list(urls.values()).count(urls[s]) > 1))
        raise PreflightError(
            f"{shared} would share one database (is DATABASE_URL set?); each service owns its own: set "
            "IDENTITY_DATABASE_URL, DOCTOR_DATABASE_URL, SCHEDULING_DATABASE_URL and BOOKING_DATABASE_URL."
        )
    return urls


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


def create_database(database_url: str) -> bool:
    """Create the database of ``database_url`` unless it exists; True if it was created."""
    import psycopg
    from psycopg import sql

    conninfo, name = _maintenance_conninfo(database_url)
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def migrate(service: str, database_url: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``<service> migrate`` against ``database_url``."""
    env = dict(env, **{f"{service.upper()}_DATABASE_URL": database_url})
    return subprocess.run(
        [str(BIN / service), "migrate"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def prepare_databases(env: Mapping[str, str]) -> None:
    urls = database_urls(env)
    for service, url in urls.items():
        if create_database(url):
            say(f"created database {_maintenance_conninfo(url)[1]} ({service})")
    with ThreadPoolExecutor(len(urls)) as pool:
        results = dict(zip(urls, pool.map(lambda s: migrate(s, urls[s], env), urls), strict=True))
    failed = {service: result for service, result in results.items() if result.returncode != 0}
    for service, result in failed.items():
        sys.stderr.write(result.stdout + result.stderr)
        say(f"`{service} migrate` failed (exit {result.returncode})")
    if failed:
        raise PreflightError(f"migrations failed: {', '.join(failed)}")
    say(f"databases migrated: {', '.join(urls)}")


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
        check_servers(list(database_urls(env).values()), env.get("AMQP_URL") or DEFAULT_AMQP_URL)
        if args.step in {"migrate", "run"}:
            prepare_databases(env)
        if args.step == "run":
            check_ports_free(env)
            prepare_signing_key_folder(env)
    except PreflightError as exc:
        say(str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
