"""Runbook 1, "Webhook de Conekta no llega", as code."""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import text

from guardia.core.errors import GuardiaError, NotFound
from guardia.incidents.model import Runbook as RunbookId
from guardia.payments import service as payments
from guardia.payments.ports import EventSummary
from guardia.recovery import our_webhook_ids, resend_event
from guardia.runbooks.model import (
    Action,
    ActionResult,
    Check,
    CheckResult,
    RunbookSpec,
    RunContext,
    Status,
)

CERT_MIN_DAYS = 14


async def conekta_webhooks(ctx: RunContext) -> CheckResult:
    """Conekta has an active webhook pointing at us, listening."""
    name = "conekta_webhook_configuration"
    try:
        hooks = await ctx.container.conekta.list_webhooks()
    except GuardiaError as exc:
        return CheckResult(name, Status.UNKNOWN, f"Conekta did not answer: {exc.message}")
    base = ctx.container.settings.public_base_url.rstrip("/")
    evidence = {"webhooks": [{"id": h.webhook_id, "url": h.url, "status": h.status} for h in hooks]}
    ours = [h for h in hooks if h.url.startswith(base) and h.active]
    if not ours:
        return CheckResult(
            name, Status.FAIL, f"no active Conekta webhook points at {base}", evidence
        )
    bad = [h for h in ours if h.status != "listening"]
    if bad:
        return CheckResult(
            name, Status.FAIL, f"webhook {bad[0].webhook_id} is {bad[0].status}", evidence
        )
    return CheckResult(name, Status.PASS, f"{len(ours)} webhook(s) listening at {base}", evidence)


async def _conekta_events(ctx: RunContext) -> list[EventSummary]:
    """Conekta's newest events, those of the run's orders when it has any."""
    events = await ctx.container.conekta.list_events(limit=100)
    if ctx.order_ids:
        events = [e for e in events if e.order_id in ctx.order_ids]
    return events


async def _stored_event_ids(ctx: RunContext, event_ids: list[str]) -> set[str]:
    async with ctx.container.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT event_id FROM webhook_events WHERE event_id = ANY(:ids)"),
            {"ids": event_ids},
        )
        return {r.event_id for r in rows}


async def delivery_results(ctx: RunContext) -> CheckResult:
    """Conekta's delivery results (status, HTTP codes, retries) against what we stored."""
    name = "conekta_delivery_results"
    try:
        events = await _conekta_events(ctx)
    except GuardiaError as exc:
        return CheckResult(name, Status.UNKNOWN, f"Conekta did not answer: {exc.message}")
    if not events:
        return CheckResult(name, Status.UNKNOWN, "Conekta lists no recent event for this scope")
    stored = await _stored_event_ids(ctx, [e.event_id for e in events])
    rows = [
        {
            "event_id": e.event_id,
            "type": e.event_type,
            "order_id": e.order_id,
            "webhook_status": e.webhook_status,
            "http_statuses": [log.last_http_response_status for log in e.logs],
            "failed_attempts": sum(log.failed_attempts for log in e.logs),
            "stored_here": e.event_id in stored,
        }
        for e in events
    ]
    missing = [r for r in rows if not r["stored_here"]]
    evidence: dict[str, Any] = {
        "events": rows,
        "external_ids": {"conekta_event": [r["event_id"] for r in missing]},
    }
    if missing:
        worst = missing[0]
        return CheckResult(
            name,
            Status.FAIL,
            f"{len(missing)} event(s) Conekta holds never reached us, e.g. {worst['event_id']} "
            f"({worst['type']}): webhook_status {worst['webhook_status']}, HTTP "
            f"{worst['http_statuses'] or 'never attempted'}",
            evidence,
        )
    return CheckResult(
        name, Status.PASS, f"all {len(rows)} event(s) Conekta lists were stored here", evidence
    )


