"""What an operator reads on /metrics as webhooks and mails go out (or do not): attempts and
their outcomes, the delivery lag, and what is still undelivered (read when Prometheus scrapes),
through real HTTP receivers and a real SMTP server."""

from collections.abc import Callable

from prometheus_client import REGISTRY


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Moves:
    """The metrics' values since the test started (counters are the process's, shared by tests)."""

    def __init__(self, *series: tuple[str, dict[str, str]]) -> None:
        self.series = series
        self.before = [metric(name, **labels) for name, labels in series]

    def now(self) -> list[float]:
        return [
            metric(name, **labels) - before
            for (name, labels), before in zip(self.series, self.before, strict=True)
        ]

    def wait_for(self, wait_until: Callable, expected: list[float]) -> None:
        wait_until(lambda: self.now() == expected, timeout=30)


def webhook(outcome: str) -> tuple[str, dict[str, str]]:
    return "clinic_notification_deliveries_total", {"channel": "webhook", "outcome": outcome}


def mail(outcome: str) -> tuple[str, dict[str, str]]:
    return "clinic_notification_deliveries_total", {"channel": "mail", "outcome": outcome}


def attempts(channel: str) -> tuple[str, dict[str, str]]:
    return "clinic_notification_attempts_total", {"channel": channel}


def lags(channel: str) -> tuple[str, dict[str, str]]:
    return "clinic_notification_delivery_lag_seconds_count", {"channel": channel}


def test_a_webhook_that_fails_once_then_is_delivered_counts_both_attempts_and_its_lag(
    start_app, webhooks, receiver, events, new_appointment, wait_until
):
    client = start_app()
    receiver.script("/flaky", [500])
    hook = webhooks.subscribe(client, receiver.url("/flaky"), ["appointment.booked"])
    moves = Moves(
        attempts("webhook"), webhook("retrying"), webhook("delivered"), webhook("failed"), lags("webhook")
    )

    events.booked(new_appointment())

    webhooks.wait_for_deliveries(client, hook["id"], "delivered")
    moves.wait_for(wait_until, [2, 1, 1, 0, 1])
    assert metric("clinic_notification_delivery_lag_seconds_sum", channel="webhook") > 0


def test_a_webhook_whose_retries_are_spent_counts_as_failed(
    start_app, webhooks, receiver, events, new_appointment, wait_until
):
    client = start_app()  # 3 retries here
    receiver.script("/down", [500] * 4)
    hook = webhooks.subscribe(client, receiver.url("/down"), ["appointment.booked"])
    moves = Moves(attempts("webhook"), webhook("retrying"), webhook("failed"), webhook("delivered"))

    events.booked(new_appointment())

    webhooks.wait_for_deliveries(client, hook["id"], "failed")
    moves.wait_for(wait_until, [4, 3, 1, 0])


def test_mails_refused_once_then_sent_count_the_refusal_the_sends_and_their_lag(
    start_app, smtp, events, new_appointment, wait_until
):
    smtp.refuse(1)
    moves = Moves(attempts("mail"), mail("retrying"), mail("sent"), mail("failed"), lags("mail"))
    start_app(smtp_url=smtp.url)

    events.booked(new_appointment())  # a mail to the patient and one to the doctor

    wait_until(lambda: len(smtp.messages) == 2, timeout=30)
    moves.wait_for(wait_until, [3, 1, 2, 0, 2])


def test_undelivered_mails_and_webhooks_show_at_scrape_time_until_they_go_out(
    start_app, smtp, webhooks, receiver, events, new_appointment, wait_until
):
    smtp.stop()
    receiver.script("/later", [500, 500])
    client = start_app(smtp_url=smtp.url, delivery_retry_delays=(0.5,) * 60)  # never given up here
    hook = webhooks.subscribe(client, receiver.url("/later"), ["appointment.booked"])
    assert metric("clinic_notification_pending", channel="mail") == 0
    assert metric("clinic_notification_oldest_pending_age_seconds", channel="mail") == 0

    events.booked(new_appointment())

    wait_until(lambda: metric("clinic_notification_pending", channel="mail") == 2, timeout=30)
    assert metric("clinic_notification_oldest_pending_age_seconds", channel="mail") > 0
    smtp.start()
    webhooks.wait_for_deliveries(client, hook["id"], "delivered")
    wait_until(lambda: metric("clinic_notification_pending", channel="mail") == 0, timeout=30)
    assert metric("clinic_notification_pending", channel="webhook") == 0
    assert metric("clinic_notification_oldest_pending_age_seconds", channel="mail") == 0
