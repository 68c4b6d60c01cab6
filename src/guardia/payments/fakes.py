"""An in-memory OrderSource that keeps Conekta's rules: unknown ids are NotFound, listing is
by `updated_at`, and the provider can be made unavailable. For tests and drills."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from guardia.core.errors import NotFound, ProviderUnavailable
from guardia.payments.model import OrderSnapshot


class InMemoryOrders:
    """Orders as a provider would hold them."""

    def __init__(self) -> None:
        self._orders: dict[str, OrderSnapshot] = {}
        self.unavailable = False
        self.calls: list[str] = []

    def put(self, snapshot: OrderSnapshot) -> None:
        """Store (or replace) an order, as the provider's own state changes."""
        self._orders[snapshot.order_id] = snapshot

    async def get_order(self, order_id: str) -> OrderSnapshot:
        """Fetch one order."""
        self.calls.append(f"get:{order_id}")
        if self.unavailable:
            raise ProviderUnavailable("fake provider is down")
        try:
            return self._orders[order_id]
        except KeyError:
            raise NotFound(f"order {order_id} not found at the provider") from None

    async def iter_orders(self, *, updated_at_gte: datetime) -> AsyncIterator[OrderSnapshot]:
        """Yield orders updated at or after a moment, oldest first."""
        self.calls.append(f"list:{updated_at_gte.isoformat()}")
        if self.unavailable:
            raise ProviderUnavailable("fake provider is down")
        for snap in sorted(self._orders.values(), key=lambda s: (s.updated_at, s.order_id)):
            if snap.updated_at >= updated_at_gte:
                yield snap
