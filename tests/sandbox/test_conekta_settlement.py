"""Conekta settlement in the simulator over real HTTP: transactions, transfers, payouts (§1.6)."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from guardia.sandbox.conekta import ConektaSimConfig, ConektaSimulator, create_app

API_KEY = "key_sim_settlement_0123456789"
TXN_KEYS = {
    "id",
    "object",
    "amount",
    "fee",
    "net",
    "status",
    "type",
    "charge",
    "currency",
    "created_at",
}
TRANSFER_KEYS = {
    "id",
    "object",
    "amount",
    "status",
    "statement_reference",
    "statement_description",
    "currency",
    "created_at",
    "destination",
}
ERROR_KEYS = {"object", "type", "log_id", "details"}
# Fees from the fixtures (order_refunded_card.json, order_paid_spei.json): card 3.6% + IVA,
# SPEI $11.50 + IVA, in cents.
CARD_FEE_50000 = 2088
SPEI_FEE = 1334


def clabe_ok(clabe: str) -> bool:
    """Check a CLABE independently of the simulator's code (weights 3,7,1; Banxico)."""
    if not re.fullmatch(r"\d{18}", clabe):
        return False
    total = sum(int(d) * (3, 7, 1)[i % 3] % 10 for i, d in enumerate(clabe[:17]))
    return (10 - total % 10) % 10 == int(clabe[17])


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Run an ASGI app with uvicorn on a free 127.0.0.1 port in this event loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="on", log_level="warning", ws="none", http="h11")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = time.monotonic() + 5.0
        while not (server.started or task.done()):
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for uvicorn to start")
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def order_body(method: str, amount: int) -> dict[str, Any]:
    return {
        "currency": "MXN",
        "customer_info": {
            "name": "Ana López Hernández",
            "email": "ana.lopez@example.mx",
            "phone": "+525512345678",
        },
        "line_items": [{"name": "Pago mensualidad 3/12", "unit_price": amount, "quantity": 1}],
        "charges": [{"payment_method": {"type": method}}],
    }


@dataclass
class Env:
    sim: ConektaSimulator
    api: httpx.AsyncClient
    control: httpx.AsyncClient

    async def paid(self, method: str, amount: int) -> dict[str, Any]:
        """Create an order and, unless it is a card (paid at once), pay it."""
        created = await self.api.post("/orders", json=order_body(method, amount))
        assert created.status_code == 200, created.text
        order: dict[str, Any] = created.json()
        if method != "card":
            paid = await self.control.post(f"/_sandbox/orders/{order['id']}/pay")
            assert paid.status_code == 200, paid.text
            order = paid.json()
        assert order["payment_status"] == "paid"
        return order

    async def transactions(self, **params: Any) -> list[dict[str, Any]]:
        response = await self.api.get("/transactions", params={"limit": 250, **params})
        assert response.status_code == 200, response.text
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    async def payout(self) -> dict[str, Any]:
        response = await self.control.post("/_sandbox/payouts")
        assert response.status_code == 200, response.text
        transfer: dict[str, Any] = response.json()
        return transfer


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    sim = ConektaSimulator(ConektaSimConfig(api_key=API_KEY, retry_schedule=()))
    async with (
        serve(create_app(sim)) as base,
        httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5.0
        ) as api,
        httpx.AsyncClient(base_url=base, timeout=5.0) as control,
    ):
        yield Env(sim, api, control)


def charge_id(order: dict[str, Any]) -> str:
    return str(order["charges"]["data"][0]["id"])


async def test_each_paid_charge_gets_one_capture_transaction_net_of_its_fee(env: Env) -> None:
    card = await env.paid("card", 50000)
    spei = await env.paid("spei", 150000)
    pending = await env.api.post("/orders", json=order_body("oxxo", 20000))
    assert pending.status_code == 200

    txns = await env.transactions()
    assert [t["charge"] for t in txns] == [charge_id(spei), charge_id(card)]  # newest first
    by_charge = {t["charge"]: t for t in txns}
    for order, fee in ((card, CARD_FEE_50000), (spei, SPEI_FEE)):
        txn = by_charge[charge_id(order)]
        assert set(txn) == TXN_KEYS
        assert re.fullmatch(r"txn_[A-Za-z0-9]+", txn["id"])
        assert (txn["object"], txn["type"], txn["status"]) == (
            "transaction",
            "capture",
            "available",
        )
        assert (txn["currency"], txn["amount"], txn["fee"]) == ("MXN", order["amount"], fee)
        assert txn["fee"] == order["charges"]["data"][0]["fee"]
        assert txn["net"] == txn["amount"] - txn["fee"]
        assert all(type(txn[k]) is int for k in ("amount", "fee", "net", "created_at"))

    only_card = await env.transactions(charge_id=charge_id(card))
    assert [t["id"] for t in only_card] == [by_charge[charge_id(card)]["id"]]
    one = await env.api.get(f"/transactions/{only_card[0]['id']}")
    assert one.json() == only_card[0]
    assert (await env.api.get("/transactions/txn_nope")).status_code == 404


