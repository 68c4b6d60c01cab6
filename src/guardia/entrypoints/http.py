"""The HTTP API: Conekta webhooks, the PWA's order status, operator recovery actions, probes.

Every route declares a policy (`auth.tokens.Policy`) through `openapi_extra`; the request guard
(`entrypoints/middleware.py`) authorises each request against its route's policy before any body
is read, and refuses routes that declare none, so forgetting a policy fails closed.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Body, FastAPI, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from guardia.adapters.postgres.database import migration_status
from guardia.adapters.postgres.tables import alerts, webhook_attempts
from guardia.audit import log as audit
from guardia.audit.tables import audit_log
from guardia.auth.tokens import Policy, Role
from guardia.bootstrap import Container
from guardia.core.errors import GuardiaError, InvalidInput, NotFound
from guardia.core.redaction import redact_fields, redact_text
from guardia.entrypoints import incidents_http
from guardia.entrypoints.deps import (
    INT64_MAX,
    POLICY_KEY,
    BodyRowId,
    Key,
    PathKey,
    RowId,
    container_of,
    policy,
    principal_of,
)
from guardia.entrypoints.errors import install_problem_handlers, problem_response
from guardia.entrypoints.middleware import RequestGuard, is_json_media_type
from guardia.entrypoints.openapi import describe_problems_and_security
from guardia.jobs import deadletters
from guardia.ledger.check import check_ledger, latest_report, store_report
from guardia.ledger.service import postings_of
from guardia.payments import service as payments
from guardia.payments.service import OrderView, ReplaySelector
from guardia.recon import manual
from guardia.recon.store import kpi_report
from guardia.recovery import resend_event
from guardia.runbooks import runner as runbook_runner
from guardia.runbooks.catalog import RUNBOOKS

log = structlog.get_logger(__name__)


def problem(exc: GuardiaError, request: Request) -> JSONResponse:
    """Render an error as application/problem+json."""
    return JSONResponse(
        {
            "type": exc.problem_type,
            "title": type(exc).__name__,
            "status": exc.status_code,
            "detail": exc.message,
            "instance": request.url.path,
        },
        status_code=exc.status_code,
        media_type="application/problem+json",
    )


# --- webhooks -----------------------------------------------------------------------------

webhooks = APIRouter()


async def _read_limited(request: Request, limit: int) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@webhooks.post("/webhooks/conekta", openapi_extra=policy(Policy.WEBHOOK))
async def conekta_webhook(request: Request) -> JSONResponse:
    """Receive a Conekta event: verify DIGEST, store, acknowledge, enqueue processing."""
    c = container_of(request)
    remote = request.client.host if request.client else None
    body = await _read_limited(request, c.settings.webhook_max_body_bytes)
    if body is None:
        receipt = await c.receiver.reject(
            outcome="too_large",
            http_status=413,
            body=b"",
            headers=request.headers,
            remote=remote,
            detail=f"body over {c.settings.webhook_max_body_bytes} bytes",
        )
    elif not is_json_media_type(request.headers.get("content-type", "")):
        receipt = await c.receiver.reject(
            outcome="bad_media",
            http_status=415,
            body=body,
            headers=request.headers,
            remote=remote,
            detail="content-type must be application/json or application/*+json",
        )
    else:
        receipt = await c.receiver.receive(body, request.headers, remote=remote)
    c.metrics.webhooks.labels("conekta", receipt.outcome).inc()
    if receipt.outcome == "invalid_signature":
        c.metrics.signature_failures.labels("conekta").inc()
    if receipt.needs_processing and receipt.event_pk is not None:
        try:
            await c.defer_process_event(receipt.event_pk, receipt.correlation_id, receipt.order_id)
        except Exception as exc:  # the event is durable; the inbox relay enqueues it later
            log.error("enqueue_failed", event_pk=receipt.event_pk, error=type(exc).__name__)
    if receipt.http_status >= 400:
        return problem_response(
            receipt.http_status,
            receipt.detail,
            request.url.path,
            headers={
                "X-Correlation-Id": receipt.correlation_id,
                **({"Retry-After": "5"} if receipt.http_status == 503 else {}),
            },
            outcome=receipt.outcome,
            correlation_id=receipt.correlation_id,
        )
    return JSONResponse(
        {
            "outcome": receipt.outcome,
            "detail": receipt.detail,
            "correlation_id": receipt.correlation_id,
        },
        status_code=receipt.http_status,
        headers={"X-Correlation-Id": receipt.correlation_id},
    )


# --- API ----------------------------------------------------------------------------------

api = APIRouter(prefix="/api")


def order_json(view: OrderView) -> dict[str, Any]:
    """The order-status document the PWA reads."""
    return {
        "order_id": view.order_id,
        "status": view.status,
        "amount": {"cents": view.amount_cents, "currency": view.currency},
        "amount_refunded_cents": view.amount_refunded_cents,
        "payment_method": {
            "type": view.method,
            "reference": view.reference,
            "clabe": view.clabe,
            "tracking_code": view.tracking_code,
        },
        "paid_at": view.paid_at.isoformat() if view.paid_at else None,
        "correlation_id": view.correlation_id,
        "last_event": {
            "id": view.last_event_id,
            "type": view.last_event_type,
            "at": view.last_event_at.isoformat() if view.last_event_at else None,
        },
        "updated_at": view.updated_at.isoformat(),
        "transitions": list(view.transitions),
    }


@api.get("/orders/{order_id}", openapi_extra=policy(Policy.PWA_READ))
async def get_order(order_id: PathKey, request: Request) -> dict[str, Any]:
    """Payment status of one order (404 if unknown), with its Odoo entries."""
    engine = container_of(request).engine
    view = order_json(await payments.get_order_view(engine, order_id))
    view["ledger"] = await postings_of(engine, order_id)
    return view


@api.get("/checks/{target}", openapi_extra=policy(Policy.READ))
async def get_check(target: PathKey, request: Request) -> dict[str, Any]:
    """The latest stored config check of a target (odoo, odoo_posting_test)."""
    found = await latest_report(container_of(request).engine, target)
    if found is None:
        raise NotFound(f"no {target} check has run yet")
    ok, checked_at, results = found
    return {"ok": ok, "checked_at": checked_at.isoformat(), **results}


@api.post("/checks/odoo", openapi_extra=policy(Policy.ACT))
async def run_odoo_check(request: Request) -> JSONResponse:
    """Run the Odoo config check now (stored; readiness follows it)."""
    c = container_of(request)
    report = await check_ledger(c.odoo, c.ledger_config)
    await store_report(c.engine, report)
    if report.ok:
        c.resolver.invalidate()
    return JSONResponse(report.to_json(), status_code=200 if report.ok else 409)


class ReplayBody(BaseModel):
    """Which stored events to replay."""

    event_ids: list[Key] = Field(default_factory=list)
    order_id: Key | None = None
    since: datetime | None = None
    until: datetime | None = None
    reason: str = ""


@api.post("/replay", openapi_extra=policy(Policy.ACT))
async def replay(body: ReplayBody, request: Request) -> dict[str, Any]:
    """Re-apply stored events by id, order or time window."""
    c = container_of(request)
    result = await payments.replay(
        c.engine,
        ReplaySelector(tuple(body.event_ids), body.order_id, body.since, body.until),
        actor=principal_of(request).name,
        reason=body.reason,
    )
    c.metrics.provider_calls.labels("replay").inc()
    return {
        "events": result.events,
        "orders": result.orders,
        "changed": result.changed_orders,
        "action_id": result.action_id,
    }


@api.post("/orders/{order_id}/pull", openapi_extra=policy(Policy.ACT))
async def pull(
    order_id: PathKey,
    request: Request,
    dry_run: Annotated[bool, Query()] = False,
    reason: Annotated[str, Query(max_length=500)] = "",
) -> dict[str, Any]:
    """Fetch the order from Conekta and apply it (dry_run: show the diff only)."""
    c = container_of(request)
    result = await payments.pull_order(
        c.engine,
        c.conekta,
        order_id,
        actor=principal_of(request).name,
        dry_run=dry_run,
        reason=reason,
    )
    c.metrics.provider_calls.labels("pull").inc()
    await c.defer_postings(order_id, result.correlation_id, result.postings)
    return {
        "order_id": order_id,
        "dry_run": dry_run,
        "status": result.after.status.value,
        "changes": {
            k: [str(a) if a is not None else None, str(b) if b is not None else None]
            for k, (a, b) in result.changes.items()
        },
        "correlation_id": result.correlation_id,
        "action_id": result.action_id,
    }


class ResendBody(BaseModel):
    """Which webhooks to resend to (default: every webhook pointing at Guardia)."""

    webhook_ids: list[Key] = Field(default_factory=list)
    reason: str = ""


@api.post("/events/{event_id}/resend", openapi_extra=policy(Policy.ACT))
async def resend(
    event_id: PathKey, request: Request, body: Annotated[ResendBody | None, Body()] = None
) -> dict[str, Any]:
    """Ask Conekta to deliver an event again."""
    c = container_of(request)
    out = await resend_event(
        c,
        event_id,
        list(body.webhook_ids) if body else [],
        actor=principal_of(request).name,
        reason=body.reason if body else "",
    )
    c.metrics.provider_calls.labels("resend").inc()
    return out


def _dl_json(d: deadletters.DeadLetter) -> dict[str, Any]:
    return {
        "id": d.id,
        "task": d.task_name,
        "kwargs": d.task_kwargs,
        "cause": d.cause,
        "error_type": d.error_type,
        "error": d.error_message,
        "attempts": d.attempts,
        "correlation_id": d.correlation_id,
        "order_id": d.order_id,
        "failed_at": d.failed_at.isoformat(),
        "status": d.status,
        "retried_at": d.retried_at.isoformat() if d.retried_at else None,
        "retry_job_id": d.retry_job_id,
        "last_failed_at": d.last_failed_at.isoformat() if d.last_failed_at else None,
        "resolved_at": d.resolved_at.isoformat() if d.resolved_at else None,
        "resolution": d.resolution,
    }


@api.get("/dead-letters", openapi_extra=policy(Policy.READ))
async def list_dead_letters(
    request: Request,
    cause: str | None = None,
    task: str | None = None,
    order_id: str | None = None,
    status: str | None = "open",
) -> dict[str, Any]:
    """List dead letters by cause, task, order or status."""
    flt = deadletters.DeadLetterFilter(
        cause=cause, task_name=task, order_id=order_id, status=status
    )
    rows = await deadletters.list_dead_letters(container_of(request).engine, flt)
    return {"dead_letters": [_dl_json(d) for d in rows]}


class RetryBody(BaseModel):
    """Which dead letters to retry: ids, a filter, or all (explicitly)."""

    ids: list[BodyRowId] = Field(default_factory=list)
    cause: Key | None = None
    task: Key | None = None
    order_id: Key | None = None
    all: bool = False
    reason: str = ""


@api.post("/dead-letters/retry", openapi_extra=policy(Policy.ACT))
async def retry_dead_letters(body: RetryBody, request: Request) -> dict[str, Any]:
    """Re-enqueue dead letters: one, by filter, or all."""
    if not (body.ids or body.cause or body.task or body.order_id or body.all):
        raise InvalidInput("say which dead letters to retry: ids, cause, task, order_id or all")
    c = container_of(request)
    done = await deadletters.retry(
        c.engine,
        c.defer_retry,
        deadletters.DeadLetterFilter(tuple(body.ids), body.cause, body.task, body.order_id),
        actor=principal_of(request).name,
        reason=body.reason,
    )
    return {"retried": [{"dead_letter_id": d, "job_id": j} for d, j in done]}


@api.get("/alerts", openapi_extra=policy(Policy.READ))
async def list_alerts(request: Request, status: str | None = None) -> dict[str, Any]:
    """List alerts (firing and resolved)."""
    query = select(alerts).order_by(alerts.c.started_at.desc()).limit(200)
    if status:
        query = query.where(alerts.c.status == status)
    async with container_of(request).engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {
        "alerts": [
            {
                "id": r.id,
                "rule": r.rule,
                "status": r.status,
                "severity": r.severity,
                "value": r.value,
                "threshold": r.threshold,
                "summary": r.summary,
                "runbook_url": r.runbook_url,
                "started_at": r.started_at.isoformat(),
                "resolved_at": r.resolved_at.isoformat() if r.resolved_at else None,
            }
            for r in rows
        ]
    }


@api.get("/webhook-attempts", openapi_extra=policy(Policy.READ))
async def list_attempts(
    request: Request,
    outcome: str | None = None,
    event_id: str | None = None,
    order_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Webhook delivery attempts kept for forensics (headers without secrets, body hash).

    Operators see what was received; auditors see headers and details with PII redacted, and
    never a body (only its hash and size)."""
    raw = principal_of(request).role is Role.OPERATOR
    query = select(webhook_attempts).order_by(webhook_attempts.c.id.desc()).limit(limit)
    if outcome:
        query = query.where(webhook_attempts.c.outcome == outcome)
    if event_id:
        query = query.where(webhook_attempts.c.event_id == event_id)
    if order_id:
        query = query.where(webhook_attempts.c.order_id == order_id)
    async with container_of(request).engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {
        "attempts": [
            {
                "id": r.id,
                "received_at": r.received_at.isoformat(),
                "outcome": r.outcome,
                "http_status": r.http_status,
                "event_id": r.event_id,
                "order_id": r.order_id,
                "body_sha256": r.body_sha256,
                "body_size": r.body_size,
                "headers": r.headers if raw else redact_fields(r.headers),
                "remote_addr": r.remote_addr,
                "correlation_id": r.correlation_id,
                "detail": r.detail if raw or r.detail is None else redact_text(r.detail),
            }
            for r in rows
        ]
    }


