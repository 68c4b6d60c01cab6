"""Guardia's exception tree.

GuardiaError
├── NotFound                 a record asked for by id does not exist (HTTP 404)
├── Conflict                 the request contradicts the stored state (HTTP 409)
├── InvalidInput             the caller sent something unusable (HTTP 400)
├── ContentTooLarge          the request body is over the limit (HTTP 413)
├── UnsupportedMediaType     the request body is not JSON (HTTP 415)
├── Unauthorized             missing or unknown credentials (HTTP 401)
├── Forbidden                credentials known but not allowed (HTTP 403)
├── InvalidSignature         a webhook's signature did not verify (HTTP 401)
├── ProviderUnavailable      a provider could not answer now: retry later (retryable)
└── ProviderRejected         a provider refused the request for good (permanent, with a cause)

Each exception's docstring is its default message.
"""

from __future__ import annotations


class GuardiaError(Exception):
    """Guardia failed."""

    status_code: int = 500
    problem_type: str = "about:blank"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        super().__init__(self.message)


class NotFound(GuardiaError):
    """The record was not found."""

    status_code = 404
    problem_type = "https://guardia.dev/problems/not-found"


class Conflict(GuardiaError):
    """The request conflicts with the stored state."""

    status_code = 409
    problem_type = "https://guardia.dev/problems/conflict"


class InvalidInput(GuardiaError):
    """The input is not valid."""

    status_code = 400
    problem_type = "https://guardia.dev/problems/invalid-input"


class ContentTooLarge(GuardiaError):
    """The request body is over the size limit."""

    status_code = 413
    problem_type = "https://guardia.dev/problems/content-too-large"


class UnsupportedMediaType(GuardiaError):
    """The request body must be application/json or application/*+json."""

    status_code = 415
    problem_type = "https://guardia.dev/problems/unsupported-media-type"


class Unauthorized(GuardiaError):
    """Missing or unknown credentials."""

    status_code = 401
    problem_type = "https://guardia.dev/problems/unauthorized"


class Forbidden(GuardiaError):
    """These credentials may not do this."""

    status_code = 403
    problem_type = "https://guardia.dev/problems/forbidden"


class InvalidSignature(GuardiaError):
    """The webhook signature did not verify."""

    status_code = 401
    problem_type = "https://guardia.dev/problems/invalid-signature"


class ProviderUnavailable(GuardiaError):
    """The provider could not answer now; retry later."""

    status_code = 503
    problem_type = "https://guardia.dev/problems/provider-unavailable"

    def __init__(self, message: str | None = None, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderRejected(GuardiaError):
    """The provider rejected the request."""

    status_code = 502
    problem_type = "https://guardia.dev/problems/provider-rejected"

    def __init__(self, message: str | None = None, *, cause: str = "unknown") -> None:
        super().__init__(message)
        self.cause = cause


def is_retryable(exc: BaseException) -> bool:
    """Tell whether a failure may succeed if tried again later."""
    if isinstance(exc, ProviderRejected | InvalidInput | NotFound | Conflict):
        return False
    return True


def failure_cause(exc: BaseException) -> str:
    """Name the cause of a failure in one stable word, for dead letters and alerts."""
    if isinstance(exc, ProviderRejected):
        return exc.cause
    if isinstance(exc, ProviderUnavailable):
        return "provider_unavailable"
    if isinstance(exc, NotFound):
        return "not_found"
    if isinstance(exc, InvalidInput):
        return "invalid_input"
    if isinstance(exc, Conflict):
        return "conflict"
    return type(exc).__name__
