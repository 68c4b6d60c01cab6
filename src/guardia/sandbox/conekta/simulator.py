"""The Conekta simulator: orders, events, signed webhook delivery with retries, and fault knobs.

All state lives on the event loop that serves the app; handlers and delivery tasks run there, so
there are no locks. Deliveries use one `httpx.AsyncClient` with explicit timeouts.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import hmac
import itertools
import json
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

import httpx
import structlog
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from guardia.core.clock import Clock, SystemClock
from guardia.sandbox.conekta import model
from guardia.sandbox.conekta.faults import DeliveryPlan, Fault, FaultBook, parse_fault
from guardia.sandbox.conekta.model import (
    JSON,
    AuthenticationFailed,
    ErrorDetail,
    InvalidParameters,
    SimulatedApiError,
    charge_of,
    not_found,
)

log = structlog.get_logger(__name__)

DEFAULT_API_KEY: Final = "key_sandbox_guardia"
MAX_PAGE: Final = 250  # conekta/openapi parameters/commons/query/limit.yml: default 20, max 250
DEFAULT_PAGE: Final = 20

# Default subscription when `POST /webhooks` omits `subscribed_events`: every type the simulator
# emits plus the documented order/charge types (providers.md §1.3).
ALL_EVENT_TYPES: Final = (
    "order.created",
    "order.pending_payment",
    "order.paid",
    "order.expired",
    "order.canceled",
    "order.declined",
    "order.refunded",
    "order.partially_refunded",
    "order.pre_authorized",
    "order.voided",
    "order.charged_back",
    "order.fraudulent",
    "order.under_fraud_review",
    "order.updated",
    "charge.created",
    "charge.paid",
    "charge.pending_confirmation",
    "charge.preauthorized",
    "charge.declined",
    "charge.canceled",
    "charge.reversed",
    "charge.refunded",
    "charge.expired",
    "charge.fraudulent",
    "charge.under_fraud_review",
)


@dataclass
class ConektaSimConfig:
    """Settings of one simulated Conekta company."""

    api_key: str = DEFAULT_API_KEY
    webhook_urls: list[str] = field(default_factory=list)
    private_key_pem: bytes | None = None
    livemode: bool = False
    retry_schedule: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0)
    delivery_timeout: float = 5.0
    # The business bank account payouts go to; a random valid BBVA CLABE when None.
    payout_clabe: str | None = None
    payout_account_holder: str = "GUARDIA FINANCIERA SA DE CV"


@dataclass
class _Webhook:
    id: str
    url: str
    subscribed_events: list[str]
    active: bool
    status: str
    livemode: bool
    created_at: int

    def wants(self, event_type: str) -> bool:
        return self.active and event_type in self.subscribed_events

    def to_json(self) -> JSON:
        # Shape of conekta/openapi schemas/webhooks/webhook_response.yml.
        return {
            "id": self.id,
            "object": "webhook",
            "url": self.url,
            "status": self.status,
            "active": self.active,
            "subscribed_events": list(self.subscribed_events),
            "synchronous": False,
            "livemode": self.livemode,
            "development_enabled": not self.livemode,
            "production_enabled": self.livemode,
            "created_at": self.created_at,
        }


@dataclass
class _Event:
    seq: int
    body: JSON
    order_id: str | None
    # The exact bytes sent on every attempt: the event as created (webhook_status "pending",
    # webhook_logs [] as in the fixtures), so retries and duplicates are byte-identical.
    wire: bytes
    logs: dict[str, JSON] = field(default_factory=dict)
    outcome: dict[str, str] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(self.body["id"])

    @property
    def type(self) -> str:
        return str(self.body["type"])


@dataclass
class _Order:
    seq: int
    json: JSON


@dataclass
class _Record:
    seq: int
    json: JSON


@dataclass
class _Job:
    event: _Event
    webhook_ids: list[str]
    plan: DeliveryPlan


def compact_json(value: object) -> bytes:
    """Serialize like Conekta's wire format: compact separators, UTF-8, non-ASCII kept."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class ConektaSimulator:
    """A local, stateful stand-in for api.conekta.io and its webhook sender."""

    def __init__(self, config: ConektaSimConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        self._clock = clock or SystemClock()
        if config.private_key_pem is None:
            self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            loaded = serialization.load_pem_private_key(config.private_key_pem, password=None)
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise ValueError("private_key_pem must hold an RSA private key")
            self._key = loaded
        self._bad_key: rsa.RSAPrivateKey | None = None
        now = self._now()
        self._key_id = model.object_id(now)
        self._key_created_at = now
        self._seq = itertools.count(1)
        self._orders: dict[str, _Order] = {}
        self._events: dict[str, _Event] = {}
        self._webhooks: dict[str, _Webhook] = {}
        self._faults = FaultBook()
        self._held: dict[str, list[_Job]] = {}
        self._deliveries: list[dict[str, object]] = []
        self._idempotent: dict[str, JSON] = {}
        self._clabes: set[str] = set()
        self._references: set[str] = set()
        self._transactions: dict[str, _Record] = {}
        self._transfers: dict[str, _Record] = {}
        # Ground truth only: Conekta's transfers do not list what they settle (providers.md §1.6).
        self._transfer_transactions: dict[str, list[str]] = {}
        self._statement_references: set[str] = set()
        if config.payout_clabe is None:
            self._payout_clabe = model.make_clabe(model.PAYOUT_BANK_PREFIX)
        elif model.is_valid_clabe(config.payout_clabe):
            self._payout_clabe = config.payout_clabe
        else:
            raise ValueError("payout_clabe must be 18 digits with a valid check digit")
        self._lanes: dict[str, deque[_Job]] = {}
        self._lane_tasks: dict[str, asyncio.Task[None]] = {}
        self._retry_tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._running = False
        for url in config.webhook_urls:
            self.create_webhook({"url": url})

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the background delivery worker (idempotent)."""
        if self._running:
            return
        self._running = True
        self._http()
        for key in list(self._lanes):
            if key not in self._lane_tasks:
                self._start_lane(key)

    async def stop(self) -> None:
        """Stop delivering, cancelling pending deliveries and closing the HTTP client."""
        self._running = False
        tasks = [*self._lane_tasks.values(), *self._retry_tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._lane_tasks.clear()
        self._retry_tasks.clear()
        self._lanes.clear()
        self._held.clear()
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    # --- keys and auth -------------------------------------------------------------------------

    def public_key_pem(self) -> str:
        """Return the PEM (SubjectPublicKeyInfo) of the webhook signing key."""
        return (
            self._key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def webhook_keys(self) -> JSON:
        """Return `GET /webhook_keys`: the one active key (webhook-key_response.yml shape)."""
        key = {
            "id": self._key_id,
            "object": "webhook_key",
            "active": True,
            "livemode": self.config.livemode,
            "created_at": self._key_created_at,
            "deactivated_at": None,
            "public_key": self.public_key_pem(),
        }
        return {
            "object": "list",
            "has_more": False,
            "next_page_url": None,
            "previous_page_url": None,
            "data": [key],
        }

    def check_api_key(self, authorization: str | None) -> None:
        """Accept `Bearer <key>` or HTTP Basic with the key as username; raise otherwise."""
        # Bearer private key; older docs and SDKs send Basic base64("key:") (providers.md §1.4,
        # https://developers.conekta.com).
        if not authorization:
            raise AuthenticationFailed(
                "Please include your access key in your request.",
                code="conekta.errors.authentication.missing_key",
                message="Acceso no autorizado.",
            )
        scheme, _, credentials = authorization.strip().partition(" ")
        key = ""
        if scheme.lower() == "bearer":
            key = credentials.strip()
        elif scheme.lower() == "basic":
            try:
                key = base64.b64decode(credentials.strip(), validate=True).decode().split(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                key = ""
        if not hmac.compare_digest(key.encode(), self.config.api_key.encode()):
            # The exact code for a wrong key is not published; this one is an assumption.
            raise AuthenticationFailed(
                "The access key you provided is not valid.",
                code="conekta.errors.authentication.invalid_key",
                message="Acceso no autorizado.",
            )

    # --- orders --------------------------------------------------------------------------------

    def create_order(self, body: object, idempotency_key: str | None = None) -> JSON:
        """Create an order as `POST /orders` does and emit its events."""
        if idempotency_key and idempotency_key in self._idempotent:
            # conekta/openapi parameters/commons/headers/idempotency_key.yml: "Retrying a request
            # with the same key returns the original response instead of performing the
            # operation again."
            return copy.deepcopy(self._idempotent[idempotency_key])
        now = self._now()
        req = model.parse_order_request(body, now)
        if req.method == "card":
            payment_method = model.card_details(req.token_id, req.customer_name, now)
        elif req.method == "spei":
            payment_method = model.spei_details(
                self._new_clabe(), req.expires_at or model.default_expiry(now)
            )
        else:
            payment_method = model.cash_details(
                self._new_reference(), req.expires_at or model.default_expiry(now)
            )
        order_id = model.prefixed_id("ord_")
        while order_id in self._orders:
            order_id = model.prefixed_id("ord_")
        order = model.build_order(
            req,
            order_id=order_id,
            charge_id=model.object_id(now),
            payment_method=payment_method,
            livemode=self.config.livemode,
            now=now,
        )
        self._orders[order_id] = _Order(next(self._seq), order)
        self._emit("order.created", order, {}, order_id)
        if req.method == "card":
            self._emit("charge.created", charge_of(order), {}, order_id)
            change = model.pay(order, now)
            self._record_capture(order)
            self._emit("charge.paid", charge_of(order), change.charge_previous or {}, order_id)
            self._emit(change.order_event, order, change.order_previous, order_id)
        else:
            self._emit("order.pending_payment", order, {}, order_id)
        response = copy.deepcopy(order)
        if idempotency_key:
            self._idempotent[idempotency_key] = copy.deepcopy(response)
        return response

    def get_order(self, order_id: str) -> JSON:
        """Return the current order, or raise a 404."""
        return copy.deepcopy(self._order(order_id).json)

    def list_orders(self, params: dict[str, str], url_for: Callable[[dict[str, str]], str]) -> JSON:
        """Return `GET /orders`: newest first, filtered, cursor-paged."""
        bounds = [
            (name.rsplit("_", 1)[0], name.endswith("_gte"), _int_param(params, name))
            for name in ("updated_at_gte", "updated_at_lte", "created_at_gte", "created_at_lte")
            if name in params
        ]
        status = params.get("payment_status")

        def keep(order: JSON) -> bool:
            if status is not None and order["payment_status"] != status:
                return False
            return all(
                int(order[attr]) >= bound if lower else int(order[attr]) <= bound
                for attr, lower, bound in bounds
            )

        items = [(o.seq, o.json) for o in reversed(self._orders.values()) if keep(o.json)]
        seqs = {oid: o.seq for oid, o in self._orders.items()}
        return _page(items, seqs, params, url_for)

    # --- sandbox transitions -------------------------------------------------------------------

    def pay_order(self, order_id: str) -> JSON:
        """Simulate the customer paying: `charge.paid` (the charge) then `order.paid`."""
        order = self._order(order_id).json
        change = model.pay(order, self._now())
        self._record_capture(order)
        self._emit("charge.paid", charge_of(order), change.charge_previous or {}, order_id)
        self._emit(change.order_event, order, change.order_previous, order_id)
        return copy.deepcopy(order)

    def expire_order(self, order_id: str) -> JSON:
        """Simulate the payment reference expiring unpaid."""
        return self._transition(order_id, model.expire)

    def cancel_order(self, order_id: str) -> JSON:
        """Cancel a pending order."""
        return self._transition(order_id, model.cancel)

    def refund_order(self, order_id: str, amount: int | None = None) -> JSON:
        """Refund part or all of a paid order."""
        now = self._now()
        refund_id = model.object_id(now)
        order = self._order(order_id).json
        before = int(order["amount_refunded"])
        result = self._transition(order_id, lambda o, t: model.refund(o, amount, t, refund_id))
        refunded = int(order["amount_refunded"]) - before
        self._add_transaction(
            model.refund_transaction(charge_of(order), refunded, self._new_txn_id(), now)
        )
        return result

    def chargeback_order(self, order_id: str) -> JSON:
        """Record a chargeback on a paid order."""
        return self._transition(order_id, model.charge_back)

    # --- settlement (providers.md §1.6) --------------------------------------------------------

    def list_transactions(
        self, params: dict[str, str], url_for: Callable[[dict[str, str]], str]
    ) -> JSON:
        """Return `GET /transactions`: newest first, filtered by charge_id/type, cursor-paged."""
        kind = params.get("type")
        if kind is not None and kind not in model.TRANSACTION_TYPES:
            raise _param_error("type", f"expected one of {list(model.TRANSACTION_TYPES)}")
        charge_id = params.get("charge_id")

        def keep(txn: JSON) -> bool:
            return (kind is None or txn["type"] == kind) and (
                charge_id is None or txn["charge"] == charge_id
            )

        items = [(t.seq, t.json) for t in reversed(self._transactions.values()) if keep(t.json)]
        seqs = {tid: t.seq for tid, t in self._transactions.items()}
        return _page(items, seqs, params, url_for)

    def get_transaction(self, txn_id: str) -> JSON:
        """Return one transaction, or raise a 404."""
        txn = self._transactions.get(txn_id)
        if txn is None:
            raise not_found("Transaction", txn_id)
        return copy.deepcopy(txn.json)

    def list_transfers(
        self, params: dict[str, str], url_for: Callable[[dict[str, str]], str]
    ) -> JSON:
        """Return `GET /transfers`: newest first, cursor-paged."""
        items = [(t.seq, t.json) for t in reversed(self._transfers.values())]
        seqs = {tid: t.seq for tid, t in self._transfers.items()}
        return _page(items, seqs, params, url_for)

    def get_transfer(self, transfer_id: str) -> JSON:
        """Return one transfer, or raise a 404."""
        return copy.deepcopy(self._transfer(transfer_id).json)

    def payout(self) -> JSON:
        """Batch every `available` transaction into one transfer and mark them `paid_out`."""
        batch = [t.json for t in self._transactions.values() if t.json["status"] == "available"]
        if not batch:
            raise model.nothing_to_pay_out()
        transfer_id = model.prefixed_id("tr_")
        while transfer_id in self._transfers:
            transfer_id = model.prefixed_id("tr_")
        reference = model.random_digits(7)
        while reference in self._statement_references:
            reference = model.random_digits(7)
        self._statement_references.add(reference)
        transfer = model.build_transfer(
            batch,
            transfer_id=transfer_id,
            statement_reference=reference,
            clabe=self._payout_clabe,
            holder=self.config.payout_account_holder,
            now=self._now(),
        )
        for txn in batch:
            txn["status"] = "paid_out"
        self._transfers[transfer_id] = _Record(next(self._seq), transfer)
        self._transfer_transactions[transfer_id] = [str(t["id"]) for t in batch]
        return copy.deepcopy(transfer)

    def payout_transactions(self, transfer_id: str) -> JSON:
        """Return the transactions a transfer settled (sandbox ground truth), oldest first."""
        self._transfer(transfer_id)
        data = [
            copy.deepcopy(self._transactions[tid].json)
            for tid in self._transfer_transactions[transfer_id]
        ]
        return {"object": "list", "transfer": transfer_id, "data": data}

    # --- events --------------------------------------------------------------------------------

    def get_event(self, event_id: str) -> JSON:
        """Return an event with its current webhook_status and webhook_logs."""
        return copy.deepcopy(self._event(event_id).body)

    def list_events(self, params: dict[str, str], url_for: Callable[[dict[str, str]], str]) -> JSON:
        """Return `GET /events`: newest first, cursor-paged."""
        items = [(e.seq, e.body) for e in reversed(self._events.values())]
        seqs = {eid: e.seq for eid, e in self._events.items()}
        return _page(items, seqs, params, url_for)

    async def resend_event(self, event_id: str, body: object) -> JSON:
        """Deliver an event now to the given webhooks (ignoring `drop`) and return its log."""
        event = self._event(event_id)
        ids = body.get("webhooks_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise InvalidParameters(
                details=[
                    ErrorDetail(
                        "conekta.errors.parameter_validation.webhooks_ids.missing",
                        "The parameter webhooks_ids is required (a list of webhook ids).",
                        "El parámetro webhooks_ids es requerido.",
                        "webhooks_ids",
                    )
                ]
            )
        webhooks = [self._webhook(i) for i in ids]
        # Resend is a manual, synchronous attempt: routing faults (drop, duplicate, reorder,
        # delay) do not apply, but a signing fault still does.
        bad = bool(self._faults.take("bad_signature", event.order_id))
        for webhook in webhooks:
            event.outcome.setdefault(webhook.id, "pending")
            await self._attempt(event, webhook, bad_signature=bad, kind="resend")
        # conekta/openapi schemas/events/events_resend_response.yml: one webhook log.
        return copy.deepcopy(event.logs[webhooks[0].id])

    # --- webhooks ------------------------------------------------------------------------------

    def create_webhook(self, body: object) -> JSON:
        """Register a webhook endpoint (`POST /webhooks`)."""
        if not isinstance(body, dict):
            raise _param_error("body", "expected a JSON object")
        url = body.get("url")
        # The real API refuses localhost URLs (providers.md §1.3); the simulator must not,
        # because Guardia listens on 127.0.0.1 in `make up` and e2e tests.
        if not isinstance(url, str) or not _is_http_url(url):
            raise _param_error("url", "expected an http(s) URL")
        events = body.get("subscribed_events")
        if events is None:
            subscribed = list(ALL_EVENT_TYPES)
        elif isinstance(events, list) and all(isinstance(e, str) for e in events):
            subscribed = [str(e) for e in events]
        else:
            raise _param_error("subscribed_events", "expected a list of event types")
        now = self._now()
        webhook = _Webhook(
            id=model.object_id(now),
            url=url,
            subscribed_events=subscribed,
            active=True,
            status="listening",
            livemode=self.config.livemode,
            created_at=now,
        )
        self._webhooks[webhook.id] = webhook
        return webhook.to_json()

    def list_webhooks(self) -> JSON:
        """Return `GET /webhooks`."""
        return {
            "object": "list",
            "has_more": False,
            "next_page_url": None,
            "previous_page_url": None,
            "data": [w.to_json() for w in self._webhooks.values()],
        }

    def update_webhook(self, webhook_id: str, body: object) -> JSON:
        """Change a webhook's url, active flag or subscriptions (`PUT /webhooks/{id}`)."""
        webhook = self._webhook(webhook_id)
        if not isinstance(body, dict):
            raise _param_error("body", "expected a JSON object")
        if "url" in body:
            if not isinstance(body["url"], str) or not _is_http_url(body["url"]):
                raise _param_error("url", "expected an http(s) URL")
            webhook.url = body["url"]
        if "active" in body:
            if not isinstance(body["active"], bool):
                raise _param_error("active", "expected a boolean")
            webhook.active = body["active"]
        if "subscribed_events" in body:
            events = body["subscribed_events"]
            if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
                raise _param_error("subscribed_events", "expected a list of event types")
            webhook.subscribed_events = [str(e) for e in events]
        return webhook.to_json()

    def delete_webhook(self, webhook_id: str) -> JSON:
        """Unregister a webhook."""
        webhook = self._webhook(webhook_id)
        del self._webhooks[webhook_id]
        return {**webhook.to_json(), "deleted": True}

    def test_webhook(self, webhook_id: str) -> JSON:
        """Send a `webhook_ping` event to one webhook (`POST /webhooks/{id}/test`)."""
        webhook = self._webhook(webhook_id)
        data = {"livemode": self.config.livemode, "action": "ping"}
        self._emit("webhook_ping", None, {}, None, data=data, only=webhook.id)
        return webhook.to_json()

    # --- faults and inspection -----------------------------------------------------------------

    def add_fault(self, body: object) -> JSON:
        """Install a fault from a `POST /_sandbox/faults` body."""
        fault = parse_fault(body, self._now())
        if fault.order_id is not None:
            self._order(fault.order_id)
        self._faults.add(fault)
        return fault.to_json()

    def list_faults(self) -> list[JSON]:
        """Return the active faults."""
        return [{**f.to_json(), "held": len(self._held.get(f.id, []))} for f in self._faults.faults]

    def flush_faults(self) -> int:
        """Release every event held by `reorder` faults, newest first; return how many."""
        return sum(self._release(fault_id) for fault_id in list(self._held))

    def clear_faults(self) -> JSON:
        """Remove all faults, releasing held events so none is lost."""
        removed = self._faults.clear()
        released = self.flush_faults()
        return {"cleared": len(removed), "released": released}

    def take_api_error(self, path: str) -> SimulatedApiError | None:
        """Consume an `api_error` fault for a call to `path` and return the error to answer."""
        fault = self._faults.api_error_for(path)
        if fault is None:
            return None
        status = fault.status_code
        headers = {"Retry-After": "1"} if status == 429 else {}
        if status == 429:
            # Conekta documents no rate limits (providers.md §1.4); code and type are assumed.
            return SimulatedApiError(
                "Too many requests, retry later.",
                code="conekta.errors.api.too_many_requests",
                message="Demasiadas solicitudes.",
                status_code=status,
                headers=headers,
            )
        return SimulatedApiError(
            f"Injected sandbox fault {fault.id}: HTTP {status}.", status_code=status
        )

    def deliveries(self) -> list[dict[str, object]]:
        """Return every delivery attempt so far, oldest first."""
        return [dict(d) for d in self._deliveries]

    # --- internals: state ----------------------------------------------------------------------

    def _now(self) -> int:
        return int(self._clock.now().timestamp())

    def _order(self, order_id: str) -> _Order:
        order = self._orders.get(order_id)
        if order is None:
            raise not_found("Order", order_id)
        return order

    def _event(self, event_id: str) -> _Event:
        event = self._events.get(event_id)
        if event is None:
            raise not_found("Event", event_id)
        return event

    def _webhook(self, webhook_id: str) -> _Webhook:
        webhook = self._webhooks.get(webhook_id)
        if webhook is None:
            raise not_found("Webhook", webhook_id)
        return webhook

    def _transfer(self, transfer_id: str) -> _Record:
        transfer = self._transfers.get(transfer_id)
        if transfer is None:
            raise not_found("Transfer", transfer_id)
        return transfer

    def _new_txn_id(self) -> str:
        txn_id = model.prefixed_id("txn_")
        while txn_id in self._transactions:
            txn_id = model.prefixed_id("txn_")
        return txn_id

    def _add_transaction(self, txn: JSON) -> None:
        self._transactions[str(txn["id"])] = _Record(next(self._seq), txn)

    def _record_capture(self, order: JSON) -> None:
        charge = charge_of(order)
        self._add_transaction(
            model.capture_transaction(charge, self._new_txn_id(), int(charge["paid_at"]))
        )

    def _new_clabe(self) -> str:
        clabe = model.make_clabe(model.STP_CLABE_PREFIX)
        while clabe in self._clabes:
            clabe = model.make_clabe(model.STP_CLABE_PREFIX)
        self._clabes.add(clabe)
        return clabe

    def _new_reference(self) -> str:
        # OXXO references in the official examples are 14 digits starting 9300 (providers.md §1.5).
        reference = "9300" + model.random_digits(10)
        while reference in self._references:
            reference = "9300" + model.random_digits(10)
        self._references.add(reference)
        return reference

    def _transition(self, order_id: str, apply: Callable[[JSON, int], model.Change]) -> JSON:
        order = self._order(order_id).json
        change = apply(order, self._now())
        self._emit(change.order_event, order, change.order_previous, order_id)
        return copy.deepcopy(order)

    def _emit(
        self,
        event_type: str,
        obj: JSON | None,
        previous: JSON,
        order_id: str | None,
        *,
        data: JSON | None = None,
        only: str | None = None,
    ) -> _Event:
        now = self._now()
        if data is None:
            data = {"object": copy.deepcopy(obj), "previous_attributes": copy.deepcopy(previous)}
        # Key order of the fixtures (shared/fixtures/providers/conekta/*.json).
        body: JSON = {
            "data": data,
            "livemode": self.config.livemode,
            "webhook_status": "pending",
            "webhook_logs": [],
            "id": model.object_id(now),
            "object": "event",
            "type": event_type,
            "created_at": now,
        }
        event = _Event(next(self._seq), body, order_id, compact_json(body))
        self._events[event.id] = event
        self._route(event, only)
        return event

    # --- internals: delivery -------------------------------------------------------------------

    def _route(self, event: _Event, only: str | None) -> None:
        if only is not None:
            targets = [only]
        else:
            targets = [w.id for w in self._webhooks.values() if w.wants(event.type)]
        if not targets:
            return
        plan = self._faults.plan(event.order_id)
        for webhook_id in targets:
            event.outcome[webhook_id] = "pending"
        if plan.drop:
            log.info("conekta_sim.dropped", event_id=event.id, type=event.type)
            return
        job = _Job(event, targets, plan)
        if plan.reorder is not None:
            self._held.setdefault(plan.reorder.id, []).append(job)
            if plan.reorder.remaining == 0:
                self._release(plan.reorder.id)
            return
        self._enqueue(job)

    def _release(self, fault_id: str) -> int:
        jobs = self._held.pop(fault_id, [])
        for job in reversed(jobs):
            self._enqueue(job)
        return len(jobs)

    def _enqueue(self, job: _Job) -> None:
        # One lane per order: an order's events go out one after another, in creation order
        # (first attempts; retries run on their own so one failing event does not block the rest).
        key = job.event.order_id or job.event.id
        lane = self._lanes.get(key)
        if lane is not None:
            lane.append(job)
            return
        self._lanes[key] = deque([job])
        if self._running:
            self._start_lane(key)

    def _start_lane(self, key: str) -> None:
        task = asyncio.get_running_loop().create_task(self._run_lane(key), name=f"lane-{key}")
        self._lane_tasks[key] = task
        task.add_done_callback(_log_crash)

    async def _run_lane(self, key: str) -> None:
        lane = self._lanes[key]
        try:
            while lane:
                await self._deliver(lane.popleft())
        finally:
            # No await between the emptiness check and this cleanup, so no job can slip in.
            if self._lanes.get(key) is lane:
                del self._lanes[key]
            self._lane_tasks.pop(key, None)

    async def _deliver(self, job: _Job) -> None:
        # A delayed event holds its lane: later events of the same order wait behind it, so
        # `delay` models latency; out-of-order arrival is what `reorder` is for.
        if job.plan.delay_seconds > 0:
            await asyncio.sleep(job.plan.delay_seconds)
        await asyncio.gather(
            *(
                self._deliver_to(job, webhook_id, "automatic" if copy_no == 0 else "duplicate")
                for webhook_id in job.webhook_ids
                for copy_no in range(job.plan.copies)
            )
        )

    async def _deliver_to(self, job: _Job, webhook_id: str, kind: str) -> None:
        webhook = self._webhooks.get(webhook_id)
        if webhook is None:
            return
        bad = job.plan.bad_signature
        if await self._attempt(job.event, webhook, bad_signature=bad, kind=kind):
            return
        if not self.config.retry_schedule:
            self._mark_failed(job.event, webhook_id)
            return
        task = asyncio.get_running_loop().create_task(
            self._retry(job.event, webhook_id, bad, kind), name=f"retry-{job.event.id}"
        )
        self._retry_tasks.add(task)
        task.add_done_callback(self._retry_tasks.discard)
        task.add_done_callback(_log_crash)

    async def _retry(self, event: _Event, webhook_id: str, bad: bool, kind: str) -> None:
        for pause in self.config.retry_schedule:
            await asyncio.sleep(pause)
            webhook = self._webhooks.get(webhook_id)
            if webhook is None or event.outcome.get(webhook_id) == "successful":
                return
            if await self._attempt(event, webhook, bad_signature=bad, kind=f"{kind}_retry"):
                return
        self._mark_failed(event, webhook_id)

    def _mark_failed(self, event: _Event, webhook_id: str) -> None:
        if event.outcome.get(webhook_id) != "successful":
            event.outcome[webhook_id] = "failed"
        self._refresh_status(event)

    def _refresh_status(self, event: _Event) -> None:
        # Only "pending" and "successful" appear in Conekta's material (fixtures README);
        # "failed" once retries are exhausted is the simulator's own, assumed value.
        outcomes = set(event.outcome.values())
        if outcomes == {"successful"}:
            event.body["webhook_status"] = "successful"
        elif "failed" in outcomes and "pending" not in outcomes:
            event.body["webhook_status"] = "failed"
        else:
            event.body["webhook_status"] = "pending"

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            timeout = self.config.delivery_timeout
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(timeout, connect=min(timeout, 2.0)),
                follow_redirects=False,
            )
        return self._client

    def _signature(self, body: bytes, bad: bool) -> str:
        key = self._key
        if bad:
            if self._bad_key is None:
                self._bad_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            key = self._bad_key
        # Construction (A) of providers.md §1.1: RSASSA-PKCS1-v1_5 / SHA-256 over the raw body.
        return base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()

    async def _attempt(
        self, event: _Event, webhook: _Webhook, *, bad_signature: bool, kind: str
    ) -> bool:
        headers = {
            "Content-Type": "application/json",
            "DIGEST": self._signature(event.wire, bad_signature),
            "User-Agent": "Conekta-Webhooks/2.0 (guardia-sandbox)",
        }
        attempt = event.attempts.get(webhook.id, 0) + 1
        event.attempts[webhook.id] = attempt
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        response_data: JSON = {}
        try:
            response = await self._http().post(webhook.url, content=event.wire, headers=headers)
            status = response.status_code
            response_data = _response_data(response)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}".rstrip(": ")
        ok = status is not None and 200 <= status < 300
        now = self._now()
        entry = event.logs.get(webhook.id)
        if entry is None:
            entry = {
                "id": model.prefixed_id("webhl_"),
                "url": webhook.url,
                "failed_attempts": 0,
                "last_attempted_at": now,
                "last_http_response_status": status,
                "response_data": {},
                "object": "webhook_log",
            }
            event.logs[webhook.id] = entry
            event.body["webhook_logs"].append(entry)
        entry["last_attempted_at"] = now
        entry["last_http_response_status"] = status
        entry["response_data"] = response_data
        if ok:
            event.outcome[webhook.id] = "successful"
            webhook.status = "listening"
        else:
            entry["failed_attempts"] += 1
            webhook.status = "intermittent_errors"
        self._refresh_status(event)
        self._deliveries.append(
            {
                "event_id": event.id,
                "type": event.type,
                "order_id": event.order_id,
                "webhook_id": webhook.id,
                "url": webhook.url,
                "kind": kind,
                "attempt": attempt,
                "status_code": status,
                "error": error,
                "attempted_at": self._clock.now(),
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
                "signature_ok": not bad_signature,
            }
        )
        return ok


