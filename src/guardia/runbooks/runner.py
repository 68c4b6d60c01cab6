"""Running a runbook: checks, then actions (dry run unless applied), then verification; every
step lands on an incident's timeline, and an incident is resolved only when verified.

The incident a run writes to is the one named (`--incident`), else the newest active incident of
the same runbook about the same subject (order, statement line). A dry run never opens one: it
reports (and notes what it saw on an incident that already exists). An applied run opens one
only when a check fails: a run that found nothing wrong is not an incident, and its figures
would otherwise dilute MTTR.
An applied run whose verification passes, and `verify_open_incidents` on a schedule, resolve
the incident (verified, at the moment the checks passed) only when the checks pass for every
order or statement line it carries and none of its alerts still fires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from guardia.bootstrap import Container
from guardia.core.errors import Conflict, GuardiaError, InvalidInput, NotFound
from guardia.incidents import service as incidents
from guardia.incidents.model import ExternalIds, Incident, IncidentStatus, Severity
from guardia.payments.service import get_order_view
from guardia.runbooks.catalog import BY_RUNBOOK, RUNBOOKS
from guardia.runbooks.model import (
    Action,
    ActionResult,
    CheckResult,
    RunbookSpec,
    RunContext,
    Status,
    next_step,
)

log = structlog.get_logger(__name__)

ACTIVE = (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED, IncidentStatus.MITIGATED)


@dataclass(frozen=True, slots=True)
class RunReport:
    """A run's outcome."""

    runbook: str
    incident_id: int | None  # None: no incident was active and none was opened
    applied: bool
    checks: list[CheckResult]
    actions: list[ActionResult]
    verified: bool
    next_step: str

    def as_dict(self) -> dict[str, Any]:
        """Serialisable form."""
        return {
            "runbook": self.runbook,
            "incident_id": self.incident_id,
            "applied": self.applied,
            "checks": [
                {
                    "name": c.name,
                    "status": c.status.value,
                    "summary": c.summary,
                    "evidence": c.evidence,
                }
                for c in self.checks
            ],
            "actions": [
                {"name": a.name, "applied": a.applied, "changes": a.changes, "evidence": a.evidence}
                for a in self.actions
            ],
            "verified": self.verified,
            "next_step": self.next_step,
        }


def get_runbook(name: str) -> RunbookSpec:
    """A runbook by name, or InvalidInput listing the known ones."""
    try:
        return RUNBOOKS[name]
    except KeyError:
        raise InvalidInput(f"unknown runbook {name!r}; known: {', '.join(RUNBOOKS)}") from None


async def run_checks(
    spec: RunbookSpec, ctx: RunContext, names: tuple[str, ...] | None = None
) -> list[CheckResult]:
    """Run the spec's checks in order (only `names` when given); a check that cannot run is
    `unknown`, never a crash."""
    out = []
    for check in spec.checks:
        if names is not None and check.name not in names:
            continue
        try:
            out.append(await check.run(ctx))
        except GuardiaError as exc:
            out.append(
                CheckResult(check.name, Status.UNKNOWN, f"check failed to run: {exc.message}")
            )
    return out


def _subject_ids(ctx: RunContext) -> ExternalIds:
    return ExternalIds.from_dict(
        {"conekta_order": ctx.order_ids, "neon_statement_line": ctx.line_ids}
    )


def _found_ids(results: list[CheckResult] | list[ActionResult]) -> ExternalIds:
    ids = ExternalIds()
    for r in results:
        found = r.evidence.get("external_ids")
        if isinstance(found, dict):
            ids = ids.union(ExternalIds.from_dict(found))
    return ids


def _correlation_ids(results: list[CheckResult] | list[ActionResult]) -> list[str]:
    return [str(c) for r in results for c in r.evidence.get("correlation_ids", [])]


