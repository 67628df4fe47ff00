"""Least privilege: a service's PostgreSQL roles and database, and its RabbitMQ user.

``<service> provision`` runs this with the administrators' URLs (a role that may create
roles and databases, the broker's administrator), before ``<service> migrate``; running it
again is harmless and is how passwords are rotated. Every name and password comes from the
service's own URLs, so no setting names a role twice.

PostgreSQL, for ``<SERVICE>_DATABASE_URL`` = ``postgresql://clinic_booking:…@host/clinic_booking``
and ``<SERVICE>_MIGRATION_DATABASE_URL`` = ``postgresql://clinic_booking_owner:…@host/clinic_booking``:

- the owner role owns the database, so migrations (run as it) create and own every table,
  function and trigger in it; it may create the trusted extensions the migrations ask for
  (``pg_trgm``, ``btree_gist``) and nothing outside its database;
- the runtime role may connect to that database only, and read and write its tables and
  sequences (default privileges of the owner): no DDL, no TRUNCATE, no other database;
- neither is a superuser nor may create databases or roles; ``CONNECT`` is revoked from
  ``PUBLIC``, so no other service's role connects to the database;
- objects a previous set-up created under another role (a database migrated as ``postgres``)
  are handed to the owner role.

A URL without a password leaves the role without one (the local server trusts 127.0.0.1);
a new password in a URL replaces the role's. A role that is a superuser, or the
administrator itself, is never altered: one URL for everything keeps working as before.

RabbitMQ, for ``<SERVICE>_AMQP_URL`` = ``amqp://clinic_booking:…@host/vhost``: the user with no
tags, and on that vhost ``broker_permissions``: publish only its own routing keys on
``clinic.events``, consume only its own queues, declare nothing (``<service> migrate``
declares the topology as the administrator). Users are created with ``rabbitmqctl`` on the
broker's machine, or through the management API when its URL is given.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from chassis.messaging.topology import EXCHANGE, ServiceQueues, check_service_name

log = logging.getLogger("chassis.provisioning")


@dataclass(frozen=True, slots=True)
class Login:
    """A user name and its password (None: none), taken from a URL."""

    name: str
    password: str | None

    @classmethod
    def of(cls, url: str) -> Login:
        parts = urlsplit(url)
        if not parts.username:
            raise ValueError(f"{_redacted(url)} names no user")
        password = unquote(parts.password) if parts.password is not None else None
        return cls(unquote(parts.username), password)


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    return url.replace(f":{parts.password}@", ":***@", 1) if parts.password else url


def _libpq(url: str, database: str | None = None) -> str:
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


# --- PostgreSQL -----------------------------------------------------------------------------


def provision_database(admin_url: str, runtime_url: str, migration_url: str) -> None:
    """Create or update the owner and runtime roles of ``runtime_url``'s database, and the database."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    database = make_url(runtime_url).database
    if not database or make_url(migration_url).database != database:
        raise ValueError("the database URL and the migration database URL must name the same database")
    servers = {
        (make_url(url).host or "localhost", make_url(url).port or 5432) for url in (admin_url, runtime_url)
    }
    if len(servers) > 1:
        raise ValueError(
            f"the administrator's URL names another server than the database URL ({_redacted(runtime_url)}): "
            "set <SERVICE>_ADMIN_DATABASE_URL to a role of that server that may create roles and databases"
        )
    runtime, owner = Login.of(runtime_url), Login.of(migration_url)
    with psycopg.connect(_libpq(admin_url), autocommit=True, connect_timeout=10) as admin:
        admin_role = admin.execute("SELECT current_user").fetchone()[0]
        managed = {
            login.name
            for login in {runtime, owner}
            if login.name != admin_role and not _is_superuser(admin, login.name)
        }
        for login in {runtime, owner}:
            if login.name in managed:
                _ensure_role(admin, login)
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
            admin.execute(
                sql.SQL("ALTER DATABASE {} OWNER TO {}").format(*map(sql.Identifier, (database, owner.name)))
            )
        else:
            admin.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(*map(sql.Identifier, (database, owner.name)))
            )
        if runtime.name == owner.name or runtime.name not in managed:
            return  # one role for everything (or a superuser): nothing to separate
        admin.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database)))
        for login in (owner, runtime):
            admin.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    *map(sql.Identifier, (database, login.name))
                )
            )
    with psycopg.connect(_libpq(admin_url, database), autocommit=True, connect_timeout=10) as conn:
        _adopt_objects(conn, owner.name)
        names = {"owner": sql.Identifier(owner.name), "runtime": sql.Identifier(runtime.name)}
        for statement in _SCHEMA_GRANTS:
            conn.execute(sql.SQL(statement).format(**names))


