"""scheduling-service: doctors' timeslots and their state."""
