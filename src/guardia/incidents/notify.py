"""Outbound incident notifications to a Slack-compatible incoming webhook, with retries.

The row is written with the incident change; a job sends it. A failed send raises
ProviderUnavailable so the job's backoff retries it, and the attempt count stays on the row.
"""

from __future__ import annotations

import httpx
import structlog
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from guardia.core.errors import NotFound, ProviderUnavailable
from guardia.incidents.tables import notifications

log = structlog.get_logger(__name__)


async def send(
    engine: AsyncEngine, http: httpx.AsyncClient, url: str | None, notification_id: int
) -> str:
    """Send one notification; return its final status (sent or skipped)."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(notifications).where(notifications.c.id == notification_id))
        ).first()
    if row is None:
        raise NotFound(f"notification {notification_id} not found")
    if row.status in ("sent", "skipped"):
        return str(row.status)
    if url is None:
        await _mark(engine, notification_id, status="skipped", last_error="no webhook URL set")
        return "skipped"
    try:
        response = await http.post(url, json=row.payload)
        failure = None if response.status_code < 300 else f"HTTP {response.status_code}"
    except httpx.HTTPError as exc:
        failure = type(exc).__name__
    if failure is not None:
        await _mark(engine, notification_id, status="pending", last_error=failure)
        raise ProviderUnavailable(f"notification {notification_id} not delivered: {failure}")
    await _mark(engine, notification_id, status="sent", last_error=None, sent=True)
    log.info("notification_sent", notification_id=notification_id, incident=row.incident_id)
    return "sent"


async def _mark(
    engine: AsyncEngine,
    notification_id: int,
    *,
    status: str,
    last_error: str | None,
    sent: bool = False,
) -> None:
    values: dict[str, object] = {
        "status": status,
        "last_error": last_error,
        "attempts": notifications.c.attempts + 1,
    }
    if sent:
        values["sent_at"] = func.now()
    async with engine.begin() as conn:
        await conn.execute(
            update(notifications).where(notifications.c.id == notification_id).values(**values)
        )