# The runtime role reads and writes rows; the owner (migrations) does everything else.
_SCHEMA_GRANTS = (
    "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
    "GRANT USAGE ON SCHEMA public TO {runtime}",
    "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
    "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {runtime}",
    "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
    "GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {runtime}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {runtime}",
    "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {runtime}",
)


def _is_superuser(conn: object, role: str) -> bool:
    row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,)).fetchone()  # type: ignore[attr-defined]
    return bool(row and row[0])


def _ensure_role(conn: object, login: Login) -> None:
    from psycopg import sql

    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login.name,)).fetchone()  # type: ignore[attr-defined]
    verb = "ALTER" if exists else "CREATE"
    password = sql.Literal(login.password) if login.password is not None else sql.SQL("NULL")
    conn.execute(  # type: ignore[attr-defined]
        sql.SQL(
            "{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {}"
        ).format(sql.SQL(verb), sql.Identifier(login.name), password)
    )
    if not exists:
        log.info("created the PostgreSQL role %s", login.name)


# Objects of schema public that are not the owner's and not an extension's: a database that was
# migrated before the roles were separated. Sequences owned by a column follow their table.
_FOREIGN_OBJECTS = """
SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                      ELSE 'TABLE' END, quote_ident(c.relname)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND pg_get_userbyid(c.relowner) <> %(owner)s
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND d.deptype IN ('e', 'a', 'i'))
UNION ALL
SELECT 'FUNCTION', p.oid::regprocedure::text
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace AND n.nspname = 'public'
WHERE pg_get_userbyid(p.proowner) <> %(owner)s
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                  AND d.deptype = 'e')
UNION ALL
SELECT 'TYPE', t.oid::regtype::text
FROM pg_type t
JOIN pg_namespace n ON n.oid = t.typnamespace AND n.nspname = 'public'
WHERE t.typtype IN ('e', 'd', 'r') AND pg_get_userbyid(t.typowner) <> %(owner)s
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid
                  AND d.deptype = 'e')
"""


def _adopt_objects(conn: object, owner: str) -> None:
    from psycopg import sql

    for kind, name in conn.execute(_FOREIGN_OBJECTS, {"owner": owner}).fetchall():  # type: ignore[attr-defined]
        conn.execute(  # type: ignore[attr-defined]
            sql.SQL("ALTER {} {} OWNER TO {}").format(sql.SQL(kind), sql.SQL(name), sql.Identifier(owner))
        )


# --- RabbitMQ -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BrokerPermissions:
    """A service user's permissions on its vhost (regular expressions, as RabbitMQ takes them)."""

    configure: str
    write: str
    read: str
    topic_write: str
    topic_read: str = "^$"


def broker_permissions(service: str, *, consumes: bool) -> BrokerPermissions:
    """What ``service``'s broker user may do.

    Declare nothing (``configure``); publish to ``clinic.events`` (only routing keys
    ``<service>.…``: the topic permission) and, for a consumer, to ``<service>.requeue``
    (its retries, dead letters and replays); read only its own queue and dead-letter queue.
    Never the default exchange, which would reach any queue of the vhost by name.
    """
    queues = ServiceQueues(check_service_name(service))
    exchanges = [EXCHANGE] + ([queues.requeue_exchange] if consumes else [])
    write = "^(" + "|".join(re.escape(e) for e in exchanges) + ")$"
    read = f"^({re.escape(queues.main)}|{re.escape(queues.dlq)})$" if consumes else "^$"
    return BrokerPermissions(configure="^$", write=write, read=read, topic_write=f"^{re.escape(service)}\\.")


