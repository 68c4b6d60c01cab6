"""What every route module shares: the policy marker and the request's container and caller."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from guardia.auth.tokens import Policy, Principal
from guardia.bootstrap import Container
from guardia.core.errors import Forbidden

POLICY_KEY = "x-guardia-policy"


def policy(p: Policy) -> dict[str, Any]:
    """Route metadata declaring its access policy."""
    return {POLICY_KEY: p.value}


def container_of(request: Request) -> Container:
    """The process's Container."""
    c: Container = request.app.state.container
    return c


def principal_of(request: Request) -> Principal:
    """The authenticated caller of an authorised route."""
    p: Principal | None = getattr(request.state, "principal", None)
    if p is None:
        raise Forbidden("route has no authenticated principal")
    return p
