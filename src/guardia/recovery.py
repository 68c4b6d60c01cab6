"""Provider-side recovery: ask Conekta to resend an event to our webhook(s)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select

from guardia.adapters.postgres.tables import webhook_events
from guardia.audit import log as audit
from guardia.core.errors import InvalidInput
from guardia.core.ids import new_correlation_id
from guardia.payments.service import record_action

if TYPE_CHECKING:
    from guardia.bootstrap import Container

log = structlog.get_logger(__name__)


async def our_webhook_ids(c: Container) -> list[str]:
    """Webhook ids to resend to: configured, else every Conekta webhook pointing at us."""
    configured = [w.strip() for w in c.settings.conekta_webhook_ids.split(",") if w.strip()]
    if configured:
        return configured
    base = c.settings.public_base_url.rstrip("/")
    hooks = await c.conekta.list_webhooks()
    ours = [h.webhook_id for h in hooks if h.url.startswith(base) and h.active]
    return ours or [h.webhook_id for h in hooks if h.active]


async def resend_event(
    c: Container, event_id: str, webhook_ids: list[str], *, actor: str, reason: str = ""
) -> dict[str, Any]:
    """Ask Conekta to deliver `event_id` again; record the action with its correlation id."""
    targets = webhook_ids or await our_webhook_ids(c)
    if not targets:
        raise InvalidInput("no Conekta webhook to resend to: set GUARDIA_CONEKTA_WEBHOOK_IDS")
    delivery = await c.conekta.resend_event(event_id, targets)
    async with c.engine.begin() as conn:
        corr = await conn.scalar(
            select(webhook_events.c.correlation_id).where(webhook_events.c.event_id == event_id)
        )
        corr = corr or new_correlation_id()
        result = {
            "webhook_ids": targets,
            "log_id": delivery.log_id,
            "last_http_response_status": delivery.last_http_response_status,
            "failed_attempts": delivery.failed_attempts,
        }
        action_id = await record_action(
            conn,
            kind="resend",
            actor=actor,
            target={"event_id": event_id},
            correlation_id=corr,
            dry_run=False,
            result=result,
        )
        await audit.record(
            conn,
            actor=actor,
            action="resend",
            target={"event_id": event_id, **result},
            reason=reason,
            correlation_id=corr,
        )
    log.info("event_resent", event_id=event_id, correlation_id=corr, actor=actor, **result)
    return {"event_id": event_id, "correlation_id": corr, "action_id": action_id, **result}
