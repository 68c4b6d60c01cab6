"""Background tasks. Each reads its dependencies from the worker's Container.

Per-order ordering: jobs touching an order carry the procrastinate lock `order:<id>`, so one
order's jobs run one at a time across every worker; `apply_snapshot` also takes a transaction
advisory lock, so correctness does not depend on the queue alone.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from procrastinate import App
from procrastinate import exceptions as proc_exc
from sqlalchemy import select

from guardia.adapters.postgres.tables import postings, webhook_events
from guardia.alerts.rules import evaluate_all
from guardia.backups.drill import restore_drill as run_restore_drill
from guardia.backups.service import check_backups as backup_preflight
from guardia.backups.service import run_backup
from guardia.incidents import notify
from guardia.jobs import deadletters
from guardia.ledger.check import check_ledger, store_report
from guardia.ledger.check import posting_test as daily_posting_test
from guardia.ledger.service import pending_postings, run_posting
from guardia.payments import service as payments

if TYPE_CHECKING:
    from guardia.bootstrap import Container

log = structlog.get_logger(__name__)

QUEUES = {
    "process_event": "webhooks",
    "post_entry": "ledger",
    "relay_postings": "periodic",
    "check_odoo": "periodic",
    "posting_test": "periodic",
    "send_notification": "notifications",
    "backup": "backups",
    "restore_drill": "backups",
    "check_backups": "periodic",
    "pull_order": "recovery",
    "sweep": "periodic",
    "relay_inbox": "periodic",
    "recover_stalled": "periodic",
    "evaluate_alerts": "periodic",
}

PROCESS_EVENT = "guardia:process_event"
POST_ENTRY = "guardia:post_entry"
RELAY_POSTINGS = "guardia:relay_postings"
CHECK_ODOO = "guardia:check_odoo"
POSTING_TEST = "guardia:posting_test"
SEND_NOTIFICATION = "guardia:send_notification"
BACKUP = "guardia:backup"
RESTORE_DRILL = "guardia:restore_drill"
CHECK_BACKUPS = "guardia:check_backups"
PULL_ORDER = "guardia:pull_order"
SWEEP = "guardia:sweep"
RELAY_INBOX = "guardia:relay_inbox"
RECOVER_STALLED = "guardia:recover_stalled"
EVALUATE_ALERTS = "guardia:evaluate_alerts"


def _container(context: Any) -> Container:
    container: Container = context.additional_context["container"]
    return container


async def process_event(
    context: Any, event_pk: int, correlation_id: str, order_id: str | None = None
) -> str:
    """Process one stored webhook event."""
    c = _container(context)
    structlog.contextvars.bind_contextvars(correlation_id=correlation_id, order_id=order_id)
    try:
        result = await payments.process_event(c.engine, event_pk)
        if result.applied is not None and result.applied.postings:
            await c.defer_postings(
                result.applied.order_id, result.applied.correlation_id, result.applied.postings
            )
        if result.outcome == "processed" and result.received_at is not None:
            c.metrics.processing_latency.labels("conekta").observe(
                max(0.0, (c.clock.now() - result.received_at).total_seconds())
            )
        return result.outcome
    finally:
        structlog.contextvars.unbind_contextvars("correlation_id", "order_id")


async def pull_order(
    context: Any, order_id: str, correlation_id: str | None = None, actor: str = "system"
) -> str:
    """Pull one order from Conekta and apply it."""
    c = _container(context)
    result = await payments.pull_order(c.engine, c.conekta, order_id, actor=actor)
    c.metrics.provider_calls.labels("pull").inc()
    await c.defer_postings(order_id, result.correlation_id, result.postings)
    return result.after.status.value


async def post_entry(
    context: Any, posting_id: int, order_id: str, correlation_id: str
) -> dict[str, Any]:
    """Create and post one journal entry in Odoo (exactly once)."""
    c = _container(context)
    structlog.contextvars.bind_contextvars(correlation_id=correlation_id, order_id=order_id)
    try:
        outcome = await run_posting(c.posting_deps(), posting_id)
    finally:
        structlog.contextvars.unbind_contextvars("correlation_id", "order_id")
    c.metrics.postings.labels(outcome.kind, "adopted" if outcome.adopted else "posted").inc()
    return {"move_id": outcome.move_id, "move": outcome.move_name, "adopted": outcome.adopted}


def _rest_since(c: Container) -> datetime:
    """A dead-lettered item whose last failure is older than this is relayed again: one try
    per retry cap, so a stuck item heals itself (Odoo back up) without a dead-letter loop."""
    return c.clock.now() - timedelta(seconds=c.settings.retry_cap_seconds)


async def relay_postings(context: Any, timestamp: int) -> int:
    """Periodic: enqueue postings left pending (after a pull, replay, sweep or crash)."""
    c = _container(context)
    cutoff = c.clock.now() - timedelta(seconds=c.settings.inbox_relay_seconds)
    resting = deadletters.resting(
        POST_ENTRY, "posting_id", postings.c.id, failed_after=_rest_since(c)
    )
    enqueued = 0
    for posting_id, order_id, corr in await pending_postings(
        c.engine, older_than=cutoff, unless=resting
    ):
        if await c.defer_postings(order_id, corr, (posting_id,)):
            enqueued += 1
    return enqueued


async def check_odoo(context: Any, timestamp: int) -> bool:
    """Periodic: the Odoo config check (readiness and the OdooConfigCheckFailing alert)."""
    c = _container(context)
    report = await check_ledger(c.odoo, c.ledger_config)
    await store_report(c.engine, report)
    return report.ok


async def posting_test(context: Any, timestamp: int) -> bool | None:
    """Daily: post and reverse a minimal entry in the staging Odoo."""
    c = _container(context)
    if c.odoo_staging is None:
        log.warning("posting_test_skipped", reason="no staging Odoo configured")
        return None
    report = await daily_posting_test(c.odoo_staging, c.odoo_staging, c.ledger_config, c.clock)
    await store_report(c.engine, report)
    return report.ok


async def sweep(context: Any, timestamp: int) -> dict[str, Any]:
    """Periodic: pull stale pending orders and orders Conekta updated lately."""
    from guardia.runbooks import automation

    c = _container(context)
    result = await automation.sweep(c)
    c.metrics.provider_calls.labels("sweep").inc()
    return {"pulled": result.pulled, "discovered": result.discovered, "healed": result.healed}


async def relay_inbox(context: Any, timestamp: int) -> int:
    """Periodic: enqueue stored events still unprocessed (e.g. the enqueue after ack failed).

    An event that failed for good is `failed`, not `received`: only an operator retries it.
    """
    c = _container(context)
    cutoff = c.clock.now() - timedelta(seconds=c.settings.inbox_relay_seconds)
    async with c.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(
                    webhook_events.c.id, webhook_events.c.correlation_id, webhook_events.c.order_id
                )
                .where(
                    webhook_events.c.status == "received",
                    webhook_events.c.received_at < cutoff,
                    ~deadletters.resting(
                        PROCESS_EVENT, "event_pk", webhook_events.c.id, failed_after=_rest_since(c)
                    ),
                )
                .order_by(webhook_events.c.id)
                .limit(1000)
            )
        ).all()
    enqueued = 0
    for row in rows:
        if await c.defer_process_event(row.id, row.correlation_id, row.order_id):
            enqueued += 1
    if enqueued:
        log.warning("inbox_relayed", events=enqueued)
    return enqueued


async def recover_stalled(context: Any, timestamp: int) -> int:
    """Periodic: retry the jobs of workers that stopped sending heartbeats."""
    c = _container(context)
    return await retry_stalled_jobs(context.app, c.settings.stalled_worker_seconds)


async def retry_stalled_jobs(app: App, seconds_since_heartbeat: float) -> int:
    """Put back in the queue the running jobs of workers silent for too long (dead)."""
    manager = app.job_manager
    stalled = list(await manager.get_stalled_jobs(seconds_since_heartbeat=seconds_since_heartbeat))
    for job in stalled:
        await manager.retry_job(job)
        log.warning("stalled_job_retried", job_id=job.id, task=job.task_name)
    return len(stalled)


async def evaluate_alerts(context: Any, timestamp: int) -> int:
    """Periodic: evaluate alert rules, then verify the incidents of encoded runbooks."""
    from guardia.runbooks import runner
    from guardia.runbooks.catalog import BY_RUNBOOK

    c = _container(context)
    transitions = await evaluate_all(
        c.engine,
        c.settings,
        c.clock.now(),
        # An alert's incident names no order or statement line: only the runbooks that need
        # no subject can verify it; the others resolve when their alert has stayed clear.
        verified_by_runbooks=frozenset(r for r, s in BY_RUNBOOK.items() if s.needs is None),
    )
    for t in transitions:
        if t.notification_id is not None:
            await c.defer(
                SEND_NOTIFICATION,
                {"notification_id": t.notification_id},
                queueing_lock=f"notification:{t.notification_id}",
            )
    await runner.verify_open_incidents(c)
    return sum(1 for t in transitions if t.change == "fired")


async def backup(context: Any, timestamp: int) -> dict[str, Any]:
    """Daily: back up the database (pg_dump -Fc, manifest, checksum), then apply retention."""
    ctx = _container(context).backup_context()
    try:
        result: dict[str, Any] = (await asyncio.to_thread(run_backup, ctx)).to_json()
        return result
    finally:
        ctx.close()


async def restore_drill(context: Any, timestamp: int) -> bool:
    """Weekly: restore the newest backup into a scratch database and run the drill checks."""
    ctx = _container(context).backup_context()
    try:
        return bool((await asyncio.to_thread(run_restore_drill, ctx)).ok)
    finally:
        ctx.close()


async def check_backups(context: Any, timestamp: int) -> bool:
    """Periodic: the backup preflight (readiness detail and BackupCheckFailing)."""
    return await record_backup_preflight(_container(context))


async def record_backup_preflight(c: Container) -> bool:
    """Run the backup preflight and store its report; True when it passes."""
    ctx = c.backup_context()
    try:
        report = await asyncio.to_thread(
            backup_preflight, ctx.config, ctx.database_url, ctx.target_store()
        )
    finally:
        ctx.close()
    await store_report(c.engine, report)
    return report.ok


async def send_notification(context: Any, notification_id: int) -> str:
    """Deliver one incident notification (retried with backoff until it goes through)."""
    c = _container(context)
    url = c.settings.slack_webhook_url
    return await notify.send(
        c.engine, c.http, url.get_secret_value() if url else None, notification_id
    )


def register(app: App, retry: Any) -> None:
    """Register every task on a procrastinate app (each app gets its own Task objects)."""
    for name, queue in QUEUES.items():
        app.task(name=f"guardia:{name}", pass_context=True, queue=queue, retry=retry)(
            globals()[name]
        )


async def defer_with(
    app: Any, task_name: str, kwargs: dict[str, Any], **options: Any
) -> int | None:
    """Defer a job; None if an identical one is already queued (queueing lock)."""
    try:
        job_id: int = await app.configure_task(task_name, **options).defer_async(**kwargs)
    except proc_exc.AlreadyEnqueued:
        return None
    return job_id