def provision_broker_user(
    amqp_url: str,
    service: str,
    *,
    consumes: bool,
    admin_url: str,
    management_url: str | None = None,
    rabbitmqctl: str = "rabbitmqctl",
) -> bool:
    """Create or update the user of ``amqp_url`` with ``broker_permissions`` on its vhost.

    Returns False (and changes nothing) when that user is the administrator itself.
    """
    user, admin = Login.of(amqp_url), Login.of(admin_url)
    if user.name == admin.name:
        return False
    if not user.password:
        raise ValueError(f"{_redacted(amqp_url)}: a broker user needs a password")
    vhost = unquote(urlsplit(amqp_url).path[1:]) or "/"
    permissions = broker_permissions(service, consumes=consumes)
    if management_url:
        _provision_over_http(management_url, admin, vhost, user, permissions)
    else:
        _provision_with_rabbitmqctl(rabbitmqctl, vhost, user, permissions)
    return True


def _provision_with_rabbitmqctl(ctl: str, vhost: str, user: Login, permissions: BrokerPermissions) -> None:
    """One ``rabbitmqctl import_definitions`` (each call starts an Erlang VM), from stdin: the
    password travels hashed, never on a command line that ``ps`` shows."""
    command = shlex.split(ctl)  # e.g. RABBITMQCTL="sudo rabbitmqctl"
    if not command or shutil.which(command[0]) is None:
        raise RuntimeError(f"{ctl} not found: {_BROKER_USER_HINT.format(user=user.name)}")
    definitions = {
        "users": [
            {
                "name": user.name,
                "password_hash": rabbitmq_password_hash(user.password or ""),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": "",
            }
        ],
        "permissions": [
            {
                "user": user.name,
                "vhost": vhost,
                "configure": permissions.configure,
                "write": permissions.write,
                "read": permissions.read,
            }
        ],
        "topic_permissions": [
            {
                "user": user.name,
                "vhost": vhost,
                "exchange": EXCHANGE,
                "write": permissions.topic_write,
                "read": permissions.topic_read,
            }
        ],
    }
    result = subprocess.run(
        [*command, "-q", "import_definitions"],
        input=json.dumps(definitions),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{ctl} import_definitions failed: {result.stderr.strip()}\n"
            + _BROKER_USER_HINT.format(user=user.name)
        )


_BROKER_USER_HINT = (
    "creating the broker user {user} needs rabbitmqctl on the broker's machine as a user that may run "
    "it (RABBITMQCTL, e.g. 'sudo rabbitmqctl'), or the broker's management API (RABBITMQ_MANAGEMENT_URL); "
    "or give every service one broker user with AMQP_URL (no per-service permissions then)"
)


def rabbitmq_password_hash(password: str) -> str:
    """RabbitMQ's default password hash (``rabbit_password_hashing_sha256``): base64 of a 4-byte
    salt followed by SHA-256 of the salt and the UTF-8 password."""
    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


_HTTP_ATTEMPTS = 30


def _provision_over_http(
    management_url: str, admin: Login, vhost: str, user: Login, permissions: BrokerPermissions
) -> None:
    base = management_url.rstrip("/") + "/api"
    token = base64.b64encode(f"{admin.name}:{admin.password or ''}".encode()).decode()

    def put(path: str, body: dict[str, str]) -> None:
        request = urllib.request.Request(
            base + path,
            data=json.dumps(body).encode(),
            method="PUT",
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        )
        # The management listener may come up a little after the broker answers its health check.
        for attempt in range(_HTTP_ATTEMPTS):
            try:
                with urllib.request.urlopen(request, timeout=30):  # noqa: S310 (the operator's own URL)
                    return
            except urllib.error.HTTPError:
                raise
            except (urllib.error.URLError, ConnectionError) as exc:
                if attempt == _HTTP_ATTEMPTS - 1:
                    raise RuntimeError(
                        f"the broker's management API at {base} does not answer: {exc}"
                    ) from exc
                time.sleep(2)

    v, u = quote(vhost, safe=""), quote(user.name, safe="")
    put(f"/users/{u}", {"password": user.password or "", "tags": ""})
    put(
        f"/permissions/{v}/{u}",
        {"configure": permissions.configure, "write": permissions.write, "read": permissions.read},
    )
    put(
        f"/topic-permissions/{v}/{u}",
        {"exchange": EXCHANGE, "write": permissions.topic_write, "read": permissions.topic_read},
    )
