"""What scheduling publishes reaches the broker through the outbox, as its contracts say."""

from datetime import timedelta

from chassis.messaging.contracts import validate_envelope


def test_created_and_deleted_timeslots_are_published_as_their_contracts_say(
    messaging_client, broker, doctor, when, rfc3339, wait_until
):
    client = messaging_client
    doctor_id, headers = doctor
    start = when(70, 9)
    body = {"start_time": rfc3339(start), "end_time": rfc3339(start + timedelta(minutes=30))}
    single = client.post("/api/timeslots/", json=body, headers=headers).json()
    monday = (when(77) - timedelta(days=when(77).weekday())).date()
    pattern = {
        "date_from": str(monday),
        "date_to": str(monday),
        "weekdays": [0],
        "day_start": "08:00",
        "day_end": "09:00",
        "slot_minutes": 30,
    }
    created = client.post("/api/timeslots/bulk/", json=pattern, headers=headers).json()["created"]
    assert client.delete(f"/api/timeslots/{single['id']}/", headers=headers).status_code == 204

    events = wait_until(
        lambda: (e := broker.scheduling_events(doctor_id)) and len(e) == 4 and e, what="4 events"
    )
    for envelope in events:
        validate_envelope(envelope, broker.contracts_dir)
    assert [(e["event_type"], e["data"]["timeslot_id"]) for e in events] == [
        ("scheduling.timeslot.created", single["id"]),
        *[("scheduling.timeslot.created", t["id"]) for t in created],
        ("scheduling.timeslot.deleted", single["id"]),
    ]
    assert events[0]["data"] == {
        "timeslot_id": single["id"],
        "doctor_id": doctor_id,
        "start_time": single["start_time"],
        "end_time": single["end_time"],
    }
    assert events[-1]["data"]["reason"] == "deleted_by_doctor"
    assert {e["producer"] for e in events} == {"scheduling"}


def test_nothing_is_published_for_a_refused_request(
    messaging_client, broker, doctor, when, rfc3339, wait_until
):
    client = messaging_client
    doctor_id, headers = doctor

    def create(hour: int) -> int:
        start = when(71, hour)
        body = {"start_time": rfc3339(start), "end_time": rfc3339(start + timedelta(minutes=30))}
        return client.post("/api/timeslots/", json=body, headers=headers).status_code

    assert create(9) == 201
    assert create(9) == 409
    assert create(10) == 201
    # The relay publishes in commit order: once the last one arrived, a refused one would have too.
    events = wait_until(
        lambda: (e := broker.scheduling_events(doctor_id)) and len(e) >= 2 and e, what="2 events"
    )
    assert [e["data"]["start_time"] for e in events] == [rfc3339(when(71, 9)), rfc3339(when(71, 10))]
