from datetime import datetime
from zoneinfo import ZoneInfo

from identity.schemas import UserRead


def test_date_joined_is_answered_in_utc_whatever_the_databases_time_zone():
    # psycopg hands timestamptz values back in the session's TimeZone (a server set up in
    # Tokyo, say); clients get UTC, as every other time of the API.
    joined = datetime(2026, 11, 27, 18, 30, tzinfo=ZoneInfo("Asia/Tokyo"))
    user = UserRead(
        id=7,
        email="ada@example.com",
        full_name="Ada",
        phone=None,
        role="patient",
        is_active=True,
        date_joined=joined,
    )
    assert user.model_dump(mode="json")["date_joined"] == "2026-11-27T09:30:00Z"
