"""Conekta /transactions rows as ledger entries: what a payout nets, with the right sign."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from guardia.recon.ledger import settlement_entry
from guardia.recon.ports import SettlementTransaction

AT = datetime(2025, 4, 16, 17, 10, tzinfo=UTC)


def _entry(kind: str, amount: int, fee: int = 0, status: str = "available") -> object:
    txn = SettlementTransaction("txn_1", "chg_1", kind, status, amount, fee, amount - fee, AT)
    row = settlement_entry(txn, account="A", reference=None, memo=None, channel="card")
    return None if row is None else (row["kind"], row["amount_cents"], row["fee_cents"])


@pytest.mark.parametrize(
    ("kind", "amount", "fee", "expected"),
    [
        ("capture", 150_000, 1_334, ("charge", 150_000, 1_334)),
        ("refund", -1_000, 0, ("refund", -1_000, 0)),
        ("refund", 1_000, 0, ("refund", -1_000, 0)),
        ("capture_reversal", 5_000, 0, ("refund", -5_000, 0)),
        ("chargeback", 20_000, 17_400, ("chargeback", -20_000, 17_400)),
        ("won_chargeback", -20_000, 0, ("chargeback", 20_000, 0)),
        ("fee", 0, 1_160, ("fee", 0, 1_160)),
    ],
)
def test_refunds_chargebacks_and_fees_are_kept_as_entries_the_payout_nets(
    kind: str, amount: int, fee: int, expected: tuple[str, int, int]
) -> None:
    assert _entry(kind, amount, fee) == expected


def test_the_payout_itself_and_voided_transactions_are_not_netted() -> None:
    assert _entry("payout", -148_666) is None
    assert _entry("transferred", -148_666) is None
    assert _entry("refund", -1_000, status="voided") is None
