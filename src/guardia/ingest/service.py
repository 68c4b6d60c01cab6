"""Receiving a Conekta webhook: verify → store (with the attempt) → answer; process later.

The order of operations is the point (docs/reliability.md §3.2): nothing is acknowledged before
the event is durable, and the unique (provider, event_id) key makes every redelivery a no-op.
Every attempt, accepted or not, leaves a forensic row: headers (secrets removed), body hash and
size, outcome — never the raw body of a rejected request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from guardia.adapters.postgres.tables import webhook_attempts, webhook_events
from guardia.core.clock import from_unix
from guardia.core.errors import InvalidSignature
from guardia.core.ids import new_correlation_id
from guardia.ingest.signature import ConektaKeyring, Verification
from guardia.payments.service import classify

log = structlog.get_logger(__name__)

PROVIDER = "conekta"
ORDER_CORRELATION = text(
    "SELECT coalesce("
    "(SELECT correlation_id FROM payments WHERE order_id = :order_id), "
    "(SELECT correlation_id FROM webhook_events WHERE order_id = :order_id ORDER BY id LIMIT 1))"
)
_SECRET_HEADERS = {"authorization", "cookie", "proxy-authorization", "x-api-key"}
_HASHED_HEADERS = {"digest"}


@dataclass(frozen=True, slots=True)
class Receipt:
    """The answer to one delivery and what it stored."""

    http_status: int
    outcome: str  # accepted | duplicate | ping | invalid_signature | malformed | livemode_mismatch
    detail: str
    correlation_id: str
    event_pk: int | None = None
    event_id: str | None = None
    event_type: str | None = None
    order_id: str | None = None
    needs_processing: bool = False


def forensic_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Keep headers for forensics without secrets: credentials dropped, signatures hashed."""
    kept: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if key in _SECRET_HEADERS:
            kept[key] = "[REDACTED]"
        elif key in _HASHED_HEADERS:
            kept[key] = "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]
        else:
            kept[key] = value[:256]
    return kept


def _order_id_of(event: Mapping[str, Any]) -> tuple[str | None, str | None]:
    obj = (event.get("data") or {}).get("object")
    if not isinstance(obj, dict):
        return None, None
    kind = obj.get("object")
    if kind == "order":
        return obj.get("id"), "order"
    if kind == "charge":
        return obj.get("order_id"), "charge"
    return obj.get("order_id") or None, kind


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
                    detail=detail[:500],
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
            event = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return await self.reject(
                outcome="malformed",
                http_status=400,
                body=body,
                headers=headers,
                remote=remote,
                detail=f"body is not JSON: {exc}",
            )
        if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
            return await self.reject(
                outcome="malformed",
                http_status=400,
                body=body,
                headers=headers,
                remote=remote,
                detail="event has no id or type",
            )
        if bool(event.get("livemode", False)) != self._livemode:
            return await self.reject(
                outcome="livemode_mismatch",
                http_status=400,
                body=body,
                headers=headers,
                remote=remote,
                detail=f"event livemode={event.get('livemode')} on a "
                f"livemode={self._livemode} endpoint",
            )
        return await self._store(event, body, headers, remote, verification)

    async def _order_correlation(self, conn: AsyncConnection, order_id: str | None) -> str | None:
        if order_id is None:
            return None
        found = await conn.scalar(ORDER_CORRELATION, {"order_id": order_id})
        return None if found is None else str(found)

    async def _store(
        self,
        event: dict[str, Any],
        body: bytes,
        headers: Mapping[str, str],
        remote: str | None,
        verification: Verification,
    ) -> Receipt:
        event_id = str(event["id"])
        event_type = str(event["type"])
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
        order_id, object_type = _order_id_of(event)
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
                    livemode=bool(event.get("livemode", False)),
                    order_id=order_id,
                    object_type=object_type,
                    correlation_id=corr,
                    provider_created_at=from_unix(event.get("created_at")),
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
