"""Every refusal the HTTP app sends is one application/problem+json shape (RFC 9457).

`type`, `title`, `status`, `detail` and `instance` are always there; a 422 adds `errors` (the
fields that failed validation), a webhook refusal adds `outcome` and `correlation_id`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://guardia.dev/problems/"

TITLES = {
    400: "InvalidInput",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "ContentTooLarge",
    415: "UnsupportedMediaType",
    422: "ValidationFailed",
}
TYPES = {
    400: "invalid-input",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "content-too-large",
    415: "unsupported-media-type",
    422: "validation-failed",
}


def problem_response(
    status: int,
    detail: str,
    instance: str,
    *,
    title: str | None = None,
    problem_type: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response; `extra` adds members such as `errors` or `outcome`."""
    return JSONResponse(
        {
            "type": problem_type or PROBLEM_BASE + TYPES.get(status, "error"),
            "title": title or TITLES.get(status, "Error"),
            "status": status,
            "detail": detail,
            "instance": instance,
            **extra,
        },
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """The failed fields: where, why, and pydantic's error type (never the input back)."""
    return [
        {
            "loc": [str(part) for part in e.get("loc", ())],
            "msg": e.get("msg"),
            "type": e.get("type"),
        }
        for e in exc.errors()
    ]


async def _validation_failed(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = field_errors(exc)
    where = ", ".join(".".join(e["loc"]) for e in errors[:5])
    return problem_response(
        422, f"the request does not validate: {where}", request.url.path, errors=errors
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette's own refusals (unknown path, method not allowed) in the same shape.
    status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
    detail = exc.detail if isinstance(exc, StarletteHTTPException) else "error"
    headers = getattr(exc, "headers", None)
    return problem_response(status, str(detail), request.url.path, headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    """Render validation failures and Starlette's HTTP errors as problem+json."""
    app.add_exception_handler(RequestValidationError, _validation_failed)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)
