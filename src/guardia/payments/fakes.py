"""An in-memory OrderSource that keeps Conekta's rules: unknown ids are NotFound, listing is
by `updated_at`, and the provider can be made unavailable. For tests and drills."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from guardia.core.errors import NotFound, ProviderUnavailable
from guardia.ledger.ports import CustomerInfo
from guardia.payments.model import OrderSnapshot
from guardia.payments.ports import DeliveryLog, EventSummary, WebhookEndpoint
from guardia.recon.ports import SettlementTransaction, SettlementTransfer


class InMemoryOrders:
    """Orders as a provider would hold them."""

    def __init__(self) -> None:
        self._orders: dict[str, OrderSnapshot] = {}
        self.unavailable = False
        self.calls: list[str] = []
        self.resent: list[tuple[str, tuple[str, ...]]] = []
        self.events: list[EventSummary] = []
        self.transactions: list[SettlementTransaction] = []
        self.transfers: list[SettlementTransfer] = []
        self.webhooks = [
            WebhookEndpoint("wh_1", "http://127.0.0.1/webhooks/conekta", "listening", True, ())
        ]

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

    async def customer_of(self, order_id: str) -> CustomerInfo:
        """The order's customer (its Conekta customer id as the stable ref)."""
        snapshot = await self.get_order(order_id)
        ref = f"conekta:{snapshot.customer_id or 'order:' + order_id}"
        return CustomerInfo(ref=ref, name=f"Customer {snapshot.customer_id}", email=None)

    async def list_webhooks(self) -> list[WebhookEndpoint]:
        """The registered webhooks."""
        return list(self.webhooks)

    async def resend_event(self, event_id: str, webhook_ids: list[str]) -> DeliveryLog:
        """Record the resend request; unknown webhook ids are NotFound as in Conekta."""
        known = {w.webhook_id for w in self.webhooks}
        if not set(webhook_ids) <= known:
            raise NotFound(f"webhooks {sorted(set(webhook_ids) - known)} not found")
        self.resent.append((event_id, tuple(webhook_ids)))
        return DeliveryLog("webhl_fake", self.webhooks[0].url, 0, 200, None)

    async def list_events(self, *, limit: int = 50) -> list[EventSummary]:
        """Events put here by the test, newest first."""
        return self.events[:limit]

    async def list_transactions(self) -> list[SettlementTransaction]:
        """Settlement transactions put here by the test."""
        return list(self.transactions)

    async def list_transfers(self) -> list[SettlementTransfer]:
        """Transfers put here by the test."""
        return list(self.transfers)

    async def aclose(self) -> None:
        """Nothing to release."""
