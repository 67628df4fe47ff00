"""The webhook worker: claims due deliveries and runs their attempts on a few threads, so a
receiver that hangs until the time limit holds one thread, not the others."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from chassis.db import Database
from notification.adapters.webhook_sender import WebhookSender
from notification.services.deliveries import ClaimedDelivery, claim_deliveries, record_attempt

log = logging.getLogger("notification.webhooks")


class WebhookWorker:
    """``step()`` for a ``chassis.workers.PollingWorker``: claim what fits in the free threads."""

    def __init__(
        self, db: Database, sender: WebhookSender, *, concurrency: int, retry_delays: Sequence[float]
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
        self._lock = threading.Lock()

    def step(self) -> int:
        with self._lock:
            free = self.concurrency - self._in_flight
        claimed = claim_deliveries(self.db, free, self.lease)
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
                status_code=result.status_code,
                error=result.error,
                response_excerpt=result.response_excerpt,
                retry_delays=self.retry_delays,
            )
            if result.error:
                log.info("webhook delivery %s: %s (now %s)", delivery.id, result.error, status)
        except Exception:
            # The claim runs out and the delivery is tried again: nothing is lost.
            log.exception("webhook delivery %s: the attempt could not be recorded", delivery.id)
        finally:
            with self._lock:
                self._in_flight -= 1

    def close(self) -> None:
        """Let the attempts in flight finish (each ends within the time limit), then close."""
        self._pool.shutdown(wait=True)
        self.sender.close()
