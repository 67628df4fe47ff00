"""Settings read REMINDER_HOURS, SMTP_URL, SMTP_CA_FILE and NOTIFICATION_RETENTION_DAYS; mails render
in the clinic time zone."""

from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from notification.adapters.mailer import build_message, format_when, sender_domain
from notification.config import Settings, smtp_server


def test_reminder_hours_are_a_comma_separated_list(monkeypatch):
    monkeypatch.setenv("REMINDER_HOURS", "2, 24")
    assert Settings().reminder_hours == (24, 2)
    monkeypatch.setenv("REMINDER_HOURS", "0")
    with pytest.raises(ValidationError):
        Settings()


def test_smtp_urls():
    server = smtp_server("smtp://mailer:s%40cret@mail.example.org:587?starttls=true")
    assert (server.host, server.port, server.username, server.password) == (
        "mail.example.org",
        587,
        "mailer",
        "s@cret",
    )
    assert server.starttls and not server.tls
    assert smtp_server("smtps://mail.example.org").port == 465
    with pytest.raises(ValueError):
        smtp_server("http://mail.example.org")


def test_a_ca_file_for_the_mail_server_must_exist_and_needs_tls(tmp_path):
    ca_file = tmp_path / "relay-ca.pem"
    ca_file.write_text("-----BEGIN CERTIFICATE-----\n")
    starttls = "smtp://relay.clinic.internal:587?starttls=true"
    assert Settings(smtp_url=starttls, smtp_ca_file=str(ca_file)).smtp.ca_file == str(ca_file)
    assert Settings(smtp_url=starttls).smtp.ca_file is None  # the system's CAs
    with pytest.raises(ValueError, match="speaks no TLS"):
        _ = Settings(smtp_url="smtp://relay.clinic.internal:25", smtp_ca_file=str(ca_file)).smtp
    with pytest.raises(ValueError, match="is not a file"):
        _ = Settings(smtp_url=starttls, smtp_ca_file=str(tmp_path / "missing.pem")).smtp


def test_the_notification_retention_outlasts_the_inbox_and_the_earliest_reminder(monkeypatch):
    # Past the inbox, a mail's key and a delivery's (subscription, event) keep a redelivered
    # event from going out twice; a reminder's key keeps the sweep from writing it again.
    assert Settings().notification_retention_days == 90
    monkeypatch.setenv("INBOX_RETENTION_DAYS", "30")
    monkeypatch.setenv("NOTIFICATION_RETENTION_DAYS", "30")
    with pytest.raises(ValidationError, match="INBOX_RETENTION_DAYS"):
        Settings()
    monkeypatch.setenv("NOTIFICATION_RETENTION_DAYS", "31")
    assert Settings().notification_retention_days == 31
    monkeypatch.setenv("INBOX_RETENTION_DAYS", "1")
    monkeypatch.setenv("NOTIFICATION_RETENTION_DAYS", "2")
    monkeypatch.setenv("REMINDER_HOURS", "72,2")
    with pytest.raises(ValidationError, match="reminder"):
        Settings()
    monkeypatch.setenv("REMINDER_HOURS", "24")
    assert Settings().notification_retention_days == 2


def test_a_mail_shows_the_clinic_wall_clock_time_in_text_and_html():
    context = {
        "appointment": {
            "id": 7,
            "doctor_id": 1,
            "patient_id": 2,
            "start_time": "2026-07-01T07:30:00Z",
            "end_time": "2026-07-01T08:00:00Z",
        }
    }
    message = build_message(
        kind="appointment.confirmed",
        role="patient",
        context=context,
        names={"patient": "Ana <b>", "doctor": "Dr Who"},
        tz=ZoneInfo("Europe/Berlin"),
        sender="Clinic <no-reply@clinic.example>",
        to="ana@example.org",
        message_id="<x@clinic.example>",
        clinic_name="Clinic",
    )
    plain = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "Wednesday 1 July 2026, 09:30–10:00 CEST (Europe/Berlin)" in plain
    assert "09:30–10:00 CEST (Europe/Berlin)" in html
    assert "Hello Ana <b>," in plain
    assert "Ana &lt;b&gt;" in html  # escaped in HTML
    assert message["Message-ID"] == "<x@clinic.example>"
    assert sender_domain("Clinic <no-reply@clinic.example>") == "clinic.example"


@pytest.mark.parametrize(
    ("start", "end", "shown"),
    [
        # The night the clocks go back: 01:30 comes twice, and the end is before the start's hour.
        ("2030-11-03T05:30:00Z", "2030-11-03T06:00:00Z", "Sunday 3 November 2030, 01:30 EDT–01:00 EST"),
        ("2030-11-03T06:30:00Z", "2030-11-03T07:00:00Z", "Sunday 3 November 2030, 01:30–02:00 EST"),
        # Past midnight: the end says its day.
        (
            "2030-03-05T04:30:00Z",
            "2030-03-05T06:00:00Z",
            "Monday 4 March 2030, 23:30 – Tuesday 5 March 2030, 01:00 EST",
        ),
    ],
)
def test_a_mails_time_is_never_ambiguous(start, end, shown):
    assert format_when(start, end, ZoneInfo("America/New_York")) == f"{shown} (America/New_York)"
