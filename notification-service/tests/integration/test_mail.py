"""Patients and doctors get mail through a real SMTP server (aiosmtpd): plain text and HTML, in
the clinic time zone, each mail once, also with a struggling server, two workers or a crash;
over STARTTLS or smtps with a login, and never to a server whose certificate is not trusted."""

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from chassis.testkit.outside import SmtpSink
from notification.adapters.mail_worker import MailWorker
from notification.adapters.mailer import SmtpMailer
from notification.config import smtp_server
from notification.models import Appointment, Mail
from notification.services import mails


def mail_of(sink, address: str):
    return [m for m in sink.messages if m.recipients == [address]]


def parts(message) -> tuple[str, str]:
    return (
        message.get_body(preferencelist=("plain",)).get_content(),
        message.get_body(preferencelist=("html",)).get_content(),
    )


def test_a_booking_mails_the_patient_and_the_doctor_in_text_and_html(
    start_app, smtp, events, people, new_appointment, wait_until, db
):
    start_app(smtp_url=smtp.url)
    appointment = {**new_appointment(), "reason": "Chest pain when climbing stairs"}
    local = appointment["start_time"].astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin"))

    events.booked(appointment)

    patient_address = f"patient{people['patient']}@example.org"
    doctor_address = f"doctor{people['doctor']}@example.org"
    wait_until(lambda: mail_of(smtp, patient_address) and mail_of(smtp, doctor_address))
    [to_patient] = mail_of(smtp, patient_address)
    message = to_patient.message
    assert message["Subject"] == "Your appointment is booked"
    assert message["From"] == "Clinic <no-reply@clinic.test>"
    assert message["Message-ID"].endswith("@clinic.test>")
    plain, html = parts(message)
    assert "Hello Pat Patient" in plain
    assert "Dora Doctor" in plain
    assert f"{local:%H:%M}" in plain and "(Europe/Berlin)" in plain
    assert "<p>Hello Pat Patient,</p>" in html
    [to_doctor] = mail_of(smtp, doctor_address)
    assert to_doctor.message["Subject"] == "New appointment booked"
    assert "Pat Patient" in parts(to_doctor.message)[0]
    # The patient's reason (sent with the event for webhooks) is neither mailed nor kept with mails.
    assert not any("Chest pain" in "".join(parts(m.message)) for m in (to_patient, to_doctor))
    with db.sessions() as session:
        contexts = session.scalars(select(Mail.context).where(Mail.appointment_id == appointment["id"])).all()
    assert len(contexts) == 2
    assert "Chest pain" not in str(contexts)


def test_confirmation_move_and_cancellation_are_mailed_but_not_completion(
    start_app, smtp, events, people, new_appointment, wait_until
):
    start_app(smtp_url=smtp.url)
    appointment = new_appointment()
    address = f"patient{people['patient']}@example.org"

    events.booked(appointment)
    wait_until(lambda: len(mail_of(smtp, address)) == 1)
    events.status_changed(appointment, "pending", "confirmed")
    wait_until(lambda: len(mail_of(smtp, address)) == 2)
    moved = events.rescheduled(appointment, appointment["start_time"] + timedelta(days=1), status="confirmed")
    wait_until(lambda: len(mail_of(smtp, address)) == 3)
    events.cancelled(moved, previous="confirmed", reason="Doctor is ill")
    wait_until(lambda: len(mail_of(smtp, address)) == 4)

    subjects = [m.message["Subject"] for m in mail_of(smtp, address)]
    assert subjects == [
        "Your appointment is booked",
        "Your appointment is confirmed",
        "Your appointment has moved",
        "Your appointment is cancelled",
    ]
    assert "Reason: Doctor is ill" in parts(mail_of(smtp, address)[3].message)[0]
    assert "It was:" in parts(mail_of(smtp, address)[2].message)[0]


def test_a_refusing_mail_server_delays_mail_and_it_is_sent_once(
    start_app, smtp, events, people, new_appointment, wait_until, db
):
    smtp.refuse(3)
    start_app(smtp_url=smtp.url)
    events.booked(new_appointment())

    wait_until(lambda: len(smtp.messages) == 2, timeout=30)

    def recorded() -> list[Mail] | None:  # the worker marks a mail sent just after the server took it
        with db.sessions() as session:
            rows = session.scalars(select(Mail)).all()
        return rows if {row.status for row in rows} == {"sent"} else None

    rows = wait_until(recorded)
    assert sum(row.attempts for row in rows) == 2 + 3
    assert len({m.message["Message-ID"] for m in smtp.messages}) == 2


