"""Doctors' schedules and timeslots as FHIR Schedule and Slot (scheduling.fhir)."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from fhir.resources.R4B.schedule import Schedule
from fhir.resources.R4B.slot import Slot

from chassis.errors import ProblemException
from scheduling.fhir import schedule_of, slot_of, slot_status

START = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)


def row(is_free: bool) -> SimpleNamespace:
    return SimpleNamespace(
        id=3, doctor_id=7, start_time=START, end_time=START + timedelta(minutes=30), is_free=is_free
    )


def test_a_timeslot_is_a_slot_of_its_doctors_schedule():
    data = slot_of(row(is_free=True)).model_dump(mode="json")
    assert Slot.model_validate(data).status == "free"
    assert data == {
        "resourceType": "Slot",
        "id": "3",
        "schedule": {"reference": "Schedule/7"},
        "status": "free",
        "start": "2030-03-04T09:00:00Z",
        "end": "2030-03-04T09:30:00Z",
    }
    assert slot_of(row(is_free=False)).status == "busy"


def test_a_schedule_is_the_doctors_with_the_doctors_id():
    data = schedule_of(7).model_dump(mode="json")
    assert Schedule.model_validate(data).id == "7"
    assert data["actor"] == [{"reference": "Practitioner/7"}]
    assert data["active"] is True


@pytest.mark.parametrize(
    ("value", "wanted"), [(None, None), ("free", True), ("busy", False), ("free,busy", None)]
)
def test_the_status_parameter_is_free_busy_or_either(value, wanted):
    assert slot_status(value) == wanted


@pytest.mark.parametrize("value", ["", "booked", "free,maybe"])
def test_any_other_status_is_refused(value):
    with pytest.raises(ProblemException) as raised:
        slot_status(value)
    assert raised.value.status == 422
