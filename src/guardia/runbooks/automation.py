"""What runs without an operator: the sweeper's healing recorded as a runbook-1 incident, and
the verifier that resolves incidents once their runbook's verification checks pass."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog

from guardia.adapters.postgres.tables import payments as payment_rows
from guardia.bootstrap import Container
from guardia.core.errors import NotFound
from guardia.incidents import service as incidents
from guardia.incidents.model import ExternalIds, IncidentStatus, Runbook, Severity
from guardia.jobs import deadletters
from guardia.jobs.tasks import PULL_ORDER
from guardia.payments import service as payments
from guardia.runbooks import runner
from guardia.runbooks.catalog import BY_RUNBOOK
from guardia.runbooks.model import RunContext

log = structlog.get_logger(__name__)

LOST_WEBHOOKS = "sweeper:lost-webhooks"


async def sweep(container: Container) -> payments.SweepResult:
    """One sweeper pass: heal, enqueue the postings, and record what was healed as runbook 1's
    incident (detected and mitigated by the sweeper, resolved once verified)."""
    s = container.settings
    result = await payments.sweep(
        container.engine,
        container.conekta,
        container.clock,
        pending_age=timedelta(seconds=s.sweep_pending_age_seconds),
        lookback=timedelta(hours=s.sweep_lookback_hours),
        grace=timedelta(seconds=s.sweep_grace_seconds),
        # An order whose pull is a dead letter waits for an operator, not the next pass.
        skip=deadletters.resting(PULL_ORDER, "order_id", payment_rows.c.order_id),
    )
    for order_id, correlation_id, posting_ids in result.postings:
        await container.defer_postings(order_id, correlation_id, posting_ids)
    for order_id in result.unknown:
        # The job fails as the sweeper's pull did: one dead letter (and its incident) carrying
        # the order and its correlation id, which an operator can retry.
        view = await payments.get_order_view(container.engine, order_id)
        await container.defer(
            PULL_ORDER,
            {"order_id": order_id, "correlation_id": view.correlation_id, "actor": "sweeper"},
            queueing_lock=f"pull:{order_id}",
        )
    if result.healed:
        await record_lost_webhooks(container, result.healed)
    return result


async def record_lost_webhooks(container: Container, orders: list[str]) -> int:
    """Open (or attach to) the lost-webhooks incident for orders the sweeper had to pull."""
    now = container.clock.now()
    grace = container.settings.sweep_grace_seconds
    correlation = []
    paid: list[datetime] = []
    for order_id in orders:
        try:
            view = await payments.get_order_view(container.engine, order_id)
        except NotFound:
            continue
        correlation.append(view.correlation_id)
        if view.paid_at is not None:
            paid.append(view.paid_at)
    spec = BY_RUNBOOK[Runbook.WEBHOOK_MISSING]
    async with container.engine.begin() as conn:
        incident, opened = await incidents.open_or_attach(
            conn,
            fingerprint=LOST_WEBHOOKS,
            title="Webhook de Conekta no llega: the sweeper pulled orders no webhook brought",
            severity=Severity.SEV2,
            runbook=Runbook.WEBHOOK_MISSING,
            at=now,
            source="sweeper",
            correlation_ids=correlation,
            external_ids=ExternalIds(conekta_order=tuple(orders)),
            # The webhook went missing when Conekta took the payment: it should have come then.
            impact_started_at=min(paid, default=None),
        )
        assert incident.id is not None  # noqa: S101 - a stored incident has an id
        await incidents.add_note(
            conn,
            incident.id,
            at=now,
            actor="sweeper",
            note=f"pulled from Conekta, no webhook within {grace:g} s: {', '.join(orders)}",
        )
        await incidents.amend(
            conn,
            incident.id,
            at=now,
            actor="sweeper",
            corrective_action=f"sweeper pulled {', '.join(orders)} from Conekta (pull by order_id)",
            reason="automatic: lost webhook healed",
        )
        ctx = RunContext(container, "sweeper", now)
        await runner.advance(conn, incident.id, IncidentStatus.MITIGATED, ctx, spec, verified=False)
    log.warning("lost_webhooks_recorded", incident_id=incident.id, orders=orders, opened=opened)
    return incident.id
