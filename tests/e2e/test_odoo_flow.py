"""Payments posted to the Odoo simulator, end to end, with crashes and catalogue faults."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Signer
from tests.e2e.conftest import OPERATOR, poll
from tests.e2e.stack import CONEKTA_KEY, Stack

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(db_url: str, tmp_path: Path, signer: Signer) -> Iterator[Stack]:
    s = Stack(db_url, tmp_path, signer)
    try:
        s.start_all(GUARDIA_ODOO_TIMEOUT_SECONDS="20")
        yield s
    finally:
        s.stop()


@pytest.fixture
def impatient_stack(db_url: str, tmp_path: Path, signer: Signer) -> Iterator[Stack]:
    """A stack whose Odoo client gives up after one second, so its own timeout fires."""
    s = Stack(db_url, tmp_path, signer)
    try:
        s.start_all(GUARDIA_ODOO_TIMEOUT_SECONDS="1")
        yield s
    finally:
        s.stop()


def conekta(stack: Stack) -> httpx.Client:
    return httpx.Client(
        base_url=stack.conekta, timeout=10, headers={"Authorization": f"Bearer {CONEKTA_KEY}"}
    )


def guardia(stack: Stack) -> httpx.Client:
    return httpx.Client(
        base_url=stack.api, timeout=10, headers={"Authorization": f"Bearer {OPERATOR}"}
    )


def create_spei_order(stack: Stack, amount: int = 150000) -> str:
    with conekta(stack) as c:
        response = c.post(
            "/orders",
            json={
                "currency": "MXN",
                "customer_info": {
                    "name": "Ana López",
                    "email": "ana@example.mx",
                    "phone": "+52155",
                },
                "line_items": [{"name": "Mensualidad", "unit_price": amount, "quantity": 1}],
                "charges": [{"payment_method": {"type": "spei"}}],
            },
        )
    assert response.status_code == 200, response.text
    order_id: str = response.json()["id"]
    return order_id


def moves_for(stack: Stack, order_id: str) -> list[dict[str, Any]]:
    moves: list[dict[str, Any]] = httpx.get(f"{stack.odoo}/_sandbox/moves", timeout=10).json()
    return [m for m in moves if m.get("ref") == order_id]


def ledger_of(stack: Stack, order_id: str) -> list[dict[str, Any]]:
    with guardia(stack) as g:
        response = g.get(f"/api/orders/{order_id}")
    if response.status_code == 404:
        return []
    ledger: list[dict[str, Any]] = response.json()["ledger"]
    return ledger


def test_a_payment_delivered_five_times_posts_exactly_one_move(stack: Stack) -> None:
    order_id = create_spei_order(stack)
    with conekta(stack) as c:
        assert c.post(f"/_sandbox/orders/{order_id}/pay").status_code == 200
        poll(lambda: ledger_of(stack, order_id) or None)
        events = c.get("/events", params={"limit": 50}).json()["data"]
        paid = next(
            e for e in events if e["type"] == "order.paid" and e["data"]["object"]["id"] == order_id
        )
        webhook_ids = [w["id"] for w in c.get("/webhooks").json()["data"]]
        for _ in range(4):
            resent = c.post(f"/events/{paid['id']}/resend", json={"webhooks_ids": webhook_ids})
            assert resent.status_code == 200, resent.text

    def posted() -> list[dict[str, Any]] | None:
        rows = ledger_of(stack, order_id)
        return rows if rows and rows[0]["state"] == "posted" else None

    (payment,) = poll(posted, timeout=60)
    with guardia(stack) as g:
        attempts = g.get("/api/webhook-attempts", params={"event_id": paid["id"]}).json()
    assert len(attempts["attempts"]) == 5
    moves = moves_for(stack, order_id)
    assert len(moves) == 1
    assert moves[0]["state"] == "posted"
    assert moves[0]["id"] == payment["odoo_move_id"]


def test_a_worker_killed_mid_posting_never_produces_a_second_move(stack: Stack) -> None:
    order_id = create_spei_order(stack)
    fault = httpx.post(
        f"{stack.odoo}/_sandbox/faults",
        json={"kind": "timeout_after_commit", "count": 1, "seconds": 30},
        timeout=10,
    )
    assert fault.status_code in (200, 201), fault.text
    with conekta(stack) as c:
        assert c.post(f"/_sandbox/orders/{order_id}/pay").status_code == 200
    # Odoo has committed the move and is stalling the answer: the worker is mid-call.
    poll(lambda: moves_for(stack, order_id) or None, timeout=60)
    stack.kill("worker-1")
    stack.start("worker-2", ["guardia.entrypoints", "worker"])

    def posted() -> list[dict[str, Any]] | None:
        rows = ledger_of(stack, order_id)
        return rows if rows and rows[0]["state"] == "posted" else None

    (payment,) = poll(posted, timeout=90)
    moves = moves_for(stack, order_id)
    assert len(moves) == 1
    assert moves[0]["state"] == "posted"
    assert payment["odoo_move_id"] == moves[0]["id"]


def test_a_create_whose_answer_times_out_in_the_client_leaves_exactly_one_posted_move(
    impatient_stack: Stack,
) -> None:
    stack = impatient_stack
    order_id = create_spei_order(stack)
    fault = httpx.post(
        f"{stack.odoo}/_sandbox/faults",
        json={"kind": "timeout_after_commit", "count": 1, "seconds": 10},
        timeout=10,
    )
    assert fault.status_code in (200, 201), fault.text
    with conekta(stack) as c:
        assert c.post(f"/_sandbox/orders/{order_id}/pay").status_code == 200

    # No process is killed: the worker's own HTTP timeout fires while Odoo stalls after commit.
    def posted() -> list[dict[str, Any]] | None:
        rows = ledger_of(stack, order_id)
        return rows if rows and rows[0]["state"] == "posted" else None

    (payment,) = poll(posted, timeout=90)
    moves = moves_for(stack, order_id)
    assert [(m["id"], m["state"]) for m in moves] == [(payment["odoo_move_id"], "posted")]
    assert payment["attempts"] >= 2  # the job, not the client, retried: it searched and adopted


def test_a_removed_credit_account_is_diagnosed_and_fixed_from_the_cli(stack: Stack) -> None:
    removed = httpx.post(
        f"{stack.odoo}/_sandbox/faults",
        json={"kind": "account_removed", "code": "401.01.01"},
        timeout=10,
    )
    assert removed.status_code in (200, 201), removed.text
    order_id = create_spei_order(stack, amount=5000)
    with conekta(stack) as c:
        c.post(f"/_sandbox/orders/{order_id}/pay")

    def dead() -> bool | None:
        rows = ledger_of(stack, order_id)
        return True if rows and rows[0]["state"] == "dead" else None

    poll(dead, timeout=60)
    listed = stack.guardia_cli("dlq", "list", "--cause", "missing_account", "--json")
    assert listed.returncode == 0, listed.stderr
    assert order_id in listed.stdout
    check = stack.guardia_cli("check", "odoo")
    assert check.returncode == 1
    assert "credit_account" in check.stdout
    assert httpx.get(f"{stack.api}/readyz", timeout=10).status_code == 503

    restored = httpx.post(f"{stack.odoo}/_sandbox/restore", timeout=10)
    assert restored.status_code in (200, 204), restored.text
    assert stack.guardia_cli("check", "odoo").returncode == 0
    assert httpx.get(f"{stack.api}/readyz", timeout=10).status_code == 200
    retried = stack.guardia_cli("dlq", "retry", "--cause", "missing_account")
    assert retried.returncode == 0, retried.stderr

    def posted() -> list[dict[str, Any]] | None:
        rows = ledger_of(stack, order_id)
        return rows if rows and rows[0]["state"] == "posted" else None

    poll(posted, timeout=60)
    assert len(moves_for(stack, order_id)) == 1
