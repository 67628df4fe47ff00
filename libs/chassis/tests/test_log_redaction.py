"""No personal data in logs: statement parameters are hidden, PostgreSQL's quoted values redacted."""

from __future__ import annotations

import logging
import sys

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError

from chassis.auth import TokenVerifier
from chassis.db import Database
from chassis.errors import install_problem_handlers
from chassis.messaging.connection import describe_error
from chassis.observability import JsonFormatter, TextFormatter, redact_database_values

EMAIL = "ada.lovelace.secret@example.com"
PHONE = "+44 20 7946 0999"


@pytest.fixture
def people(db: Database) -> Database:
    with db.transaction() as session:
        session.execute(
            text(
                "CREATE TABLE people (email text CONSTRAINT uq_people_email UNIQUE, phone text, "
                "age int CONSTRAINT ck_people_age CHECK (age >= 0))"
            )
        )
        session.execute(
            text("INSERT INTO people VALUES (:email, :phone, 30)"), {"email": EMAIL, "phone": PHONE}
        )
    return db


def failure_of(db: Database, statement: str, values: dict[str, object]) -> Exception:
    with pytest.raises((IntegrityError, DataError)) as caught, db.transaction() as session:
        session.execute(text(statement), values)
    return caught.value


def logged(exc: Exception, formatter: logging.Formatter) -> str:
    try:
        raise exc
    except Exception:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed: %s", (exc,), sys.exc_info())
    return formatter.format(record)


def test_a_unique_violation_names_its_constraint_but_no_value_in_any_log_format(people):
    exc = failure_of(
        people, "INSERT INTO people VALUES (:email, :phone, 1)", {"email": EMAIL, "phone": PHONE}
    )
    # The exception's own text: parameters hidden by the engine, PostgreSQL's DETAIL still there.
    assert PHONE not in str(exc)
    assert "SQL parameters hidden" in str(exc)
    for formatter in (JsonFormatter("test"), TextFormatter("%(message)s")):
        line = logged(exc, formatter)
        assert "uq_people_email" in line
        assert EMAIL not in line
        assert PHONE not in line
    assert EMAIL not in describe_error(exc)


def test_a_check_violation_does_not_log_the_failing_row(people):
    exc = failure_of(
        people, "INSERT INTO people VALUES (:email, :phone, -1)", {"email": "x" + EMAIL, "phone": PHONE}
    )
    assert "Failing row contains" in str(exc.orig)  # PostgreSQL quotes the whole row...
    line = logged(exc, JsonFormatter("test"))
    assert "ck_people_age" in line
    assert EMAIL not in line and PHONE not in line  # ...which the log line does not


def test_a_refused_input_value_is_not_logged(people):
    exc = failure_of(people, "SELECT CAST(:age AS int)", {"age": PHONE})
    assert PHONE in str(exc.orig)
    assert PHONE not in logged(exc, JsonFormatter("test"))
    assert PHONE not in redact_database_values('value "+44 20 7946 0999" is out of range for type integer')


def test_the_problem_handlers_log_no_value_of_a_failed_statement(people, caplog):
    app = FastAPI()
    install_problem_handlers(app, {})

    @app.post("/people")
    def add(email: str) -> None:
        with people.transaction() as session:
            session.execute(text("INSERT INTO people VALUES (:email, NULL, 1)"), {"email": email})

    @app.get("/age")
    def age(value: str) -> None:
        with people.transaction() as session:
            session.execute(text("SELECT CAST(:value AS int)"), {"value": value})

    app.state.token_verifier = TokenVerifier(lambda kid: None, issuer="i", audience="a")
    client = TestClient(app, raise_server_exceptions=False)
    formatter = JsonFormatter("test")
    with caplog.at_level(logging.INFO):
        duplicate = client.post("/people", params={"email": EMAIL})
        refused = client.get("/age", params={"value": PHONE})
    assert duplicate.status_code == 500
    assert refused.status_code == 422
    for response in (duplicate, refused):
        assert EMAIL not in response.text and PHONE not in response.text
    lines = [formatter.format(record) for record in caplog.records]
    assert any("uq_people_email" in line for line in lines)
    assert not [line for line in lines if EMAIL in line or PHONE in line]
