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


def test_every_url_takes_its_own_password_file_as_compose_mounts_them(monkeypatch, tmp_path: Path):
    """docker-compose.yml's migration job: five URLs naming only their users, five files."""
    from sqlalchemy.engine import make_url

    from chassis.settings import (
        PASSWORD_FILES,
        admin_database_url_field,
        amqp_url_field,
        database_url_field,
        migration_database_url_field,
    )

    class Settings(BaseServiceSettings, BrokerSettings, AuthSettings):
        database_url: str = database_url_field("booking")
        migration_database_url: str | None = migration_database_url_field("booking")
        admin_database_url: str = admin_database_url_field("booking")
        amqp_url: str = amqp_url_field("booking")

    monkeypatch.chdir(tmp_path)
    env = {
        "BOOKING_DATABASE_URL": "postgresql+psycopg://clinic_booking@booking-db:5432/clinic_booking",
        "BOOKING_MIGRATION_DATABASE_URL": "postgresql+psycopg://clinic_booking_owner@booking-db:5432/clinic_booking",
        "BOOKING_ADMIN_DATABASE_URL": "postgresql+psycopg://clinic@booking-db:5432/postgres",
        "BOOKING_AMQP_URL": "amqp://clinic_booking@rabbitmq:5672/%2F",
        "AMQP_ADMIN_URL": "amqp://clinic@rabbitmq:5672/%2F",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for file_setting in PASSWORD_FILES.values():
        (tmp_path / file_setting).write_text(f"pw-{file_setting}\n")
        monkeypatch.setenv(file_setting.upper(), str(tmp_path / file_setting))
    settings = Settings()
    for url_setting, file_setting in PASSWORD_FILES.items():
        url = make_url(getattr(settings, url_setting).replace("amqp://", "postgresql://"))
        assert url.password == f"pw-{file_setting}", url_setting
    assert make_url(settings.migration_database_url).username == "clinic_booking_owner"
    assert make_url(settings.admin_database_url).username == "clinic"


def test_an_unset_migration_url_is_the_database_url_with_its_file_password(monkeypatch, tmp_path: Path):
    from sqlalchemy.engine import make_url

    from chassis.settings import database_url_field, migration_database_url_field

    class Settings(BaseServiceSettings, BrokerSettings, AuthSettings):
        database_url: str = database_url_field("doctor")
        migration_database_url: str | None = migration_database_url_field("doctor")

    monkeypatch.chdir(tmp_path)
    (tmp_path / "db").write_text("secret\n")
    monkeypatch.setenv("DOCTOR_DATABASE_URL", "postgresql+psycopg://clinic_doctor@doctor-db/clinic_doctor")
    monkeypatch.setenv("DATABASE_PASSWORD_FILE", str(tmp_path / "db"))
    settings = Settings()
    assert make_url(settings.migration_database_url).password == "secret"
