"""Every route declares a policy; tokens are checked against it on every request."""

from __future__ import annotations

import httpx
import pytest

from guardia.auth.tokens import ALLOWED, Policy, Role
from guardia.bootstrap import Container
from guardia.entrypoints.http import create_app, route_policies
from tests.integration.conftest import auth

pytestmark = pytest.mark.integration


def concrete(path: str) -> str:
    return (
        path.replace("{order_id}", "ord_x")
        .replace("{event_id}", "evt_x")
        .replace("{incident_id}", "1")
        .replace("{target}", "odoo")
    )


async def test_every_role_gets_exactly_what_its_policy_allows(
    client: httpx.AsyncClient, container: Container
) -> None:
    routes = route_policies()
    guarded = [r for r in routes if r[2] in ALLOWED]
    assert {p for _, _, p in guarded} == {Policy.PWA_READ, Policy.READ, Policy.ACT}
    for method, path, policy in guarded:
        anonymous = await client.request(method, concrete(path), json={})
        assert anonymous.status_code == 401, (method, path)
        for role in Role:
            response = await client.request(method, concrete(path), json={}, headers=auth(role))
            if role in ALLOWED[policy]:
                assert response.status_code not in (401, 403), (method, path, role)
            else:
                assert response.status_code == 403, (method, path, role)


async def test_a_wrong_token_is_unauthorized(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/dead-letters", headers={"Authorization": "Bearer gdo_not_a_real_token"}
    )
    assert response.status_code == 401


async def test_a_route_without_a_policy_is_refused_even_to_an_operator(
    container: Container,
) -> None:
    app = create_app(container)

    @app.get("/api/forgotten")
    async def forgotten() -> dict[str, str]:
        return {"leak": "yes"}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://guardia.test") as client:
        response = await client.get("/api/forgotten", headers=auth(Role.OPERATOR))
    assert response.status_code == 403
    assert "leak" not in response.text


async def test_public_probes_need_no_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    not_yet = await client.get("/readyz")
    assert not_yet.status_code == 503
    assert not_yet.json()["checks"]["odoo"]["ok"] is False
    checked = await client.post("/api/checks/odoo", headers=auth(Role.OPERATOR))
    assert checked.status_code == 200, checked.text
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["migrations"]["ok"] is True
