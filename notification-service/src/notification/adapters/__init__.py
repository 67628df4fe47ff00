"""notification-service adapters: webhook targets and sending, SMTP and templates, the workers."""