@api.get("/audit", openapi_extra=policy(Policy.READ))
async def list_audit(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    correlation_id: str | None = None,
) -> dict[str, Any]:
    """The newest audit entries (operator actions), with their hashes."""
    query = select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
    if correlation_id:
        query = query.where(audit_log.c.correlation_id == correlation_id)
    async with container_of(request).engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {
        "entries": [
            {
                "seq": r.seq,
                "at": r.at.isoformat(),
                "actor": r.actor,
                "action": r.action,
                "target": r.target,
                "reason": r.reason,
                "correlation_id": r.correlation_id,
                "prev_hash": r.prev_hash,
                "hash": r.hash,
            }
            for r in rows
        ]
    }


@api.get("/audit/verify", openapi_extra=policy(Policy.READ))
async def verify_audit(request: Request) -> JSONResponse:
    """Recompute the audit chain; 409 names the first broken entries."""
    report = await audit.verify(container_of(request).engine)
    return JSONResponse(report.as_dict(), status_code=200 if report.ok else 409)


class ManualBody(BaseModel):
    """A manual reconciliation step."""

    bank_line_id: Key
    ledger_ids: list[Key] = Field(default_factory=list)
    reason: str = Field(min_length=3, max_length=1000)


async def _manual(run_id: int, action: str, body: ManualBody, request: Request) -> dict[str, Any]:
    c = container_of(request)
    async with c.engine.begin() as conn:
        done = await manual.request(
            conn,
            run_id=run_id,
            action=action,
            bank_line_id=body.bank_line_id,
            ledger_ids=body.ledger_ids,
            reason=body.reason,
            actor=principal_of(request).name,
            at=c.clock.now(),
            approval_threshold_cents=c.settings.recon_approval_threshold_cents,
        )
    return manual.as_json(done)


