"""The hand-written migration builds exactly the tables the models describe, constraints included."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, insert, text
from sqlalchemy.exc import IntegrityError

from booking.models import Appointment, Base
from chassis.migrations import upgrade
from chassis.settings import normalise_database_url

from ..conftest import ALEMBIC_INI


@pytest.fixture
def engine(database_url):
    engine = create_engine(normalise_database_url(database_url))
    yield engine
    engine.dispose()


def test_the_migrated_schema_matches_the_models(engine):
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == []


def row(timeslot_id: int, status: str, **extra) -> dict:
    start = datetime.now(UTC) + timedelta(days=1)
    return {
        "reservation_id": uuid.uuid4(),
        "timeslot_id": timeslot_id,
        "doctor_id": 1,
        "patient_id": 2,
        "start_time": start,
        "end_time": start + timedelta(minutes=30),
        "status": status,
        "cancelled_by": "patient" if status == "cancelled" else None,
        **extra,
    }


def violated_constraint(engine, *rows: dict) -> str | None:
    try:
        with engine.begin() as conn:
            for values in rows:
                conn.execute(insert(Appointment), values)
    except IntegrityError as exc:
        return exc.orig.diag.constraint_name
    return None


def test_one_timeslot_has_at_most_one_active_appointment(engine, new_id):
    slot = new_id()
    assert (
        violated_constraint(engine, row(slot, "pending"), row(slot, "confirmed"))
        == "uq_appointments_active_timeslot"
    )


def test_a_timeslot_keeps_any_number_of_inactive_appointments_beside_one_active(engine, new_id):
    slot = new_id()
    rows = [row(slot, "cancelled"), row(slot, "cancelled"), row(slot, "completed"), row(slot, "pending")]
    assert violated_constraint(engine, *rows) is None


def test_a_reservation_becomes_at_most_one_appointment(engine, new_id):
    reservation = uuid.uuid4()
    first, second = (
        row(new_id(), "pending", reservation_id=reservation),
        row(new_id(), "pending", reservation_id=reservation),
    )
    assert violated_constraint(engine, first, second) == "uq_appointments_reservation_id"


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        ({"status": "lost"}, "ck_appointments_status_known"),
        ({"end_time": datetime.now(UTC)}, "ck_appointments_ends_after_start"),
        ({"status": "cancelled", "cancelled_by": None}, "ck_appointments_cancelled_by_iff_cancelled"),
        ({"reason": "x" * 501}, "ck_appointments_reason_length"),
    ],
)
def test_the_database_refuses_inconsistent_appointments(engine, new_id, values, constraint):
    assert violated_constraint(engine, {**row(new_id(), "pending"), **values}) == constraint


def test_appointments_booked_before_0007_keep_the_cancellation_notice_they_were_judged_by(
    make_database,
):
    url = make_database("booking_notice_backfill")
    upgrade(ALEMBIC_INI, url, "0006")
    engine = create_engine(normalise_database_url(url))
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO doctor_policies (doctor_id, cancellation_notice_minutes, revision)"
                    " VALUES (1, 1440, 1), (3, 0, 1)"
                )
            )
            past = datetime.now(UTC) - timedelta(days=1)
            for timeslot_id, doctor_id, status, start in [
                (1, 1, "pending", None),  # a notice
                (3, 3, "pending", None),  # a policy without one
                (5, 5, "pending", None),  # no policy at all
                (7, 1, "cancelled", None),  # nobody cancels or moves these: not rewritten
                (9, 1, "completed", past),
            ]:
                values = row(timeslot_id, status) | {"doctor_id": doctor_id}
                if start is not None:
                    values |= {"start_time": start, "end_time": start + timedelta(minutes=30)}
                columns = ", ".join(values)
                conn.execute(
                    text(f"INSERT INTO appointments ({columns}) VALUES (:{', :'.join(values)})"), values
                )
        upgrade(ALEMBIC_INI, url)
        with engine.connect() as conn:
            kept = conn.execute(
                text("SELECT timeslot_id, cancellation_notice_minutes, revision FROM appointments")
            ).all()
    finally:
        engine.dispose()
    # The calendar feeds' SEQUENCE (``revision``) does not move: nothing the patient sees changed.
    assert sorted(map(tuple, kept)) == [(1, 1440, 0), (3, 0, 0), (5, 0, 0), (7, 0, 0), (9, 0, 0)]


def test_an_appointment_inserted_without_its_notice_gets_its_doctors_as_an_older_replica_would(
    engine, new_id
):
    # In a rolling upgrade, replicas of the release before 0007 keep booking, and their inserts
    # do not name the column: such an appointment takes its doctor's notice, not 0 (which would
    # let its patient cancel it up to the last minute whatever the doctor's policy).
    strict, lax, named = new_id(), new_id(), new_id()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO doctor_policies (doctor_id, cancellation_notice_minutes, revision)"
                " VALUES (:doctor, 1440, 1)"
            ),
            {"doctor": strict},
        )
        for doctor in (strict, lax):  # as the old release writes it
            values = row(new_id(), "pending") | {"doctor_id": doctor}
            columns = ", ".join(values)
            conn.execute(text(f"INSERT INTO appointments ({columns}) VALUES (:{', :'.join(values)})"), values)
        # As this release writes it: the notice it read named, and kept.
        conn.execute(
            insert(Appointment),
            row(new_id(), "pending") | {"doctor_id": named, "cancellation_notice_minutes": 30},
        )
        found = dict(
            conn.execute(
                text(
                    "SELECT doctor_id, cancellation_notice_minutes FROM appointments"
                    " WHERE doctor_id IN (:strict, :lax, :named)"
                ),
                {"strict": strict, "lax": lax, "named": named},
            ).all()
        )
    assert found == {strict: 1440, lax: 0, named: 30}
