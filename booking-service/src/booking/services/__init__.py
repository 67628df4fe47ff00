"""booking-service write use cases: booking (the fenced fast path), status changes and
cancellations, rescheduling, scheduling's questions about reservations, and the read models of
users and of doctors' booking policies; every change appends to the appointment's history
(``history``) in its transaction."""

from booking.services.booking import book_appointment
from booking.services.reschedule import reschedule_appointment
from booking.services.reservations import settle_reservation
from booking.services.status import cancel_appointment, change_status
from booking.services.users import cancel_appointments_of_deactivated_user, remember_user

__all__ = [
    "book_appointment",
    "cancel_appointment",
    "cancel_appointments_of_deactivated_user",
    "change_status",
    "remember_user",
    "reschedule_appointment",
    "settle_reservation",
]
