import io
import threading

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from support import CHEAP_HASHING_ENV, PASSWORD, unique_email

from identity import cli
from identity.main import create_app
from identity.models import User


@pytest.fixture
def environment(monkeypatch, database_url):
    monkeypatch.setenv("DATABASE_URL", database_url)
    for name, value in CHEAP_HASHING_ENV.items():
        monkeypatch.setenv(name, value)


def createadmin(monkeypatch, email: str, stdin: str = PASSWORD + "\n", full_name: str = "Root Admin") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return cli.main(["createadmin", "--email", email, "--full-name", full_name, "--password-stdin"])


def test_createadmin_creates_an_admin_who_can_log_in(monkeypatch, capsys, environment, api):
    email = unique_email("root")
    assert createadmin(monkeypatch, email.upper()) == 0
    assert f"Admin {email} created" in capsys.readouterr().out
    tokens = api.login(email)
    assert api.verify(tokens).headers["x-user-role"] == "admin"


def test_createadmin_prompts_twice_for_the_password(monkeypatch, environment, api):
    answers = iter([PASSWORD, PASSWORD])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    email = unique_email("root")
    assert cli.main(["createadmin", "--email", email, "--full-name", "Prompted"]) == 0
    assert api.login(email)["access"]


def test_createadmin_refuses_passwords_that_do_not_match(monkeypatch, capsys, environment):
    answers = iter([PASSWORD, PASSWORD + "!"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert cli.main(["createadmin", "--email", unique_email(), "--full-name", "Typo"]) == 1
    assert "do not match" in capsys.readouterr().err


def test_createadmin_refuses_a_weak_password(monkeypatch, capsys, environment):
    assert createadmin(monkeypatch, unique_email(), stdin="12345678\n") == 1
    assert "numeric" in capsys.readouterr().err


def test_createadmin_refuses_an_invalid_email_or_a_blank_name(monkeypatch, capsys, environment):
    assert createadmin(monkeypatch, "not-an-email") == 1
    assert createadmin(monkeypatch, unique_email(), full_name="  ") == 1
    err = capsys.readouterr().err
    assert "email" in err and "full_name" in err


def test_createadmin_says_so_when_the_email_belongs_to_another_account(monkeypatch, capsys, environment, api):
    patient = api.register()
    assert createadmin(monkeypatch, patient["email"]) == 1
    assert "existing patient account" in capsys.readouterr().err
    email = unique_email("root")
    createadmin(monkeypatch, email)
    assert createadmin(monkeypatch, email) == 1
    assert "already an admin" in capsys.readouterr().err


def count_users(app, email: str) -> int:
    with app.state.db.sessions() as session:
        return session.scalar(select(func.count()).select_from(User).where(User.email == email))


def test_replicas_starting_at_once_create_the_admin_of_admin_email_once(make_settings, app, api):
    email = unique_email("boot")
    settings = make_settings(admin_email=email.upper(), admin_password="a strong admin secret")
    replicas = [create_app(settings) for _ in range(3)]
    barrier = threading.Barrier(len(replicas))
    errors = []

    def start(replica):
        barrier.wait()
        try:
            with TestClient(replica):
                pass
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(replica,)) for replica in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert count_users(app, email) == 1
    tokens = api.login(email, "a strong admin secret")
    assert api.verify(tokens).headers["x-user-role"] == "admin"


def test_admin_email_of_an_existing_account_does_not_promote_it(make_settings, api):
    patient = api.register()
    replica = create_app(make_settings(admin_email=patient["email"], admin_password="a strong admin secret"))
    with TestClient(replica):
        pass
    assert api.verify(api.login(patient["email"])).headers["x-user-role"] == "patient"


def test_a_weak_admin_password_stops_the_start_up(make_settings):
    replica = create_app(make_settings(admin_email=unique_email("boot"), admin_password="password123"))
    with pytest.raises(RuntimeError, match="ADMIN_PASSWORD"), TestClient(replica):
        pass
