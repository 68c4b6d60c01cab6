"""The ledger side built from the providers: charges, transfers and the Odoo moves we posted."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from guardia.bootstrap import Container
from guardia.payments.fakes import InMemoryOrders
from guardia.payments.model import snapshot_from_order
from guardia.recon.ledger import build_ledger
from guardia.recon.ports import SettlementTransaction, SettlementTransfer
from tests.conftest import Signer
from tests.integration.test_recovery import drain_all
from tests.integration.test_webhook_ingest import fixture_event, post_event

pytestmark = pytest.mark.integration


async def test_charges_carry_the_payment_reference_and_transfers_their_statement_reference(
    client: httpx.AsyncClient, container: Container, signer: Signer, orders: InMemoryOrders
) -> None:
    event = fixture_event("order_paid_spei.json")
    orders.put(snapshot_from_order(event["data"]["object"]))
    await post_event(client, signer, event)
    await drain_all(container)
    at = datetime(2025, 4, 16, 17, 10, tzinfo=UTC)
    orders.transactions = [
        SettlementTransaction(
            "txn_1", "6631f0c2a4e9b3001d2f7a21", "capture", "paid_out", 150000, 1334, 148666, at
        ),
        SettlementTransaction(
            "txn_2", "6631f0c2a4e9b3001d2f7a21", "refund", "paid_out", -1000, 0, -1000, at
        ),
    ]
    orders.transfers = [
        SettlementTransfer(
            "tr_1", "paid_out", 148666, "4401234", "Conekta 4401234", "012180001234567899", at
        ),
    ]
    ledger = await build_ledger(container.engine, orders)
    rows = {r["entry_id"]: r for r in ledger.iter_rows(named=True)}
    charge = rows["conekta:txn_1"]
    assert (charge["kind"], charge["amount_cents"], charge["fee_cents"]) == ("charge", 150000, 1334)
    assert charge["reference"] == "MBAN01002504160012345678"
    assert charge["account"] == "012180001234567899"
    transfer = rows["conekta:tr_1"]
    assert (transfer["kind"], transfer["reference"], transfer["memo"]) == (
        "transfer",
        "4401234",
        "Conekta 4401234",
    )
    moves = [r for r in rows.values() if r["kind"] == "move"]
    assert [(m["reference"], m["amount_cents"]) for m in moves] == [
        ("ord_2yQ8nCk3vJ5dWx9Ra", 150000)
    ]
    refund = rows["conekta:txn_2"]
    assert (refund["kind"], refund["amount_cents"], refund["fee_cents"]) == ("refund", -1000, 0)