async def test_a_payout_batches_available_transactions_into_one_transfer(env: Env) -> None:
    card = await env.paid("card", 50000)
    spei = await env.paid("spei", 150000)
    before = await env.transactions()

    transfer = await env.payout()
    assert set(transfer) == TRANSFER_KEYS
    assert re.fullmatch(r"tr_[A-Za-z0-9]+", transfer["id"])
    assert (transfer["object"], transfer["status"], transfer["currency"]) == (
        "transfer",
        "paid_out",
        "MXN",
    )
    assert transfer["amount"] == sum(t["net"] for t in before)
    assert transfer["amount"] == (50000 - CARD_FEE_50000) + (150000 - SPEI_FEE)
    assert re.fullmatch(r"\d{7}", transfer["statement_reference"])
    assert transfer["statement_description"] == f"Conekta {transfer['statement_reference']}"
    destination = transfer["destination"]
    assert destination["object"] == "bank_account"
    assert clabe_ok(destination["account_number"])
    assert destination["account_holder_name"]
    # A transfer does not say which charges it settles (providers.md §1.6).
    assert charge_id(card) not in str(transfer)
    assert charge_id(spei) not in str(transfer)

    after = await env.transactions()
    assert {t["status"] for t in after} == {"paid_out"}
    assert (await env.api.get(f"/transfers/{transfer['id']}")).json() == transfer
    listed = (await env.api.get("/transfers")).json()
    assert [t["id"] for t in listed["data"]] == [transfer["id"]]

    truth = (await env.control.get(f"/_sandbox/payouts/{transfer['id']}/transactions")).json()
    assert sorted(t["id"] for t in truth["data"]) == sorted(t["id"] for t in before)
    assert sum(t["net"] for t in truth["data"]) == transfer["amount"]

    again = await env.control.post("/_sandbox/payouts")
    assert again.status_code == 409
    error = again.json()
    assert set(error) == ERROR_KEYS
    assert error["type"] == "conflict_error"
    assert "no available transactions" in error["details"][0]["debug_message"]

    # The next order settles in a new transfer to the same account, with a new reference.
    await env.paid("card", 50000)
    second = await env.payout()
    assert second["amount"] == 50000 - CARD_FEE_50000
    assert second["destination"]["account_number"] == destination["account_number"]
    assert second["statement_reference"] != transfer["statement_reference"]


async def test_refunds_are_negative_transactions_and_can_make_a_payout_negative(env: Env) -> None:
    card = await env.paid("card", 50000)
    await env.payout()
    partial = await env.control.post(
        f"/_sandbox/orders/{card['id']}/refund", json={"amount": 20000}
    )
    assert partial.status_code == 200
    rest = await env.control.post(f"/_sandbox/orders/{card['id']}/refund")
    assert rest.status_code == 200

    refunds = await env.transactions(type="refund")
    assert [(t["amount"], t["fee"], t["net"]) for t in refunds] == [
        (-30000, 0, -30000),
        (-20000, 0, -20000),
    ]
    assert {(t["charge"], t["status"]) for t in refunds} == {(charge_id(card), "available")}
    assert len(await env.transactions(charge_id=charge_id(card))) == 3
    assert [t["type"] for t in await env.transactions(type="capture")] == ["capture"]

    transfer = await env.payout()
    assert transfer["amount"] == -50000
    assert (await env.api.get("/transactions", params={"type": "bogus"})).status_code == 422


async def test_transactions_and_transfers_are_cursor_paged(env: Env) -> None:
    for _ in range(3):
        await env.paid("card", 10000)
    first = (await env.api.get("/transactions", params={"limit": 2})).json()
    assert (first["object"], first["has_more"], len(first["data"])) == ("list", True, 2)
    assert first["next_page_url"]
    second = (await env.api.get(first["next_page_url"])).json()
    assert (second["has_more"], second["next_page_url"], len(second["data"])) == (False, None, 1)
    ids = [t["id"] for t in first["data"] + second["data"]]
    assert len(set(ids)) == 3
    assert ids == [t["id"] for t in await env.transactions()]

    transfers = []
    for _ in range(3):
        await env.paid("spei", 10000)
        transfers.append((await env.payout())["id"])
    page = (await env.api.get("/transfers", params={"limit": 2})).json()
    assert page["has_more"] is True
    rest = await env.api.get("/transfers", params={"limit": 2, "next": page["data"][-1]["id"]})
    assert rest.json()["has_more"] is False
    assert [t["id"] for t in page["data"] + rest.json()["data"]] == transfers[::-1]
    assert (await env.api.get("/transfers", params={"limit": 251})).status_code == 422


async def test_settlement_endpoints_require_the_api_key(env: Env) -> None:
    await env.paid("card", 50000)
    transfer = await env.payout()
    for path in ("/transactions", "/transfers", f"/transfers/{transfer['id']}"):
        response = await env.control.get(path)
        assert response.status_code == 401, path
        body = response.json()
        assert set(body) == ERROR_KEYS
        assert (body["object"], body["type"]) == ("error", "authentication_error")
        assert body["details"][0]["code"] == "conekta.errors.authentication.missing_key"
        wrong = await env.control.get(path, headers={"Authorization": "Bearer key_wrong"})
        assert wrong.status_code == 401
    missing = await env.api.get("/transfers/tr_nope")
    assert missing.status_code == 404
    assert missing.json()["type"] == "resource_not_found_error"
    assert (await env.control.get("/_sandbox/payouts/tr_nope/transactions")).status_code == 404


def test_a_configured_payout_clabe_must_be_valid() -> None:
    with pytest.raises(ValueError, match="check digit"):
        ConektaSimulator(ConektaSimConfig(payout_clabe="012180000000000000"))
    sim = ConektaSimulator(ConektaSimConfig(payout_clabe="012180001234567899"))
    assert clabe_ok("012180001234567899")
    assert sim.config.payout_clabe == "012180001234567899"
