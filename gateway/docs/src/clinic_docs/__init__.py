"""Clinic's API documentation app: Swagger UI, Redoc and the merged OpenAPI document, behind the gateway."""
