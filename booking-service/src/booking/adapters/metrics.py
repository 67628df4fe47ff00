"""booking-service's own metrics (chassis.metrics serves them with the HTTP and event ones)."""

from chassis.metrics import counter

BOOKINGS = counter("clinic_bookings_total", "Appointments booked (stored, their timeslot held).")
CANCELLATIONS = counter(
    "clinic_cancellations_total", "Appointments cancelled, by who cancelled them.", ["cancelled_by"]
)
WAITLIST_OFFERS = counter(
    "clinic_waitlist_offers_total",
    "Waitlist offers by what became of them: offered (announced), accepted (booked), expired.",
    ["outcome"],
)
