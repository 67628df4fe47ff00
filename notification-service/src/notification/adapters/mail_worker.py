"""The mail worker: claims due mails one at a time and sends each once (services.mails)."""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Sequence
from datetime import timedelta
from zoneinfo import ZoneInfo

from chassis.db import Database
from chassis.workers import PollingWorker, wake_on_commit
from notification.adapters.mailer import MailNotAccepted, SmtpMailer, build_message
from notification.adapters.metrics import record_mail
from notification.services import mails
from notification.services.mails import ClaimedMail

log = logging.getLogger("notification.mail")

BATCH = 10


class LeaseLost(Exception):
    """The claim ran out before the hand-over: another worker may have the mail now."""


class MailWorker:
    """``step()`` sends what is due; ``poller`` runs it (``worker_hook``), and a commit of this
    process that queues mails (``mails_due``) wakes it."""

    def __init__(
        self,
        db: Database,
        mailer: SmtpMailer,
        *,
        sender: str,
        tz: ZoneInfo,
        clinic_name: str,
        retry_delays: Sequence[float],
        interval: float,
    ) -> None:
        self.db = db
        self.mailer = mailer
        self.sender = sender
        self.tz = tz
        self.clinic_name = clinic_name
        self.retry_delays = tuple(retry_delays)
        # Long enough for every SMTP step before the hand-over to time out once.
        self.lease = timedelta(seconds=max(120.0, mailer.timeout * 12))
        self.poller = PollingWorker("mail-worker", self.step, interval=interval)
        wake_on_commit(db, mails.MAILS_DUE, self.poller)

    def step(self) -> int:
        claimed = mails.claim_mails(self.db, BATCH, self.lease)
        for mail in claimed:
            record_mail(self.send(mail), mail.queued_at)
        return len(claimed)

    def send(self, mail: ClaimedMail) -> str:
        """Send one claimed mail; returns what became of it."""
        facts = mails.mail_facts(self.db, mail)
        if facts.obsolete:
            mails.mark_skipped(self.db, mail, "the appointment is over, or was cancelled or moved")
            return "skipped"
        if not facts.recipient_active:
            mails.mark_skipped(self.db, mail, "the recipient's account is deactivated")
            return "skipped"
        if not facts.address:
            mails.mark_not_sent(self.db, mail, "no address is known for the recipient yet", self.retry_delays)
            return "pending"
        message = build_message(
            kind=mail.kind,
            role=mail.recipient_role,
            context=mail.context,
            names=facts.names,
            tz=self.tz,
            sender=self.sender,
            to=facts.address,
            message_id=mail.message_id,
            clinic_name=self.clinic_name,
        )
        handed_over = False

        def hand_over() -> None:
            nonlocal handed_over
            if not mails.mark_handed_over(self.db, mail):
                raise LeaseLost()
            handed_over = True

        try:
            self.mailer.send(message, hand_over)
        except LeaseLost:
            log.warning("mail %s: its claim ran out before sending; left to whoever has it now", mail.id)
            return "lost claim"
        except (MailNotAccepted, smtplib.SMTPResponseException) as exc:
            # The server answered no: it does not have the mail.
            down = not _refused_for_good(exc)
            mails.mark_not_sent(self.db, mail, _describe(exc), self.retry_delays, server_down=down)
            log.info("mail %s not accepted (attempt %d): %s", mail.id, mail.attempts, _describe(exc))
            return "pending"
        except Exception as exc:
            if handed_over:
                mails.mark_in_doubt(
                    self.db, mail, f"the connection broke while the server took it: {_describe(exc)}"
                )
                log.warning("mail %s: the server may or may not have it; not sent again", mail.id)
                return "in_doubt"
            mails.mark_not_sent(self.db, mail, _describe(exc), self.retry_delays, server_down=True)
            log.info("mail %s not sent (attempt %d): %s", mail.id, mail.attempts, _describe(exc))
            return "pending"
        mails.mark_sent(self.db, mail)
        return "sent"


def _refused_for_good(exc: MailNotAccepted | smtplib.SMTPResponseException) -> bool:
    """A 5xx reply refuses the mail for good; 4xx asks to try again later. A refused login is
    the clinic's own setting to fix (SMTP_URL), after which the mail still goes."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return False
    code = exc.smtp_code if isinstance(exc, smtplib.SMTPResponseException) else exc.code
    return code >= 500


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"the mail server answered {exc.smtp_code}"
    if isinstance(exc, MailNotAccepted):
        return str(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the mail server's certificate is not trusted ({exc.verify_message}; SMTP_CA_FILE)"
    return f"the mail server could not be reached ({exc.__class__.__name__})"
