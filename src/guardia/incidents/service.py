"""Incidents in the database: open or attach by fingerprint, move through the lifecycle (every
operator step audited), assemble the timeline from real rows, export evidence, measure MTTR."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from guardia.audit import log as audit
from guardia.core.errors import InvalidInput, NotFound
from guardia.incidents.evidence import build_bundle, write_bundle
from guardia.incidents.model import (
    Action,
    ActionItem,
    ExternalIds,
    Incident,
    IncidentStatus,
    Lifecycle,
    Origin,
    PostMortem,
    Runbook,
    Severity,
    TimelineEntry,
    TimelineKind,
    advance,
    close,
    order_timeline,
)
from guardia.incidents.stats import Comparison, MttrReport, compare, durations, mttr_report
from guardia.incidents.tables import incident_notes, incidents, notifications

log = structlog.get_logger(__name__)

ACTIVE = ("open", "acknowledged", "mitigated")
ACTIVE_PREDICATE = text("status IN ('open', 'acknowledged', 'mitigated')")


# --- mapping ------------------------------------------------------------------------------


def _postmortem_json(pm: PostMortem | None) -> dict[str, Any] | None:
    if pm is None:
        return None
    return {
        "summary": pm.summary,
        "impact": pm.impact,
        "root_cause": pm.root_cause,
        "trigger": pm.trigger,
        "resolution": pm.resolution,
        "detection": pm.detection,
        "action_items": [
            {"description": a.description, "owner": a.owner, "due": a.due.isoformat()}
            for a in pm.action_items
        ],
        "lessons": pm.lessons,
    }


def postmortem_from_json(data: dict[str, Any] | None) -> PostMortem | None:
    """Read a post-mortem document (API body or stored JSON)."""
    if data is None:
        return None
    return PostMortem(
        summary=str(data.get("summary", "")),
        impact=str(data.get("impact", "")),
        root_cause=str(data.get("root_cause", "")),
        trigger=str(data.get("trigger", "")),
        resolution=str(data.get("resolution", "")),
        detection=str(data.get("detection", "")),
        action_items=tuple(
            ActionItem(
                description=str(a["description"]),
                owner=str(a["owner"]),
                due=date.fromisoformat(str(a["due"])),
            )
            for a in data.get("action_items", [])
        ),
        lessons=str(data.get("lessons", "")),
    )


def _actions_json(actions: Iterable[Action]) -> list[dict[str, Any]]:
    return [
        {
            "at": a.at.isoformat(),
            "actor": a.actor,
            "description": a.description,
            "reference": a.reference,
        }
        for a in actions
    ]


def to_row(incident: Incident) -> dict[str, Any]:
    """Columns of an incident."""
    lc = incident.lifecycle
    return {
        "title": incident.title,
        "severity": incident.severity.value,
        "runbook": incident.runbook.value,
        "status": incident.status.value,
        "fingerprint": incident.fingerprint,
        "impact_started_at": lc.impact_started_at,
        "detected_at": lc.detected_at,
        "acknowledged_at": lc.acknowledged_at,
        "mitigated_at": lc.mitigated_at,
        "resolved_at": lc.resolved_at,
        "closed_at": lc.closed_at,
        "resolved_verified": lc.resolved_verified,
        "correlation_ids": list(incident.correlation_ids),
        "external_ids": incident.external_ids.as_dict(),
        "corrective_actions": _actions_json(incident.corrective_actions),
        "postmortem": _postmortem_json(incident.postmortem),
        "no_correlation_id_reason": incident.no_correlation_id_reason,
        "origin": incident.origin.value,
    }


def from_row(row: Any) -> Incident:
    """An incident from its row."""
    return Incident(
        id=int(row.id),
        title=row.title,
        severity=Severity(row.severity),
        runbook=Runbook(row.runbook),
        lifecycle=Lifecycle(
            impact_started_at=row.impact_started_at,
            detected_at=row.detected_at,
            acknowledged_at=row.acknowledged_at,
            mitigated_at=row.mitigated_at,
            resolved_at=row.resolved_at,
            closed_at=row.closed_at,
            resolved_verified=row.resolved_verified,
        ),
        correlation_ids=tuple(row.correlation_ids),
        external_ids=ExternalIds.from_dict(row.external_ids),
        corrective_actions=tuple(
            Action(
                at=datetime.fromisoformat(a["at"]),
                actor=a["actor"],
                description=a["description"],
                reference=a.get("reference"),
            )
            for a in row.corrective_actions
        ),
        postmortem=postmortem_from_json(row.postmortem),
        fingerprint=row.fingerprint,
        no_correlation_id_reason=row.no_correlation_id_reason,
        origin=Origin(row.origin),
    )


def incident_json(incident: Incident) -> dict[str, Any]:
    """The API/CLI view of an incident, with its durations (TTD, TTA, TTM, TTR) in seconds."""
    row = to_row(incident)
    out: dict[str, Any] = {"id": incident.id}
    for key, value in row.items():
        out[key] = value.isoformat() if isinstance(value, datetime) else value
    out["durations_seconds"] = durations(incident)
    return out


# --- storage ------------------------------------------------------------------------------


async def get(conn: AsyncConnection, incident_id: int, *, lock: bool = False) -> Incident:
    """Load an incident or raise NotFound."""
    query = select(incidents).where(incidents.c.id == incident_id)
    row = (await conn.execute(query.with_for_update() if lock else query)).first()
    if row is None:
        raise NotFound(f"incident {incident_id} not found")
    return from_row(row)


async def _save(conn: AsyncConnection, incident: Incident, *, at: datetime) -> None:
    await conn.execute(
        update(incidents)
        .where(incidents.c.id == incident.id)
        .values(updated_at=at, **to_row(incident))
    )


async def open_or_attach(
    conn: AsyncConnection,
    *,
    fingerprint: str,
    title: str,
    severity: Severity,
    runbook: Runbook,
    at: datetime,
    source: str,
    correlation_ids: Sequence[str] = (),
    external_ids: ExternalIds | None = None,
    impact_started_at: datetime | None = None,
) -> tuple[Incident, bool]:
    """Open an incident, or attach to the active one with the same fingerprint.

    `impact_started_at` is the earliest symptom the caller's evidence shows (the first failed
    delivery, the first dead letter…); without one, the detection itself is the earliest
    evidence. Attaching keeps the earliest impact seen, never later than the detection."""
    ids = external_ids or ExternalIds()
    impact = at if impact_started_at is None else min(impact_started_at, at)
    for _ in range(2):
        row = (
            await conn.execute(
                select(incidents)
                .where(incidents.c.fingerprint == fingerprint, incidents.c.status.in_(ACTIVE))
                .with_for_update()
            )
        ).first()
        if row is not None:
            current = from_row(row)
            merged = dataclasses.replace(
                current,
                correlation_ids=tuple(dict.fromkeys([*current.correlation_ids, *correlation_ids])),
                external_ids=current.external_ids.union(ids),
                lifecycle=_earliest_impact(current.lifecycle, impact_started_at),
            )
            await _save(conn, merged, at=at)
            await conn.execute(
                update(incidents).where(incidents.c.id == current.id).values(last_signal_at=at)
            )
            return merged, False
        fresh = Incident(
            id=None,
            title=title,
            severity=severity,
            runbook=runbook,
            lifecycle=Lifecycle(impact_started_at=impact, detected_at=at),
            correlation_ids=tuple(dict.fromkeys(correlation_ids)),
            external_ids=ids,
            fingerprint=fingerprint,
        )
        new_id = await conn.scalar(
            pg_insert(incidents)
            .values(source=source, updated_at=at, last_signal_at=at, **to_row(fresh))
            .on_conflict_do_nothing(
                index_elements=["fingerprint"],
                # The index's own predicate as literal SQL: sent as parameters, it stops matching
                # the partial index once PostgreSQL plans the prepared statement generically.
                index_where=ACTIVE_PREDICATE,
            )
            .returning(incidents.c.id)
        )
        if new_id is not None:
            log.warning("incident_opened", incident_id=new_id, fingerprint=fingerprint)
            return await get(conn, int(new_id)), True
    raise InvalidInput(f"could not open or attach an incident for {fingerprint}")


def _earliest_impact(lifecycle: Lifecycle, impact: datetime | None) -> Lifecycle:
    """The lifecycle with `impact` as its impact start when that is earlier (and not after the
    detection, which would break the milestones' order)."""
    if impact is None or impact > lifecycle.detected_at:
        return lifecycle
    if lifecycle.impact_started_at is not None and lifecycle.impact_started_at <= impact:
        return lifecycle
    return dataclasses.replace(lifecycle, impact_started_at=impact)


async def mark_drill(
    conn: AsyncConnection, incident_id: int, *, injected_at: datetime, at: datetime, actor: str
) -> Incident:
    """Tag an incident as a drill's, its impact starting when the drill injected the fault
    (the one impact start known exactly); audited."""
    current = await get(conn, incident_id, lock=True)
    lifecycle = current.lifecycle
    if injected_at <= lifecycle.detected_at:
        lifecycle = dataclasses.replace(lifecycle, impact_started_at=injected_at)
    marked = dataclasses.replace(current, origin=Origin.DRILL, lifecycle=lifecycle)
    await _save(conn, marked, at=at)
    await audit.record(
        conn,
        actor=actor,
        action="incident_drill",
        target={"incident_id": incident_id, "injected_at": injected_at.isoformat()},
        reason="the incident's fault was injected by a drill",
        correlation_id=marked.correlation_ids[0] if marked.correlation_ids else None,
        at=at,
    )
    return marked


async def move(
    conn: AsyncConnection,
    incident_id: int,
    to: IncidentStatus,
    *,
    at: datetime,
    actor: str,
    reason: str = "",
    verified: bool = False,
    impact_started_at: datetime | None = None,
) -> Incident:
    """Advance the lifecycle (or close it, checking the mandatory fields); audited."""
    current = await get(conn, incident_id, lock=True)
    if to is IncidentStatus.CLOSED:
        moved = close(current, at)
    else:
        moved = dataclasses.replace(
            current,
            lifecycle=advance(
                current.lifecycle, to, at, impact_started_at=impact_started_at, verified=verified
            ),
        )
    await _save(conn, moved, at=at)
    await audit.record(
        conn,
        actor=actor,
        action=f"incident_{to.value}",
        target={"incident_id": incident_id, "verified": verified},
        reason=reason,
        correlation_id=moved.correlation_ids[0] if moved.correlation_ids else None,
        at=at,
    )
    return moved


async def amend(
    conn: AsyncConnection,
    incident_id: int,
    *,
    at: datetime,
    actor: str,
    correlation_ids: Sequence[str] = (),
    external_ids: ExternalIds | None = None,
    corrective_action: str | None = None,
    postmortem: PostMortem | None = None,
    no_correlation_id_reason: str | None = None,
    reason: str = "",
) -> Incident:
    """Add evidence to an incident: ids, a corrective action, the post-mortem; audited."""
    current = await get(conn, incident_id, lock=True)
    actions = current.corrective_actions
    if corrective_action:
        actions = (*actions, Action(at=at, actor=actor, description=corrective_action))
    amended = dataclasses.replace(
        current,
        correlation_ids=tuple(dict.fromkeys([*current.correlation_ids, *correlation_ids])),
        external_ids=current.external_ids.union(external_ids or ExternalIds()),
        corrective_actions=actions,
        postmortem=postmortem or current.postmortem,
        no_correlation_id_reason=no_correlation_id_reason or current.no_correlation_id_reason,
    )
    await _save(conn, amended, at=at)
    await audit.record(
        conn,
        actor=actor,
        action="incident_amend",
        target={
            "incident_id": incident_id,
            "correlation_ids": list(correlation_ids),
            "external_ids": (external_ids or ExternalIds()).as_dict(),
            "corrective_action": corrective_action,
            "postmortem": postmortem is not None,
        },
        reason=reason,
        correlation_id=amended.correlation_ids[0] if amended.correlation_ids else None,
        at=at,
    )
    return amended


async def add_note(
    conn: AsyncConnection, incident_id: int, *, at: datetime, actor: str, note: str
) -> int:
    """Add an operator note to the timeline."""
    await get(conn, incident_id)
    new_id = await conn.scalar(
        insert(incident_notes)
        .values(incident_id=incident_id, at=at, actor=actor, text=note)
        .returning(incident_notes.c.id)
    )
    return int(new_id or 0)


async def list_incidents(
    engine: AsyncEngine,
    *,
    status: str | None = None,
    runbook: str | None = None,
    severity: str | None = None,
    limit: int = 100,
) -> list[Incident]:
    """Incidents, newest first, by status, runbook or severity."""
    query = select(incidents).order_by(incidents.c.detected_at.desc()).limit(limit)
    if status:
        query = query.where(incidents.c.status == status)
    if runbook:
        query = query.where(incidents.c.runbook == runbook)
    if severity:
        query = query.where(incidents.c.severity == severity)
    async with engine.connect() as conn:
        return [from_row(r) for r in await conn.execute(query)]


async def stats(
    engine: AsyncEngine, since: datetime, until: datetime, *, origin: Origin | None = None
) -> MttrReport:
    """MTTR and friends over a period, of one origin (live, drill) or of all."""
    query = select(incidents).where(
        incidents.c.detected_at >= since, incidents.c.detected_at < until
    )
    if origin is not None:
        query = query.where(incidents.c.origin == origin.value)
    async with engine.connect() as conn:
        found = [from_row(r) for r in await conn.execute(query)]
    return mttr_report(found, since, until, origin=origin)


async def stats_compared(
    engine: AsyncEngine, until: datetime, window: timedelta, *, origin: Origin | None = None
) -> Comparison:
    """MTTR and friends over the last `window` beside the equal window before it."""
    query = select(incidents).where(
        incidents.c.detected_at >= until - 2 * window, incidents.c.detected_at < until
    )
    async with engine.connect() as conn:
        found = [from_row(r) for r in await conn.execute(query)]
    return compare(found, until, window, origin=origin)


# --- timeline -----------------------------------------------------------------------------


def _entry(
    at: datetime,
    kind: TimelineKind,
    table: str,
    source_id: object,
    summary: str,
    *,
    correlation_id: str | None = None,
    actor: str | None = None,
    **ids: str | None,
) -> TimelineEntry:
    return TimelineEntry(
        at=at,
        kind=kind,
        source_table=table,
        source_id=str(source_id),
        summary=summary[:300],
        correlation_id=correlation_id,
        external_ids={k: v for k, v in ids.items() if v},
        actor=actor,
    )


RECOVERY_KINDS = {
    "replay": TimelineKind.REPLAY,
    "pull": TimelineKind.PULL,
    "sweep": TimelineKind.PULL,
    "resend": TimelineKind.RETRY,
}


async def timeline(
    engine: AsyncEngine, incident: Incident
) -> tuple[list[TimelineEntry], dict[str, list[dict[str, Any]]]]:
    """Every row that carries one of the incident's correlation or external ids, in order, and
    the underlying records (for the evidence bundle)."""
    corr = list(incident.correlation_ids)
    orders = list(incident.external_ids.conekta_order)
    events = list(incident.external_ids.conekta_event)
    moves = [int(m) for m in incident.external_ids.odoo_move if m.isdigit()]
    params = {"corr": corr, "orders": orders, "events": events, "moves": moves}
    entries: list[TimelineEntry] = []
    records: dict[str, list[dict[str, Any]]] = {}
    lc = incident.lifecycle
    for name, moment in lc.milestones():
        if moment is not None:
            entries.append(
                _entry(moment, TimelineKind.STATUS_CHANGE, "incidents", incident.id, name)
            )

    async with engine.connect() as conn:

        async def rows(table: str, sql: str, extra: dict[str, Any] | None = None) -> list[Any]:
            found = list(await conn.execute(text(sql), {**params, **(extra or {})}))
            records[table] = records.get(table, []) + [dict(r._mapping) for r in found]
            return found

        for r in await rows(
            "webhook_attempts",
            "SELECT id, received_at, outcome, http_status, event_id, order_id, correlation_id, "
            "body_sha256, detail FROM webhook_attempts WHERE correlation_id = ANY(:corr) "
            "OR order_id = ANY(:orders) OR event_id = ANY(:events) ORDER BY id",
        ):
            entries.append(
                _entry(
                    r.received_at,
                    TimelineKind.WEBHOOK_ATTEMPT,
                    "webhook_attempts",
                    r.id,
                    f"{r.outcome} ({r.http_status}) {r.detail or ''}",
                    correlation_id=r.correlation_id,
                    conekta_order=r.order_id,
                    conekta_event=r.event_id,
                )
            )
        for r in await rows(
            "payment_transitions",
            "SELECT id, at, order_id, from_status, to_status, source, event_id, correlation_id "
            "FROM payment_transitions WHERE correlation_id = ANY(:corr) "
            "OR order_id = ANY(:orders) ORDER BY id",
        ):
            entries.append(
                _entry(
                    r.at,
                    TimelineKind.JOB_RUN,
                    "payment_transitions",
                    r.id,
                    f"payment {r.order_id}: {r.from_status} → {r.to_status} ({r.source})",
                    correlation_id=r.correlation_id,
                    conekta_order=r.order_id,
                    conekta_event=r.event_id,
                )
            )
        for r in await rows(
            "recovery_actions",
            "SELECT id, at, kind, actor, target, correlation_id, dry_run, result "
            "FROM recovery_actions WHERE correlation_id = ANY(:corr) "
            "OR target->>'order_id' = ANY(:orders) OR target->>'event_id' = ANY(:events) "
            "ORDER BY id",
        ):
            entries.append(
                _entry(
                    r.at,
                    RECOVERY_KINDS.get(r.kind, TimelineKind.OPERATOR_ACTION),
                    "recovery_actions",
                    r.id,
                    f"{r.kind}{' (dry run)' if r.dry_run else ''}: {r.result}",
                    correlation_id=r.correlation_id,
                    actor=r.actor,
                    conekta_order=(r.target or {}).get("order_id"),
                )
            )
        for r in await rows(
            "dead_letters",
            "SELECT id, failed_at, task_name, cause, error_message, order_id, correlation_id, "
            "status, retried_at, retried_by, attempts, last_failed_at, resolved_at, resolution "
            "FROM dead_letters WHERE correlation_id = ANY(:corr) "
            "OR order_id = ANY(:orders) ORDER BY id",
        ):
            entries.append(
                _entry(
                    r.failed_at,
                    TimelineKind.DEAD_LETTER,
                    "dead_letters",
                    r.id,
                    f"{r.task_name} dead: {r.cause}: {r.error_message}",
                    correlation_id=r.correlation_id,
                    conekta_order=r.order_id,
                )
            )
            if r.retried_at is not None:
                entries.append(
                    _entry(
                        r.retried_at,
                        TimelineKind.RETRY,
                        "dead_letters",
                        r.id,
                        f"dead letter {r.id} retried",
                        correlation_id=r.correlation_id,
                        actor=r.retried_by,
                        conekta_order=r.order_id,
                    )
                )
            if r.resolved_at is not None:
                entries.append(
                    _entry(
                        r.resolved_at,
                        TimelineKind.DEAD_LETTER,
                        "dead_letters",
                        r.id,
                        f"dead letter {r.id} {r.status} after {r.attempts} failed runs "
                        f"(last {r.last_failed_at.isoformat()}): {r.resolution}",
                        correlation_id=r.correlation_id,
                        conekta_order=r.order_id,
                    )
                )
        for r in await rows(
            "postings",
            "SELECT id, order_id, kind, state, odoo_move_id, odoo_move_name, cause, "
            "correlation_id, created_at, updated_at, posted_at FROM postings "
            "WHERE correlation_id = ANY(:corr) OR order_id = ANY(:orders) "
            "OR odoo_move_id = ANY(:moves) ORDER BY id",
        ):
            entries.append(
                _entry(
                    r.posted_at or r.updated_at,
                    TimelineKind.JOB_RUN,
                    "postings",
                    r.id,
                    f"posting {r.kind} of {r.order_id}: {r.state}"
                    + (f" move {r.odoo_move_name}" if r.odoo_move_name else "")
                    + (f" ({r.cause})" if r.cause else ""),
                    correlation_id=r.correlation_id,
                    conekta_order=r.order_id,
                    odoo_move=str(r.odoo_move_id) if r.odoo_move_id else None,
                )
            )
        for r in await rows(
            "procrastinate_events",
            "SELECT e.id, e.at, e.type, j.task_name, j.id AS job_id, "
            "j.args->>'correlation_id' AS correlation_id, j.args->>'order_id' AS order_id "
            "FROM procrastinate_events e JOIN procrastinate_jobs j ON j.id = e.job_id "
            "WHERE (j.args->>'correlation_id' = ANY(:corr) OR j.args->>'order_id' = ANY(:orders)) "
            "AND e.type IN ('started', 'succeeded', 'failed', 'retried', 'cancelled') "
            "ORDER BY e.id",
        ):
            entries.append(
                _entry(
                    r.at,
                    TimelineKind.JOB_RUN,
                    "procrastinate_events",
                    r.id,
                    f"job {r.job_id} {r.task_name}: {r.type}",
                    correlation_id=r.correlation_id,
                    conekta_order=r.order_id,
                )
            )
        for r in await rows(
            "audit_log",
            "SELECT seq, at, actor, action, target, reason, correlation_id, hash FROM audit_log "
            "WHERE correlation_id = ANY(:corr) OR target->>'incident_id' = :incident ORDER BY seq",
            {"incident": str(incident.id)},
        ):
            entries.append(
                _entry(
                    r.at,
                    TimelineKind.OPERATOR_ACTION,
                    "audit_log",
                    r.seq,
                    f"{r.action} by {r.actor}" + (f": {r.reason}" if r.reason else ""),
                    correlation_id=r.correlation_id,
                    actor=r.actor,
                )
            )
        if incident.fingerprint and incident.fingerprint.startswith("alert:"):
            for r in await rows(
                "alerts",
                "SELECT id, rule, status, value, threshold, summary, started_at, resolved_at "
                "FROM alerts WHERE fingerprint = :fp ORDER BY id",
                {"fp": incident.fingerprint.removeprefix("alert:")},
            ):
                entries.append(
                    _entry(
                        r.started_at,
                        TimelineKind.ALERT,
                        "alerts",
                        r.id,
                        f"{r.rule} fired: value {r.value} (threshold {r.threshold})",
                    )
                )
                if r.resolved_at is not None:
                    entries.append(
                        _entry(
                            r.resolved_at,
                            TimelineKind.ALERT,
                            "alerts",
                            r.id,
                            f"{r.rule} resolved",
                        )
                    )
        until = lc.closed_at or lc.resolved_at or datetime.now(UTC)
        for r in await rows(
            "config_checks",
            "SELECT id, target, ok, results, checked_at FROM config_checks "
            "WHERE ((:runbook = '2' AND target LIKE 'odoo%') OR (:runbook = '7' AND target = "
            "'backups')) AND checked_at BETWEEN :since AND :until ORDER BY id",
            {"runbook": incident.runbook.value, "since": lc.detected_at, "until": until},
        ):
            kind = (
                TimelineKind.POSTING_TEST
                if r.target == "odoo_posting_test"
                else TimelineKind.CONFIG_CHECK
            )
            entries.append(
                _entry(
                    r.checked_at,
                    kind,
                    "config_checks",
                    r.id,
                    f"{r.target} check {'passed' if r.ok else 'failed'}",
                )
            )
        for r in await rows(
            "incident_notes",
            "SELECT id, at, actor, text FROM incident_notes WHERE incident_id = :incident_id "
            "ORDER BY id",
            {"incident_id": incident.id},
        ):
            entries.append(
                _entry(r.at, TimelineKind.NOTE, "incident_notes", r.id, r.text, actor=r.actor)
            )
        for r in await rows(
            "notifications",
            "SELECT id, kind, status, attempts, created_at, sent_at FROM notifications "
            "WHERE incident_id = :incident_id ORDER BY id",
            {"incident_id": incident.id},
        ):
            entries.append(
                _entry(
                    r.sent_at or r.created_at,
                    TimelineKind.NOTIFICATION,
                    "notifications",
                    r.id,
                    f"{r.kind} notification {r.status} after {r.attempts} attempt(s)",
                )
            )
    return order_timeline(entries), records


async def export(
    engine: AsyncEngine, incident_id: int, directory: Path, *, actor: str, at: datetime
) -> tuple[Path, str]:
    """Write the evidence bundle; record its head hash in the audit log."""
    async with engine.connect() as conn:
        incident = await get(conn, incident_id)
    entries, records = await timeline(engine, incident)
    bundle = build_bundle(incident, entries, records, generated_at=at)
    path = write_bundle(bundle, directory)
    async with engine.begin() as conn:
        await audit.record(
            conn,
            actor=actor,
            action="incident_export",
            target={"incident_id": incident_id, "bundle_head": bundle.head, "path": path.name},
            correlation_id=incident.correlation_ids[0] if incident.correlation_ids else None,
            at=at,
        )
    return path, bundle.head


async def queue_notification(
    conn: AsyncConnection, incident_id: int, kind: str, payload: dict[str, Any], at: datetime
) -> int:
    """Record an outbound notification to send (the send job retries it)."""
    new_id = await conn.scalar(
        insert(notifications)
        .values(incident_id=incident_id, kind=kind, payload=payload, created_at=at)
        .returning(notifications.c.id)
    )
    return int(new_id or 0)
