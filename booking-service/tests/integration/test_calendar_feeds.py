"""Who a calendar feed's private URL still serves: only under the current feed key, and only
while its user is active in the role the feed was made for (the rest: tests/e2e)."""

from __future__ import annotations

from booking.models import User
from booking.services import feeds


def test_a_new_feed_key_ends_every_old_url_and_the_url_shown_then_works(app, seed, new_id):
    patient = new_id()
    seed(patient_id=patient, doctor_id=new_id())
    db = app.state.db
    before = feeds.FeedKeys(db, "the-first-key")
    old_url = feeds.feed_secret(db, before, user_id=patient, role="patient")
    assert feeds.feed_items(db, before, old_url)

    after = feeds.FeedKeys(db, "a-new-key-after-a-leak")
    assert feeds.feed_items(db, after, old_url) is None
    new_url = feeds.feed_secret(db, after, user_id=patient, role="patient")
    assert new_url != old_url
    assert len(feeds.feed_items(db, after, new_url)) == 1


def test_a_feed_ends_when_its_user_changes_role(app, seed, new_id):
    doctor = new_id()
    seed(patient_id=new_id(), doctor_id=doctor)
    db = app.state.db
    keys = feeds.FeedKeys(db, "a-key")
    with db.transaction() as session:
        session.add(User(id=doctor, full_name="Dr Demoted", role="doctor", is_active=True, revision=1))
    url = feeds.feed_secret(db, keys, user_id=doctor, role="doctor")
    assert len(feeds.feed_items(db, keys, url)) == 1

    with db.transaction() as session:  # what identity's user.updated event leaves in booking
        session.get(User, doctor).role = "patient"
    assert feeds.feed_items(db, keys, url) is None
