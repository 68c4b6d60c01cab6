"""Posting to the ledger exactly once, on a real database, through the real jobs."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from guardia.adapters.postgres.tables import postings
from guardia.auth.tokens import Role
from guardia.bootstrap import Container
from guardia.ledger.fakes import InMemoryLedger
from guardia.ledger.model import AccountInfo
from guardia.ledger.service import run_posting
from guardia.payments.fakes import InMemoryOrders
from guardia.payments.model import snapshot_from_order
from tests.conftest import Signer
from tests.integration.conftest import auth, drain
from tests.integration.test_recovery import drain_all
from tests.integration.test_webhook_ingest import fixture_event, post_event

pytestmark = pytest.mark.integration

ORDER = "ord_2yQ8nCk3vJ5dWx9Ra"


def conekta_knows(orders: InMemoryOrders, name: str) -> dict[str, Any]:
    event = fixture_event(name)
    orders.put(snapshot_from_order(event["data"]["object"], event_type=event["type"]))
    return event


async def posting_rows(container: Container) -> list[Any]:
    async with container.engine.connect() as conn:
        return list(await conn.execute(select(postings).order_by(postings.c.id)))


async def test_a_paid_webhook_posts_one_move_despite_duplicates_and_a_replay(
    client: httpx.AsyncClient,
    container: Container,
    signer: Signer,
    orders: InMemoryOrders,
    ledger: InMemoryLedger,
) -> None:
    event = conekta_knows(orders, "order_paid_spei.json")
    for _ in range(5):
        assert (await post_event(client, signer, event)).status_code == 200
    await drain_all(container)
    replay = await client.post("/api/replay", json={"order_id": ORDER}, headers=auth(Role.OPERATOR))
    assert replay.status_code == 200
    await drain_all(container)
    moves = ledger.posted_moves(ORDER)
    assert len(moves) == 1
    debit, credit = moves[0].lines
    assert (debit.account_id, debit.debit) == (50, Decimal("1500.00"))
    assert (credit.account_id, credit.credit) == (36, Decimal("1500.00"))
    assert debit.analytic_account_id == 1
    assert moves[0].entry_date.isoformat() == "2025-04-16"
    order = (await client.get(f"/api/orders/{ORDER}", headers=auth(Role.PWA))).json()
    assert [(p["kind"], p["state"], p["odoo_move_id"]) for p in order["ledger"]] == [
        ("payment", "posted", moves[0].move_id)
    ]


async def test_concurrent_runs_of_one_posting_create_one_move(
    client: httpx.AsyncClient,
    container: Container,
    signer: Signer,
    orders: InMemoryOrders,
    ledger: InMemoryLedger,
) -> None:
    conekta_knows(orders, "order_paid_spei.json")
    await post_event(client, signer, fixture_event("order_paid_spei.json"))
    await container.jobs.run_worker_async(
        wait=False,
        queues=["webhooks"],
        additional_context={"container": container},
        install_signal_handlers=False,
    )
    (row,) = await posting_rows(container)
    outcomes = await asyncio.gather(
        *(run_posting(container.posting_deps(), row.id) for _ in range(10))
    )
    assert {o.move_id for o in outcomes} == {outcomes[0].move_id}
    assert len(ledger.moves) == 1


async def test_a_move_odoo_committed_before_a_crash_is_adopted_not_duplicated(
    client: httpx.AsyncClient,
    container: Container,
    signer: Signer,
    orders: InMemoryOrders,
    ledger: InMemoryLedger,
) -> None:
    conekta_knows(orders, "order_paid_spei.json")
    await post_event(client, signer, fixture_event("order_paid_spei.json"))
    await container.jobs.run_worker_async(
        wait=False,
        queues=["webhooks"],
        additional_context={"container": container},
        install_signal_handlers=False,
    )
    (row,) = await posting_rows(container)
    # The worker died after Odoo committed the create but before we stored the move id.
    first = await run_posting(container.posting_deps(), row.id)
    async with container.engine.begin() as conn:
        await conn.execute(
            update(postings)
            .where(postings.c.id == row.id)
            .values(state="creating", odoo_move_id=None)
        )
    again = await run_posting(container.posting_deps(), row.id)
    assert again.adopted is True
    assert again.move_id == first.move_id
    assert len(ledger.moves) == 1


async def test_a_missing_credit_account_dead_letters_and_retry_by_cause_posts_once(
    client: httpx.AsyncClient,
    container: Container,
    signer: Signer,
    orders: InMemoryOrders,
    ledger: InMemoryLedger,
) -> None:
    removed = ledger.accounts.pop(36)
    event = conekta_knows(orders, "order_paid_spei.json")
    await post_event(client, signer, event)
    await drain_all(container)
    letters = (await client.get("/api/dead-letters", headers=auth(Role.AUDITOR))).json()
    assert [(d["cause"], d["task"]) for d in letters["dead_letters"]] == [
        ("missing_account", "guardia:post_entry")
    ]
    check = await client.post("/api/checks/odoo", headers=auth(Role.OPERATOR))
    assert check.status_code == 409
    failing = [i["name"] for i in check.json()["items"] if not i["ok"]]
    assert failing == ["credit_account"]
    assert (await client.get("/readyz")).status_code == 503

    ledger.accounts[36] = AccountInfo(36, removed.code, removed.name, "income", False)
    retried = await client.post(
        "/api/dead-letters/retry", json={"cause": "missing_account"}, headers=auth(Role.OPERATOR)
    )
    assert len(retried.json()["retried"]) == 1
    await drain_all(container)
    assert len(ledger.posted_moves(ORDER)) == 1
    assert (await client.post("/api/checks/odoo", headers=auth(Role.OPERATOR))).status_code == 200
    assert (await client.get("/readyz")).status_code == 200


async def test_a_paid_webhook_that_conekta_contradicts_posts_nothing(
    client: httpx.AsyncClient,
    container: Container,
    signer: Signer,
    orders: InMemoryOrders,
    ledger: InMemoryLedger,
) -> None:
    conekta_knows(orders, "order_pending_payment_spei.json")
    await post_event(client, signer, fixture_event("order_paid_spei.json"))
    await drain_all(container)
    assert ledger.moves == {}
    (row,) = await posting_rows(container)
    assert (row.state, row.cause) == ("dead", "provider_disagrees")


async def test_an_order_first_seen_refunded_gets_its_payment_and_its_reversal(
    client: httpx.AsyncClient,
    container: Container,
    signer: Signer,
    orders: InMemoryOrders,
    ledger: InMemoryLedger,
) -> None:
    event = conekta_knows(orders, "order_refunded_card.json")
    await post_event(client, signer, event)
    await drain_all(container)
    rows = await posting_rows(container)
    assert [(r.kind, r.state) for r in rows] == [("payment", "posted"), ("reversal", "posted")]
    payment, reversal = (ledger.moves[r.odoo_move_id] for r in rows)
    assert reversal.reversed_entry_id == payment.move_id
    assert [(x.debit, x.credit) for x in reversal.lines] == [
        (x.credit, x.debit) for x in payment.lines
    ]
    await drain(container)
    assert len(ledger.moves) == 2
