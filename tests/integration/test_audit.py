"""The audit log: every operator action recorded, append-only, and any tampering detected."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from guardia.audit import log as audit
from guardia.auth.tokens import Role
from guardia.bootstrap import Container
from guardia.payments.fakes import InMemoryOrders
from guardia.payments.model import snapshot_from_order
from tests.conftest import Signer
from tests.integration.conftest import auth, drain
from tests.integration.test_webhook_ingest import fixture_event, post_event

pytestmark = pytest.mark.integration

ORDER = "ord_2yQ8nCk3vJ5dWx9Ra"


async def act(client: httpx.AsyncClient, container: Container, signer: Signer) -> None:
    await post_event(client, signer, fixture_event("order_paid_spei.json"))
    await drain(container)
    for n in range(3):
        response = await client.post(
            "/api/replay",
            json={"order_id": ORDER, "reason": f"drill {n}"},
            headers=auth(Role.OPERATOR),
        )
        assert response.status_code == 200


async def test_operator_actions_are_recorded_with_actor_reason_and_correlation(
    client: httpx.AsyncClient, container: Container, signer: Signer, orders: InMemoryOrders
) -> None:
    event = fixture_event("order_paid_spei.json")
    orders.put(snapshot_from_order(event["data"]["object"]))
    await act(client, container, signer)
    pulled = await client.post(
        f"/api/orders/{ORDER}/pull",
        params={"reason": "PWA shows pending"},
        headers=auth(Role.OPERATOR),
    )
    assert pulled.status_code == 200
    entries = (await client.get("/api/audit", headers=auth(Role.AUDITOR))).json()["entries"]
    assert [(e["seq"], e["action"], e["actor"]) for e in entries] == [
        (4, "pull", "t-operator"),
        (3, "replay", "t-operator"),
        (2, "replay", "t-operator"),
        (1, "replay", "t-operator"),
    ]
    assert entries[0]["reason"] == "PWA shows pending"
    assert entries[0]["correlation_id"] == entries[1]["correlation_id"]
    verified = await client.get("/api/audit/verify", headers=auth(Role.AUDITOR))
    assert verified.json() == {"ok": True, "entries": 4, "head": entries[0]["hash"], "problems": []}


async def test_the_database_refuses_updates_and_deletes(
    client: httpx.AsyncClient, container: Container, signer: Signer
) -> None:
    await act(client, container, signer)
    for statement in (
        "UPDATE audit_log SET reason = 'nothing happened' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 1",
        "TRUNCATE audit_log",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with container.engine.begin() as conn:
                await conn.execute(text(statement))


async def tamper(container: Container, *statements: str) -> audit.ChainReport:
    """Edit the log as a superuser who switched the triggers off would."""
    async with container.engine.begin() as conn:
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        for statement in statements:
            await conn.execute(text(statement))
    return await audit.verify(container.engine)


async def test_an_edited_entry_is_named(
    client: httpx.AsyncClient, container: Container, signer: Signer
) -> None:
    await act(client, container, signer)
    report = await tamper(container, "UPDATE audit_log SET reason = 'drill 9' WHERE seq = 2")
    assert report.problems == ["entry 2: content does not match its hash (edited)"]


async def test_a_deleted_entry_is_named(
    client: httpx.AsyncClient, container: Container, signer: Signer
) -> None:
    await act(client, container, signer)
    report = await tamper(container, "DELETE FROM audit_log WHERE seq = 2")
    assert not report.ok
    assert report.problems[0].startswith("entry 3: expected entry 2 here")


async def test_a_swapped_pair_is_named(
    client: httpx.AsyncClient, container: Container, signer: Signer
) -> None:
    await act(client, container, signer)
    report = await tamper(
        container,
        "UPDATE audit_log SET seq = -1 WHERE seq = 2",
        "UPDATE audit_log SET seq = 2 WHERE seq = 3",
        "UPDATE audit_log SET seq = 3 WHERE seq = -1",
    )
    assert not report.ok
    assert any(p.startswith("entry 2:") for p in report.problems)
    assert any(p.startswith("entry 3:") for p in report.problems)


async def test_entries_deleted_at_the_end_are_caught_by_the_head(
    client: httpx.AsyncClient, container: Container, signer: Signer
) -> None:
    await act(client, container, signer)
    report = await tamper(container, "DELETE FROM audit_log WHERE seq = 3")
    assert report.problems == [
        "chain head says entry 3; the log ends at entry 2 "
        "(entries deleted at the end, or the head was edited)"
    ]
