"""What the payments capability needs from a payment provider."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol

from guardia.payments.model import OrderSnapshot


class OrderSource(Protocol):
    """Reads authoritative order state from the provider (Conekta)."""

    async def get_order(self, order_id: str) -> OrderSnapshot:
        """Fetch one order; NotFound if the provider does not know it."""
        ...

    def iter_orders(self, *, updated_at_gte: datetime) -> AsyncIterator[OrderSnapshot]:
        """Yield orders updated since a moment."""
        ...
