"""Who a booking is for, and who may see an appointment: booking's rules, without HTTP."""

import pytest

from booking.domain import AppointmentStatus, may_see, patient_booking, takes_timeslot
from booking.errors import BookingNotAllowed


def test_a_patient_books_for_themselves_only():
    assert patient_booking("patient", 7) == 7
    for role in ("doctor", "admin"):
        with pytest.raises(BookingNotAllowed):
            patient_booking(role, 7)


def test_an_appointment_is_seen_by_its_patient_its_doctor_and_admins():
    assert may_see("patient", 1, patient_id=1, doctor_id=2)
    assert may_see("doctor", 2, patient_id=1, doctor_id=2)
    assert may_see("admin", 99, patient_id=1, doctor_id=2)
    assert not may_see("patient", 3, patient_id=1, doctor_id=2)
    assert not may_see("doctor", 3, patient_id=1, doctor_id=2)


def test_every_appointment_but_a_cancelled_one_keeps_its_timeslot():
    assert [s for s in AppointmentStatus if not takes_timeslot(s)] == [AppointmentStatus.CANCELLED]
