"""booking-service: appointments and their status machine."""
