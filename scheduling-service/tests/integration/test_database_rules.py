"""The rules the database itself holds, and the migration that creates them."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, insert, inspect
from sqlalchemy.exc import IntegrityError

from chassis.migrations import alembic_config
from chassis.settings import normalise_database_url
from scheduling.cli import ALEMBIC_INI
from scheduling.models import Base, Doctor, Timeslot

START = datetime(2040, 3, 1, 9, tzinfo=UTC)


@pytest.fixture
def doctor_id(db, new_id) -> int:
    doctor_id = new_id()
    with db.transaction() as session:
        session.add(Doctor(id=doctor_id, is_doctor=True, is_active=True, revision=1))
    return doctor_id


def insert_timeslot(db, doctor_id, start=START, minutes=30, **values):
    with db.transaction() as session:
        session.execute(
            insert(Timeslot).values(
                doctor_id=doctor_id, start_time=start, end_time=start + timedelta(minutes=minutes), **values
            )
        )


def violated(exc: IntegrityError) -> str:
    return exc.value.orig.diag.constraint_name


def test_the_migration_creates_exactly_the_models_tables(database_url):
    engine = create_engine(normalise_database_url(database_url))
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []


def test_the_migration_can_be_undone_and_redone(make_migrated_database):
    url = make_migrated_database(ALEMBIC_INI, "scheduling_downgrade")
    config = alembic_config(ALEMBIC_INI, url)
    command.downgrade(config, "base")
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    assert "timeslots" not in inspect(engine).get_table_names()
    command.upgrade(config, "head")
    assert {"timeslots", "doctors", "outbox_events", "processed_events"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()


def test_overlapping_rows_are_refused_even_without_the_service(db, doctor_id):
    insert_timeslot(db, doctor_id)
    insert_timeslot(db, doctor_id, start=START + timedelta(minutes=30))  # back to back is fine
    with pytest.raises(IntegrityError) as exc:
        insert_timeslot(db, doctor_id, start=START + timedelta(minutes=15))
    assert exc.value.orig.sqlstate == "23P01"
    assert violated(exc) == "ex_timeslots_no_overlap"


@pytest.mark.parametrize(
    ("minutes", "constraint"),
    [
        (0, "ck_timeslots_ends_after_start"),
        (4, "ck_timeslots_length_bounds"),
        (12 * 60 + 1, "ck_timeslots_length_bounds"),
    ],
)
def test_lengths_out_of_bounds_are_refused(db, doctor_id, minutes, constraint):
    with pytest.raises(IntegrityError) as exc:
        insert_timeslot(db, doctor_id, minutes=minutes)
    # PostgreSQL checks CHECK constraints in name order and reports the first that fails.
    assert violated(exc) == constraint


@pytest.mark.parametrize(
    "values",
    [
        {"state": "available", "reservation_id": uuid.uuid4()},
        {"state": "held", "reservation_id": uuid.uuid4()},
        {"state": "held", "held_until": START},
        {"state": "booked"},
        {"state": "booked", "reservation_id": uuid.uuid4(), "held_until": START},
    ],
)
def test_a_state_disagreeing_with_its_reservation_is_refused(db, doctor_id, values):
    with pytest.raises(IntegrityError) as exc:
        insert_timeslot(db, doctor_id, **values)
    assert violated(exc) == "ck_timeslots_state_consistent"


def test_an_unknown_state_is_refused(db, doctor_id):
    with pytest.raises(IntegrityError) as exc:
        insert_timeslot(db, doctor_id, state="cancelled")
    assert violated(exc) in {"ck_timeslots_state_known", "ck_timeslots_state_consistent"}