@api.post("/recon/runs/{run_id}/match", openapi_extra=policy(Policy.ACT))
async def recon_match(run_id: RowId, body: ManualBody, request: Request) -> dict[str, Any]:
    """Match a statement line by hand (held for approval above the threshold)."""
    return await _manual(run_id, "match", body, request)


@api.post("/recon/runs/{run_id}/unmatch", openapi_extra=policy(Policy.ACT))
async def recon_unmatch(run_id: RowId, body: ManualBody, request: Request) -> dict[str, Any]:
    """Undo a match; the line becomes an open exception again."""
    return await _manual(run_id, "unmatch", body, request)


class ApproveBody(BaseModel):
    """A second operator's approval; the approver is the token's name, never a body field."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=1000)


@api.post("/recon/manual/{manual_id}/approve", openapi_extra=policy(Policy.ACT))
async def recon_approve(manual_id: RowId, body: ApproveBody, request: Request) -> dict[str, Any]:
    """Approve a held manual match (not by the operator who asked for it)."""
    c = container_of(request)
    async with c.engine.begin() as conn:
        done = await manual.approve(
            conn,
            manual_id,
            approver=principal_of(request).name,
            reason=body.reason,
            at=c.clock.now(),
        )
    return manual.as_json(done)


@api.get("/recon/report", openapi_extra=policy(Policy.READ))
async def recon_report(
    request: Request, run: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None
) -> dict[str, Any]:
    """The KPI of a run (default: the latest)."""
    url = container_of(request).database.direct_url
    report = await asyncio.to_thread(kpi_report, url, run)
    return {"run": report.run, "kpi": report.rows}


@api.get("/runbooks", openapi_extra=policy(Policy.READ))
async def list_runbooks() -> dict[str, Any]:
    """The encoded runbooks with their checks and actions."""
    return {
        "runbooks": [
            {
                "name": spec.name,
                "runbook": spec.runbook.value,
                "title": spec.title,
                "checks": [c.name for c in spec.checks],
                "actions": [{"name": a.name, "moves_money": a.moves_money} for a in spec.actions],
                "verification": list(spec.verification),
                "needs": spec.needs,
            }
            for spec in RUNBOOKS.values()
        ]
    }


class RunbookBody(BaseModel):
    """How to run a runbook."""

    order_id: Key | None = None
    line_id: Key | None = None
    ledger_id: Key | None = None
    incident_id: BodyRowId | None = None
    apply: bool = False


@api.post("/runbooks/{name}/run", openapi_extra=policy(Policy.ACT))
async def run_runbook(name: PathKey, body: RunbookBody, request: Request) -> dict[str, Any]:
    """Run a runbook (dry run unless apply); its steps land on an incident's timeline."""
    report = await runbook_runner.run(
        container_of(request),
        name,
        order_id=body.order_id,
        line_id=body.line_id,
        incident_id=body.incident_id,
        apply=body.apply,
        actor=principal_of(request).name,
        options={"ledger_id": body.ledger_id} if body.ledger_id else None,
    )
    return report.as_dict()


