from doctor.domain import UserFacts, is_stale, is_valid_doctor_id, should_open_profile


def facts(**overrides) -> UserFacts:
    values = {"user_id": 7, "revision": 3, "role": "doctor", "is_active": True, "full_name": "Ada Lovelace"}
    return UserFacts(**{**values, **overrides})


def test_an_active_doctor_is_listed():
    assert facts().is_listed_doctor


def test_an_inactive_doctor_is_not_listed():
    assert not facts(is_active=False).is_listed_doctor


def test_an_active_patient_is_not_listed():
    assert not facts(role="patient").is_listed_doctor


def test_a_doctor_gets_a_profile_even_when_inactive():
    assert should_open_profile(facts(is_active=False))


def test_a_patient_gets_no_profile():
    assert not should_open_profile(facts(role="patient"))


def test_a_user_whose_role_just_changed_gets_a_profile_to_remember_the_revision():
    assert should_open_profile(facts(role="patient", role_changed=True))


def test_facts_of_an_older_or_the_same_revision_are_stale():
    assert is_stale(facts(revision=2), applied_revision=3)
    assert is_stale(facts(revision=3), applied_revision=3)


def test_facts_of_a_newer_revision_are_not_stale():
    assert not is_stale(facts(revision=4), applied_revision=3)


def test_only_positive_bigints_can_be_doctor_ids():
    assert is_valid_doctor_id(1)
    assert is_valid_doctor_id(2**63 - 1)
    assert not is_valid_doctor_id(0)
    assert not is_valid_doctor_id(2**63)
