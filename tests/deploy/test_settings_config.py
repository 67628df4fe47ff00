"""Each service's Settings, built from the environment compose gives its containers.

The compose file passes some variables empty (``${JWT_PRIVATE_KEY:-}``, ``${ADMIN_EMAIL:-}``):
the services must read an empty value as "not set" (the chassis's ``env_ignore_empty``) and
keep the rest of the chassis's configuration (``env_file``, ``extra="ignore"``) whatever the
order of the fragments their Settings are built from.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from .conftest import SERVICES, compose, environment_of

# The chassis's configuration (chassis.settings), as the services must end up with it.
EXPECTED = {"env_file": ".env", "env_ignore_empty": True, "extra": "ignore", "populate_by_name": True}


@pytest.fixture
def compose_environment(monkeypatch, tmp_path):
    """A process environment holding only what compose gives a container (and PATH)."""

    def apply(container: str) -> dict[str, str]:
        for name in list(os.environ):
            if name != "PATH":
                monkeypatch.delenv(name)
        monkeypatch.chdir(tmp_path)  # no developer's .env
        env = environment_of(compose()["services"][container])
        for name, value in env.items():
            if value.startswith("/run/secrets/"):  # the compose secret, as mounted: a file
                value = str(tmp_path / value.removeprefix("/run/secrets/"))
                (tmp_path / Path(value).name).write_text(f"sample-{Path(value).name}\n")
                env[name] = value
            monkeypatch.setenv(name, value)
        return env

    return apply


@pytest.mark.parametrize("service", SERVICES)
def test_the_settings_class_has_the_chassis_configuration(service):
    settings = importlib.import_module(f"{service}.config").Settings
    effective = {key: settings.model_config.get(key) for key in EXPECTED}
    assert effective == EXPECTED


@pytest.mark.parametrize("container", [*SERVICES, *(f"{s}-migrate" for s in SERVICES)])
def test_the_settings_build_from_the_compose_environment(container, compose_environment):
    service = container.removesuffix("-migrate")
    env = compose_environment(container)
    settings = importlib.import_module(f"{service}.config").Settings()
    # The URLs with the passwords of their secret files (compose names only the users).
    from chassis.settings import PASSWORD_FILES

    fields = type(settings).model_fields
    applied = 0
    for url_field, file_field in PASSWORD_FILES.items():
        variable = fields[file_field].validation_alias
        if variable not in env:
            continue
        url = urlsplit(getattr(settings, url_field))
        assert url.password == f"sample-{Path(env[variable]).name}", url_field
        bare = url._replace(netloc=url.netloc.replace(f":{url.password}@", "@")).geturl()
        assert urlsplit(bare).password is None
        applied += 1
    assert env["DATABASE_PASSWORD_FILE"] and env["AMQP_PASSWORD_FILE"]
    # A service: its own two; a migration job: all five.
    assert applied == (5 if container.endswith("-migrate") else 2)
    assert settings.database_url == env[f"{service.upper()}_DATABASE_URL"].replace(
        f"clinic_{service}@", f"clinic_{service}:sample-{service}_db_password@", 1
    )
    empty = [name for name, value in env.items() if value == ""]
    for name, field in type(settings).model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str) and alias in empty:
            # Empty in the compose environment: the field keeps its default.
            assert getattr(settings, name) == field.get_default(call_default_factory=True), alias


def test_compose_passes_empty_values_the_test_above_covers():
    env = environment_of(compose()["services"]["identity"])
    assert env["JWT_PRIVATE_KEY"] == ""
    assert env["ADMIN_PASSWORD"] == ""


def test_identity_with_an_empty_private_key_uses_its_key_file(compose_environment, tmp_path):
    from identity.adapters.keys import load_key_ring
    from identity.config import Settings

    env = compose_environment("identity")
    assert env["JWT_PRIVATE_KEY"] == ""
    key_file = tmp_path / "jwt" / "private.pem"
    os.environ["JWT_PRIVATE_KEY_FILE"] = str(key_file)
    settings = Settings()
    assert settings.jwt_private_key is None
    ring = load_key_ring(settings)  # compose's empty variable crashed this (MalformedFraming)
    assert key_file.is_file()
    assert load_key_ring(Settings()).kid == ring.kid  # the same key on the next start


@pytest.mark.parametrize("blank", ["", " ", "\n"])
def test_identity_reads_a_blank_private_key_as_none(blank, monkeypatch, tmp_path):
    from identity.config import Settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JWT_PRIVATE_KEY", blank)
    assert Settings().jwt_private_key is None
