"""doctor-service: doctor profiles."""