def test_a_mail_server_that_is_down_delays_mail_and_loses_none(
    start_app, smtp, events, people, new_appointment, wait_until, db
):
    smtp.stop()
    start_app(smtp_url=smtp.url)
    events.booked(new_appointment())

    def tried() -> bool:
        with db.sessions() as session:
            return session.scalar(select(Mail.attempts).where(Mail.recipient_role == "patient")) or 0

    wait_until(lambda: tried() >= 2, timeout=30)
    smtp.start()
    wait_until(lambda: len(smtp.messages) == 2, timeout=30)


def test_a_mail_server_down_longer_than_the_retry_schedule_still_gets_the_mail(
    start_app, smtp, events, people, new_appointment, wait_until, db
):
    smtp.stop()
    start_app(smtp_url=smtp.url, delivery_retry_delays=(0.2, 0.2))
    events.booked(new_appointment())

    def statuses() -> set[str]:
        with db.sessions() as session:
            return set(session.scalars(select(Mail.status)).all())

    def attempts() -> int:
        with db.sessions() as session:
            return session.scalar(select(func.min(Mail.attempts))) or 0

    wait_until(lambda: attempts() >= 4, timeout=30)  # past the schedule's three attempts
    assert "failed" not in statuses()
    smtp.start()
    wait_until(lambda: len(smtp.messages) == 2, timeout=30)
    wait_until(lambda: statuses() == {"sent"}, timeout=30)


def test_news_of_an_appointment_that_is_over_is_skipped(
    start_app, smtp, events, people, new_appointment, wait_until, db
):
    # What a mail server back after days of outage would otherwise get: news of the past.
    start_app(smtp_url=smtp.url)
    events.booked(new_appointment(starts_in=-timedelta(hours=2)))

    def statuses() -> set[str]:
        with db.sessions() as session:
            return set(session.scalars(select(Mail.status)).all())

    wait_until(lambda: statuses() == {"skipped"}, timeout=30)
    assert smtp.messages == []


def mail_errors(db) -> set[str] | None:
    """Why the mails were not sent, once every mail has had an attempt that ended (a mail in the
    middle of one, claimed and not yet answered, has no error yet); None until then."""
    with db.sessions() as session:
        mails = session.scalars(select(Mail)).all()
    if not mails or any(row.attempts < 1 or row.last_error is None for row in mails):
        return None
    return {row.last_error for row in mails}


@pytest.mark.parametrize("tls", ["starttls", "smtps"])
def test_mail_goes_encrypted_and_logged_in_to_a_relay_of_the_clinics_own_ca(
    tls, start_app, events, people, new_appointment, wait_until, tmp_path
):
    with SmtpSink(tls=tls, login=("clinic", "s3cret/pass word"), certificates=tmp_path) as relay:
        start_app(smtp_url=relay.url, smtp_ca_file=str(relay.ca_file))
        events.booked(new_appointment())

        wait_until(lambda: len(relay.messages) == 2)
        assert {(mail.encrypted, mail.login) for mail in relay.messages} == {(True, "clinic")}
        assert {mail.message["Subject"] for mail in relay.messages} == {
            "Your appointment is booked",
            "New appointment booked",
        }


def test_a_relay_whose_certificate_is_not_trusted_gets_no_mail(
    start_app, events, people, new_appointment, wait_until, db, tmp_path
):
    with SmtpSink(tls="starttls", certificates=tmp_path) as relay:
        start_app(smtp_url=relay.url)  # the system's CAs, which did not sign the relay's certificate
        events.booked(new_appointment())

        errors = wait_until(lambda: mail_errors(db), timeout=30)
        assert all("certificate is not trusted" in error for error in errors), errors
        assert relay.messages == []


def test_a_wrong_smtp_password_sends_nothing_and_says_why(
    start_app, events, people, new_appointment, wait_until, db, tmp_path
):
    with SmtpSink(tls="starttls", login=("clinic", "right"), certificates=tmp_path) as relay:
        start_app(smtp_url=relay.url.replace(":right@", ":wrong@"), smtp_ca_file=str(relay.ca_file))
        events.booked(new_appointment())

        errors = wait_until(lambda: mail_errors(db), timeout=30)
        assert errors == {"the mail server answered 535"}
        assert relay.messages == []


def test_without_smtp_nothing_is_written_or_sent(
    start_app, events, people, new_appointment, receiver, webhooks, db, wait_until
):
    client = start_app()
    hook = webhooks.subscribe(client, receiver.url("/x"), ["*"])
    events.booked(new_appointment())
    webhooks.wait_for_deliveries(client, hook["id"], "delivered")
    with db.sessions() as session:
        assert session.scalar(select(Mail.id)) is None


