"""The waitlist: patients waiting for a doctor's timeslot within a range of days.

When scheduling says a timeslot became bookable (``scheduling.timeslot.released`` or
``created``), the earliest waiting entry whose range covers it gets an offer: the timeslot
is held at scheduling under the offer's reservation id until the offer expires, so only
that patient can book it (their booking converts the hold). An expired offer is released
and passes on. ``offers.py`` holds that protocol; docs/booking-protocol.md describes it.
"""
