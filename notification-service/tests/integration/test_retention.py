"""The service's retention job deletes what nothing sends again, once NOTIFICATION_RETENTION_DAYS
old (90 by default): finished mails and webhook deliveries, and the local copy of appointments
that ended that long ago. Pending or claimed rows stay, whatever their age, and so do recent ones."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from notification.models import Appointment, Mail, WebhookDelivery, WebhookSubscription

OLD = timedelta(days=91)
RECENT = timedelta(days=1)
MAIL_STATUSES = ("pending", "sending", "sent", "skipped", "failed", "in_doubt")
DELIVERY_STATUSES = ("pending", "delivered", "failed")


def test_the_retention_job_deletes_old_finished_mails_deliveries_and_ended_appointments(client, db):
    now = datetime.now(UTC)
    with db.transaction() as session:
        hook = WebhookSubscription(url="https://example.test/hook", event_types=["*"], secret="s" * 40)
        session.add(hook)
        session.flush()
        for age in (OLD, RECENT):
            for status in MAIL_STATUSES:
                session.add(
                    Mail(
                        key=f"{age.days}:{status}",
                        kind="appointment.booked",
                        recipient_id=1,
                        recipient_role="patient",
                        appointment_id=1,
                        context={},
                        message_id=f"<{uuid.uuid4().hex}@clinic.test>",
                        status=status,
                        attempts=1,
                        created_at=now - age,
                    )
                )
            for status in DELIVERY_STATUSES:
                session.add(
                    WebhookDelivery(
                        subscription_id=hook.id,
                        event_id=uuid.uuid4(),
                        event_type=f"{age.days}:{status}",
                        webhook_id=f"msg_{uuid.uuid4().hex}",
                        payload={},
                        status=status,
                        created_at=now - age,
                    )
                )
        # Ended 91 days ago, ended yesterday, booked 91 days ago for next week.
        for appointment_id, ends in ((1, now - OLD), (2, now - RECENT), (3, now + timedelta(days=7))):
            session.add(
                Appointment(
                    id=appointment_id,
                    timeslot_id=appointment_id,
                    doctor_id=1,
                    patient_id=2,
                    start_time=ends - timedelta(minutes=30),
                    end_time=ends,
                    status="confirmed",
                    booked_at=now - OLD,
                    scheduled_at=now - OLD,
                    changed_at=now - OLD,
                )
            )

    deleted = client.app.state.retention.run_once()

    assert {"finished mails", "finished webhook deliveries", "ended appointments"} <= set(deleted)
    with db.transaction() as session:
        mails = set(session.scalars(select(Mail.key)))
        deliveries = set(session.scalars(select(WebhookDelivery.event_type)))
        appointments = set(session.scalars(select(Appointment.id)))
    assert mails == {"91:pending", "91:sending"} | {f"1:{status}" for status in MAIL_STATUSES}
    assert deliveries == {"91:pending"} | {f"1:{status}" for status in DELIVERY_STATUSES}
    assert appointments == {2, 3}