def test_a_mail_waits_for_the_address_of_a_recipient_it_does_not_know_yet(
    start_app, smtp, events, new_appointment, people, wait_until
):
    start_app(smtp_url=smtp.url)
    appointment = {**new_appointment(), "patient_id": people["patient"] + 500_000}
    events.booked(appointment)
    wait_until(lambda: len(smtp.messages) == 1)  # the doctor's

    events.user(appointment["patient_id"], "patient", email="late@example.org", name="Late Comer", revision=2)

    wait_until(lambda: mail_of(smtp, "late@example.org"), timeout=30)


def test_reminders_go_to_patients_of_active_appointments_once(
    start_app, smtp, events, people, new_appointment, wait_until, db
):
    # Booked more than 24 h before: due within the 24 h reminder's window (1 h before start).
    soon = new_appointment(starts_in=timedelta(minutes=50))
    cancelled = new_appointment(starts_in=timedelta(minutes=55))
    booked_at = soon["start_time"] - timedelta(days=2)
    # The sweep runs at start (nothing is due yet) and then only when woken.
    client = start_app(smtp_url=smtp.url, reminder_hours=(24, 2), reminder_sweep_seconds=3600)
    events.publish("booking.appointment.booked", _booked_data(soon), occurred_at=booked_at)
    events.publish("booking.appointment.booked", _booked_data(cancelled), occurred_at=booked_at)
    events.cancelled(cancelled)
    address = f"patient{people['patient']}@example.org"
    wait_until(lambda: len(mail_of(smtp, address)) == 3)  # both bookings and the cancellation

    client.app.state.reminder_sweep.wake()
    wait_until(lambda: [m for m in mail_of(smtp, address) if m.message["Subject"].startswith("Reminder")])
    # The booking mails of two days ago went too; the cancelled one had its cancellation.
    wait_until(lambda: len(mail_of(smtp, address)) == 4)
    reminders = [m for m in mail_of(smtp, address) if m.message["Subject"].startswith("Reminder")]
    assert len(reminders) == 1  # the 2 h one: the 24 h one, due too, is not sent as well
    assert str(soon["id"]) in parts(reminders[0].message)[0]
    with db.sessions() as session:
        written = session.scalars(
            select(Mail.status).where(
                Mail.kind == "appointment.reminder", Mail.appointment_id == cancelled["id"]
            )
        ).all()
    assert written == []


def test_a_reminder_is_sent_when_the_booking_arrives_after_a_later_change(
    start_app, smtp, events, people, new_appointment, wait_until, db
):
    # The confirmation (just now) is the first event heard of an appointment booked two days ago;
    # the booking itself comes later (a retry, a replayed dead letter). It has been at its time
    # since the booking, so its reminder is due.
    soon = new_appointment(starts_in=timedelta(minutes=50))
    booked_at = soon["start_time"] - timedelta(days=2)
    client = start_app(smtp_url=smtp.url, reminder_hours=(24, 2), reminder_sweep_seconds=3600)
    events.status_changed(soon, "pending", "confirmed")
    events.publish("booking.appointment.booked", _booked_data(soon), occurred_at=booked_at)

    def booking_heard() -> bool:
        with db.sessions() as session:
            return (
                session.scalar(select(Appointment.booked_at).where(Appointment.id == soon["id"])) == booked_at
            )

    wait_until(booking_heard, what="the late booked event to be applied")
    client.app.state.reminder_sweep.wake()
    address = f"patient{people['patient']}@example.org"
    reminders = wait_until(
        lambda: [m for m in mail_of(smtp, address) if m.message["Subject"].startswith("Reminder")],
        what="the reminder",
    )
    assert str(soon["id"]) in parts(reminders[0].message)[0]


def _booked_data(appointment):
    return {
        "appointment_id": appointment["id"],
        "reservation_id": appointment["reservation_id"],
        "timeslot_id": appointment["timeslot_id"],
        "doctor_id": appointment["doctor_id"],
        "patient_id": appointment["patient_id"],
        "start_time": appointment["start_time"].isoformat(),
        "end_time": (appointment["start_time"] + timedelta(minutes=30)).isoformat(),
        "status": "pending",
    }


def _worker(db, smtp_url):
    return MailWorker(
        db,
        SmtpMailer(smtp_server(smtp_url), timeout=5),
        sender="Clinic <no-reply@clinic.test>",
        tz=__import__("zoneinfo").ZoneInfo("UTC"),
        clinic_name="Clinic",
        retry_delays=(0.1,),
        interval=60,  # never started: the tests run its steps
    )


