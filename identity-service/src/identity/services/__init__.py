"""identity-service write use cases, one transaction each: accounts and sessions."""

from identity.services.accounts import (
    AdminAccount,
    create_admin,
    deactivate_user,
    record_user_fact,
    register_user,
    update_own_account,
    update_user,
)
from identity.services.sessions import end_sessions, log_in, log_out, refresh_session

__all__ = [
    "AdminAccount",
    "create_admin",
    "deactivate_user",
    "end_sessions",
    "log_in",
    "log_out",
    "record_user_fact",
    "refresh_session",
    "register_user",
    "update_own_account",
    "update_user",
]