async def run(
    container: Container,
    name: str,
    *,
    order_id: str | None = None,
    line_id: str | None = None,
    apply: bool,
    actor: str,
    incident_id: int | None = None,
    options: dict[str, Any] | None = None,
) -> RunReport:
    """Run a runbook and record it on its incident: the one named or active; an applied run
    whose checks fail opens one, a dry run never does."""
    spec = get_runbook(name)
    if spec.needs == "order" and order_id is None:
        raise InvalidInput(f"runbook {name} needs --order-id")
    if spec.needs == "line" and line_id is None:
        raise InvalidInput(f"runbook {name} needs --line-id")
    ctx = RunContext(
        container,
        actor,
        container.clock.now(),
        order_ids=(order_id,) if order_id else (),
        line_ids=(line_id,) if line_id else (),
        options=dict(options or {}),
    )
    incident = await _find_incident(container, spec, ctx, incident_id)
    if incident is not None:
        ctx.incident_id, ctx.opened_at = incident.id, incident.lifecycle.detected_at
    checks = await run_checks(spec, ctx)
    if incident is None and apply and any(c.status is Status.FAIL for c in checks):
        incident = await _open_incident(container, spec, ctx, checks)
        ctx.incident_id, ctx.opened_at = incident.id, incident.lifecycle.detected_at
    if apply and incident is not None and incident.id is not None:
        # Applying the runbook is taking ownership (operations.md §1.1: acknowledged_at is when
        # "a human or runbook took ownership"); without it TTA would never be measured.
        async with container.engine.begin() as conn:
            await advance(conn, incident.id, IncidentStatus.ACKNOWLEDGED, ctx, spec, verified=False)
    actions = [await _act(action, ctx, apply) for action in spec.actions]
    verified = False
    again: list[CheckResult] = []
    if apply:
        ctx.now = container.clock.now()
        again = await run_checks(spec, ctx, spec.verification)
        verified = bool(again) and all(c.status is Status.PASS for c in again)
        checks = checks + [
            CheckResult(f"verify:{c.name}", c.status, c.summary, c.evidence) for c in again
        ]
    if incident is not None:
        assert incident.id is not None  # noqa: S101 - a stored incident has an id
        await _record(container, spec, ctx, incident.id, checks, actions)
        if verified:
            # Resolved only when every subject of the incident verifies and no alert of it fires.
            async with container.engine.connect() as conn:
                current = await incidents.get(conn, incident.id)
            await verify_incident(
                container, current, actor=actor, passed={(ctx.order_ids, ctx.line_ids): again}
            )
    # An applied run is judged by its verification, not by the checks it began with.
    judged = again if apply else checks
    return RunReport(
        spec.name,
        incident.id if incident is not None else None,
        apply,
        checks,
        actions,
        verified,
        next_step(judged, actions, apply, verified=verified),
    )


async def _act(action: Action, ctx: RunContext, apply: bool) -> ActionResult:
    """Run one action; a provider or input failure is recorded as a failed action, never lost."""
    try:
        return await action.run(ctx, apply)
    except GuardiaError as exc:
        return ActionResult(action.name, False, [f"FAILED: {exc.message}"], failed=True)


async def _find_incident(
    container: Container, spec: RunbookSpec, ctx: RunContext, incident_id: int | None
) -> Incident | None:
    """The incident named, else the active one of this runbook and subject, else None."""
    subject = _subject_ids(ctx)
    async with container.engine.connect() as conn:
        if incident_id is not None:
            return await incidents.get(conn, incident_id)
        rows = await conn.execute(
            text(
                "SELECT id FROM incidents WHERE runbook = :r AND status = ANY(:active) "
                "ORDER BY detected_at DESC, id DESC"
            ),
            {"r": spec.runbook.value, "active": [s.value for s in ACTIVE]},
        )
        for row in rows.all():
            current = await incidents.get(conn, int(row.id))
            if all(current.external_ids.contains(f, v) for f, v in subject.pairs()):
                return current
    return None


async def _open_incident(
    container: Container, spec: RunbookSpec, ctx: RunContext, checks: list[CheckResult]
) -> Incident:
    """Open the incident an applied run found (a check failed): it is detected now."""
    subject = _subject_ids(ctx)
    correlation: list[str] = []
    for order in ctx.order_ids:
        try:
            correlation.append((await get_order_view(container.engine, order)).correlation_id)
        except NotFound:
            pass
    label = ", ".join(v for _, v in subject.pairs())
    failing = ", ".join(c.name for c in checks if c.status is Status.FAIL)
    async with container.engine.begin() as conn:
        opened, _ = await incidents.open_or_attach(
            conn,
            fingerprint=f"runbook:{spec.name}:{label or '*'}",
            title=spec.title + (f" ({label})" if label else ""),
            severity=Severity.SEV3,
            runbook=spec.runbook,
            at=ctx.now,
            source="runbook",
            correlation_ids=correlation,
            external_ids=subject,
        )
        assert opened.id is not None  # noqa: S101 - a stored incident has an id
        await incidents.add_note(
            conn, opened.id, at=ctx.now, actor=f"runbook:{spec.name}", note=f"failing: {failing}"
        )
    return opened


