"""identity-service domain errors and their HTTP statuses."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from chassis.errors import DomainError, problem


class UserNotFound(DomainError):
    code = "user_not_found"

    def __init__(self, user_id: int) -> None:
        super().__init__(f"There is no user {user_id}.")


class EmailTaken(DomainError):
    code = "email_taken"

    def __init__(self) -> None:
        super().__init__("An account with this email already exists.")


class FieldInvalid(DomainError):
    """A request field breaks a rule that only the use case can check (422 with ``errors``)."""

    code = "validation_error"

    def __init__(self, field: str, messages: list[str]) -> None:
        super().__init__(
            f"The request is not valid: {field}: {' '.join(messages)}",
            errors=[{"field": field, "message": message} for message in messages],
        )


class WeakPassword(FieldInvalid):
    code = "weak_password"


class RoleNotAllowed(FieldInvalid):
    code = "role_not_allowed"


class CurrentPasswordInvalid(FieldInvalid):
    code = "current_password_invalid"


class AdminLockout(DomainError):
    code = "admin_lockout"

    def __init__(self) -> None:
        super().__init__("An admin cannot demote, deactivate or delete its own account.")


class AuthenticationFailed(DomainError):
    """Credentials or a refresh token were refused (401)."""

    code = "authentication_failed"


class InvalidCredentials(AuthenticationFailed):
    code = "invalid_credentials"

    def __init__(self) -> None:
        # One message whether the email is unknown, the password wrong or the account
        # deactivated: the answer must not tell which accounts exist.
        super().__init__("No active account matches these credentials.")


class InvalidRefreshToken(AuthenticationFailed):
    code = "invalid_refresh_token"

    def __init__(self, reason: str = "The refresh token is not valid, has expired or was revoked.") -> None:
        super().__init__(reason)


class RefreshTokenReused(InvalidRefreshToken):
    code = "refresh_token_reused"

    def __init__(self) -> None:
        super().__init__(
            "This refresh token was already used. Every token of its session has been revoked; "
            "please log in again."
        )


class AccountDeactivated(AuthenticationFailed):
    code = "account_deactivated"

    def __init__(self) -> None:
        super().__init__("This account has been deactivated.")


class InvalidClient(AuthenticationFailed):
    code = "invalid_client"

    def __init__(self) -> None:
        super().__init__("The service credentials are not valid.")


class LoginThrottled(DomainError):
    """Too many failed logins for this account or from this address (429, ``Retry-After``)."""

    code = "login_throttled"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "Too many failed login attempts for this account or from this address; "
            f"try again in {retry_after} seconds.",
            retry_after=retry_after,
        )
        self.retry_after = retry_after


STATUS_OF: dict[type[DomainError], int] = {
    UserNotFound: 404,
    EmailTaken: 409,
    AdminLockout: 409,
    FieldInvalid: 422,
    AuthenticationFailed: 401,
    LoginThrottled: 429,
}

# RFC 9110: a 401 carries a challenge. ``Bearer`` without an error: no token was at fault.
AUTHENTICATION_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="clinic"'}


def install_authentication_challenge(app: FastAPI) -> None:
    """Render ``AuthenticationFailed`` like every domain error, plus the 401 challenge header;
    and ``LoginThrottled`` with its ``Retry-After``."""

    @app.exception_handler(AuthenticationFailed)
    async def _challenge(_: Request, exc: AuthenticationFailed) -> JSONResponse:
        return problem(
            STATUS_OF[AuthenticationFailed], exc.detail, code=exc.code, headers=AUTHENTICATION_CHALLENGE
        )

    @app.exception_handler(LoginThrottled)
    async def _throttled(_: Request, exc: LoginThrottled) -> JSONResponse:
        return problem(
            STATUS_OF[LoginThrottled],
            exc.detail,
            code=exc.code,
            headers={"Retry-After": str(exc.retry_after)},
            **exc.extra,
        )
