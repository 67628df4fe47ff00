"""The hand-written migration builds exactly the tables the models describe, constraints included."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, insert
from sqlalchemy.exc import IntegrityError

from booking.models import Appointment, Base
from chassis.settings import normalise_database_url


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
