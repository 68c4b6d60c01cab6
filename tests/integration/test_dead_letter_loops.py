"""No endless loops: the relays, run cycle after cycle on a real database with a fake clock,
leave one dead letter per stuck item, stop at a permanent failure, and close a dead letter
whose job later succeeds."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import psycopg
import pytest
from alembic import command
from sqlalchemy import select, text

from guardia.adapters.postgres.database import Database, alembic_config, with_database
from guardia.adapters.postgres.tables import dead_letters, postings, webhook_events
from guardia.alerts.rules import evaluate_all
from guardia.auth.tokens import Role
from guardia.bootstrap import Container, build_container
from guardia.core.clock import FakeClock
from guardia.entrypoints.http import create_app
from guardia.entrypoints.runtime import opened
from guardia.incidents.service import from_row as incident_from_row
from guardia.incidents.service import timeline as incident_timeline
from guardia.incidents.tables import incidents
from guardia.jobs import tasks
from guardia.ledger.fakes import InMemoryLedger
from guardia.payments.fakes import InMemoryOrders
from guardia.payments.model import snapshot_from_order
from tests.conftest import Signer
from tests.integration.conftest import auth
from tests.integration.conftest import test_settings as settings_for
from tests.integration.test_recovery import drain_all
from tests.integration.test_webhook_ingest import fixture_event, post_event

pytestmark = pytest.mark.integration

ORDER = "ord_2yQ8nCk3vJ5dWx9Ra"
#: How long the relays leave a dead-lettered item alone before trying it again (the retry cap).
REST = timedelta(seconds=60)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC))


@pytest.fixture
async def container(
    db_url: str,
    tmp_path: Path,
    webhook_key_file: Path,
    orders: InMemoryOrders,
    ledger: InMemoryLedger,
    clock: FakeClock,
) -> AsyncIterator[Container]:
    settings = settings_for(
        db_url,
        tmp_path,
        webhook_key_file,
        retry_max_attempts=2,
        retry_cap_seconds=REST.total_seconds(),
        alert_dead_letter_window_seconds=240.0,
        alert_clear_seconds=120.0,
    )
    c = build_container(
        settings,
        Database(pooled_url=db_url, direct_url=db_url),
        clock=clock,
        conekta=orders,
        odoo=ledger,
    )
    async with opened(c):
        yield c


@pytest.fixture
async def client(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(transport=transport, base_url="http://guardia.test") as c:
        yield c


async def relay_cycle(container: Container, clock: FakeClock, wait: timedelta) -> None:
    """Let `wait` pass, run both relays as the scheduler would, then run what they enqueued."""
    clock.advance(wait)
    context = SimpleNamespace(additional_context={"container": container})
    timestamp = int(clock.now().timestamp())
    await tasks.relay_inbox(context, timestamp)
    await tasks.relay_postings(context, timestamp)
    await drain_all(container)


async def letters(container: Container) -> list[Any]:
    async with container.engine.connect() as conn:
        return list(await conn.execute(select(dead_letters).order_by(dead_letters.c.id)))


async def dead_letter_incidents(container: Container) -> list[Any]:
    """Incidents opened for dead letters (no backup has run here: the backup rules fire too)."""
    async with container.engine.connect() as conn:
        return list(
            await conn.execute(
                select(incidents)
                .where(incidents.c.fingerprint == "alert:DeadLettersGrowing")
                .order_by(incidents.c.id)
            )
        )


async def jobs_of(container: Container, task_name: str) -> int:
    async with container.engine.connect() as conn:
        return int(
            await conn.scalar(
                text("SELECT count(*) FROM procrastinate_jobs WHERE task_name = :t"),
                {"t": task_name},
            )
            or 0
        )


def paid_event(**order_changes: Any) -> dict[str, Any]:
    event = copy.deepcopy(fixture_event("order_paid_spei.json"))
    event["data"]["object"].update(order_changes)
    return event


def refunds_past_a_bigint() -> dict[str, Any]:
    """Each refund fits a bigint, their sum does not: the database refuses the payment row."""
    event = paid_event(amount_refunded=None)
    refund = {"object": "refund", "amount": 9_000_000_000_000_000_000}
    event["data"]["object"]["charges"]["data"][0]["refunds"] = {"data": [refund, refund]}
    return event


def without_data() -> dict[str, Any]:
    event = copy.deepcopy(fixture_event("order_paid_spei.json"))
    event["data"] = None
    return event


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(paid_event(amount="abc"), id="amount-abc"),
        pytest.param(paid_event(amount=-500), id="amount-negative"),
        pytest.param(paid_event(amount=1e30), id="amount-1e30"),
        pytest.param(without_data(), id="data-null"),
        pytest.param(refunds_past_a_bigint(), id="refunds-past-a-bigint"),
    ],
)
async def test_a_poison_event_is_one_dead_letter_and_one_incident_and_is_not_retried(
    client: httpx.AsyncClient,
    container: Container,
    signer: Signer,
    clock: FakeClock,
    event: dict[str, Any],
) -> None:
    received = await post_event(client, signer, event)
    assert received.status_code == 200
    correlation_id = received.json()["correlation_id"]
    await drain_all(container)
    for _ in range(4):
        await relay_cycle(container, clock, REST + timedelta(seconds=1))
        await evaluate_all(container.engine, container.settings, clock.now())

    (letter,) = await letters(container)
    assert (letter.task_name, letter.cause, letter.status, letter.attempts) == (
        tasks.PROCESS_EVENT,
        "invalid_input",
        "open",
        1,
    )
    assert await jobs_of(container, tasks.PROCESS_EVENT) == 1
    async with container.engine.connect() as conn:
        stored = (await conn.execute(select(webhook_events))).one()
    assert stored.status == "failed"
    assert stored.last_error
    (incident,) = await dead_letter_incidents(container)
    assert incident.correlation_ids == [correlation_id]


async def test_an_order_conekta_does_not_know_dead_letters_its_posting_once(
    client: httpx.AsyncClient,
    container: Container,
    signer: Signer,
    clock: FakeClock,
    ledger: InMemoryLedger,
) -> None:
    # The webhook is valid, but Conekta answers 404 for the order when the posting checks it.
    received = await post_event(client, signer, fixture_event("order_paid_spei.json"))
    await drain_all(container)
    for _ in range(4):
        await relay_cycle(container, clock, REST + timedelta(seconds=1))
        await evaluate_all(container.engine, container.settings, clock.now())

    (letter,) = await letters(container)
    assert (letter.task_name, letter.cause, letter.status, letter.attempts) == (
        tasks.POST_ENTRY,
        "not_found",
        "open",
        1,
    )
    assert await jobs_of(container, tasks.POST_ENTRY) == 1
    async with container.engine.connect() as conn:
        posting = (await conn.execute(select(postings))).one()
    assert (posting.state, posting.cause) == ("dead", "not_found")
    assert ledger.posted_moves(ORDER) == []
    (incident,) = await dead_letter_incidents(container)
    assert incident.correlation_ids == [received.json()["correlation_id"]]
    assert incident.external_ids["conekta_order"] == [ORDER]


async def test_a_stuck_posting_keeps_one_open_dead_letter_whose_attempts_grow(
    client: httpx.AsyncClient,
    container: Container,
    signer: Signer,
    clock: FakeClock,
    orders: InMemoryOrders,
) -> None:
    event = fixture_event("order_paid_spei.json")
    orders.put(snapshot_from_order(event["data"]["object"], event_type=event["type"]))
    orders.unavailable = True
    await post_event(client, signer, event)
    await drain_all(container)
    (first,) = await letters(container)
    assert (first.cause, first.attempts) == ("provider_unavailable", 2)

    # Within the rest period the relay leaves the dead-lettered posting alone.
    await relay_cycle(container, clock, timedelta(seconds=20))
    (resting,) = await letters(container)
    assert resting.attempts == 2

    seen = []
    for _ in range(3):
        await relay_cycle(container, clock, REST + timedelta(seconds=1))
        (letter,) = await letters(container)
        seen.append((letter.id, letter.status, letter.attempts, letter.last_failed_at))
    assert [(i, s, a) for i, s, a, _ in seen] == [
        (first.id, "open", 4),
        (first.id, "open", 6),
        (first.id, "open", 8),
    ]
    assert seen[-1][3] == clock.now()
    (again,) = await letters(container)
    assert again.failed_at == first.failed_at


async def test_a_posting_that_fails_then_succeeds_on_the_relay_resolves_its_dead_letter(
    client: httpx.AsyncClient,
    container: Container,
    signer: Signer,
    clock: FakeClock,
    orders: InMemoryOrders,
    ledger: InMemoryLedger,
) -> None:
    event = fixture_event("order_paid_spei.json")
    orders.put(snapshot_from_order(event["data"]["object"], event_type=event["type"]))
    orders.unavailable = True
    await post_event(client, signer, event)
    await drain_all(container)
    (open_letter,) = await letters(container)
    assert open_letter.status == "open"
    await evaluate_all(container.engine, container.settings, clock.now())

    orders.unavailable = False
    await relay_cycle(container, clock, REST + timedelta(seconds=1))

    assert len(ledger.posted_moves(ORDER)) == 1
    (closed,) = await letters(container)
    assert (closed.id, closed.status, closed.resolved_at) == (
        open_letter.id,
        "resolved",
        clock.now(),
    )
    assert closed.resolution.startswith("succeeded on job ")
    listed = await client.get(
        "/api/dead-letters", params={"status": "resolved"}, headers=auth(Role.AUDITOR)
    )
    assert [(d["id"], d["resolution"]) for d in listed.json()["dead_letters"]] == [
        (closed.id, closed.resolution)
    ]
    (incident,) = await dead_letter_incidents(container)
    entries, _ = await incident_timeline(container.engine, incident_from_row(incident))
    assert f"dead letter {closed.id} resolved after 2 failed runs" in " ".join(
        e.summary for e in entries
    )


async def test_dead_letters_growing_resolves_while_a_stuck_item_fails_again_but_nothing_new(
    client: httpx.AsyncClient,
    container: Container,
    signer: Signer,
    clock: FakeClock,
    orders: InMemoryOrders,
) -> None:
    event = fixture_event("order_paid_spei.json")
    orders.put(snapshot_from_order(event["data"]["object"], event_type=event["type"]))
    orders.unavailable = True
    await post_event(client, signer, event)
    await drain_all(container)
    fired = await evaluate_all(container.engine, container.settings, clock.now())
    assert [t.change for t in fired if t.rule == "DeadLettersGrowing"] == ["fired"]

    s = container.settings
    quiet_for = timedelta(seconds=s.alert_dead_letter_window_seconds + s.alert_clear_seconds)
    changes: list[str] = []
    deadline = clock.now() + quiet_for + 2 * REST
    while clock.now() < deadline:
        await relay_cycle(container, clock, REST + timedelta(seconds=1))
        out = await evaluate_all(container.engine, container.settings, clock.now())
        changes += [t.change for t in out if t.rule == "DeadLettersGrowing"]

    (letter,) = await letters(container)
    assert letter.status == "open"
    assert letter.attempts > 2
    assert changes[-1] == "resolved"
    assert "resolved" in changes


@pytest.fixture
def empty_db(pg_admin_url: str) -> Iterator[str]:
    """A database with no migration applied yet."""
    name = f"guardia_m_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield with_database(pg_admin_url, name)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_migration_merges_the_open_duplicates_the_loop_left_into_the_oldest(
    empty_db: str,
) -> None:
    command.upgrade(alembic_config(empty_db), "0007")
    insert = (
        "INSERT INTO dead_letters (task_name, task_kwargs, queue, cause, error_type, "
        "error_message, attempts, failed_at, status) VALUES (%s, %s, 'q', 'invalid_input', "
        "'InvalidInput', 'bad', %s, %s, %s)"
    )
    first = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    event = '{"event_pk": 7, "order_id": "ord_1", "correlation_id": "c1"}'
    with psycopg.connect(empty_db, autocommit=True) as conn:
        for minute in range(3):
            conn.execute(
                insert,
                (tasks.PROCESS_EVENT, event, 1, first + timedelta(minutes=minute), "open"),
            )
        conn.execute(insert, (tasks.PROCESS_EVENT, event, 1, first, "retried"))
        for timestamp in (1, 2):
            conn.execute(insert, (tasks.SWEEP, f'{{"timestamp": {timestamp}}}', 8, first, "open"))
        conn.execute(insert, (tasks.PULL_ORDER, '{"order_id": "ord_2"}', 8, first, "open"))

    command.upgrade(alembic_config(empty_db), "head")

    with psycopg.connect(empty_db) as conn:
        rows = conn.execute(
            "SELECT id, task_name, status, attempts, failed_at, last_failed_at, resolution "
            "FROM dead_letters ORDER BY id"
        ).fetchall()
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (1, tasks.PROCESS_EVENT, "open", 3),
        (2, tasks.PROCESS_EVENT, "merged", 1),
        (3, tasks.PROCESS_EVENT, "merged", 1),
        (4, tasks.PROCESS_EVENT, "retried", 1),
        (5, tasks.SWEEP, "open", 16),
        (6, tasks.SWEEP, "merged", 8),
        (7, tasks.PULL_ORDER, "open", 8),
    ]
    assert (rows[0][4], rows[0][5]) == (first, first + timedelta(minutes=2))
    assert [r[6] for r in rows if r[2] == "merged"] == [
        "merged into dead letter 1",
        "merged into dead letter 1",
        "merged into dead letter 5",
    ]


async def run_sweep(container: Container, clock: FakeClock, wait: timedelta) -> None:
    """Let `wait` pass, run one sweeper pass as the scheduler would, then what it enqueued."""
    clock.advance(wait)
    context = SimpleNamespace(additional_context={"container": container})
    await tasks.sweep(context, int(clock.now().timestamp()))
    await drain_all(container)


async def test_a_pending_order_conekta_does_not_know_is_one_dead_letter_not_a_stuck_sweeper(
    client: httpx.AsyncClient,
    container: Container,
    signer: Signer,
    clock: FakeClock,
    orders: InMemoryOrders,
) -> None:
    received = await post_event(client, signer, fixture_event("order_pending_payment_spei.json"))
    await drain_all(container)
    pending_age = timedelta(seconds=container.settings.sweep_pending_age_seconds)
    for _ in range(4):
        await run_sweep(container, clock, pending_age + timedelta(seconds=1))
        await evaluate_all(container.engine, container.settings, clock.now())

    (letter,) = await letters(container)
    assert (letter.task_name, letter.cause, letter.order_id, letter.attempts) == (
        tasks.PULL_ORDER,
        "not_found",
        ORDER,
        1,
    )
    assert letter.correlation_id == received.json()["correlation_id"]
    assert orders.calls.count(f"get:{ORDER}") == 2  # the sweeper's pull, then the job's
    (incident,) = await dead_letter_incidents(container)
    assert incident.external_ids["conekta_order"] == [ORDER]
