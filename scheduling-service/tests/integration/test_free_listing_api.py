"""GET /api/doctors/{id}/timeslots/ (patients, admins) and the doctors read model behind it."""

import uuid
from datetime import timedelta

from scheduling.services.doctors import apply_user_state


def publish(client, headers, start, end, rfc3339) -> dict:
    response = client.post(
        "/api/timeslots/", json={"start_time": rfc3339(start), "end_time": rfc3339(end)}, headers=headers
    )
    assert response.status_code == 201
    return response.json()


def free(client, doctor_id, headers, **params):
    return client.get(f"/api/doctors/{doctor_id}/timeslots/", params=params, headers=headers)


def deactivate(db, user_id, revision=1):
    with db.transaction() as session:
        apply_user_state(session, user_id=user_id, role="doctor", is_active=False, revision=revision)


def test_patients_see_a_doctors_free_timeslots_earliest_first(
    client, doctor, patient, when, rfc3339, from_booking
):
    doctor_id, headers = doctor
    patient_id, patient_headers = patient
    later = publish(client, headers, when(50, 11), when(50, 12), rfc3339)
    earlier = publish(client, headers, when(50, 9), when(50, 10), rfc3339)
    held = publish(client, headers, when(50, 13), when(50, 14), rfc3339)
    hold = {"reservation_id": str(uuid.uuid4()), "patient_id": patient_id}
    assert (
        client.post(f"/internal/timeslots/{held['id']}/hold", json=hold, headers=from_booking).status_code
        == 200
    )

    response = free(client, doctor_id, patient_headers)
    assert response.status_code == 200
    page = response.json()
    assert page["count"] == 2
    assert page["results"] == [earlier, later]


def test_admins_see_them_too_and_doctors_may_not(client, doctor, new_id, callers, when, rfc3339):
    doctor_id, headers = doctor
    publish(client, headers, when(51, 9), when(51, 10), rfc3339)
    assert free(client, doctor_id, callers("admin", new_id()).headers).json()["count"] == 1
    assert free(client, doctor_id, headers).status_code == 403
    assert free(client, doctor_id, {}).status_code == 401


def test_an_unknown_doctor_is_404(client, patient):
    _, headers = patient
    response = free(client, 987654321987, headers)
    assert response.status_code == 404
    assert response.json()["code"] == "doctor_not_found"


def test_a_deactivated_doctor_is_404_and_their_future_free_timeslots_are_gone(
    client, db, doctor, patient, when, rfc3339
):
    doctor_id, headers = doctor
    _, patient_headers = patient
    publish(client, headers, when(52, 9), when(52, 10), rfc3339)
    deactivate(db, doctor_id)
    assert free(client, doctor_id, patient_headers).status_code == 404
    # The doctor's token is still valid until it expires, but the account is inactive.
    response = client.get("/api/timeslots/", headers=headers)
    assert response.status_code == 403
    assert response.json()["code"] == "doctor_inactive"
    assert publish_status(client, headers, when(53, 9), when(53, 10), rfc3339) == 403
    # Reactivated, the doctor is listed again, with nothing free: the timeslot was removed.
    with db.transaction() as session:
        apply_user_state(session, user_id=doctor_id, role="doctor", is_active=True, revision=2)
    assert free(client, doctor_id, patient_headers).json()["count"] == 0


def publish_status(client, headers, start, end, rfc3339) -> int:
    return client.post(
        "/api/timeslots/", json={"start_time": rfc3339(start), "end_time": rfc3339(end)}, headers=headers
    ).status_code


def test_a_reactivated_doctor_publishes_again(client, db, doctor, patient, when, rfc3339):
    doctor_id, headers = doctor
    deactivate(db, doctor_id, revision=2)
    with db.transaction() as session:
        apply_user_state(session, user_id=doctor_id, role="doctor", is_active=True, revision=3)
    publish(client, headers, when(54, 9), when(54, 10), rfc3339)
    assert free(client, doctor_id, patient[1]).json()["count"] == 1


def test_the_date_filters_are_inclusive_days_in_the_clinic_time_zone(
    make_client, doctor, patient, new_york_dst
):
    doctor_id, headers = doctor
    spring, _ = new_york_dst
    day_before, day_after = spring - timedelta(days=1), spring + timedelta(days=1)
    local_starts = [
        f"{day_before}T23:30:00",
        f"{spring}T00:30:00",
        f"{spring}T23:30:00",
        f"{day_after}T00:30:00",
    ]
    with make_client(clinic_timezone="America/New_York") as client:
        ids = []
        for start in local_starts:
            end = start[:14] + "50:00"
            response = client.post(
                "/api/timeslots/", json={"start_time": start, "end_time": end}, headers=headers
            )
            ids.append(response.json()["id"])

        def listed(**params) -> list[int]:
            return [t["id"] for t in free(client, doctor_id, patient[1], **params).json()["results"]]

        # The spring-forward day lasts 23 hours; its 23:30 is still that day.
        assert listed(date=str(spring)) == ids[1:3]
        assert listed(date_from=str(spring)) == ids[1:]
        assert listed(date_to=str(spring)) == ids[:3]
        assert listed(date_from=str(spring), date_to=str(day_after)) == ids[1:]
        assert listed(date_from=str(day_before), date_to=str(day_before)) == ids[:1]


def test_date_to_before_date_from_is_422(client, doctor, patient):
    doctor_id, _ = doctor
    response = free(client, doctor_id, patient[1], date_from="2040-01-02", date_to="2040-01-01")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "date_to"


def test_the_free_listing_is_paginated(client, doctor, patient, when, rfc3339):
    doctor_id, headers = doctor
    for hour in range(9, 14):
        publish(client, headers, when(55, hour), when(55, hour + 1), rfc3339)
    first = free(client, doctor_id, patient[1], page_size=3).json()
    assert first["count"] == 5 and len(first["results"]) == 3
    second = client.get(first["next"], headers=patient[1]).json()
    assert [t["start_time"] for t in second["results"]] == [rfc3339(when(55, 12)), rfc3339(when(55, 13))]
    assert free(client, doctor_id, patient[1], page=9).json()["results"] == []


def test_a_doctor_who_stops_being_a_doctor_loses_the_future_free_timeslots(
    client, db, doctor, patient, when, rfc3339
):
    doctor_id, headers = doctor
    publish(client, headers, when(56, 9), when(56, 10), rfc3339)
    with db.transaction() as session:
        apply_user_state(session, user_id=doctor_id, role="patient", is_active=True, revision=4)
    assert free(client, doctor_id, patient[1]).status_code == 404
