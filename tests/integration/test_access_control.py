"""Every route declares a policy; tokens are checked against it on every request."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

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


def test_every_route_that_changes_state_is_for_operators_only() -> None:
    changing = [(m, p, policy) for m, p, policy in route_policies() if m != "GET"]
    assert changing
    for method, path, policy in changing:
        assert policy in (Policy.ACT, Policy.WEBHOOK), (method, path, policy)


async def test_an_auditor_cannot_export_an_evidence_bundle(
    client: httpx.AsyncClient, container: Container, tmp_path: Path
) -> None:
    container.settings.incidents_dir = tmp_path / "evidence"
    opened = await client.post(
        "/api/incidents", json={"title": "webhooks rejected"}, headers=auth(Role.OPERATOR)
    )
    incident_id = opened.json()["id"]

    refused = await client.post(f"/api/incidents/{incident_id}/export", headers=auth(Role.AUDITOR))

    assert refused.status_code == 403
    assert not container.settings.incidents_dir.exists()
    entries = (await client.get("/api/audit", headers=auth(Role.AUDITOR))).json()["entries"]
    assert "incident_export" not in {e["action"] for e in entries}


async def _held_match(container: Container, requested_by: str) -> int:
    """A manual match above the approval threshold, waiting for a second operator."""
    async with container.engine.begin() as conn:
        held = await conn.scalar(
            text(
                "INSERT INTO recon_manual (run_id, action, bank_line_id, ledger_ids, "
                "amount_cents, reason, actor, status, created_at) VALUES (1, 'match', 'line-1', "
                "'[\"conekta:tr_1\"]', 5000000, 'CEP attached', :who, 'pending_approval', now()) "
                "RETURNING id"
            ),
            {"who": requested_by},
        )
    return int(held)


async def _status_of(container: Container, manual_id: int) -> str:
    async with container.engine.connect() as conn:
        found = await conn.scalar(
            text("SELECT status FROM recon_manual WHERE id = :id"), {"id": manual_id}
        )
    return str(found)


async def test_the_token_that_asked_for_a_match_cannot_approve_it(
    client: httpx.AsyncClient, container: Container
) -> None:
    held = await _held_match(container, requested_by="t-operator")

    response = await client.post(
        f"/api/recon/manual/{held}/approve",
        json={"reason": "CEP checked"},
        headers=auth(Role.OPERATOR),
    )

    assert response.status_code == 409, response.text
    assert await _status_of(container, held) == "pending_approval"


async def test_an_approval_cannot_name_someone_else_as_its_approver(
    client: httpx.AsyncClient, container: Container
) -> None:
    held = await _held_match(container, requested_by="t-operator")

    response = await client.post(
        f"/api/recon/manual/{held}/approve",
        json={"reason": "CEP checked", "actor": "luis", "approver": "luis"},
        headers=auth(Role.OPERATOR),
    )

    assert response.status_code == 422, response.text
    assert await _status_of(container, held) == "pending_approval"


async def test_an_auditor_reads_webhook_attempts_without_their_raw_contents(
    client: httpx.AsyncClient,
) -> None:
    body = b'{"id": "evt_1", "type": "order.paid", "customer": "ana.lopez@example.mx"}'
    rejected = await client.post(
        "/webhooks/conekta",
        content=body,
        headers={
            "Content-Type": "application/json",
            "DIGEST": "bm90IGEgc2lnbmF0dXJl",
            "User-Agent": "probe ana.lopez@example.mx +52 55 1234 5678",
        },
    )
    assert rejected.status_code == 401

    audited = await client.get("/api/webhook-attempts", headers=auth(Role.AUDITOR))
    operated = await client.get("/api/webhook-attempts", headers=auth(Role.OPERATOR))

    (seen,) = audited.json()["attempts"]
    assert "body" not in seen
    assert seen["body_sha256"] is not None
    assert "ana.lopez@example.mx" not in audited.text
    assert "1234 5678" not in audited.text
    assert "[EMAIL]" in seen["headers"]["user-agent"]
    (stored,) = operated.json()["attempts"]
    # Forensic headers are an allow-list redacted when stored: nobody reads the PII back.
    assert "ana.lopez@example.mx" not in operated.text
    assert stored["headers"]["user-agent"] == seen["headers"]["user-agent"]
