"""Receiving a Conekta webhook: verify → store (with the attempt) → answer; process later.

The order of operations is the point (docs/reliability.md §3.2): nothing is acknowledged before
the event is durable, and the unique (provider, event_id) key makes every redelivery a no-op.
Every attempt, accepted or not, leaves a forensic row: headers (secrets removed), body hash and
size, outcome — never the raw body of a rejected request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from guardia.adapters.postgres.tables import webhook_attempts, webhook_events
from guardia.core import strict_json
from guardia.core.clock import from_unix
from guardia.core.errors import InvalidInput, InvalidSignature
from guardia.core.ids import new_correlation_id
from guardia.core.redaction import redact_text
from guardia.ingest.signature import ConektaKeyring, Verification
from guardia.payments.service import classify

log = structlog.get_logger(__name__)

PROVIDER = "conekta"
ORDER_CORRELATION = text(
    "SELECT coalesce("
    "(SELECT correlation_id FROM payments WHERE order_id = :order_id), "
    "(SELECT correlation_id FROM webhook_events WHERE order_id = :order_id ORDER BY id LIMIT 1))"
)
# Forensics needs where a delivery came from and what it claimed to be, nothing else: any other
# header is dropped, so a sender cannot make us store card numbers, secrets or kilobytes of
# filler (300 headers once stored 79 KB for one unauthenticated 401).
FORENSIC_HEADERS = (
    "content-type",
    "content-length",
    "user-agent",
    "digest",
    "host",
    "x-forwarded-for",
    "x-real-ip",
    "x-request-id",
    "accept",
    "accept-encoding",
)
_HASHED_HEADERS = {"digest"}
MAX_HEADER_VALUE = 200
MAX_ID = 255  # Conekta ids are 24 hex or `ord_` + 17 characters; anything near this is hostile
MAX_UNIX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z, the last instant datetime can hold


@dataclass(frozen=True, slots=True)
class Receipt:
    """The answer to one delivery and what it stored."""

    http_status: int
    outcome: str  # accepted | duplicate | ping | store_failed | invalid_signature | malformed | …
    detail: str
    correlation_id: str
    event_pk: int | None = None
    event_id: str | None = None
    event_type: str | None = None
    order_id: str | None = None
    needs_processing: bool = False


def forensic_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Keep the allow-listed headers for forensics: signatures hashed, values capped and
    redacted (secrets, card numbers), everything else dropped."""
    lowered = {name.lower(): value for name, value in headers.items()}
    kept: dict[str, str] = {}
    for key in FORENSIC_HEADERS:
        value = lowered.get(key)
        if value is None:
            continue
        if key in _HASHED_HEADERS:
            kept[key] = "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]
        else:
            kept[key] = _storable(redact_text(value[:MAX_HEADER_VALUE]))
    return kept


def _storable(text: str) -> str:
    """Text PostgreSQL accepts: NUL and lone surrogates replaced."""
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


@dataclass(frozen=True, slots=True)
class EventHead:
    """What the receiver reads of an event before storing it."""

    event_id: str
    event_type: str
    livemode: bool
    order_id: str | None
    object_type: str | None
    created_at: int | float | None


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"event {name} is not a non-empty string")
    if len(value) > MAX_ID:
        raise InvalidInput(f"event {name} is longer than {MAX_ID} characters")
    return value


def _optional_text(value: object, name: str) -> str | None:
    return None if value is None else _text(value, name)


def event_head(event: object) -> EventHead:
    """Read an event's id, type, livemode, order and creation time, or raise InvalidInput."""
    if not isinstance(event, dict):
        raise InvalidInput("event is not a JSON object")
    event_id = _text(event.get("id"), "id")
    event_type = _text(event.get("type"), "type")
    livemode = event.get("livemode", False)
    if not isinstance(livemode, bool):
        raise InvalidInput("event livemode is not a boolean")
    created_at = event.get("created_at")
    if created_at is not None and (
        isinstance(created_at, bool)
        or not isinstance(created_at, int | float)
        or not 0 <= created_at <= MAX_UNIX_SECONDS
    ):
        raise InvalidInput("event created_at is not Unix seconds")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    order_id: str | None = None
    object_type: str | None = None
    if isinstance(obj, dict):
        object_type = _optional_text(obj.get("object"), "data.object.object")
        if object_type == "order":
            order_id = _optional_text(obj.get("id"), "order id")
        else:
            order_id = _optional_text(obj.get("order_id") or None, "order_id")
    return EventHead(event_id, event_type, livemode, order_id, object_type, created_at)


