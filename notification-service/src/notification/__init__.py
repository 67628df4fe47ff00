"""Clinic notification-service: webhooks, email and reminders, from booking's and identity's events."""
