import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from support import PASSWORD, assert_problem, unique_email

USER_FIELDS = {"id", "email", "full_name", "phone", "role", "is_active", "date_joined"}


def register(client, **fields):
    body = {"email": unique_email(), "password": PASSWORD, "full_name": "Ada Lovelace", **fields}
    return client.post("/api/auth/register/", json=body)


def test_registering_creates_an_active_patient_and_returns_it_without_any_password(client):
    response = register(client, phone="+44 20 7946 0000")
    assert response.status_code == 201
    user = response.json()
    assert set(user) == USER_FIELDS
    assert user["role"] == "patient" and user["is_active"] is True
    assert user["phone"] == "+44 20 7946 0000"
    assert user["date_joined"].endswith("Z") or user["date_joined"].endswith("+00:00")
    assert "password" not in response.text and "argon2" not in response.text


def test_a_doctor_may_register_themselves(client):
    assert register(client, role="doctor").json()["role"] == "doctor"


def test_nobody_can_register_as_an_admin(client):
    body = assert_problem(register(client, role="admin"), 422)
    assert [error["field"] for error in body["errors"]] == ["role"]


def test_the_email_is_stored_lower_cased(client):
    email = unique_email("Mixed.Case").replace("example", "EXAMPLE")
    assert register(client, email=email).json()["email"] == email.lower()


def test_an_email_taken_in_any_letter_case_is_a_conflict(client):
    email = unique_email()
    register(client, email=email)
    assert_problem(register(client, email=email.upper()), 409, "email_taken")


def test_concurrent_registrations_of_one_email_give_one_account_and_one_conflict(client):
    email = unique_email("race")
    barrier = threading.Barrier(4)
    statuses = []

    def attempt(address):
        barrier.wait()
        statuses.append(register(client, email=address).status_code)

    threads = [
        threading.Thread(target=attempt, args=(e,)) for e in (email, email.upper(), email, email.title())
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201, 409, 409, 409]


@pytest.mark.parametrize(
    "password",
    ["short", "12345678901", "password123", "same-as-email"],
    ids=["short", "numeric", "common", "email"],
)
def test_a_weak_password_is_refused_with_a_field_error(client, password):
    email = unique_email()
    response = register(client, email=email, password=email if password == "same-as-email" else password)
    body = assert_problem(response, 422, "weak_password")
    assert {error["field"] for error in body["errors"]} == {"password"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "x" * 250 + "@example.com"}, "email"),
        ({"full_name": "   "}, "full_name"),
        ({"full_name": "A" * 151}, "full_name"),
        ({"phone": "call me maybe"}, "phone"),
        ({"phone": "1" * 33}, "phone"),
        ({"is_active": False}, "is_active"),
    ],
)
def test_invalid_fields_are_refused_with_one_error_per_field(client, fields, field):
    body = assert_problem(register(client, **fields), 422)
    assert [error["field"] for error in body["errors"]] == [field]
    assert all(error["message"] for error in body["errors"])


def test_missing_fields_are_listed(client):
    body = assert_problem(client.post("/api/auth/register/", json={}), 422, "validation_error")
    assert {error["field"] for error in body["errors"]} == {"email", "password", "full_name"}


def test_a_body_that_is_not_json_is_a_bad_request(client):
    response = client.post(
        "/api/auth/register/", content=b'{"email": ', headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 400, "malformed_json")


def test_the_path_without_its_trailing_slash_works_too(client):
    body = {"email": unique_email(), "password": PASSWORD, "full_name": "No Slash"}
    assert client.post("/api/auth/register", json=body).status_code == 201


def test_the_database_itself_refuses_a_second_account_for_an_email(app):
    email = unique_email()
    insert = text(
        "INSERT INTO users (email, password_hash, full_name, role) VALUES (:email, 'x', 'Someone', 'patient')"
    )
    with app.state.db.transaction() as session:
        session.execute(insert, {"email": email})
    with pytest.raises(IntegrityError, match="uq_users_email"), app.state.db.transaction() as session:
        session.execute(insert, {"email": email})
    with (
        pytest.raises(IntegrityError, match="ck_users_email_lower_case"),
        app.state.db.transaction() as session,
    ):
        session.execute(insert, {"email": email.upper()})
