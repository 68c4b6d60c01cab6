"""The in-memory order source keeps the provider's rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from guardia.core.errors import NotFound, ProviderUnavailable
from guardia.core.money import Money
from guardia.payments.fakes import InMemoryOrders
from guardia.payments.model import OrderSnapshot, PaymentStatus

T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)


def snap(order_id: str, minutes: int) -> OrderSnapshot:
    return OrderSnapshot(
        order_id=order_id,
        status=PaymentStatus.PENDING_PAYMENT,
        amount=Money(10000),
        amount_refunded_cents=0,
        method=None,
        paid_at=None,
        updated_at=T0 + timedelta(minutes=minutes),
        customer_id=None,
        fee_cents=None,
    )


async def test_unknown_order_is_not_found() -> None:
    with pytest.raises(NotFound):
        await InMemoryOrders().get_order("ord_missing")


async def test_listing_returns_only_orders_updated_since_the_cursor_oldest_first() -> None:
    source = InMemoryOrders()
    for oid, minutes in (("ord_b", 10), ("ord_a", 5), ("ord_c", 1)):
        source.put(snap(oid, minutes))
    listed = [
        s.order_id async for s in source.iter_orders(updated_at_gte=T0 + timedelta(minutes=5))
    ]
    assert listed == ["ord_a", "ord_b"]


async def test_an_unavailable_provider_raises_a_retryable_error() -> None:
    source = InMemoryOrders()
    source.put(snap("ord_a", 0))
    source.unavailable = True
    with pytest.raises(ProviderUnavailable):
        await source.get_order("ord_a")
