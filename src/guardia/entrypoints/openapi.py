"""The OpenAPI document says what the app really answers: the problem+json refusals of every
route and the bearer token that `/api/*` routes need, both derived from the routes' policies."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from guardia.auth.tokens import ALLOWED, Policy
from guardia.entrypoints.deps import POLICY_KEY
from guardia.entrypoints.errors import PROBLEM_MEDIA_TYPE, TITLES

BEARER = "bearerAuth"
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "instance"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
        "outcome": {"type": "string"},
        "correlation_id": {"type": "string"},
    },
}
# What any route that takes input may refuse (the guard and the handlers), and what a route
# behind a token adds.
INPUT_REFUSALS = (400, 404, 409, 413, 415, 422)
TOKEN_REFUSALS = (401, 403)
SIGNATURE_REFUSALS = (401,)


def _problem(status: int) -> dict[str, Any]:
    return {
        "description": TITLES[status],
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _describe(spec: dict[str, Any]) -> dict[str, Any]:
    components = spec.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    components.setdefault("securitySchemes", {})[BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token (gdo_ operator, gda_ auditor, gdp_ pwa).",
    }
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            declared = operation.get(POLICY_KEY)
            if declared is None or Policy(declared) is Policy.PUBLIC:
                continue
            refusals = list(INPUT_REFUSALS)
            if Policy(declared) in ALLOWED:
                operation["security"] = [{BEARER: []}]
                refusals += TOKEN_REFUSALS
            else:
                refusals += SIGNATURE_REFUSALS
            responses = operation.setdefault("responses", {})
            for status in refusals:
                responses[str(status)] = _problem(status)
    return spec


def describe_problems_and_security(app: FastAPI) -> None:
    """Make `app.openapi()` declare the problem responses and the bearer scheme."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _describe(
                get_openapi(title=app.title, version=app.version, routes=app.routes)
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