async def receipts(ctx: RunContext) -> CheckResult:
    """Our receipts in the last hour (for the order, if given), and signature failures."""
    name = "our_receipts_and_signatures"
    since = ctx.now - timedelta(hours=1)
    async with ctx.container.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT outcome, count(*) AS n FROM webhook_attempts "
                    "WHERE received_at >= :since "
                    "AND (CAST(:order AS text) IS NULL OR order_id = :order) GROUP BY outcome"
                ),
                {"since": since, "order": ctx.order_id},
            )
        ).all()
    counts = {r.outcome: int(r.n) for r in rows}
    if counts.get("invalid_signature"):
        return CheckResult(
            name,
            Status.FAIL,
            f"{counts['invalid_signature']} delivery(ies) failed the signature check: "
            "is the current webhook key loaded (GUARDIA_CONEKTA_WEBHOOK_KEYS)?",
            counts,
        )
    if not counts:
        return CheckResult(name, Status.UNKNOWN, "no delivery received in the last hour", counts)
    return CheckResult(name, Status.PASS, f"deliveries received: {counts}", counts)


async def order_state(ctx: RunContext) -> CheckResult:
    """The order's status here equals Conekta's."""
    name = "order_paid_here_and_in_conekta"
    if ctx.order_id is None:
        return CheckResult(name, Status.UNKNOWN, "no --order-id given")
    try:
        theirs = await ctx.container.conekta.get_order(ctx.order_id)
    except GuardiaError as exc:
        return CheckResult(name, Status.UNKNOWN, f"Conekta did not answer: {exc.message}")
    try:
        ours = (await payments.get_order_view(ctx.container.engine, ctx.order_id)).status
    except NotFound:
        ours = "unknown to Guardia"
    evidence = {"guardia": ours, "conekta": theirs.status.value}
    if ours != theirs.status.value:
        return CheckResult(
            name, Status.FAIL, f"Guardia says {ours}, Conekta says {theirs.status.value}", evidence
        )
    return CheckResult(name, Status.PASS, f"both say {ours}", evidence)


async def public_endpoint(ctx: RunContext) -> CheckResult:
    """Our public webhook URL answers, and its TLS certificate is valid and not about to expire."""
    name = "public_url_tls_and_reachability"
    base = ctx.container.settings.public_base_url.rstrip("/")
    evidence: dict[str, Any] = {"url": base}
    try:
        response = await ctx.container.http.get(f"{base}/healthz", timeout=5.0)
        evidence["healthz"] = response.status_code
    except httpx.HTTPError as exc:
        return CheckResult(name, Status.FAIL, f"{base} unreachable: {type(exc).__name__}", evidence)
    parts = urlsplit(base)
    if parts.scheme != "https":
        return CheckResult(
            name,
            Status.UNKNOWN if response.is_success else Status.FAIL,
            f"reachable ({response.status_code}); not TLS, so no certificate to check",
            evidence,
        )
    expires = await _certificate_expiry(parts.hostname or "", parts.port or 443)
    evidence["certificate_expires_at"] = expires.isoformat()
    if expires - ctx.now < timedelta(days=CERT_MIN_DAYS):
        return CheckResult(
            name, Status.FAIL, f"TLS certificate expires {expires:%Y-%m-%d}", evidence
        )
    return CheckResult(
        name, Status.PASS, f"reachable; certificate valid until {expires:%Y-%m-%d}", evidence
    )


async def _certificate_expiry(host: str, port: int) -> datetime:
    context = ssl.create_default_context()
    _, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=context, server_hostname=host), timeout=5.0
    )
    try:
        cert = writer.get_extra_info("peercert")
    finally:
        writer.close()
    return datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), UTC)


async def resend_action(ctx: RunContext, apply: bool) -> ActionResult:
    """Ask Conekta to resend the order's events we never stored (dry run: which)."""
    name = "resend_events"
    events = await _conekta_events(ctx)
    stored = await _stored_event_ids(ctx, [e.event_id for e in events])
    missing = [e for e in events if e.event_id not in stored]
    if not missing:
        return ActionResult(name, False, [], {"missing": []})
    targets = await our_webhook_ids(ctx.container)
    changes = [f"resend {e.event_id} ({e.event_type}) to {', '.join(targets)}" for e in missing]
    if not apply:
        return ActionResult(name, False, changes, {"webhooks": targets})
    sent = [
        await resend_event(ctx.container, e.event_id, targets, actor=ctx.actor, reason="runbook 1")
        for e in missing
    ]
    return ActionResult(
        name,
        True,
        changes,
        {
            "resent": [s["event_id"] for s in sent],
            "correlation_ids": [s["correlation_id"] for s in sent],
            "external_ids": {"conekta_event": [s["event_id"] for s in sent]},
        },
    )


