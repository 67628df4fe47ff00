"""booking's internal calls: POST /internal/timeslots/{id}/hold and /release."""

import asyncio
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from chassis.db import app_reads
from chassis.testkit.http_contracts import checked
from scheduling.models import Timeslot
from scheduling.services.doctors import apply_user_state


@pytest.fixture
def timeslot(client, doctor, when, rfc3339) -> dict:
    _, headers = doctor
    start = when(60, 9) + timedelta(minutes=uuid.uuid4().int % 600)
    body = {"start_time": rfc3339(start), "end_time": rfc3339(start + timedelta(minutes=30))}
    response = client.post("/api/timeslots/", json=body, headers=headers)
    assert response.status_code == 201
    return response.json()


def hold(client, timeslot_id, patient_id, headers, reservation_id=None):
    body = {"reservation_id": str(reservation_id or uuid.uuid4()), "patient_id": patient_id}
    return checked(client, "scheduling").post(
        f"/internal/timeslots/{timeslot_id}/hold", json=body, headers=headers
    )


def release(client, timeslot_id, reservation_id, headers):
    return checked(client, "scheduling").post(
        f"/internal/timeslots/{timeslot_id}/release",
        json={"reservation_id": str(reservation_id)},
        headers=headers,
    )


def own(client, timeslot, headers) -> dict:
    return client.get(f"/api/timeslots/{timeslot['id']}/", headers=headers).json()


def test_a_patient_holds_a_free_timeslot_for_a_while(client, timeslot, doctor, new_id, callers, from_booking):
    patient_id = new_id()
    response = hold(client, timeslot["id"], patient_id, from_booking)
    assert response.status_code == 200
    body = response.json()
    assert body["timeslot_id"] == timeslot["id"]
    assert body["doctor_id"] == timeslot["doctor_id"]
    assert (body["start_time"], body["end_time"]) == (timeslot["start_time"], timeslot["end_time"])
    held_until = datetime.fromisoformat(body["held_until"])
    assert timedelta(seconds=20) < held_until - datetime.now(UTC) <= timedelta(seconds=30)
    assert own(client, timeslot, doctor[1])["is_available"] is False


def test_of_fifty_concurrent_holds_exactly_one_wins(client, timeslot, new_id, callers, from_booking):
    patients = [new_id() for _ in range(50)]
    barrier = threading.Barrier(50)

    def attempt(patient_id: int) -> int:
        headers = from_booking
        barrier.wait()
        return hold(client, timeslot["id"], patient_id, headers).status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(attempt, patients))
    assert sorted(statuses) == [200] + [409] * 49


def test_holding_again_with_the_same_reservation_is_idempotent(
    client, timeslot, new_id, callers, from_booking
):
    patient_id = new_id()
    headers = from_booking
    reservation = uuid.uuid4()
    first = hold(client, timeslot["id"], patient_id, headers, reservation)
    again = hold(client, timeslot["id"], patient_id, headers, reservation)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()


def test_a_timeslot_held_by_another_reservation_is_not_available(
    client, timeslot, new_id, callers, from_booking
):
    first, second = new_id(), new_id()
    assert hold(client, timeslot["id"], first, from_booking).status_code == 200
    response = hold(client, timeslot["id"], second, from_booking)
    assert response.status_code == 409
    assert response.json()["code"] == "timeslot_not_available"


def test_a_doctor_cannot_book_their_own_timeslot(client, timeslot, doctor, callers, from_booking):
    doctor_id, _ = doctor
    # A doctor who also holds a patient token (the same user id) is refused.
    response = hold(client, timeslot["id"], doctor_id, from_booking)
    assert response.status_code == 409
    assert response.json()["code"] == "cannot_book_own_timeslot"


def test_a_started_timeslot_cannot_be_held(client, db, timeslot, new_id, callers, from_booking):
    with db.transaction() as session:
        session.execute(
            update(Timeslot)
            .where(Timeslot.id == timeslot["id"])
            .values(
                start_time=datetime.now(UTC) - timedelta(minutes=5),
                end_time=datetime.now(UTC) + timedelta(minutes=25),
            )
        )
    patient_id = new_id()
    response = hold(client, timeslot["id"], patient_id, from_booking)
    assert response.status_code == 422
    assert response.json()["code"] == "timeslot_started"


def test_an_unknown_timeslot_or_an_inactive_doctors_timeslot_is_404(
    client, db, timeslot, doctor, new_id, callers, from_booking
):
    patient_id = new_id()
    headers = from_booking
    assert hold(client, 999_999_999_999, patient_id, headers).status_code == 404
    with db.transaction() as session:
        apply_user_state(session, user_id=doctor[0], role="doctor", is_active=False, revision=1)
    assert hold(client, timeslot["id"], patient_id, headers).status_code == 404


