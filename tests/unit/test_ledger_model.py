"""Which postings a payment's state calls for, and entry balance rules."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guardia.core.errors import InvalidInput
from guardia.ledger.model import WantedPosting, two_line_entry, wanted_postings


def wanted(rank: int, returned: bool, refunded: int, existing: set[str]) -> list[WantedPosting]:
    return wanted_postings(
        status_rank=rank,
        paid_rank=3,
        fully_returned=returned,
        amount_cents=10000,
        refunded_cents=refunded,
        existing=frozenset(existing),
    )


def test_unpaid_payments_post_nothing() -> None:
    assert wanted(0, False, 0, set()) == []


def test_a_paid_payment_posts_once() -> None:
    assert wanted(3, False, 0, set()) == [WantedPosting("payment", 10000)]
    assert wanted(3, False, 0, {"payment"}) == []


def test_a_full_refund_without_partials_reverses_the_payment() -> None:
    assert wanted(5, True, 10000, {"payment"}) == [WantedPosting("reversal", 10000)]
    assert wanted(5, True, 10000, {"payment", "reversal"}) == []


def test_a_payment_first_seen_refunded_gets_both_entries() -> None:
    assert wanted(5, True, 10000, set()) == [
        WantedPosting("payment", 10000),
        WantedPosting("reversal", 10000),
    ]


def test_partial_refunds_post_deltas_and_the_last_closes_the_rest() -> None:
    assert wanted(4, False, 3000, {"payment"}) == [WantedPosting("refund:3000", 3000)]
    assert wanted(4, False, 5000, {"payment", "refund:3000"}) == [
        WantedPosting("refund:5000", 2000)
    ]
    assert wanted(5, True, 10000, {"payment", "refund:3000", "refund:5000"}) == [
        WantedPosting("refund:10000", 5000)
    ]


@given(st.lists(st.integers(min_value=1, max_value=10000), max_size=6))
def test_refund_postings_never_exceed_the_amount(steps: list[int]) -> None:
    existing: set[str] = {"payment"}
    total = 0
    refunded = 0
    for step in steps:
        refunded = min(10000, refunded + step)
        returned = refunded == 10000
        for p in wanted(5 if returned else 4, returned, refunded, existing):
            existing.add(p.kind)
            total += p.amount_cents
    assert total <= 10000
    if refunded == 10000:
        assert total == 10000


def test_entries_must_balance_and_keep_two_decimals() -> None:
    entry = two_line_entry(
        ref="ord_x",
        journal_id=7,
        entry_date=date(2026, 11, 27),
        amount=Decimal("1500.00"),
        debit_account_id=50,
        credit_account_id=36,
        label="Pago",
        partner_id=None,
        analytic_account_id=1,
    )
    assert entry.total == Decimal("1500.00")
    with pytest.raises(InvalidInput):
        two_line_entry(
            ref="ord_x",
            journal_id=7,
            entry_date=date(2026, 11, 27),
            amount=Decimal("1.005"),
            debit_account_id=50,
            credit_account_id=36,
            label="Pago",
            partner_id=None,
            analytic_account_id=1,
        )
