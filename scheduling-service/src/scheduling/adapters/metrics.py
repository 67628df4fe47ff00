"""scheduling-service's own metrics (chassis.metrics serves them with the HTTP and event ones).

Holds over their life: ``created`` (a booking took a timeslot), ``confirmed`` (its booking's
event, or the sweeper finding the appointment, made it a booking), ``expired`` (the sweeper
freed it: booking has no appointment for it) and ``freed`` (booking released it, or cancelled
the appointment). The sweeper's last completed pass is a timestamp: an alert fires when it
stops moving (deploy/observability/alerts.yml, ``ClinicHoldSweeperStuck``).
"""

from chassis.metrics import counter, gauge

HOLDS_CREATED = counter("clinic_holds_created_total", "Timeslot holds taken for a booking.")
HOLDS_CONFIRMED = counter("clinic_holds_confirmed_total", "Holds that became a booked timeslot.")
HOLDS_EXPIRED = counter(
    "clinic_holds_expired_total",
    "Holds past their expiry that the sweeper freed (no appointment was stored).",
)
HOLDS_FREED = counter(
    "clinic_holds_freed_total", "Held or booked timeslots freed by booking (release or cancellation)."
)
SWEEPER_LAST_PASS = gauge(
    "clinic_hold_sweeper_last_pass_timestamp_seconds",
    "When the hold sweeper last completed a pass (Unix time).",
)
SWEEPER_FAILURES = counter("clinic_hold_sweeper_failures_total", "Hold sweeper passes that failed.")