async def pull_action(ctx: RunContext, apply: bool) -> ActionResult:
    """Pull the order from Conekta (dry run: the diff)."""
    if ctx.order_id is None:
        return ActionResult("pull_order", False, [], {"skipped": "no --order-id"})
    result = await payments.pull_order(
        ctx.container.engine,
        ctx.container.conekta,
        ctx.order_id,
        actor=ctx.actor,
        dry_run=not apply,
        reason="runbook 1",
    )
    if apply:
        await ctx.container.defer_postings(ctx.order_id, result.correlation_id, result.postings)
    changes = [f"{k}: {a} → {b}" for k, (a, b) in result.changes.items()]
    return ActionResult("pull_order", apply, changes, {"status": result.after.status.value})


async def replay_action(ctx: RunContext, apply: bool) -> ActionResult:
    """Re-apply the order's stored events (dry run: which ones)."""
    if ctx.order_id is None:
        return ActionResult("replay_order", False, [], {"skipped": "no --order-id"})
    async with ctx.container.engine.connect() as conn:
        events = [
            r.event_id
            for r in await conn.execute(
                text("SELECT event_id FROM webhook_events WHERE order_id = :o ORDER BY id"),
                {"o": ctx.order_id},
            )
        ]
    if not events:
        return ActionResult("replay_order", False, [], {"events": []})
    if not apply:
        return ActionResult(
            "replay_order", False, [f"re-apply {e}" for e in events], {"events": events}
        )
    done = await payments.replay(
        ctx.container.engine,
        payments.ReplaySelector(order_id=ctx.order_id),
        actor=ctx.actor,
        reason="runbook 1",
    )
    return ActionResult(
        "replay_order",
        True,
        [f"re-applied {e}" for e in done.events],
        {"changed": done.changed_orders},
    )


SPEC = RunbookSpec(
    name="conekta-webhook",
    runbook=RunbookId.WEBHOOK_MISSING,
    title="Webhook de Conekta no llega",
    checks=(
        Check(
            "conekta_webhook_configuration",
            "webhook configured in Conekta: URL, status, active",
            conekta_webhooks,
        ),
        Check(
            "conekta_delivery_results",
            "recent delivery results in Conekta (status, HTTP codes, retries) vs our store",
            delivery_results,
        ),
        Check("our_receipts_and_signatures", "receipts and signature failures", receipts),
        Check(
            "public_url_tls_and_reachability",
            "TLS certificate and reachability",
            public_endpoint,
        ),
        Check("order_paid_here_and_in_conekta", "the order's status, ours vs Conekta", order_state),
    ),
    actions=(
        Action("resend_events", "ask Conekta to resend what never arrived", True, resend_action),
        Action("pull_order", "pull the order by id from Conekta", True, pull_action),
        Action("replay_order", "replay the order's stored events", True, replay_action),
    ),
    verification=("order_paid_here_and_in_conekta",),
    prevention=(
        "Idempotency by event_id (store-before-ack, ON CONFLICT DO NOTHING)",
        "Alert when the failed-webhook rate exceeds GUARDIA_ALERT_WEBHOOK_FAILURE_RATIO",
        "Sweeper pulls orders Conekta updated that no webhook brought",
    ),
    needs="order",
    symptoms="The customer paid but the PWA does not show `paid`; no `order.paid` in the logs.",
    detection="the sweeper lists what Conekta changed; an order no webhook brought within "
    "`GUARDIA_SWEEP_GRACE_SECONDS` is pulled (the fix) and recorded on a runbook-1 incident, "
    "detected and mitigated at once, resolved when Conekta and Guardia agree.",
    commands=(
        "guardia pull ORDER_ID --dry-run, then guardia pull ORDER_ID",
        "guardia resend EVENT_ID",
        "guardia replay --order-id ORDER_ID (or --since … --until …)",
        "guardia dlq list / guardia dlq retry --cause …",
        "GET /api/webhook-attempts?order_id=… (?outcome=invalid_signature)",
    ),
)
