"""The settings fragments keep the chassis's configuration in every class built from them."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from chassis.settings import (
    CHASSIS_SETTINGS_CONFIG,
    AuthSettings,
    BaseServiceSettings,
    BrokerSettings,
    ChassisSettings,
)

FRAGMENTS = (BaseServiceSettings, BrokerSettings, AuthSettings)
KEYS = ("env_file", "env_ignore_empty", "extra", "populate_by_name")


@pytest.mark.parametrize(
    "order", list(itertools.permutations(FRAGMENTS)), ids=lambda o: "-".join(c.__name__ for c in o)
)
def test_a_class_of_the_fragments_in_any_order_has_the_chassis_configuration(order):
    composed = type("Composed", order, {})
    for key in KEYS:
        assert composed.model_config[key] == CHASSIS_SETTINGS_CONFIG[key], key


def test_empty_variables_are_unset_and_unknown_ones_ignored(monkeypatch, tmp_path: Path):
    class Settings(BaseServiceSettings, BrokerSettings, AuthSettings):
        pass

    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("JWT_AUDIENCE=from-env-file\nSOMEONE_ELSES_SETTING=x\nLOG_FORMAT=\n")
    monkeypatch.setenv("AMQP_URL", "")
    monkeypatch.setenv("CLINIC_TIMEZONE", "")
    monkeypatch.setenv("IDENTITY_URL", "http://identity:8001")
    settings = Settings()
    assert settings.amqp_url.startswith("amqp://guest:guest@127.0.0.1")
    assert settings.clinic_timezone == "UTC"
    assert settings.log_format == "json"
    assert settings.identity_url == "http://identity:8001"
    assert settings.jwt_audience == "from-env-file"


def test_mixing_in_a_plain_base_settings_is_refused():
    class Plain(BaseSettings):
        pass

    with pytest.raises(TypeError, match="not a ChassisSettings"):
        type("Broken", (BaseServiceSettings, Plain), {})


def test_every_fragment_is_a_chassis_settings():
    assert all(issubclass(fragment, ChassisSettings) for fragment in FRAGMENTS)


def test_passwords_come_from_files_into_the_urls(monkeypatch, tmp_path: Path):
    from urllib.parse import unquote, urlsplit

    from sqlalchemy.engine import make_url

    class Settings(BaseServiceSettings, BrokerSettings, AuthSettings):
        database_url: str = "postgresql+psycopg://clinic@identity-db:5432/clinic_identity"

    monkeypatch.chdir(tmp_path)
    (tmp_path / "db").write_text("p@ss/wörd:1%\n")
    (tmp_path / "amqp").write_text("s3cret+/?#\n")
    monkeypatch.setenv("DATABASE_PASSWORD_FILE", str(tmp_path / "db"))
    monkeypatch.setenv("AMQP_PASSWORD_FILE", str(tmp_path / "amqp"))
    monkeypatch.setenv("AMQP_URL", "amqp://clinic@rabbitmq:5672/%2F")
    settings = Settings()
    url = make_url(settings.database_url)
    assert (url.username, url.password, url.host, url.database) == (
        "clinic",
        "p@ss/wörd:1%",
        "identity-db",
        "clinic_identity",
    )
    amqp = urlsplit(settings.amqp_url)
    assert (amqp.username, unquote(amqp.password), amqp.hostname, amqp.path) == (
        "clinic",
        "s3cret+/?#",
        "rabbitmq",
        "/%2F",
    )


def test_an_empty_password_file_is_an_error(monkeypatch, tmp_path: Path):
    from pydantic import ValidationError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "amqp").write_text("\n")
    monkeypatch.setenv("AMQP_PASSWORD_FILE", str(tmp_path / "amqp"))
    with pytest.raises(ValidationError, match="empty"):
        BrokerSettings()
