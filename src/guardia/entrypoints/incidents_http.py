"""Incident routes: list/show (with timeline), lifecycle steps, evidence, MTTR, and the
Alertmanager-compatible receiver that opens or attaches incidents from external alerts."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field, StringConstraints

from guardia.auth.tokens import Policy
from guardia.core.errors import InvalidInput
from guardia.entrypoints.deps import MAX_KEY, Key, RowId, container_of, policy, principal_of
from guardia.incidents import service
from guardia.incidents.model import (
    ExternalIds,
    IncidentStatus,
    Origin,
    Runbook,
    Severity,
    missing_for_close,
    runbook_from_label,
)

router = APIRouter(prefix="/api/incidents")
alertmanager = APIRouter()


def _now(request: Request) -> datetime:
    return container_of(request).clock.now()


@router.get("", openapi_extra=policy(Policy.READ))
async def list_incidents(
    request: Request,
    status: str | None = None,
    runbook: str | None = None,
    severity: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Incidents, newest first, filtered by status, runbook or severity."""
    found = await service.list_incidents(
        container_of(request).engine, status=status, runbook=runbook, severity=severity, limit=limit
    )
    return {"incidents": [service.incident_json(i) for i in found]}


@router.get("/stats", openapi_extra=policy(Policy.READ))
async def incident_stats(
    request: Request,
    days: Annotated[int, Query(ge=1, le=3650)] = 30,
    origin: Annotated[Origin | None, Query(description="live or drill; both when absent")] = None,
    compare: Annotated[
        bool, Query(description="Also report the equal period before, and the change")
    ] = False,
) -> dict[str, Any]:
    """Time to detect, acknowledge, mitigate and resolve: median and p90, per runbook and per
    origin (live, drill)."""
    engine = container_of(request).engine
    until = _now(request) + timedelta(seconds=1)
    if compare:
        compared = await service.stats_compared(engine, until, timedelta(days=days), origin=origin)
        return compared.as_dict()
    report = await service.stats(engine, until - timedelta(days=days), until, origin=origin)
    return report.as_dict()


@router.get("/{incident_id}", openapi_extra=policy(Policy.READ))
async def show_incident(incident_id: RowId, request: Request) -> dict[str, Any]:
    """One incident with its timeline (each entry links to its source row)."""
    engine = container_of(request).engine
    async with engine.connect() as conn:
        incident = await service.get(conn, incident_id)
    entries, _ = await service.timeline(engine, incident)
    return {
        **service.incident_json(incident),
        "missing_for_close": missing_for_close(incident),
        "timeline": [
            {
                "at": e.at.isoformat(),
                "kind": e.kind.value,
                "source": f"{e.source_table}/{e.source_id}",
                "summary": e.summary,
                "correlation_id": e.correlation_id,
                "external_ids": e.external_ids,
                "actor": e.actor,
            }
            for e in entries
        ],
    }


class OpenBody(BaseModel):
    """A manually opened incident."""

    title: str = Field(min_length=3, max_length=300)
    severity: Severity = Severity.SEV3
    runbook: Runbook = Runbook.OTHER
    correlation_ids: list[Key] = Field(default_factory=list)
    external_ids: dict[Key, list[Key]] = Field(default_factory=dict)
    impact_started_at: datetime | None = None


@router.post("", openapi_extra=policy(Policy.ACT))
async def open_incident(body: OpenBody, request: Request) -> dict[str, Any]:
    """Open an incident by hand."""
    c = container_of(request)
    now = _now(request)
    impact = body.impact_started_at
    if impact is not None and (impact.tzinfo is None or impact > now):
        raise InvalidInput("impact_started_at must carry a UTC offset and not be in the future")
    async with c.engine.begin() as conn:
        incident, _ = await service.open_or_attach(
            conn,
            fingerprint=f"manual:{principal_of(request).name}:{now.isoformat()}",
            title=body.title,
            severity=body.severity,
            runbook=body.runbook,
            at=now,
            source="manual",
            correlation_ids=body.correlation_ids,
            external_ids=ExternalIds.from_dict(body.external_ids),
            impact_started_at=body.impact_started_at,
        )
    return service.incident_json(incident)


