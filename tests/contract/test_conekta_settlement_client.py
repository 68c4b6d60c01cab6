"""The Conekta client reads settlement from the simulator: captures net of fees, payouts."""

from __future__ import annotations

import httpx

from guardia.adapters.conekta.client import ConektaClient
from guardia.sandbox.conekta import ConektaSimConfig, ConektaSimulator, create_app

KEY = "key_settlement_test"


async def test_the_client_pages_transactions_and_transfers_from_the_simulator() -> None:
    sim = ConektaSimulator(ConektaSimConfig(api_key=KEY))
    transport = httpx.ASGITransport(app=create_app(sim))
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sim", headers=headers
    ) as http:
        for amount in (50000, 150000, 25000):
            created = await http.post(
                "/orders",
                json={
                    "currency": "MXN",
                    "customer_info": {"name": "Ana", "email": "a@example.mx", "phone": "+52155"},
                    "line_items": [{"name": "cuota", "unit_price": amount, "quantity": 1}],
                    "charges": [{"payment_method": {"type": "spei"}}],
                },
            )
            await http.post(f"/_sandbox/orders/{created.json()['id']}/pay")
        payout = (await http.post("/_sandbox/payouts")).json()
    client = ConektaClient(base_url="http://sim", api_key=KEY, transport=transport)
    try:
        transactions = await client.list_transactions()
        transfers = await client.list_transfers()
    finally:
        await client.aclose()
    captures = [t for t in transactions if t.kind == "capture"]
    assert sorted(t.amount_cents for t in captures) == [25000, 50000, 150000]
    assert all(t.net_cents == t.amount_cents - t.fee_cents for t in captures)
    (transfer,) = transfers
    assert transfer.transfer_id == payout["id"]
    assert transfer.amount_cents == sum(t.net_cents for t in captures)
    assert transfer.statement_description == f"Conekta {transfer.statement_reference}"
    assert transfer.destination_account is not None
    assert len(transfer.destination_account) == 18
