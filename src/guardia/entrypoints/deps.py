"""What every route module shares: the policy marker and the request's container and caller."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Request
from pydantic import Field, StringConstraints

from guardia.auth.tokens import Policy, Principal
from guardia.bootstrap import Container
from guardia.core.errors import Forbidden

POLICY_KEY = "x-guardia-policy"

# Bounds of what callers may name: PostgreSQL's bigint, and ids short enough for any btree
# index (an entry over ~2.7 kB fails the insert) — larger values are refused as 422, not 500.
INT64_MAX = 2**63 - 1
MAX_KEY = 255
RowId = Annotated[int, Path(ge=1, le=INT64_MAX)]
"""A row id in a path."""
BodyRowId = Annotated[int, Field(ge=1, le=INT64_MAX)]
"""A row id in a body."""
PathKey = Annotated[str, Path(min_length=1, max_length=MAX_KEY)]
"""A provider or Guardia key (order, event, runbook name) in a path."""
Key = Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY)]
"""A provider or Guardia key (order, event, correlation id) in a body."""


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
