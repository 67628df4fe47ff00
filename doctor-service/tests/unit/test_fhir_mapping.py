"""A doctor profile as a FHIR Practitioner (doctor.fhir)."""

from fhir.resources.R4B.practitioner import Practitioner

from doctor.domain import name_prefix_patterns
from doctor.fhir import practitioner_of
from doctor.models import Doctor


def test_a_doctor_is_an_active_practitioner_with_its_name_and_specialty():
    resource = practitioner_of(Doctor(id=7, full_name="Ada Lovelace", specialty="Cardiology"))
    data = resource.model_dump(mode="json")

    assert Practitioner.model_validate(data) == resource
    assert data == {
        "resourceType": "Practitioner",
        "id": "7",
        "active": True,
        "name": [{"use": "official", "text": "Ada Lovelace"}],
        "qualification": [{"code": {"text": "Cardiology"}}],
    }


def test_a_profile_not_filled_in_yet_has_no_empty_elements():
    data = practitioner_of(Doctor(id=8, full_name="", specialty="")).model_dump(mode="json")
    assert data == {"resourceType": "Practitioner", "id": "8", "active": True}


def test_a_name_search_matches_the_start_of_the_name_or_of_a_word_taking_wildcards_literally():
    assert name_prefix_patterns("Ada") == ("Ada%", "% Ada%")
    assert name_prefix_patterns("50%_a\\b") == ("50\\%\\_a\\\\b%", "% 50\\%\\_a\\\\b%")