Enqueue = Callable[[AsyncConnection, int, str, str | None], Awaitable[None]]


class WebhookReceiver:
    """Conekta's webhook endpoint logic, independent of the web framework.

    `enqueue` puts the processing job in the queue inside the same transaction that stores the
    event (procrastinate can defer on our connection), so an acknowledged event always has its
    job: one commit, no window between storing and enqueuing.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        keyring: ConektaKeyring,
        *,
        livemode: bool,
        enqueue: Enqueue | None = None,
    ) -> None:
        self._engine = engine
        self._keyring = keyring
        self._livemode = livemode
        self._enqueue = enqueue

    async def _attempt(
        self,
        *,
        outcome: str,
        http_status: int,
        body: bytes,
        headers: Mapping[str, str],
        remote: str | None,
        correlation_id: str,
        detail: str,
        event_id: str | None = None,
        order_id: str | None = None,
    ) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(webhook_attempts).values(
                    provider=PROVIDER,
                    outcome=outcome,
                    http_status=http_status,
                    event_id=event_id,
                    order_id=order_id,
                    body_sha256=hashlib.sha256(body).hexdigest(),
                    body_size=len(body),
                    headers=forensic_headers(headers),
                    remote_addr=remote,
                    correlation_id=correlation_id,
                    detail=_storable(detail[:500]),
                )
            )

    async def reject(
        self,
        *,
        outcome: str,
        http_status: int,
        body: bytes,
        headers: Mapping[str, str],
        remote: str | None,
        detail: str,
    ) -> Receipt:
        """Record a refused delivery and return the refusal."""
        corr = new_correlation_id()
        await self._attempt(
            outcome=outcome,
            http_status=http_status,
            body=body,
            headers=headers,
            remote=remote,
            correlation_id=corr,
            detail=detail,
        )
        log.warning("webhook_rejected", provider=PROVIDER, outcome=outcome, detail=detail)
        return Receipt(http_status, outcome, detail, corr)

    async def receive(
        self, body: bytes, headers: Mapping[str, str], *, remote: str | None = None
    ) -> Receipt:
        """Verify, store and acknowledge one delivery."""
        lowered = {k.lower(): v for k, v in headers.items()}
        try:
            verification = self._keyring.verify(
                body, lowered.get("digest"), livemode=self._livemode
            )
        except InvalidSignature as exc:
            return await self.reject(
                outcome="invalid_signature",
                http_status=401,
                body=body,
                headers=headers,
                remote=remote,
                detail=exc.message,
            )
        try:
            event = strict_json.parse(body)
            head = event_head(event)
        except InvalidInput as exc:
            return await self.reject(
                outcome="malformed",
                http_status=400,
                body=body,
                headers=headers,
                remote=remote,
                detail=exc.message,
            )
        if head.livemode != self._livemode:
            return await self.reject(
                outcome="livemode_mismatch",
                http_status=400,
                body=body,
                headers=headers,
                remote=remote,
                detail=f"event livemode={head.livemode} on a livemode={self._livemode} endpoint",
            )
        return await self._store(event, head, body, headers, remote, verification)

    async def _order_correlation(self, conn: AsyncConnection, order_id: str | None) -> str | None:
        if order_id is None:
            return None
        found = await conn.scalar(ORDER_CORRELATION, {"order_id": order_id})
        return None if found is None else str(found)

    async def _store(
        self,
        event: dict[str, Any],
        head: EventHead,
        body: bytes,
        headers: Mapping[str, str],
        remote: str | None,
        verification: Verification,
    ) -> Receipt:
        event_id, event_type = head.event_id, head.event_type
        if event_type == "webhook_ping":
            corr = new_correlation_id()
            await self._attempt(
                outcome="ping",
                http_status=200,
                body=body,
                headers=headers,
                remote=remote,
                correlation_id=corr,
                detail="webhook_ping",
                event_id=event_id,
            )
            return Receipt(200, "ping", "pong", corr, event_id=event_id, event_type=event_type)
        try:
            return await self._store_event(event, head, body, headers, remote, verification)
        except SQLAlchemyError as exc:
            return await self._store_failed(exc, head, body, headers, remote)

    async def _store_failed(
        self,
        exc: SQLAlchemyError,
        head: EventHead,
        body: bytes,
        headers: Mapping[str, str],
        remote: str | None,
    ) -> Receipt:
        """Record a delivery whose store failed in a transaction of its own, so every 5xx is
        counted (the failed transaction took its attempt row with it); Conekta retries it."""
        corr = new_correlation_id()
        cause = type(getattr(exc, "orig", None) or exc).__name__
        try:
            await self._attempt(
                outcome="store_failed",
                http_status=503,
                body=body,
                headers=headers,
                remote=remote,
                correlation_id=corr,
                detail=f"the event could not be stored ({cause})",
                event_id=head.event_id,
                order_id=head.order_id,
            )
        except SQLAlchemyError:
            # The database itself is away: the metric and this log line are all that remain.
            log.error("webhook_attempt_unrecorded", provider=PROVIDER, event_id=head.event_id)
        log.error(
            "webhook_store_failed",
            provider=PROVIDER,
            event_id=head.event_id,
            order_id=head.order_id,
            cause=cause,
            correlation_id=corr,
        )
        return Receipt(
            503,
            "store_failed",
            f"the event could not be stored ({cause}); retry later",
            corr,
            event_id=head.event_id,
            event_type=head.event_type,
            order_id=head.order_id,
        )

    async def _store_event(
        self,
        event: dict[str, Any],
        head: EventHead,
        body: bytes,
        headers: Mapping[str, str],
        remote: str | None,
        verification: Verification,
    ) -> Receipt:
        event_id, event_type = head.event_id, head.event_type
        order_id, object_type = head.order_id, head.object_type
        kind = classify(event_type)
        async with self._engine.begin() as conn:
            # Every event of one order carries the order's correlation id, so its webhooks, jobs,
            # pulls and incidents line up on one timeline.
            corr = await self._order_correlation(conn, order_id) or new_correlation_id()
            inserted = await conn.scalar(
                pg_insert(webhook_events)
                .values(
                    provider=PROVIDER,
                    event_id=event_id,
                    event_type=event_type,
                    livemode=head.livemode,
                    order_id=order_id,
                    object_type=object_type,
                    correlation_id=corr,
                    provider_created_at=from_unix(head.created_at),
                    body=event,
                    body_sha256=hashlib.sha256(body).hexdigest(),
                    signature_key_id=verification.key_id,
                    signature_branch=verification.branch,
                    status="ignored" if kind == "unknown" else "received",
                )
                .on_conflict_do_nothing(constraint="uq_webhook_events_provider_event")
                .returning(webhook_events.c.id)
            )
            if inserted is None:
                existing = (
                    await conn.execute(
                        select(
                            webhook_events.c.id,
                            webhook_events.c.correlation_id,
                            webhook_events.c.status,
                        ).where(
                            webhook_events.c.provider == PROVIDER,
                            webhook_events.c.event_id == event_id,
                        )
                    )
                ).one()
                pk, corr, outcome = existing.id, existing.correlation_id, "duplicate"
                needs = existing.status == "received"
            else:
                pk, outcome, needs = int(inserted), "accepted", kind != "unknown"
                if needs and self._enqueue is not None:
                    await self._enqueue(conn, pk, corr, order_id)
                    needs = False
            await conn.execute(
                insert(webhook_attempts).values(
                    provider=PROVIDER,
                    outcome=outcome,
                    http_status=200,
                    event_id=event_id,
                    order_id=order_id,
                    body_sha256=hashlib.sha256(body).hexdigest(),
                    body_size=len(body),
                    headers=forensic_headers(headers),
                    remote_addr=remote,
                    correlation_id=corr,
                    detail=f"{event_type} ({kind}); key={verification.key_id} "
                    f"branch={verification.branch}",
                )
            )
        log.info(
            "webhook_received",
            provider=PROVIDER,
            outcome=outcome,
            event_id=event_id,
            event_type=event_type,
            order_id=order_id,
            correlation_id=corr,
            verified_branch=verification.branch,
        )
        return Receipt(
            200,
            outcome,
            "stored" if outcome == "accepted" else "already stored",
            corr,
            event_pk=pk,
            event_id=event_id,
            event_type=event_type,
            order_id=order_id,
            needs_processing=needs,
        )
