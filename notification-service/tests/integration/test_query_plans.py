"""The statements that run all the time read what they need, not the tables: the backlog metric
(every scrape) reads the undelivered rows only, never the sent and delivered ones nor the ones
waiting for a paused subscription; the webhook worker's claim (every poll, every replica) reads
about as many deliveries as it takes, however many wait for a paused subscription. Checked on
tables large enough, and analyzed, for the planner to choose as it would in production."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text

from chassis.db import Database
from notification.adapters.metrics import _BACKLOG, backlog
from notification.services.deliveries import _DUE

FINISHED = 20_000  # sent mails, delivered webhooks
WAITING = 3_000  # deliveries of a subscription that is paused


def scans(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of ``plan`` that reads a table or an index."""
    found = [plan] if "Relation Name" in plan else []
    for child in plan.get("Plans", ()):
        found.extend(scans(child))
    return found


def explained(db: Database, statement: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The scans of ``statement`` as run now (EXPLAIN ANALYZE, rolled back)."""
    with db.engine.connect() as connection:
        row = connection.exec_driver_sql(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", params or {}
        ).scalar_one()
        connection.rollback()
    plan = row if isinstance(row, list) else json.loads(row)
    return scans(plan[0]["Plan"])


def rows_read(scan: dict[str, Any]) -> float:
    kept = (
        scan["Actual Rows"]
        + scan.get("Rows Removed by Filter", 0)
        + scan.get("Rows Removed by Index Recheck", 0)
    )
    return kept * scan["Actual Loops"]


def subscriptions(db: Database) -> tuple[int, int]:
    """Two active subscriptions; each test pauses the second through the API once its
    deliveries are queued."""
    with db.engine.begin() as connection:
        active, paused = connection.execute(
            text(
                "INSERT INTO webhook_subscriptions (url, event_types, description, is_active, secret) "
                "VALUES ('https://a.example.test/', '{*}', '', true, 's'), "
                "('https://p.example.test/', '{*}', '', true, 's') RETURNING id"
            )
        ).scalars()
    return active, paused


def deliveries(db: Database, subscription: int, count: int, status: str, due: str | None) -> None:
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO webhook_deliveries (subscription_id, event_id, event_type, webhook_id, payload,"
                " status, attempts, failures, next_attempt_at)"
                " SELECT :subscription, gen_random_uuid(), 'appointment.booked',"
                " 'msg_' || replace(gen_random_uuid()::text, '-', ''), '{}', :status, 0, 0,"
                f" {due or 'NULL'} FROM generate_series(1, :count) AS n"
            ),
            {"subscription": subscription, "status": status, "count": count},
        )


def pause(client, admin: dict[str, str], subscription: int) -> None:
    response = client.patch(f"/api/webhooks/{subscription}/", json={"is_active": False}, headers=admin)
    assert response.status_code == 200, response.text


def analyze(db: Database) -> None:
    with db.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            "ANALYZE mails, webhook_deliveries, webhook_subscriptions"
        )


def test_the_backlog_metric_reads_the_undelivered_rows_only(client, admin, db):
    active, paused = subscriptions(db)
    deliveries(db, active, FINISHED, "delivered", None)
    deliveries(db, active, 4, "pending", "now() + interval '5 minutes'")
    # Queued while its subscription was active, then paused: they wait (not due).
    deliveries(db, paused, WAITING, "pending", "now() - interval '1 hour'")
    pause(client, admin, paused)
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO mails (key, kind, recipient_id, recipient_role, context, message_id, status,"
                " attempts, next_attempt_at, claimed_until)"
                " SELECT 'k' || n, 'appointment.booked', 1, 'patient', '{}', '<' || n || '@clinic.test>',"
                " CASE WHEN n <= 5 THEN 'pending' WHEN n <= 7 THEN 'sending' ELSE 'sent' END, 1,"
                " CASE WHEN n <= 5 THEN now() END, CASE WHEN n BETWEEN 6 AND 7 THEN now() END"
                " FROM generate_series(1, :count) AS n"
            ),
            {"count": FINISHED + 7},
        )
    analyze(db)

    assert {channel: count for channel, (count, _age) in backlog(db).items()} == {"webhook": 4, "mail": 7}
    read = [scan for scan in explained(db, _BACKLOG.text) if scan["Relation Name"] != "webhook_subscriptions"]
    assert {scan["Relation Name"] for scan in read} == {"mails", "webhook_deliveries"}
    # Each status through its partial index: 5 pending mails, 2 claimed, 4 deliveries.
    too_much = [
        (scan["Relation Name"], scan["Node Type"], rows_read(scan))
        for scan in read
        if scan["Node Type"] == "Seq Scan" or rows_read(scan) > 5
    ]
    assert too_much == []


def test_the_claim_reads_about_as_many_deliveries_as_it_takes_whatever_waits_for_a_paused_one(
    client, admin, db
):
    active, paused = subscriptions(db)
    deliveries(db, active, FINISHED, "delivered", None)
    # The paused subscription's deliveries came due first: the claim's order would meet them first.
    deliveries(db, paused, WAITING, "pending", "now() - interval '1 hour'")
    deliveries(db, active, 20, "pending", "now() - interval '1 minute'")
    pause(client, admin, paused)
    analyze(db)

    compiled = _DUE.compile(dialect=db.engine.dialect)
    read = explained(db, str(compiled), {**compiled.params, "p_limit": 8})

    # At most the 20 due ones (the limit, 8, with an index scan in due order), never the paused.
    [scan] = [scan for scan in read if scan["Relation Name"] == "webhook_deliveries"]
    assert scan["Node Type"] != "Seq Scan" and rows_read(scan) <= 20, (scan["Node Type"], rows_read(scan))
