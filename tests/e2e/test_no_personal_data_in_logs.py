"""No personal data or secrets in any log line (issue 13): emails, phone numbers, passwords,
appointment reasons, search terms and tokens go through every service and the gateway, and none
of them shows up in what any process logged, nor in an error body that did not need it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from .api import login, problem, register
from .stack import Stack, StackFactory, wait_until


@pytest.fixture(scope="module")
def chatty_stack(stacks: StackFactory) -> Iterator[Stack]:
    """A stack of its own that logs at DEBUG (every request, not only the failed and slow ones)."""
    stack = stacks.start("logs", env={"LOG_LEVEL": "DEBUG"})
    yield stack
    stack.close()


def test_no_email_phone_password_reason_search_or_token_reaches_a_log(chatty_stack: Stack):
    stack = chatty_stack
    marker = uuid.uuid4().hex[:10]
    email = f"secret-{marker}@clinic.example.com"
    digits = str(uuid.uuid4().int)[:8]
    phone = f"+44 20 {digits[:4]} {digits[4:]}"
    password = f"Hidden-{marker}-pass"
    reason = f"embarrassing symptom {marker}"
    search = f"searchterm{marker}"
    marks = stack.log_marks()
    secrets: list[str] = [email, phone, password, reason, search]
    bodies: list[str] = []

    with stack.client() as client:
        patient = register(client, email=email, password=password, full_name="Pat Private", phone=phone)
        # Taken email (a unique violation inside identity), a weak password, wrong credentials.
        bodies.append(
            problem(
                client.post(
                    "/api/auth/register/",
                    json={"email": email, "password": password, "full_name": "Again", "phone": phone},
                ),
                409,
            )["detail"]
        )
        bodies.append(
            client.post(
                "/api/auth/register/",
                json={"email": f"weak-{email}", "password": "12345678", "full_name": "Weak", "phone": phone},
            ).text
        )
        bodies.append(
            problem(client.post("/api/auth/login/", json={"email": email, "password": password + "x"}), 401)[
                "detail"
            ]
        )
        tokens = login(client, email, password)
        secrets += [tokens["access"], tokens["refresh"]]
        refreshed = client.post("/api/auth/token/refresh/", json={"refresh": tokens["refresh"]})
        assert refreshed.status_code == 200, refreshed.text
        access = refreshed.json()["access"]
        secrets += [access, refreshed.json()["refresh"]]
    with stack.client(access) as client:
        assert client.patch("/api/auth/me/", json={"phone": phone + "1"}).status_code == 200
        bodies.append(
            problem(
                client.patch(
                    "/api/auth/me/",
                    json={"password": password + "-new", "current_password": password + "-wrong"},
                ),
                422,
            )["detail"]
        )
        assert client.get(f"/api/doctors/?search={search}").status_code == 200

    with stack.client() as client:
        doctor = register(client, role="doctor", full_name=f"Dr {marker}")
        doctor_access = login(client, doctor["email"], "Blue-Otter-42")["access"]
        admin_access = login(client, stack.admin.email, stack.admin.password)["access"]
    with stack.client(admin_access) as client:
        found = client.get("/api/users/", params={"search": email})
        assert found.status_code == 200 and found.json()["count"] == 1
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    with stack.client(doctor_access) as client:
        created = client.post(
            "/api/timeslots/",
            json={"start_time": start.isoformat(), "end_time": (start + timedelta(minutes=30)).isoformat()},
        )
        assert created.status_code == 201, created.text
    with stack.client(access) as client:
        booked = client.post(
            "/api/appointments/", json={"timeslot_id": created.json()["id"], "reason": reason}
        )
        assert booked.status_code == 201, booked.text
        # Refused input that names the reason in a field of the wrong type.
        bodies.append(client.post("/api/appointments/", json={"timeslot_id": reason, "reason": reason}).text)

    # Wait until booking's event reached scheduling (its consumer logged what it logs about it).
    def booked_at_scheduling() -> bool:
        with stack.client(access) as client:
            listing = client.get(f"/api/doctors/{doctor['id']}/timeslots/")
        return all(slot["id"] != created.json()["id"] for slot in listing.json()["results"])

    wait_until(booked_at_scheduling, timeout=20, what="the booked timeslot to leave the free listing")
    assert patient["phone"] == phone

    logs = {name: process.log_text(marks.get(name, 0)) for name, process in stack.processes.items()}
    assert logs["gateway"], "the gateway logged nothing: the test would prove nothing"
    assert any("/api/appointments/" in text for text in logs.values())
    for name, text in logs.items():
        leaked = [secret for secret in secrets if secret in text]
        assert not leaked, f"{name} logged {leaked}"
    for body in bodies:
        assert not [secret for secret in secrets if secret in body], body
