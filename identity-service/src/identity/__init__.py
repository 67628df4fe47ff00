"""identity-service: users, credentials, refresh tokens, signing keys and the gateway's token check."""
