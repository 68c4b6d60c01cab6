"""What the payments capability needs from a payment provider."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from guardia.ledger.ports import CustomerSource
from guardia.payments.model import OrderSnapshot
from guardia.recon.ports import SettlementSource


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """A webhook registered in Conekta."""

    webhook_id: str
    url: str
    status: str
    active: bool
    subscribed_events: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DeliveryLog:
    """Conekta's record of delivering one event to one webhook."""

    log_id: str
    url: str
    failed_attempts: int
    last_http_response_status: int | None
    last_attempted_at: datetime | None


@dataclass(frozen=True, slots=True)
class EventSummary:
    """An event as Conekta lists it, with its delivery logs."""

    event_id: str
    event_type: str
    created_at: datetime | None
    order_id: str | None
    webhook_status: str | None
    logs: tuple[DeliveryLog, ...]


class OrderSource(Protocol):
    """Reads authoritative order state from the provider (Conekta)."""

    async def get_order(self, order_id: str) -> OrderSnapshot:
        """Fetch one order; NotFound if the provider does not know it."""
        ...

    def iter_orders(self, *, updated_at_gte: datetime) -> AsyncIterator[OrderSnapshot]:
        """Yield orders updated since a moment."""
        ...


class ConektaGateway(OrderSource, CustomerSource, SettlementSource, Protocol):
    """Everything Guardia asks of Conekta."""

    async def list_webhooks(self) -> list[WebhookEndpoint]:
        """Webhooks registered in Conekta."""
        ...

    async def resend_event(self, event_id: str, webhook_ids: list[str]) -> DeliveryLog:
        """Ask Conekta to deliver an event again."""
        ...

    async def list_events(self, *, limit: int = 50) -> list[EventSummary]:
        """The newest events with their delivery logs."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