async def _record(
    container: Container,
    spec: RunbookSpec,
    ctx: RunContext,
    incident_id: int,
    checks: list[CheckResult],
    actions: list[ActionResult],
) -> None:
    author = f"runbook:{spec.name}"
    async with container.engine.begin() as conn:
        for c in checks:
            await incidents.add_note(
                conn,
                incident_id,
                at=ctx.now,
                actor=author,
                note=f"check {c.name}: {c.status.value} — {c.summary}",
            )
        for a in actions:
            verb = "failed" if a.failed else "applied" if a.applied else "dry run"
            await incidents.add_note(
                conn,
                incident_id,
                at=ctx.now,
                actor=author,
                note=f"action {a.name} ({verb}): {'; '.join(a.changes) or 'nothing to change'}",
            )
        changed = [a for a in actions if a.applied and a.changes]
        found = _subject_ids(ctx).union(_found_ids(checks)).union(_found_ids(actions))
        correlation = _correlation_ids(checks) + _correlation_ids(actions)
        evidence = [r.evidence for r in checks] + [a.evidence for a in actions]
        no_correlation = spec.no_correlation_reason or next(
            (
                str(e["no_correlation_reason"])
                for e in evidence
                if e.get("no_correlation_reason") and not correlation
            ),
            "",
        )
        if changed or correlation or not found.is_empty() or no_correlation:
            await incidents.amend(
                conn,
                incident_id,
                at=ctx.now,
                actor=ctx.actor,
                correlation_ids=correlation,
                external_ids=found,
                corrective_action=(
                    f"runbook {spec.name}: "
                    + "; ".join(f"{a.name} ({', '.join(a.changes)})" for a in changed)
                    if changed
                    else None
                ),
                no_correlation_id_reason=no_correlation or None,
                reason=f"runbook {spec.name}",
            )
        if changed:
            await advance(conn, incident_id, IncidentStatus.MITIGATED, ctx, spec, verified=False)


async def _alert_firing(conn: AsyncConnection, incident_id: int) -> bool:
    """An alert of the incident still fires (not yet clearing): its symptom is not gone, and
    resolving now would let the next evaluation open a second incident for it."""
    firing = await conn.scalar(
        text(
            "SELECT count(*) FROM alerts WHERE incident_id = :i AND status = 'firing' "
            "AND cleared_since IS NULL"
        ),
        {"i": incident_id},
    )
    return bool(firing)


async def advance(
    conn: AsyncConnection,
    incident_id: int,
    to: IncidentStatus,
    ctx: RunContext,
    spec: RunbookSpec,
    *,
    verified: bool,
) -> bool:
    """Move the incident forward; an incident already there (or beyond) stays where it is."""
    current = await incidents.get(conn, incident_id, lock=True)
    order = list(IncidentStatus)
    if order.index(current.status) >= order.index(to):
        return False
    try:
        await incidents.move(
            conn,
            incident_id,
            to,
            at=ctx.now,
            actor=ctx.actor,
            reason=f"runbook {spec.name}: "
            + (
                "verification passed"
                if verified
                else "applied: taking ownership"
                if to is IncidentStatus.ACKNOWLEDGED
                else "corrective action applied"
            ),
            verified=verified,
        )
    except Conflict:
        return False
    return True


Subject = tuple[tuple[str, ...], tuple[str, ...]]  # (order ids, statement line ids)


async def verify_incident(
    container: Container,
    incident: Incident,
    *,
    actor: str = "verifier",
    passed: dict[Subject, list[CheckResult]] | None = None,
) -> bool | None:
    """Run the verification checks of an active incident's runbook against each id it carries
    (every order, every statement line); resolve it (verified, at the time the checks passed)
    when they all pass and none of its alerts still fires. None when its runbook has no
    verification in code. `passed` holds verification results a caller has just seen pass for
    a subject: they are not run again."""
    spec = BY_RUNBOOK.get(incident.runbook)
    if spec is None or incident.id is None or incident.status not in ACTIVE:
        return None
    ids = incident.external_ids
    subjects: list[Subject] = [((), ())]
    if spec.needs == "order":
        subjects = [((order,), ()) for order in ids.conekta_order]
    elif spec.needs == "line":
        subjects = [((), (line,)) for line in ids.neon_statement_line]
    if not subjects:
        return False
    async with container.engine.connect() as conn:
        if await _alert_firing(conn, incident.id):
            return False  # not recovered; and the checks (a backup preflight…) are not free
    results: list[CheckResult] = []
    for order_ids, line_ids in subjects:
        ctx = RunContext(
            container,
            actor,
            container.clock.now(),
            order_ids=order_ids,
            line_ids=line_ids,
            incident_id=incident.id,
            opened_at=incident.lifecycle.detected_at,
        )
        found = (passed or {}).get((order_ids, line_ids)) or await run_checks(
            spec, ctx, spec.verification
        )
        if not found or any(r.status is not Status.PASS for r in found):
            return False
        results += found
    async with container.engine.begin() as conn:
        if await _alert_firing(conn, incident.id):
            return False
        for r in results:
            await incidents.add_note(
                conn,
                incident.id,
                at=ctx.now,
                actor=f"runbook:{spec.name}",
                note=f"verify {r.name}: {r.status.value} — {r.summary}",
            )
        done = await advance(conn, incident.id, IncidentStatus.RESOLVED, ctx, spec, verified=True)
    if done:
        log.info("incident_verified", incident_id=incident.id, runbook=spec.name)
    return done


async def verify_open_incidents(container: Container) -> list[int]:
    """Verify every active incident whose runbook is encoded; return the ones resolved."""
    resolved = []
    for status in ACTIVE:
        for incident in await incidents.list_incidents(
            container.engine, status=status.value, limit=500
        ):
            if incident.id is not None and await verify_incident(container, incident):
                resolved.append(incident.id)
    return resolved