class StepBody(BaseModel):
    """A lifecycle step."""

    reason: str = ""
    at: datetime | None = None
    impact_started_at: datetime | None = None


async def _step(
    incident_id: RowId, to: IncidentStatus, body: StepBody, request: Request
) -> dict[str, Any]:
    c = container_of(request)
    async with c.engine.begin() as conn:
        incident = await service.move(
            conn,
            incident_id,
            to,
            at=body.at or _now(request),
            actor=principal_of(request).name,
            reason=body.reason,
            impact_started_at=body.impact_started_at,
        )
    return service.incident_json(incident)


@router.post("/{incident_id}/ack", openapi_extra=policy(Policy.ACT))
async def ack(incident_id: RowId, body: StepBody, request: Request) -> dict[str, Any]:
    """Acknowledge."""
    return await _step(incident_id, IncidentStatus.ACKNOWLEDGED, body, request)


@router.post("/{incident_id}/mitigate", openapi_extra=policy(Policy.ACT))
async def mitigate(incident_id: RowId, body: StepBody, request: Request) -> dict[str, Any]:
    """Mark mitigated."""
    return await _step(incident_id, IncidentStatus.MITIGATED, body, request)


@router.post("/{incident_id}/resolve", openapi_extra=policy(Policy.ACT))
async def resolve(incident_id: RowId, body: StepBody, request: Request) -> dict[str, Any]:
    """Resolve by hand (recorded as unverified)."""
    return await _step(incident_id, IncidentStatus.RESOLVED, body, request)


@router.post("/{incident_id}/close", openapi_extra=policy(Policy.ACT))
async def close_incident(incident_id: RowId, body: StepBody, request: Request) -> dict[str, Any]:
    """Close; refused (409) until the runbook's five mandatory fields are filled."""
    return await _step(incident_id, IncidentStatus.CLOSED, body, request)


class AmendBody(BaseModel):
    """Evidence to add."""

    correlation_ids: list[Key] = Field(default_factory=list)
    external_ids: dict[Key, list[Key]] = Field(default_factory=dict)
    corrective_action: str | None = None
    no_correlation_id_reason: str | None = None
    reason: str = ""


@router.post("/{incident_id}/evidence", openapi_extra=policy(Policy.ACT))
async def amend(incident_id: RowId, body: AmendBody, request: Request) -> dict[str, Any]:
    """Add correlation ids, provider ids or a corrective action."""
    c = container_of(request)
    async with c.engine.begin() as conn:
        incident = await service.amend(
            conn,
            incident_id,
            at=_now(request),
            actor=principal_of(request).name,
            correlation_ids=body.correlation_ids,
            external_ids=ExternalIds.from_dict(body.external_ids),
            corrective_action=body.corrective_action,
            no_correlation_id_reason=body.no_correlation_id_reason,
            reason=body.reason,
        )
    return service.incident_json(incident)


class ActionItemBody(BaseModel):
    """One post-mortem action item."""

    description: str = Field(min_length=1, max_length=2000)
    owner: str = Field(min_length=1, max_length=200)
    due: date


class PostmortemBody(BaseModel):
    """A post-mortem document."""

    summary: str = Field(default="", max_length=20_000)
    impact: str = Field(default="", max_length=20_000)
    root_cause: str = Field(default="", max_length=20_000)
    trigger: str = Field(default="", max_length=20_000)
    resolution: str = Field(default="", max_length=20_000)
    detection: str = Field(default="", max_length=20_000)
    action_items: list[ActionItemBody] = Field(default_factory=list)
    lessons: str = Field(default="", max_length=20_000)


@router.put("/{incident_id}/postmortem", openapi_extra=policy(Policy.ACT))
async def postmortem(incident_id: RowId, body: PostmortemBody, request: Request) -> dict[str, Any]:
    """Write the post-mortem (summary, impact, root cause, trigger, resolution, detection,
    action items with owner and due date, lessons)."""
    c = container_of(request)
    async with c.engine.begin() as conn:
        incident = await service.amend(
            conn,
            incident_id,
            at=_now(request),
            actor=principal_of(request).name,
            postmortem=service.postmortem_from_json(body.model_dump(mode="json")),
        )
    return service.incident_json(incident)