# --- helpers -----------------------------------------------------------------------------------


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("conekta_sim.task_crashed", task=task.get_name(), exc_info=task.exception())


def _response_data(response: httpx.Response) -> JSON:
    try:
        parsed = response.json()
    except (ValueError, UnicodeDecodeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _is_http_url(url: str) -> bool:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.host)


def _param_error(param: str, why: str) -> InvalidParameters:
    return InvalidParameters(
        details=[
            ErrorDetail(
                f"conekta.errors.parameter_validation.{param}.invalid",
                f"The parameter {param} is invalid: {why}.",
                f"El parámetro {param} es inválido.",
                param,
            )
        ]
    )


def _int_param(params: dict[str, str], name: str) -> int:
    try:
        return int(params[name])
    except ValueError:
        raise _param_error(name, "expected an integer") from None


def _page(
    items: Iterable[tuple[int, JSON]],
    seqs: dict[str, int],
    params: dict[str, str],
    url_for: Callable[[dict[str, str]], str],
) -> JSON:
    """Cut one newest-first page at the `next`/`previous` cursor (an object id)."""
    limit = _int_param(params, "limit") if "limit" in params else DEFAULT_PAGE
    if not 1 <= limit <= MAX_PAGE:
        raise _param_error("limit", f"expected 1..{MAX_PAGE}")
    ordered = list(items)
    base = {k: v for k, v in params.items() if k not in ("next", "previous")}
    base["limit"] = str(limit)
    if "next" in params or "previous" in params:
        name = "next" if "next" in params else "previous"
        cursor = seqs.get(params[name])
        if cursor is None:
            raise _param_error(name, "unknown cursor id")
        if name == "next":
            window = [it for it in ordered if it[0] < cursor]
            page = window[:limit]
            has_more = len(window) > limit
        else:
            window = [it for it in ordered if it[0] > cursor]
            page = window[-limit:]
            has_more = True
    else:
        page = ordered[:limit]
        has_more = len(ordered) > limit
    data = [copy.deepcopy(obj) for _, obj in page]
    newer_exists = bool(page) and any(seq > page[0][0] for seq, _ in ordered)
    return {
        "object": "list",
        "has_more": has_more,
        "next_page_url": url_for({**base, "next": data[-1]["id"]}) if has_more and data else None,
        "previous_page_url": (
            url_for({**base, "previous": data[0]["id"]}) if newer_exists else None
        ),
        "data": data,
    }


__all__ = ["ConektaSimConfig", "ConektaSimulator", "Fault", "compact_json"]
