"""The seed's runbooks 1 and 2 as code (runbooks 3 and 7 join the same way)."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import text

from guardia.core.errors import GuardiaError, NotFound
from guardia.incidents.model import Runbook as RunbookId
from guardia.jobs import deadletters
from guardia.ledger.check import check_ledger
from guardia.payments import service as payments
from guardia.runbooks.model import Action, ActionResult, Check, CheckResult, RunbookSpec, Status

if TYPE_CHECKING:
    from guardia.runbooks.runner import RunContext

CERT_MIN_DAYS = 14


# --- runbook 1: "Webhook de Conekta no llega" ------------------------------------------------


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
    import asyncio

    context = ssl.create_default_context()
    _, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=context, server_hostname=host), timeout=5.0
    )
    try:
        cert = writer.get_extra_info("peercert")
    finally:
        writer.close()
    return datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), UTC)


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


# --- runbook 2: "Asiento contable falla en Odoo" ---------------------------------------------


async def odoo_configuration(ctx: RunContext) -> CheckResult:
    """Credentials, catalogue (accounts), journal, analytic account and the bot's rights."""
    report = await check_ledger(ctx.container.odoo, ctx.container.ledger_config)
    failures = [f"{i.name}: {i.detail} → {i.fix}" for i in report.failures()]
    status = Status.PASS if report.ok else Status.FAIL
    summary = "Odoo configuration is complete" if report.ok else "; ".join(failures)
    return CheckResult("odoo_configuration", status, summary, report.to_json())


async def failed_postings(ctx: RunContext) -> CheckResult:
    """Open dead letters of postings by cause, and postings not yet posted."""
    letters = await deadletters.list_dead_letters(
        ctx.container.engine, deadletters.DeadLetterFilter(task_name="guardia:post_entry")
    )
    causes: dict[str, int] = {}
    for d in letters:
        causes[d.cause] = causes.get(d.cause, 0) + 1
    async with ctx.container.engine.connect() as conn:
        states = {
            r.state: int(r.n)
            for r in await conn.execute(
                text(
                    "SELECT state, count(*) AS n FROM postings "
                    "WHERE state <> 'posted' GROUP BY state"
                )
            )
        }
    evidence = {"dead_letters": causes, "postings": states}
    if letters or states.get("dead"):
        return CheckResult(
            "failed_postings", Status.FAIL, f"dead letters {causes}, postings {states}", evidence
        )
    if states:
        return CheckResult(
            "failed_postings", Status.UNKNOWN, f"postings still in flight: {states}", evidence
        )
    return CheckResult("failed_postings", Status.PASS, "every posting is posted", evidence)


async def retry_postings(ctx: RunContext, apply: bool) -> ActionResult:
    """Retry the dead-lettered postings from the queue (dry run: which)."""
    flt = deadletters.DeadLetterFilter(task_name="guardia:post_entry")
    letters = await deadletters.list_dead_letters(ctx.container.engine, flt)
    changes = [f"retry dead letter {d.id} ({d.cause}) of {d.order_id}" for d in letters]
    if not apply or not letters:
        return ActionResult("retry_postings", False, changes)
    done = await deadletters.retry(
        ctx.container.engine, ctx.container.defer_retry, flt, actor=ctx.actor, reason="runbook 2"
    )
    return ActionResult("retry_postings", True, changes, {"jobs": [j for _, j in done]})


RUNBOOKS: dict[str, RunbookSpec] = {
    "conekta-webhook": RunbookSpec(
        name="conekta-webhook",
        runbook=RunbookId.WEBHOOK_MISSING,
        title="Webhook de Conekta no llega",
        checks=(
            Check("conekta_webhook_configuration", "URL, status in Conekta", conekta_webhooks),
            Check("our_receipts_and_signatures", "receipts and signature failures", receipts),
            Check(
                "public_url_tls_and_reachability",
                "TLS certificate and reachability",
                public_endpoint,
            ),
            Check(
                "order_paid_here_and_in_conekta", "the order's status, ours vs Conekta", order_state
            ),
        ),
        actions=(
            Action("pull_order", "pull the order by id from Conekta", True, pull_action),
            Action("replay_order", "replay the order's stored events", True, replay_action),
        ),
        verification=("order_paid_here_and_in_conekta",),
        needs_order=True,
    ),
    "odoo-posting": RunbookSpec(
        name="odoo-posting",
        runbook=RunbookId.ODOO_POSTING_FAILS,
        title="Asiento contable falla en Odoo",
        checks=(
            Check("odoo_configuration", "credentials, catalogue, permissions", odoo_configuration),
            Check(
                "failed_postings", "payload completeness of the failed postings", failed_postings
            ),
        ),
        actions=(Action("retry_postings", "retry from the queue", True, retry_postings),),
        verification=("odoo_configuration", "failed_postings"),
    ),
}