def _pending_mail(db, key: str, people, *, kind: str = "appointment.booked", appointment_id: int = 1) -> None:
    appointment = {
        "id": appointment_id,
        "doctor_id": people["doctor"],
        "patient_id": people["patient"],
        "start_time": "2030-01-01T09:00:00+00:00",
        "end_time": "2030-01-01T09:30:00+00:00",
    }
    with db.transaction() as session:
        session.add(
            Mail(
                key=key,
                kind=kind,
                recipient_id=people["patient"],
                recipient_role="patient",
                appointment_id=appointment_id,
                context={"appointment": appointment},
                message_id=f"<{key}@clinic.test>",
                status="pending",
                attempts=0,
                next_attempt_at=func.now(),
            )
        )


def test_two_workers_racing_send_each_mail_once(start_app, smtp, db, people, wait_until):
    start_app()  # applies the people's events; its workers send no mail (no SMTP)
    wait_until(lambda: _known(db, people["patient"]))
    for n in range(20):
        _pending_mail(db, f"race-{n}", people)
    first, second = _worker(db, smtp.url), _worker(db, smtp.url)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        for _ in range(5):
            list(pool.map(lambda worker: worker.step(), (first, second)))

    assert Counter(m.message["Message-ID"] for m in smtp.messages) == {
        f"<race-{n}@clinic.test>": 1 for n in range(20)
    }


def test_a_crash_after_the_hand_over_never_sends_the_mail_again(start_app, smtp, db, people, wait_until):
    start_app()
    wait_until(lambda: _known(db, people["patient"]))
    _pending_mail(db, "crash", people)
    worker = _worker(db, smtp.url)
    [claimed] = mails.claim_mails(db, 1, timedelta(seconds=1))

    # The server takes the mail, then the process dies before it records that.
    worker.mailer.send(_message_for(worker, db, claimed), lambda: mails.mark_handed_over(db, claimed))
    assert len(smtp.messages) == 1

    def settled() -> str | None:
        worker.step()  # another worker, after the claim ran out
        with db.sessions() as session:
            status = session.scalar(select(Mail.status).where(Mail.key == "crash"))
        return status if status != "sending" else None

    assert wait_until(settled, timeout=10) == "in_doubt"
    assert len(smtp.messages) == 1


def test_a_crash_before_the_hand_over_sends_the_mail_later(start_app, smtp, db, people, wait_until):
    start_app()
    wait_until(lambda: _known(db, people["patient"]))
    _pending_mail(db, "early-crash", people)
    worker = _worker(db, smtp.url)
    mails.claim_mails(db, 1, timedelta(seconds=1))  # claimed, then the process died

    wait_until(lambda: worker.step() and smtp.messages, timeout=10)
    assert [m.message["Message-ID"] for m in smtp.messages] == ["<early-crash@clinic.test>"]


def _message_for(worker, db, claimed):
    from notification.adapters.mailer import build_message

    facts = mails.mail_facts(db, claimed)
    return build_message(
        kind=claimed.kind,
        role=claimed.recipient_role,
        context=claimed.context,
        names=facts.names,
        tz=worker.tz,
        sender=worker.sender,
        to=facts.address,
        message_id=claimed.message_id,
        clinic_name="Clinic",
    )


def _known(db, user_id: int) -> bool:
    with db.sessions() as session:
        return session.scalar(text("SELECT email FROM users WHERE id = :id"), {"id": user_id}) is not None


def test_a_reminder_of_an_appointment_moved_since_it_was_written_is_skipped(
    start_app, smtp, db, people, wait_until
):
    start_app()
    wait_until(lambda: _known(db, people["patient"]))
    now = datetime.now(UTC)
    with db.transaction() as session:
        session.add(
            Appointment(
                id=990_001,
                timeslot_id=1,
                doctor_id=people["doctor"],
                patient_id=people["patient"],
                start_time=now + timedelta(days=2),  # moved: the reminder was for an hour from now
                end_time=now + timedelta(days=2, minutes=30),
                status="confirmed",
                booked_at=now - timedelta(days=3),
                scheduled_at=now,
                changed_at=now,
            )
        )
    _pending_mail(db, "reminder:moved", people, kind="appointment.reminder", appointment_id=990_001)
    worker = _worker(db, smtp.url)

    worker.step()

    with db.sessions() as session:
        assert session.scalar(select(Mail.status).where(Mail.key == "reminder:moved")) == "skipped"
    assert smtp.messages == []
