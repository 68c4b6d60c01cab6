"""Recovery actions on a real database: pull (dry run and apply), replay, sweeper, dead letters."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from guardia.adapters.postgres.tables import payment_transitions, payments, recovery_actions
from guardia.auth.tokens import Role
from guardia.bootstrap import Container
from guardia.core.clock import FakeClock
from guardia.jobs import deadletters
from guardia.payments import service
from guardia.payments.fakes import InMemoryOrders
from guardia.payments.model import snapshot_from_order
from tests.conftest import Signer
from tests.integration.conftest import auth, compact, drain
from tests.integration.test_webhook_ingest import count, fixture_event, post_event

pytestmark = pytest.mark.integration

ORDER = "ord_2yQ8nCk3vJ5dWx9Ra"


def order_of(event: dict[str, Any]) -> dict[str, Any]:
    obj: dict[str, Any] = event["data"]["object"]
    return obj


async def status_of(container: Container, order_id: str) -> str | None:
    async with container.engine.connect() as conn:
        return await conn.scalar(select(payments.c.status).where(payments.c.order_id == order_id))


async def test_pull_dry_run_shows_the_diff_and_changes_nothing_then_apply_heals(
    client: httpx.AsyncClient, container: Container, signer: Signer
) -> None:
    await post_event(client, signer, fixture_event("order_pending_payment_spei.json"))
    await drain(container)
    source = InMemoryOrders()
    source.put(snapshot_from_order(order_of(fixture_event("order_paid_spei.json"))))

    dry = await service.pull_order(container.engine, source, ORDER, actor="t", dry_run=True)
    assert dry.changes["status"] == ("pending_payment", "paid")
    assert await status_of(container, ORDER) == "pending_payment"

    applied = await service.pull_order(container.engine, source, ORDER, actor="t")
    assert applied.changes == dry.changes
    assert await status_of(container, ORDER) == "paid"
    again = await service.pull_order(container.engine, source, ORDER, actor="t")
    assert again.changes == {}
    async with container.engine.connect() as conn:
        kinds = (
            await conn.execute(select(recovery_actions.c.kind, recovery_actions.c.dry_run))
        ).all()
    assert [(k, d) for k, d in kinds] == [("pull", True), ("pull", False), ("pull", False)]


async def test_replay_by_order_and_by_window_is_idempotent(
    client: httpx.AsyncClient, container: Container, signer: Signer
) -> None:
    await post_event(client, signer, fixture_event("order_paid_spei.json"))
    await drain(container)
    by_order = await client.post(
        "/api/replay", json={"order_id": ORDER}, headers=auth(Role.OPERATOR)
    )
    assert by_order.status_code == 200
    assert by_order.json()["orders"] == {ORDER: "paid"}
    assert by_order.json()["changed"] == []
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    window = await client.post("/api/replay", json={"since": since}, headers=auth(Role.OPERATOR))
    assert window.json()["events"] == [fixture_event("order_paid_spei.json")["id"]]
    assert await count(container, payment_transitions) == 1
    empty = await client.post("/api/replay", json={}, headers=auth(Role.OPERATOR))
    assert empty.status_code == 400


async def test_sweeper_heals_an_order_whose_paid_webhook_never_arrived(
    client: httpx.AsyncClient, container: Container, signer: Signer
) -> None:
    await post_event(client, signer, fixture_event("order_pending_payment_spei.json"))
    await drain(container)
    source = InMemoryOrders()
    source.put(snapshot_from_order(order_of(fixture_event("order_paid_spei.json"))))
    clock = FakeClock(datetime.now(UTC) + timedelta(minutes=30))
    result = await service.sweep(
        container.engine,
        source,
        clock,
        pending_age=timedelta(minutes=10),
        lookback=timedelta(days=3650),
    )
    assert result.pulled == 1
    assert ORDER in result.healed
    assert [(order, len(ids)) for order, _, ids in result.postings] == [(ORDER, 1)]
    assert await status_of(container, ORDER) == "paid"
    async with container.engine.connect() as conn:
        sources = (await conn.execute(select(payment_transitions.c.source))).scalars().all()
    assert sources == ["webhook", "sweep"]


async def test_sweeper_discovers_orders_it_never_heard_of(container: Container) -> None:
    source = InMemoryOrders()
    paid = snapshot_from_order(order_of(fixture_event("order_paid_spei.json")))
    source.put(paid)
    clock = FakeClock(paid.updated_at + timedelta(minutes=1))
    result = await service.sweep(
        container.engine,
        source,
        clock,
        pending_age=timedelta(minutes=10),
        lookback=timedelta(days=1),
    )
    assert result.discovered == 1
    assert await status_of(container, ORDER) == "paid"


async def drain_all(container: Container, rounds: int = 40) -> None:
    """Drain until no job is left to run, retries included (they are scheduled shortly ahead)."""
    for _ in range(rounds):
        await drain(container)
        async with container.engine.connect() as conn:
            left = await conn.scalar(
                text(
                    "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing') "
                    "AND queue_name <> 'periodic'"
                )
            )
        if not left:
            return
        await __import__("asyncio").sleep(0.1)
    raise AssertionError("queue did not drain")


async def test_a_permanent_failure_becomes_a_dead_letter_and_retry_by_cause_re_enqueues_it(
    client: httpx.AsyncClient, container: Container, signer: Signer
) -> None:
    broken = {"id": "f" * 24, "type": "order.paid", "livemode": False, "data": {}, "created_at": 1}
    response = await post_event(client, signer, broken)
    assert response.status_code == 200
    await drain_all(container)
    listed = await client.get("/api/dead-letters", headers=auth(Role.AUDITOR))
    letters = listed.json()["dead_letters"]
    assert [(d["cause"], d["attempts"]) for d in letters] == [("invalid_input", 1)]
    assert letters[0]["correlation_id"] == response.json()["correlation_id"]

    refused = await client.post(
        "/api/dead-letters/retry", json={"cause": "invalid_input"}, headers=auth(Role.AUDITOR)
    )
    assert refused.status_code == 403
    retried = await client.post(
        "/api/dead-letters/retry", json={"cause": "invalid_input"}, headers=auth(Role.OPERATOR)
    )
    assert len(retried.json()["retried"]) == 1
    await drain_all(container)
    again = await deadletters.list_dead_letters(
        container.engine, deadletters.DeadLetterFilter(status=None)
    )
    assert sorted(d.status for d in again) == ["open", "retried"]


async def test_a_retryable_failure_backs_off_then_becomes_a_dead_letter(
    container: Container, orders: InMemoryOrders
) -> None:
    container.policy.max_attempts = 2
    orders.unavailable = True
    await container.defer("guardia:pull_order", {"order_id": "ord_unreachable"})
    await drain_all(container)
    letters = await deadletters.list_dead_letters(container.engine, deadletters.DeadLetterFilter())
    assert [(d.cause, d.attempts, d.order_id) for d in letters] == [
        ("provider_unavailable", 2, "ord_unreachable")
    ]
    async with container.engine.connect() as conn:
        gauge_source = await conn.scalar(
            select(func.count())
            .select_from(deadletters.dead_letters)
            .where(deadletters.dead_letters.c.status == "open")
        )
    assert gauge_source == 1


async def test_dead_letter_gauge_is_exported(
    client: httpx.AsyncClient, container: Container
) -> None:
    async with container.engine.begin() as conn:
        await conn.execute(
            deadletters.dead_letters.insert().values(
                task_name="guardia:pull_order",
                task_kwargs=json.loads('{"order_id": "ord_x"}'),
                queue="recovery",
                cause="provider_unavailable",
                error_type="ProviderUnavailable",
                error_message="down",
                attempts=8,
            )
        )
    metrics = await client.get("/metrics")
    assert 'guardia_dead_letters_open{cause="provider_unavailable"} 1.0' in metrics.text


def test_compact_serialisation_matches_conekta_bytes() -> None:
    assert compact({"a": "ó", "b": 1}) == '{"a":"ó","b":1}'.encode()


@dataclass(frozen=True)
class _FailedJob:
    """The fields of a procrastinate job that a dead letter keeps."""

    id: int
    task_name: str
    task_kwargs: dict[str, Any]
    lock: str | None
    attempts: int


async def test_a_dead_letter_from_a_database_error_keeps_no_sql_parameters_or_personal_data(
    client: httpx.AsyncClient, container: Container
) -> None:
    email, phone = "ana.lopez@example.mx", "+52 55 1234 5678"
    with pytest.raises(DBAPIError) as failure:
        async with container.engine.begin() as conn:
            await conn.execute(
                text("SELECT CAST(:email AS integer), :phone"), {"email": email, "phone": phone}
            )
    assert email in str(failure.value)
    job = _FailedJob(7, "post_entry", {"order_id": "ord_1", "correlation_id": "c1"}, None, 0)

    await deadletters.record(
        container.engine, job=job, exc=failure.value, queue="ledger", now=container.clock.now()
    )

    listed = await client.get("/api/dead-letters", headers=auth(Role.AUDITOR))
    (letter,) = listed.json()["dead_letters"]
    message = json.dumps(letter)
    assert "invalid input syntax for type integer" in message
    for leaked in (email, phone, "5512345678", "[SQL:", "[parameters:", "CAST("):
        assert leaked not in message, leaked
