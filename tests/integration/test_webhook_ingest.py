"""The Conekta webhook receiver on a real database, through the real app."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from guardia.adapters.postgres.tables import payment_transitions, webhook_attempts, webhook_events
from guardia.auth.tokens import Role
from guardia.bootstrap import Container
from tests.conftest import Signer, shared_dir
from tests.integration.conftest import auth, compact, drain

pytestmark = pytest.mark.integration


def fixture_event(name: str) -> dict[str, Any]:
    """A Conekta event from the shared fixtures."""
    data: dict[str, Any] = json.loads(
        (shared_dir() / "fixtures" / "providers" / "conekta" / name).read_text()
    )
    return data


async def post_event(
    client: httpx.AsyncClient, signer: Signer, event: dict[str, Any], *, digest: str | None = None
) -> httpx.Response:
    body = compact(event)
    return await client.post(
        "/webhooks/conekta",
        content=body,
        headers={
            "DIGEST": digest if digest is not None else signer.digest(body),
            "Content-Type": "application/json",
        },
    )


async def count(container: Container, table: Any, *where: Any) -> int:
    async with container.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table).where(*where)) or 0)


async def test_fifty_concurrent_deliveries_store_one_row_and_process_once(
    client: httpx.AsyncClient, container: Container, signer: Signer
) -> None:
    event = fixture_event("order_paid_spei.json")
    responses = await asyncio.gather(*(post_event(client, signer, event) for _ in range(50)))
    assert {r.status_code for r in responses} == {200}
    outcomes = sorted(r.json()["outcome"] for r in responses)
    assert outcomes.count("accepted") == 1
    assert outcomes.count("duplicate") == 49
    assert await count(container, webhook_events) == 1
    assert await count(container, webhook_attempts) == 50
    async with container.engine.connect() as conn:
        queued = await conn.scalar(
            text(
                "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'guardia:process_event'"
            )
        )
    assert queued == 1
    await drain(container)
    assert await count(container, payment_transitions) == 1
    order = await client.get("/api/orders/ord_2yQ8nCk3vJ5dWx9Ra", headers=auth(Role.PWA))
    assert order.status_code == 200
    body = order.json()
    assert body["status"] == "paid"
    assert body["amount"] == {"cents": 150000, "currency": "MXN"}
    assert body["payment_method"]["type"] == "spei"
    assert body["last_event"]["id"] == event["id"]


async def test_forged_signature_is_rejected_with_nothing_stored_but_the_attempt(
    client: httpx.AsyncClient, container: Container, signer: Signer
) -> None:
    event = fixture_event("order_paid_spei.json")
    tampered = copy.deepcopy(event)
    tampered["data"]["object"]["amount"] = 1
    good_digest = signer.digest(compact(event))
    response = await post_event(client, signer, tampered, digest=good_digest)
    assert response.status_code == 401
    missing = await client.post(
        "/webhooks/conekta", content=compact(event), headers={"Content-Type": "application/json"}
    )
    assert missing.status_code == 401
    assert await count(container, webhook_events) == 0
    rows = await count(
        container, webhook_attempts, webhook_attempts.c.outcome == "invalid_signature"
    )
    assert rows == 2
    async with container.engine.connect() as conn:
        stored = (await conn.execute(select(webhook_attempts.c.headers))).scalars().all()
    assert all(not h.get("digest", "sha256:").startswith(good_digest[:10]) for h in stored)
    metrics = await client.get("/metrics")
    assert 'guardia_webhook_signature_failures_total{provider="conekta"} 2.0' in metrics.text


async def test_malformed_oversized_and_unknown_events_get_their_status_codes(
    client: httpx.AsyncClient, container: Container, signer: Signer
) -> None:
    body = b"{not json"
    bad = await client.post(
        "/webhooks/conekta",
        content=body,
        headers={"DIGEST": signer.digest(body), "Content-Type": "application/json"},
    )
    assert bad.status_code == 400
    huge = b"{" + b" " * (container.settings.webhook_max_body_bytes + 1) + b"}"
    too_large = await client.post(
        "/webhooks/conekta",
        content=huge,
        headers={"DIGEST": signer.digest(huge), "Content-Type": "application/json"},
    )
    assert too_large.status_code == 413
    unknown = {**fixture_event("order_paid_spei.json"), "id": "0" * 24, "type": "plan.created"}
    stored = await post_event(client, signer, unknown)
    assert stored.status_code == 200
    ping = await post_event(client, signer, fixture_event("webhook_ping.json"))
    assert ping.status_code == 200
    assert ping.json()["outcome"] == "ping"
    async with container.engine.connect() as conn:
        status = await conn.scalar(select(webhook_events.c.status))
    assert status == "ignored"
    await drain(container)
    assert await count(container, payment_transitions) == 0


async def test_late_pending_event_never_undoes_paid(
    client: httpx.AsyncClient, container: Container, signer: Signer
) -> None:
    paid = fixture_event("order_paid_spei.json")
    pending = fixture_event("order_pending_payment_spei.json")
    assert (await post_event(client, signer, paid)).status_code == 200
    await drain(container)
    assert (await post_event(client, signer, pending)).status_code == 200
    await drain(container)
    order = await client.get("/api/orders/ord_2yQ8nCk3vJ5dWx9Ra", headers=auth(Role.PWA))
    assert order.json()["status"] == "paid"


async def test_unknown_order_is_404_as_problem_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/orders/ord_missing", headers=auth(Role.PWA))
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_every_event_of_an_order_carries_the_order_correlation_id(
    client: httpx.AsyncClient, container: Container, signer: Signer
) -> None:
    first = await post_event(client, signer, fixture_event("order_pending_payment_spei.json"))
    await drain(container)
    second = await post_event(client, signer, fixture_event("order_paid_spei.json"))
    assert first.json()["correlation_id"] == second.json()["correlation_id"]
    order = await client.get("/api/orders/ord_2yQ8nCk3vJ5dWx9Ra", headers=auth(Role.PWA))
    assert order.json()["correlation_id"] == first.json()["correlation_id"]


async def test_a_delivery_whose_store_fails_keeps_its_forensic_row_and_is_counted(
    client: httpx.AsyncClient, container: Container, signer: Signer
) -> None:
    # A store that fails after the signature passed (a pooler's prepared-statement clash, a
    # constraint, a trigger) used to roll the attempt row back with it: 8-10 % of deliveries
    # failed while webhook_attempts showed none and the failure alert stayed silent.
    async with container.engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'store refused for the test'; END $$"
            )
        )
        await conn.execute(
            text(
                "CREATE TRIGGER refuse_event BEFORE INSERT ON webhook_events "
                "FOR EACH ROW EXECUTE FUNCTION refuse_event()"
            )
        )
    event = fixture_event("order_paid_spei.json")

    response = await post_event(client, signer, event)

    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["outcome"] == "store_failed"
    assert await count(container, webhook_events) == 0
    assert (
        await count(
            container,
            webhook_attempts,
            webhook_attempts.c.outcome == "store_failed",
            webhook_attempts.c.http_status == 503,
            webhook_attempts.c.event_id == event["id"],
        )
        == 1
    )
    metrics = await client.get("/metrics")
    assert 'guardia_webhooks_received_total{outcome="store_failed",provider="conekta"} 1.0' in (
        metrics.text
    )
