"""The request guard: who may call, then what they may send — before any route reads a byte.

A pure ASGI middleware, because FastAPI runs dependencies only after it has parsed and validated
the body: an unauthenticated caller could otherwise probe the validators (422 instead of 401)
and make us parse whatever it sends. In order:

1. Find the route and authorise the request against its declared `Policy` (401/403). A route
   that declares none is refused (403), so forgetting a policy fails closed.
2. Refuse a NUL in the path or query (400): PostgreSQL cannot store it in text.
3. Routes authenticated by a provider signature (`Policy.WEBHOOK`) read their own bounded body
   and record every refusal for forensics; the guard leaves their body alone.
4. Bound the body (413, declared or streamed), require a JSON media type for a body (415), and
   parse it strictly (400: NaN, lone surrogates, NUL, deep nesting; see `core.strict_json`).
   The body is then handed on to the route as read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from email.message import Message
from urllib.parse import parse_qsl

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as AsgiMessage

from guardia.auth.tokens import Policy
from guardia.bootstrap import Container
from guardia.core import strict_json
from guardia.core.errors import (
    ContentTooLarge,
    Forbidden,
    GuardiaError,
    InvalidInput,
    UnsupportedMediaType,
)
from guardia.entrypoints.deps import POLICY_KEY
from guardia.entrypoints.errors import problem_response


def is_json_media_type(content_type: str) -> bool:
    """`application/json` or `application/<anything>+json`, parameters allowed (RFC 6839)."""
    message = Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


def _leaf_routes(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    for route in routes:
        # Newer FastAPI keeps an included router whole (`_IncludedRouter.original_router`)
        # instead of copying its routes into the app's; the routes inside carry their prefix.
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _leaf_routes(included.routes)
        else:
            yield route


def route_policy(scope: Scope) -> Policy | None:
    """The declared policy of the route this request reaches (None: none found, refuse).

    Raises LookupError when no route takes the request: the router answers 404/405 itself.
    """
    app = scope["app"]
    if not any(route.matches(scope)[0] is Match.FULL for route in app.router.routes):
        raise LookupError(scope["path"])
    for route in _leaf_routes(app.router.routes):
        if route.matches(scope)[0] is Match.FULL:
            if getattr(route, "path", None) == app.openapi_url:
                return Policy.PUBLIC
            declared = (getattr(route, "openapi_extra", None) or {}).get(POLICY_KEY)
            return None if declared is None else Policy(declared)
    return None


class RequestGuard:
    """Authorise, then bound and check the body, for every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            declared = route_policy(scope)
        except LookupError:
            await self.app(scope, receive, send)
            return
        container: Container = scope["app"].state.container
        try:
            if declared is None:
                raise Forbidden("this route declares no access policy")
            principal = container.tokens.authorize(_bearer(scope), declared)
            scope.setdefault("state", {})["principal"] = principal
            _check_target(scope)
            body = (
                None
                if declared is Policy.WEBHOOK
                else await _read_body(scope, receive, container.settings.api_max_body_bytes)
            )
        except GuardiaError as exc:
            refusal = problem_response(
                exc.status_code,
                exc.message,
                scope["path"],
                title=type(exc).__name__,
                problem_type=exc.problem_type,
            )
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive if body is None else _replay(body, receive), send)


def _check_target(scope: Scope) -> None:
    """Refuse a path or query that PostgreSQL could not store."""
    query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    for text in (scope["path"], *(part for pair in query for part in pair)):
        problem = strict_json.unstorable(text)
        if problem is not None:
            raise InvalidInput(f"the URL holds {problem}")


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    declared = _header(scope, b"content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise ContentTooLarge(f"body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            raise InvalidInput("the client went away before sending its body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ContentTooLarge(f"body over {limit} bytes")
        chunks.append(chunk)
        more = message.get("more_body", False)
    body = b"".join(chunks)
    if body:
        content_type = _header(scope, b"content-type") or ""
        if not is_json_media_type(content_type):
            raise UnsupportedMediaType()
        strict_json.parse(body)
    return body


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands over the body already read, then whatever comes next."""
    sent = False

    async def replayed() -> AsgiMessage:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
