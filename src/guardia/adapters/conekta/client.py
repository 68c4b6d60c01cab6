"""Conekta API client on httpx: bearer key, API version header, timeouts, retries, breaker.

Protocol facts (docs/providers.md §1.4): `Authorization: Bearer key_…`, version chosen with
`Accept: application/vnd.conekta-v2.x.0+json`; amounts in integer cents; `GET /orders/{id}`,
`GET /orders?updated_at_gte=…` with cursor paging (`has_more`, `next_page_url`),
`POST /events/{id}/resend {"webhooks_ids": [...]}`, `GET /webhooks`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import stamina
import structlog

from guardia.core.breaker import AsyncBreaker
from guardia.core.clock import from_unix
from guardia.core.errors import NotFound, ProviderRejected, ProviderUnavailable
from guardia.ledger.ports import CustomerInfo
from guardia.payments.model import OrderSnapshot, snapshot_from_order
from guardia.payments.ports import DeliveryLog, EventSummary, WebhookEndpoint
from guardia.recon.ports import SettlementTransaction, SettlementTransfer

log = structlog.get_logger(__name__)

_PERMANENT_CAUSES = {
    400: "bad_request",
    401: "auth",
    402: "payment_required",
    403: "permission",
    404: "not_found",
    409: "conflict",
    422: "validation",
}


def _delivery_log(data: Mapping[str, Any]) -> DeliveryLog:
    return DeliveryLog(
        log_id=str(data.get("id", "")),
        url=str(data.get("url", "")),
        failed_attempts=int(data.get("failed_attempts") or 0),
        last_http_response_status=data.get("last_http_response_status"),
        last_attempted_at=from_unix(data.get("last_attempted_at")),
    )


def _retry_hook(exc: Exception) -> bool | float:
    """Retry provider outages, honouring Retry-After; never retry a permanent rejection."""
    if isinstance(exc, ProviderUnavailable):
        return exc.retry_after if exc.retry_after is not None else True
    return False


class ConektaClient:
    """Thin async client for the parts of the Conekta API Guardia uses."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        api_version: str = "2.2.0",
        timeout: float = 10.0,
        attempts: int = 4,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._attempts = attempts
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={
                "Authorization": f"Bearer {api_key}",
                "Accept": f"application/vnd.conekta-v{api_version}+json",
                "Content-Type": "application/json",
                "User-Agent": "guardia/0.1",
            },
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            follow_redirects=False,
            transport=transport,
        )
        self.breaker = AsyncBreaker("conekta")

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._http.aclose()

    async def _send_once(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ProviderUnavailable(f"Conekta timed out on {method} {path}") from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailable(f"Conekta unreachable: {type(exc).__name__}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            retry_after = _retry_after(response.headers.get("Retry-After"))
            raise ProviderUnavailable(
                f"Conekta answered {response.status_code} on {method} {path}",
                retry_after=retry_after,
            )
        if response.status_code >= 400:
            message = _error_message(response)
            if response.status_code == 404:
                raise NotFound(f"Conekta: {message}")
            cause = _PERMANENT_CAUSES.get(response.status_code, "unknown")
            raise ProviderRejected(f"Conekta {response.status_code}: {message}", cause=cause)
        try:
            return response.json()
        except ValueError as exc:
            raise ProviderUnavailable("Conekta answered a body that is not JSON") from exc

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        async for attempt in stamina.retry_context(
            on=_retry_hook, attempts=self._attempts, wait_initial=0.2, wait_max=5.0, timeout=30.0
        ):
            with attempt:
                return await self.breaker.call(lambda: self._send_once(method, path, **kwargs))
        raise AssertionError("unreachable: stamina re-raises the last failure")

    async def get_order_raw(self, order_id: str) -> dict[str, Any]:
        """Fetch one order's JSON."""
        data = await self._request("GET", f"/orders/{order_id}")
        if not isinstance(data, dict):
            raise ProviderUnavailable("Conekta order response is not an object")
        return data

    async def get_order(self, order_id: str) -> OrderSnapshot:
        """Fetch one order and read its authoritative fields."""
        return snapshot_from_order(await self.get_order_raw(order_id))

    async def customer_of(self, order_id: str) -> CustomerInfo:
        """The order's customer, as the ledger's partner (stable ref: the Conekta customer id)."""
        order = await self.get_order_raw(order_id)
        info = order.get("customer_info") or {}
        customer_id = info.get("customer_id") or order.get("customer_id")
        ref = f"conekta:{customer_id}" if customer_id else f"conekta:order:{order_id}"
        return CustomerInfo(ref=ref, name=str(info.get("name") or ref), email=info.get("email"))

    async def iter_orders(
        self, *, updated_at_gte: datetime, limit: int = 100
    ) -> AsyncIterator[OrderSnapshot]:
        """Yield orders updated since a moment, following Conekta's cursor paging."""
        params: dict[str, Any] = {"updated_at_gte": int(updated_at_gte.timestamp()), "limit": limit}
        while True:
            page = await self._request("GET", "/orders", params=params)
            for order in page.get("data", []):
                yield snapshot_from_order(order)
            next_cursor = _next_cursor(page)
            if not page.get("has_more") or next_cursor is None:
                return
            params["next"] = next_cursor

    async def _pages(self, path: str, limit: int = 250) -> AsyncIterator[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        for _ in range(10_000):  # a hard bound on paging, whatever the server says
            page = await self._request("GET", path, params=params)
            for item in page.get("data", []):
                yield item
            cursor = _next_cursor(page)
            if not page.get("has_more") or cursor is None:
                return
            params["next"] = cursor

    async def list_transactions(self) -> list[SettlementTransaction]:
        """Every settlement transaction (`GET /transactions`), paged through."""
        out: list[SettlementTransaction] = []
        async for t in self._pages("/transactions"):
            out.append(
                SettlementTransaction(
                    transaction_id=str(t.get("id")),
                    charge_id=t.get("charge"),
                    kind=str(t.get("type", "")),
                    status=str(t.get("status", "")),
                    amount_cents=int(t.get("amount") or 0),
                    fee_cents=int(t.get("fee") or 0),
                    net_cents=int(t.get("net") or 0),
                    created_at=from_unix(t.get("created_at")) or datetime.now(UTC),
                )
            )
        return out

    async def list_transfers(self) -> list[SettlementTransfer]:
        """Every payout to the bank account (`GET /transfers`), paged through."""
        out: list[SettlementTransfer] = []
        async for t in self._pages("/transfers"):
            destination = t.get("destination") or {}
            out.append(
                SettlementTransfer(
                    transfer_id=str(t.get("id")),
                    status=str(t.get("status", "")),
                    amount_cents=int(t.get("amount") or 0),
                    statement_reference=t.get("statement_reference"),
                    statement_description=t.get("statement_description"),
                    destination_account=destination.get("account_number"),
                    created_at=from_unix(t.get("created_at")) or datetime.now(UTC),
                )
            )
        return out

    async def list_events(self, *, limit: int = 50) -> list[EventSummary]:
        """List the newest events with their delivery logs."""
        page = await self._request("GET", "/events", params={"limit": limit})
        events: list[EventSummary] = []
        for data in page.get("data", []):
            obj = (data.get("data") or {}).get("object") or {}
            order_id = obj.get("order_id") if obj.get("object") == "charge" else obj.get("id")
            events.append(
                EventSummary(
                    event_id=str(data.get("id")),
                    event_type=str(data.get("type")),
                    created_at=from_unix(data.get("created_at")),
                    order_id=order_id,
                    webhook_status=data.get("webhook_status"),
                    logs=tuple(_delivery_log(x) for x in data.get("webhook_logs") or []),
                )
            )
        return events

    async def list_webhooks(self) -> list[WebhookEndpoint]:
        """List the webhooks registered in Conekta."""
        page = await self._request("GET", "/webhooks")
        return [
            WebhookEndpoint(
                webhook_id=str(w.get("id")),
                url=str(w.get("url")),
                status=str(w.get("status", "")),
                active=bool(w.get("active", True)),
                subscribed_events=tuple(w.get("subscribed_events") or ()),
            )
            for w in page.get("data", [])
        ]

    async def resend_event(self, event_id: str, webhook_ids: list[str]) -> DeliveryLog:
        """Ask Conekta to deliver an event again to the given webhooks."""
        data = await self._request(
            "POST", f"/events/{event_id}/resend", json={"webhooks_ids": webhook_ids}
        )
        return _delivery_log(data)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    details = body.get("details") or []
    if details and isinstance(details[0], dict):
        return str(details[0].get("message") or details[0].get("debug_message") or body)
    return str(body.get("message") or body.get("type") or body)[:200]


def _next_cursor(page: Mapping[str, Any]) -> str | None:
    url = page.get("next_page_url")
    if not url:
        return None
    values = parse_qs(urlsplit(str(url)).query).get("next")
    return values[0] if values else None
