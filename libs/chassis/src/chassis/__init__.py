"""Shared infrastructure of the Clinic services.

Chassis holds what every service needs and nothing that belongs to one of them:
settings fragments, the database engine and naming convention, problem+json errors,
request ids and logging, health endpoints, token verification, pagination, the
outbox/inbox messaging machinery and pytest fixtures for real servers.
"""