# --- probes -------------------------------------------------------------------------------

probes = APIRouter()


@probes.get("/healthz", openapi_extra=policy(Policy.PUBLIC))
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@probes.get("/readyz", openapi_extra=policy(Policy.PUBLIC))
async def readyz(request: Request) -> JSONResponse:
    """Readiness: database reachable, migrations at head, webhook keys loaded."""
    c = container_of(request)
    checks: dict[str, dict[str, Any]] = {}
    try:
        current, head = migration_status(c.database.direct_url)
        checks["database"] = {"ok": True}
        checks["migrations"] = {"ok": current == head, "current": current, "head": head}
    except Exception as exc:  # readiness reports every failure as red, never raises
        checks["database"] = {"ok": False, "error": type(exc).__name__}
        checks["migrations"] = {"ok": False}
    keys = len(c.keyring.active_keys(livemode=c.settings.conekta_livemode))
    checks["webhook_keys"] = {"ok": keys > 0, "active": keys}
    checks["api_tokens"] = {"ok": len(c.tokens) > 0, "configured": len(c.tokens)}
    odoo = await latest_report(c.engine, "odoo") if checks["database"]["ok"] else None
    checks["odoo"] = (
        {"ok": False, "detail": "the Odoo config check has not run yet"}
        if odoo is None
        else {
            "ok": odoo[0],
            "checked_at": odoo[1].isoformat(),
            "failures": [i for i in odoo[2].get("items", []) if not i["ok"]],
        }
    )
    for name, check in c.extras.get("readiness", {}).items():
        checks[name] = await check()
    ready = all(v["ok"] for v in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


@probes.get("/metrics", openapi_extra=policy(Policy.PUBLIC))
async def metrics(request: Request) -> Response:
    """Prometheus exposition."""
    return PlainTextResponse(
        generate_latest(container_of(request).metrics.registry), media_type=CONTENT_TYPE_LATEST
    )


ROUTERS = (webhooks, api, probes, incidents_http.router, incidents_http.alertmanager)


def route_policies() -> list[tuple[str, str, Policy]]:
    """Every (method, path, policy) Guardia serves; raises if a route declares no policy."""
    out: list[tuple[str, str, Policy]] = []
    for router in ROUTERS:
        for route in router.routes:
            if not isinstance(route, APIRoute):
                continue
            declared = (route.openapi_extra or {}).get(POLICY_KEY)
            if declared is None:
                raise RuntimeError(f"route {route.path} declares no access policy")
            out.extend(
                (method, route.path, Policy(declared)) for method in sorted(route.methods or ())
            )
    return out


def create_app(container: Container) -> FastAPI:
    """Build the FastAPI app around a ready Container."""
    route_policies()
    app = FastAPI(title="Guardia", version="0.1.0", docs_url=None, redoc_url=None)
    app.state.container = container
    app.include_router(webhooks)
    app.include_router(api)
    app.include_router(probes)
    app.include_router(incidents_http.router)
    app.include_router(incidents_http.alertmanager)

    @app.exception_handler(GuardiaError)
    async def _guardia_error(request: Request, exc: GuardiaError) -> JSONResponse:
        return problem(exc, request)

    install_problem_handlers(app)
    app.add_middleware(RequestGuard)
    describe_problems_and_security(app)
    return app
