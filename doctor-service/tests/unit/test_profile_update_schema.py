import pytest
from pydantic import ValidationError

from doctor.schemas import DoctorProfileUpdate


def test_only_the_fields_sent_are_changes():
    assert DoctorProfileUpdate.model_validate({"bio": "Hello"}).changes() == {"bio": "Hello"}


def test_the_specialty_is_trimmed():
    assert DoctorProfileUpdate.model_validate({"specialty": "  Cardiology "}).changes() == {
        "specialty": "Cardiology"
    }


@pytest.mark.parametrize(
    "body",
    [
        {"years_of_experience": -1},
        {"years_of_experience": 81},
        {"years_of_experience": "5"},
        {"years_of_experience": 5.5},
        {"years_of_experience": True},
        {"specialty": ""},
        {"specialty": "   "},
        {"specialty": "x" * 101},
        {"bio": "x" * 2001},
        {"specialty": None},
        {"full_name": "Someone Else"},
    ],
)
def test_invalid_profile_changes_are_refused(body):
    with pytest.raises(ValidationError):
        DoctorProfileUpdate.model_validate(body)


def test_the_limits_themselves_are_accepted():
    update = DoctorProfileUpdate.model_validate(
        {"specialty": "x" * 100, "bio": "x" * 2000, "years_of_experience": 80}
    )
    assert update.changes()["years_of_experience"] == 80
