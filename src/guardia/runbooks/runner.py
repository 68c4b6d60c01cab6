"""Running a runbook: checks, then actions (dry run unless applied), then verification; every
step lands on the runbook's incident timeline, and a recovery is resolved only when verified."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from guardia.bootstrap import Container
from guardia.core.errors import Conflict, GuardiaError, InvalidInput, NotFound
from guardia.incidents import service as incidents
from guardia.incidents.model import ExternalIds, IncidentStatus, Severity
from guardia.payments.service import get_order_view
from guardia.runbooks.catalog import RUNBOOKS
from guardia.runbooks.model import (
    ActionResult,
    CheckResult,
    RunbookSpec,
    Status,
    next_step,
)


@dataclass
class RunContext:
    """What checks and actions see."""

    container: Container
    order_id: str | None
    actor: str
    now: datetime


@dataclass(frozen=True, slots=True)
class RunReport:
    """A run's outcome."""

    runbook: str
    incident_id: int
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


async def _checks(
    spec: RunbookSpec, ctx: RunContext, names: tuple[str, ...] | None = None
) -> list[CheckResult]:
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


async def run(
    container: Container, name: str, *, order_id: str | None, apply: bool, actor: str
) -> RunReport:
    """Run a runbook and record it on its incident (opened when none is open)."""
    spec = get_runbook(name)
    if spec.needs_order and order_id is None:
        raise InvalidInput(f"runbook {name} needs --order-id")
    ctx = RunContext(container, order_id, actor, container.clock.now())
    checks = await _checks(spec, ctx)
    actions = []
    for action in spec.actions:
        actions.append(await action.run(ctx, apply))
    verified = False
    if apply:
        ctx.now = container.clock.now()
        again = await _checks(spec, ctx, spec.verification)
        verified = bool(again) and all(c.status is Status.PASS for c in again)
        checks = checks + [
            CheckResult(f"verify:{c.name}", c.status, c.summary, c.evidence) for c in again
        ]
    incident_id = await _record(container, spec, ctx, checks, actions, apply, verified)
    return RunReport(
        spec.name, incident_id, apply, checks, actions, verified, next_step(checks, actions, apply)
    )


async def _record(
    container: Container,
    spec: RunbookSpec,
    ctx: RunContext,
    checks: list[CheckResult],
    actions: list[ActionResult],
    applied: bool,
    verified: bool,
) -> int:
    correlation: list[str] = []
    ids = ExternalIds()
    if ctx.order_id is not None:
        ids = ExternalIds.from_dict({"conekta_order": [ctx.order_id]})
        try:
            correlation = [(await get_order_view(container.engine, ctx.order_id)).correlation_id]
        except NotFound:
            correlation = []
    async with container.engine.begin() as conn:
        incident, _ = await incidents.open_or_attach(
            conn,
            fingerprint=f"runbook:{spec.name}:{ctx.order_id or '*'}",
            title=f"{spec.title}" + (f" ({ctx.order_id})" if ctx.order_id else ""),
            severity=Severity.SEV3,
            runbook=spec.runbook,
            at=ctx.now,
            source="runbook",
            correlation_ids=correlation,
            external_ids=ids,
        )
        assert incident.id is not None  # noqa: S101 - a stored incident has an id
        for c in checks:
            await incidents.add_note(
                conn,
                incident.id,
                at=ctx.now,
                actor=f"runbook:{spec.name}",
                note=f"check {c.name}: {c.status.value} — {c.summary}",
            )
        for a in actions:
            verb = "applied" if a.applied else "dry run"
            await incidents.add_note(
                conn,
                incident.id,
                at=ctx.now,
                actor=f"runbook:{spec.name}",
                note=f"action {a.name} ({verb}): {'; '.join(a.changes) or 'nothing to change'}",
            )
        if applied and any(a.applied for a in actions):
            await incidents.amend(
                conn,
                incident.id,
                at=ctx.now,
                actor=ctx.actor,
                corrective_action=f"runbook {spec.name}: "
                + ", ".join(a.name for a in actions if a.applied),
            )
        if verified:
            try:
                await incidents.move(
                    conn,
                    incident.id,
                    IncidentStatus.RESOLVED,
                    at=ctx.now,
                    actor=ctx.actor,
                    reason=f"runbook {spec.name} verification passed",
                    verified=True,
                )
            except Conflict:
                pass  # already resolved by hand or by its alert
    return incident.id
