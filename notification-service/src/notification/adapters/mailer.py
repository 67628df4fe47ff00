"""Mail: the message built from the Jinja2 templates (plain text and HTML, times in the clinic
time zone), and handed to the SMTP server with smtplib.

``SmtpMailer.send`` calls ``before_handover`` once the server has accepted the sender and the
recipient, just before the message itself: from then on the server may have the mail even if
this process dies before it hears the answer (the mail worker records that moment).
"""

from __future__ import annotations

import email.policy
import smtplib
import ssl
from collections.abc import Callable, Mapping
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from notification.domain import SmtpServer

# The template of each kind of mail (the event's webhook type, or the reminder), and its subject.
TEMPLATES = {
    "appointment.booked": ("booked", "Your appointment is booked"),
    "appointment.confirmed": ("confirmed", "Your appointment is confirmed"),
    "appointment.cancelled": ("cancelled", "Your appointment is cancelled"),
    "appointment.rescheduled": ("rescheduled", "Your appointment has moved"),
    "appointment.reminder": ("reminder", "Reminder: your appointment"),
}
DOCTOR_SUBJECTS = {
    "appointment.booked": "New appointment booked",
    "appointment.confirmed": "Appointment confirmed",
    "appointment.cancelled": "Appointment cancelled",
    "appointment.rescheduled": "Appointment moved",
}

_environment = Environment(
    loader=PackageLoader("notification.adapters", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


def format_when(start: str, end: str, tz: ZoneInfo) -> str:
    """``Monday 7 December 2026, 09:30–10:00 CET (Europe/Berlin)``: the clinic's wall-clock time.

    The zone's abbreviation tells the two 01:30s of a night the clocks go back apart (each time
    gets its own when they differ: ``01:30 EDT–01:00 EST``), and an end on another day says
    that day (``23:30 – Tuesday 5 March 2030, 00:30 EST``)."""
    first = datetime.fromisoformat(start).astimezone(tz)
    last = datetime.fromisoformat(end).astimezone(tz)
    begins = f"{first:%H:%M}" if first.tzname() == last.tzname() else f"{first:%H:%M %Z}"
    if first.date() == last.date():
        return f"{_day(first)}, {begins}–{last:%H:%M %Z} ({tz.key})"
    return f"{_day(first)}, {begins} – {_day(last)}, {last:%H:%M %Z} ({tz.key})"


def _day(moment: datetime) -> str:
    return f"{moment:%A} {moment.day} {moment:%B %Y}"


def build_message(
    *,
    kind: str,
    role: str,
    context: Mapping[str, Any],
    names: Mapping[str, str],
    tz: ZoneInfo,
    sender: str,
    to: str,
    message_id: str,
    clinic_name: str,
) -> EmailMessage:
    """The mail of one row: text and HTML alternatives, its fixed Message-ID."""
    template, subject = TEMPLATES[kind]
    if role == "doctor":
        subject = DOCTOR_SUBJECTS.get(kind, subject)
    appointment = context["appointment"]
    previous = context.get("previous")
    values = {
        "subject": subject,
        "role": role,
        "recipient_name": names.get(role, ""),
        "doctor_name": names.get("doctor", ""),
        "patient_name": names.get("patient", ""),
        "appointment_id": appointment["id"],
        "when": format_when(appointment["start_time"], appointment["end_time"], tz),
        "previous_when": format_when(previous["start_time"], previous["end_time"], tz) if previous else "",
        "cancellation_reason": appointment.get("cancellation_reason"),
        "hours": context.get("hours", 0),
        "clinic_name": clinic_name,
    }
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = to
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id
    # Quoted-printable: short lines and 7-bit data whatever the names and the templates hold
    # (servers refuse lines over 998 characters).
    message.set_content(_environment.get_template(f"{template}.txt").render(values), cte="quoted-printable")
    message.add_alternative(
        _environment.get_template(f"{template}.html").render(values), subtype="html", cte="quoted-printable"
    )
    return message


def sender_domain(sender: str) -> str:
    """The domain of MAIL_FROM's address, for Message-IDs."""
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or "clinic.invalid"


class MailNotAccepted(Exception):
    """The server refused the mail before taking it (it was not sent), with its reply ``code``."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class SmtpMailer:
    def __init__(self, server: SmtpServer, *, timeout: float) -> None:
        self.server = server
        self.timeout = timeout
        # One TLS context for every mail, and none without TLS: building one loads the system's CA
        # certificates, which cost many times the CPU of sending a mail (built per mail, it capped
        # the soak's sending rate; tests/robustness/README.md). It checks the server's certificate
        # and name against SMTP_CA_FILE's CAs when set, else the system's.
        self._tls = (
            ssl.create_default_context(cafile=server.ca_file) if server.tls or server.starttls else None
        )

    def send(self, message: EmailMessage, before_handover: Callable[[], None]) -> None:
        """Send ``message``; MailNotAccepted (or an OSError) when the server did not take it.

        Past ``before_handover`` an exception means the outcome is unknown: the caller tells.
        """
        server = self.server
        if server.tls:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                server.host, server.port, timeout=self.timeout, context=self._tls
            )
        else:
            smtp = smtplib.SMTP(server.host, server.port, timeout=self.timeout)
        with smtp:
            smtp.ehlo()
            if server.starttls:
                smtp.starttls(context=self._tls)
                smtp.ehlo()
            if server.username:
                smtp.login(server.username, server.password or "")
            sender = parseaddr(str(message["From"]))[1]
            recipient = parseaddr(str(message["To"]))[1]
            code, _ = smtp.mail(sender)
            if code != 250:
                raise MailNotAccepted(f"the server refused the sender ({code})", code)
            code, _ = smtp.rcpt(recipient)
            if code not in (250, 251):
                raise MailNotAccepted(f"the server refused the recipient ({code})", code)
            before_handover()
            # CRLF line ends: smtplib sends bytes as they are.
            code, _ = smtp.data(message.as_bytes(policy=email.policy.SMTP))
            if code != 250:
                raise MailNotAccepted(f"the server refused the message ({code})", code)