class NoteBody(BaseModel):
    """An operator note."""

    text: str = Field(min_length=1, max_length=5000)


@router.post("/{incident_id}/notes", openapi_extra=policy(Policy.ACT))
async def add_note(incident_id: RowId, body: NoteBody, request: Request) -> dict[str, Any]:
    """Add a note to the timeline."""
    c = container_of(request)
    async with c.engine.begin() as conn:
        note_id = await service.add_note(
            conn, incident_id, at=_now(request), actor=principal_of(request).name, note=body.text
        )
    return {"note_id": note_id}


@router.post("/{incident_id}/export", openapi_extra=policy(Policy.ACT))
async def export(incident_id: RowId, request: Request) -> dict[str, Any]:
    """Write the evidence bundle under GUARDIA_INCIDENTS_DIR; its head hash is audited."""
    c = container_of(request)
    now = _now(request)
    target = c.settings.incidents_dir / f"incident-{incident_id}-{now.strftime('%Y%m%dT%H%M%SZ')}"
    path, head = await service.export(
        c.engine, incident_id, target, actor=principal_of(request).name, at=now
    )
    return {"path": str(path), "head": head}


# --- Alertmanager -------------------------------------------------------------------------


Annotation = Annotated[str, StringConstraints(max_length=5000)]


class AmAlert(BaseModel):
    """One alert of an Alertmanager webhook (prometheus/alertmanager docs/configuration.md)."""

    status: str
    labels: dict[Key, Key] = Field(default_factory=dict)
    annotations: dict[Key, Annotation] = Field(default_factory=dict)
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    fingerprint: Key | None = None


class AmWebhook(BaseModel):
    """Alertmanager's webhook payload (version 4)."""

    version: str = "4"
    status: str
    receiver: str = ""
    groupKey: str = ""
    alerts: list[AmAlert]


AM_SEVERITY = {"critical": Severity.SEV2, "page": Severity.SEV1, "warning": Severity.SEV3}


@alertmanager.post("/webhooks/alertmanager", openapi_extra=policy(Policy.ACT))
async def alertmanager_webhook(body: AmWebhook, request: Request) -> dict[str, Any]:
    """Open or attach incidents for firing alerts; resolve them (unverified) when resolved."""
    if not body.alerts:
        raise InvalidInput("no alerts in the payload")
    c = container_of(request)
    now = _now(request)
    outcome: list[dict[str, Any]] = []
    for alert in body.alerts:
        name = alert.labels.get("alertname", "external")
        key = alert.fingerprint or ",".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
        if len(key) > MAX_KEY:  # many long labels: keep the unique fingerprint index within limits
            key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
        fingerprint = f"alertmanager:{key}"
        anchor = alert.annotations.get("runbook_url", "").rpartition("#")[2]
        async with c.engine.begin() as conn:
            incident, opened = await service.open_or_attach(
                conn,
                fingerprint=fingerprint,
                title=alert.annotations.get("summary") or name,
                severity=AM_SEVERITY.get(alert.labels.get("severity", ""), Severity.SEV3),
                runbook=runbook_from_label(alert.labels.get("runbook") or anchor or None),
                at=alert.startsAt or now,
                source="alertmanager",
                correlation_ids=[alert.labels["correlation_id"]]
                if "correlation_id" in alert.labels
                else [],
                impact_started_at=alert.startsAt,
            )
            change = "opened" if opened else "attached"
            if alert.status == "resolved" and incident.id is not None:
                incident = await service.move(
                    conn,
                    incident.id,
                    IncidentStatus.RESOLVED,
                    at=max(alert.endsAt or now, incident.lifecycle.detected_at),
                    actor="alertmanager",
                    reason=f"{name} resolved upstream",
                )
                change = "resolved"
        outcome.append({"alert": name, "incident_id": incident.id, "change": change})
    return {"incidents": outcome}
