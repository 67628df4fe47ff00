"""The webhook worker: claims due deliveries and runs their attempts on a few threads, so a
receiver that hangs until the time limit holds one thread, not the others.

It polls, and runs at once when this process commits new deliveries (``deliveries_due``) or an
attempt frees a thread: a delivery waits for a poll only when another replica queued it, and
a burst is sent as fast as the threads allow, not ``concurrency`` per poll."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from chassis.db import Database
from chassis.workers import PollingWorker, wake_on_commit
from notification.adapters.metrics import record_webhook
from notification.adapters.webhook_sender import WebhookSender
from notification.services.deliveries import DELIVERIES_DUE, ClaimedDelivery, claim_deliveries, record_attempt

log = logging.getLogger("notification.webhooks")


class WebhookWorker:
    """``step()`` claims what fits in the free threads; ``poller`` runs it (``worker_hook``)."""

    def __init__(
        self,
        db: Database,
        sender: WebhookSender,
        *,
        concurrency: int,
        retry_delays: Sequence[float],
        interval: float,
    ) -> None:
        self.db = db
        self.sender = sender
        self.retry_delays = tuple(retry_delays)
        self.concurrency = concurrency
        # Claimed for the time limit and a margin: a worker that dies mid-attempt leaves the
        # delivery due again after that, never sooner than an attempt in flight could end.
        self.lease = timedelta(seconds=sender.timeout * 2 + 5)
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="webhook")
        self._in_flight = 0
        self._backlog = False
        self._lock = threading.Lock()
        self.poller = PollingWorker("webhook-worker", self.step, interval=interval)
        wake_on_commit(db, DELIVERIES_DUE, self.poller)

    def step(self) -> int:
        with self._lock:
            free = self.concurrency - self._in_flight
            # While this step claims, a thread that frees up wakes the worker (no lost wake-up).
            self._backlog = True
        claimed = claim_deliveries(self.db, free, self.lease)
        with self._lock:
            # Every thread busy: more may be due, so a thread that frees up runs the next step.
            self._backlog = len(claimed) == free
        for delivery in claimed:
            with self._lock:
                self._in_flight += 1
            self._pool.submit(self._attempt, delivery)
        return len(claimed)

    def _attempt(self, delivery: ClaimedDelivery) -> None:
        try:
            result = self.sender.attempt(
                url=delivery.url,
                secret=delivery.secret,
                webhook_id=delivery.webhook_id,
                payload=delivery.payload,
            )
            status = record_attempt(
                self.db,
                delivery.id,
                attempt=delivery.attempts,
                status_code=result.status_code,
                error=result.error,
                response_excerpt=result.response_excerpt,
                retry_delays=self.retry_delays,
            )
            record_webhook(status, delivery.payload.get("timestamp"))
            if result.error:
                log.info("webhook delivery %s: %s (now %s)", delivery.id, result.error, status)
        except Exception:
            # The claim runs out and the delivery is tried again: nothing is lost.
            log.exception("webhook delivery %s: the attempt could not be recorded", delivery.id)
        finally:
            with self._lock:
                self._in_flight -= 1
                backlog = self._backlog
            if backlog:
                self.poller.wake()  # the next due delivery need not wait for a poll

    def close(self) -> None:
        """Let the attempts in flight finish (each ends within the time limit), then close."""
        self._pool.shutdown(wait=True)
        self.sender.close()
