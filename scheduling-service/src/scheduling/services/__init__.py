"""scheduling-service write use cases, one transaction each: timeslots, reservations (the
scheduling side of the booking protocol) and the doctors read model."""

from scheduling.services.timeslots import create_timeslot, create_timeslots_bulk, delete_own_timeslot

__all__ = ["create_timeslot", "create_timeslots_bulk", "delete_own_timeslot"]