def test_only_bookings_service_token_holds_and_releases(client, timeslot, doctor, new_id, callers, minter):
    patient_id = new_id()
    for headers in ({}, callers("patient", patient_id).headers, callers("admin", patient_id).headers):
        assert hold(client, timeslot["id"], patient_id, headers).status_code == 401
        assert release(client, timeslot["id"], uuid.uuid4(), headers).status_code == 401
    # A service token of another service, or one meant for another audience.
    for caller, audience, status in (("doctor", "scheduling", 403), ("booking", "booking", 401)):
        headers = {"Authorization": f"Bearer {minter.service_token(caller, audience)}"}
        response = hold(client, timeslot["id"], patient_id, headers)
        assert response.status_code == status
        assert response.headers["content-type"] == "application/problem+json"
    # booking's own token twice over, or beside another's: one credential per request.
    bookings = f"Bearer {minter.service_token('booking', 'scheduling')}"
    for other in (bookings, f"Bearer {minter.service_token('doctor', 'scheduling')}"):
        response = client.post(
            f"/internal/timeslots/{timeslot['id']}/hold",
            json={"reservation_id": str(uuid.uuid4()), "patient_id": patient_id},
            headers=[("Authorization", bookings), ("Authorization", other)],
        )
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_request"'
    assert own(client, timeslot, doctor[1])["is_available"] is True


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"reservation_id": "not-a-uuid", "patient_id": 1},
        {"reservation_id": str(uuid.uuid4()), "patient_id": "1"},
    ],
)
def test_a_malformed_hold_is_422(client, timeslot, body, from_booking):
    response = client.post(f"/internal/timeslots/{timeslot['id']}/hold", json=body, headers=from_booking)
    assert response.status_code == 422


def test_release_frees_only_the_matching_reservations_hold(
    client, timeslot, doctor, new_id, callers, from_booking
):
    patient_id = new_id()
    headers = from_booking
    reservation = uuid.uuid4()
    assert hold(client, timeslot["id"], patient_id, headers, reservation).status_code == 200

    assert release(client, timeslot["id"], uuid.uuid4(), headers).status_code == 204
    assert own(client, timeslot, doctor[1])["is_available"] is False

    assert release(client, timeslot["id"], reservation, headers).status_code == 204
    assert own(client, timeslot, doctor[1])["is_available"] is True
    # Releasing twice, or an unknown timeslot, is a harmless no-op.
    assert release(client, timeslot["id"], reservation, headers).status_code == 204
    assert release(client, 999_999_999_999, reservation, headers).status_code == 204


def test_a_held_timeslot_cannot_be_deleted(client, timeslot, doctor, new_id, callers, from_booking):
    patient_id = new_id()
    assert hold(client, timeslot["id"], patient_id, from_booking).status_code == 200
    response = client.delete(f"/api/timeslots/{timeslot['id']}/", headers=doctor[1])
    assert response.status_code == 409
    assert response.json()["code"] == "timeslot_reserved"


def test_held_timeslots_are_listed_as_unavailable_to_their_doctor(
    client, timeslot, doctor, new_id, callers, from_booking
):
    patient_id = new_id()
    hold(client, timeslot["id"], patient_id, from_booking)
    taken = client.get("/api/timeslots/", params={"is_available": "false"}, headers=doctor[1]).json()
    free = client.get("/api/timeslots/", params={"is_available": "true"}, headers=doctor[1]).json()
    assert [t["id"] for t in taken["results"]] == [timeslot["id"]]
    assert free["results"] == []


def test_internal_endpoints_are_not_in_the_public_api_document(client):
    paths = client.get("/api/schema/scheduling/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/internal")]


class ReleasedRightAfterTheUpdate:
    """The app's ``FastReads``, with ``release()`` done (once) right after a hold's UPDATE found
    the timeslot taken, before the hold reads the row to say why: the moment a contested
    timeslot is freed."""

    def __init__(self, reads, release):
        self.reads, self.release = reads, release

    async def write(self, statement, values):
        held = await self.reads.write(statement, values)
        if held is None and self.release is not None:
            release, self.release = self.release, None
            await asyncio.to_thread(release)
        return held


def test_a_hold_that_finds_the_timeslot_freed_after_its_update_holds_it(
    client, timeslot, new_id, callers, from_booking
):
    # A 200 means the reservation holds the timeslot: never a 200 for a hold that took nothing
    # (then a second reservation could hold the same timeslot).
    first, second = uuid.uuid4(), uuid.uuid4()
    assert hold(client, timeslot["id"], new_id(), from_booking, first).status_code == 200
    freed = ReleasedRightAfterTheUpdate(
        client.app.state.reads, lambda: release(client, timeslot["id"], first, from_booking)
    )
    client.app.dependency_overrides[app_reads] = lambda: freed
    try:
        held = hold(client, timeslot["id"], new_id(), from_booking, second)
    finally:
        client.app.dependency_overrides.pop(app_reads)

    assert freed.release is None  # the release did come in between
    assert held.status_code == 200, held.text
    assert held.json()["held_until"] is not None
    other = hold(client, timeslot["id"], new_id(), from_booking)
    assert other.status_code == 409
    assert release(client, timeslot["id"], second, from_booking).status_code == 204
    assert hold(client, timeslot["id"], new_id(), from_booking).status_code == 200
