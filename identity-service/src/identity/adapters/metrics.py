"""identity-service's own metrics (chassis.metrics serves them with the HTTP and event ones)."""

from chassis.metrics import counter

LOGIN_FAILURES = counter(
    "clinic_login_failures_total",
    "Refused logins and wrong current passwords: unknown account, wrong password or deactivated account.",
)
LOGIN_THROTTLES = counter(
    "clinic_login_throttles_total", "Login attempts refused by the throttle (429 login_throttled)."
)
