"""Alert rules: evaluated in-process on a schedule, and exported as a Prometheus rule file.

Each rule has a SQL-side evaluation (so any process sharing the database agrees) and the PromQL
equivalent over Guardia's metrics, with a `runbook_url` annotation. New rules (KYC pending,
scoring) join by adding a `Rule` to `RULES`.

Each evaluation also returns the earliest symptom it saw (`Reading.impact_started_at`): the
first failed delivery or the first new dead letter in the window, the first failing check since
the last passing one, the orphan statement line's date (local midnight), the last good backup
plus its freshness limit. The rule's incident takes it as `impact_started_at`, so MTTD and MTTR
count from the facts, not from when somebody noticed (operations.md §1.1).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from guardia.backups.config import config_from_settings
from guardia.backups.health import evaluate_alerts as backup_alerts
from guardia.core.clock import MEXICO_CITY
from guardia.core.errors import Conflict
from guardia.incidents.model import (
    ExternalIds,
    IncidentStatus,
    Runbook,
    Severity,
    runbook_from_label,
)
from guardia.incidents.service import move, open_or_attach, queue_notification
from guardia.settings import Settings

log = structlog.get_logger(__name__)

FAILED_OUTCOMES = (
    "invalid_signature",
    "malformed",
    "livemode_mismatch",
    "too_large",
    "bad_media",
    "store_failed",
)


@dataclass(frozen=True, slots=True)
class Reading:
    """One evaluation of a rule."""

    value: float
    firing: bool
    detail: dict[str, Any]
    impact_started_at: datetime | None = None  # the earliest symptom row the rule saw


Evaluate = Callable[[AsyncConnection, Settings, datetime], Awaitable[Reading]]


@dataclass(frozen=True, slots=True)
class Rule:
    """An alert rule."""

    name: str
    severity: str
    runbook: str  # anchor in docs/runbooks.md
    summary: str
    promql: Callable[[Settings], str]
    for_: str
    evaluate: Evaluate
    threshold: Callable[[Settings], float]


async def _webhook_failure_ratio(conn: AsyncConnection, s: Settings, now: datetime) -> Reading:
    since = now - timedelta(seconds=s.alert_webhook_window_seconds)
    row = (
        await conn.execute(
            text(
                "SELECT count(*) AS total, "
                "count(*) FILTER (WHERE outcome = ANY(:failed)) AS failed, "
                "min(received_at) FILTER (WHERE outcome = ANY(:failed)) AS first_failed "
                "FROM webhook_attempts WHERE received_at >= :since AND received_at <= :now"
            ),
            {"failed": list(FAILED_OUTCOMES), "since": since, "now": now},
        )
    ).one()
    total, failed = int(row.total), int(row.failed)
    ratio = failed / total if total else 0.0
    firing = total >= s.alert_webhook_min_attempts and ratio > s.alert_webhook_failure_ratio
    return Reading(ratio, firing, {"total": total, "failed": failed}, row.first_failed)


async def _dead_letter_growth(conn: AsyncConnection, s: Settings, now: datetime) -> Reading:
    # New dead letters only: `failed_at` is an item's first failure; its later failures move
    # `last_failed_at`, so a stuck item does not keep the alert firing forever.
    since = now - timedelta(seconds=s.alert_dead_letter_window_seconds)
    row = (
        await conn.execute(
            text(
                "SELECT count(*) AS new, min(failed_at) AS first, "
                "string_agg(DISTINCT cause, ',') AS causes, "
                "array_remove(array_agg(DISTINCT correlation_id), NULL) AS corr, "
                "array_remove(array_agg(DISTINCT order_id), NULL) AS orders "
                "FROM dead_letters WHERE failed_at >= :since AND failed_at <= :now "
                "AND status = 'open'"
            ),
            {"since": since, "now": now},
        )
    ).one()
    new = int(row.new)
    detail = {
        "causes": row.causes or "",
        "correlation_ids": list(row.corr or [])[:50],
        "external_ids": {"conekta_order": list(row.orders or [])[:50]},
    }
    return Reading(float(new), new >= s.alert_dead_letter_growth, detail, row.first)


def _latest_check_failing(target: str) -> Evaluate:
    async def evaluate(conn: AsyncConnection, s: Settings, now: datetime) -> Reading:
        row = (
            await conn.execute(
                text(
                    "SELECT ok, checked_at FROM config_checks WHERE target = :t "
                    "ORDER BY checked_at DESC, id DESC LIMIT 1"
                ),
                {"t": target},
            )
        ).first()
        if row is None:
            return Reading(0.0, False, {"checked": False})
        if row.ok:
            return Reading(0.0, False, {"checked_at": row.checked_at.isoformat()})
        # The failing streak began at the first failure after the last pass.
        first = await conn.scalar(
            text(
                "SELECT min(checked_at) FROM config_checks WHERE target = :t AND NOT ok "
                "AND checked_at > coalesce((SELECT max(checked_at) FROM config_checks "
                "WHERE target = :t AND ok), '-infinity')"
            ),
            {"t": target},
        )
        return Reading(1.0, True, {"checked_at": row.checked_at.isoformat()}, first)

    return evaluate


def _backup_alert(name: str) -> Evaluate:
    async def evaluate(conn: AsyncConnection, s: Settings, now: datetime) -> Reading:
        alert = (await backup_alerts(conn, config_from_settings(s).health_policy, now))[name]
        return Reading(alert.value, alert.firing, {"detail": alert.detail}, alert.since)

    return evaluate


BACKUP_RUNBOOK = "7-backups-no-se-ejecutan"


RECON_LINES_ON_INCIDENT = 20


async def _recon_kpi(conn: AsyncConnection, s: Settings, now: datetime) -> Reading:
    row = (
        await conn.execute(
            text(
                "SELECT id, match_rate_count, match_rate_amount, exceptions FROM recon_runs "
                "ORDER BY id DESC LIMIT 1"
            )
        )
    ).first()
    if row is None:
        return Reading(1.0, False, {"runs": 0})
    worst = min(float(row.match_rate_count), float(row.match_rate_amount))
    detail: dict[str, Any] = {"run_id": row.id, "exceptions": row.exceptions}
    impact: datetime | None = None
    if worst < s.recon_kpi_threshold:
        # Money went unmatched from the day the oldest orphan line was booked: its business
        # date is a local date, whose start is local midnight in Mexico City.
        day = await conn.scalar(
            text(
                "SELECT min(local_date) FROM recon_exceptions WHERE run_id = :run "
                "AND side = 'bank' AND status = 'open'"
            ),
            {"run": row.id},
        )
        if day is not None:
            impact = datetime.combine(day, time(), MEXICO_CITY).astimezone(UTC)
        # The orphan lines go on the incident, so runbook 3 can verify them one by one.
        orphans = await conn.scalars(
            text(
                "SELECT bank_line_id FROM recon_exceptions WHERE run_id = :run AND side = 'bank' "
                "AND status = 'open' AND bank_line_id IS NOT NULL ORDER BY id LIMIT :n"
            ),
            {"run": row.id, "n": RECON_LINES_ON_INCIDENT},
        )
        detail["external_ids"] = {"neon_statement_line": list(dict.fromkeys(orphans))}
    return Reading(worst, worst < s.recon_kpi_threshold, detail, impact)


RULES: tuple[Rule, ...] = (
    Rule(
        name="WebhookFailureRateHigh",
        severity="critical",
        runbook="1-webhook-de-conekta-no-llega",
        summary="More than {threshold:.0%} of Conekta webhook deliveries failed in the window",
        promql=lambda s: (
            'sum(rate(guardia_webhooks_received_total{provider="conekta",outcome=~"'
            + "|".join(FAILED_OUTCOMES)
            + '"}[5m])) / sum(rate(guardia_webhooks_received_total{provider="conekta"}[5m])) > '
            + repr(s.alert_webhook_failure_ratio)
        ),
        for_="5m",
        evaluate=_webhook_failure_ratio,
        threshold=lambda s: s.alert_webhook_failure_ratio,
    ),
    Rule(
        name="DeadLettersGrowing",
        severity="warning",
        runbook="2-asiento-contable-falla-en-odoo",
        summary="{threshold:.0f} or more jobs became dead letters in the window (not yet retried)",
        promql=lambda s: (
            f"sum(increase(guardia_dead_letters_total[{int(s.alert_dead_letter_window_seconds)}s]))"
            f" >= {s.alert_dead_letter_growth}"
        ),
        for_="0m",
        evaluate=_dead_letter_growth,
        threshold=lambda s: float(s.alert_dead_letter_growth),
    ),
    Rule(
        name="OdooConfigCheckFailing",
        severity="critical",
        runbook="2-asiento-contable-falla-en-odoo",
        summary="The Odoo configuration check fails: postings will dead-letter",
        promql=lambda s: 'guardia_config_check_ok{target="odoo"} == 0',
        for_="2m",
        evaluate=_latest_check_failing("odoo"),
        threshold=lambda s: 1.0,
    ),
    Rule(
        name="StagingPostingTestFailing",
        severity="warning",
        runbook="2-asiento-contable-falla-en-odoo",
        summary="The daily posting test against staging Odoo failed",
        promql=lambda s: 'guardia_config_check_ok{target="odoo_posting_test"} == 0',
        for_="0m",
        evaluate=_latest_check_failing("odoo_posting_test"),
        threshold=lambda s: 1.0,
    ),
    Rule(
        name="ReconKpiLow",
        severity="warning",
        runbook="3-conciliacion-no-encuentra-match-dinero-huerfano",
        summary="Reconciliation matched less than {threshold:.0%} of the statement",
        promql=lambda s: f"min(guardia_recon_match_rate) < {s.recon_kpi_threshold!r}",
        for_="0m",
        evaluate=_recon_kpi,
        threshold=lambda s: s.recon_kpi_threshold,
    ),
    Rule(
        name="BackupStale",
        severity="critical",
        runbook=BACKUP_RUNBOOK,
        summary="No successful backup in {threshold:.0f} s",
        promql=lambda s: (
            "time() - guardia_backup_last_success_timestamp_seconds >= "
            f"{int(s.backup_max_age_hours * 3600)}"
        ),
        for_="0m",
        evaluate=_backup_alert("BackupStale"),
        threshold=lambda s: s.backup_max_age_hours * 3600,
    ),
    Rule(
        name="BackupFailing",
        severity="warning",
        runbook=BACKUP_RUNBOOK,
        summary="The last backup run failed",
        promql=lambda s: (
            "guardia_backup_last_failure_timestamp_seconds > "
            "guardia_backup_last_success_timestamp_seconds"
        ),
        for_="0m",
        evaluate=_backup_alert("BackupFailing"),
        threshold=lambda s: 1.0,
    ),
    Rule(
        name="BackupTooSmall",
        severity="warning",
        runbook=BACKUP_RUNBOOK,
        summary="The last backup is below {threshold:.0%} of the recent median size",
        promql=lambda s: (
            f"guardia_backup_last_size_bytes < {s.backup_min_size_ratio!r} * "
            "guardia_backup_recent_median_size_bytes"
        ),
        for_="0m",
        evaluate=_backup_alert("BackupTooSmall"),
        threshold=lambda s: s.backup_min_size_ratio,
    ),
    Rule(
        name="RestoreDrillStale",
        severity="warning",
        runbook=BACKUP_RUNBOOK,
        summary="No passing restore drill in {threshold:.0f} s",
        promql=lambda s: (
            "time() - guardia_restore_drill_last_success_timestamp_seconds >= "
            f"{int(s.backup_drill_max_age_days * 86400)}"
        ),
        for_="0m",
        evaluate=_backup_alert("RestoreDrillStale"),
        threshold=lambda s: s.backup_drill_max_age_days * 86400,
    ),
    Rule(
        name="BackupCheckFailing",
        severity="warning",
        runbook=BACKUP_RUNBOOK,
        summary="The backup preflight fails (target, pg_dump or staging space)",
        promql=lambda s: 'guardia_config_check_ok{target="backups"} == 0',
        for_="2m",
        evaluate=_latest_check_failing("backups"),
        threshold=lambda s: 1.0,
    ),
)


def runbook_url(settings: Settings, rule: Rule) -> str:
    """Link to the rule's runbook section."""
    return f"{settings.runbook_base_url}#{rule.runbook}"


@dataclass(frozen=True, slots=True)
class Transition:
    """What one evaluation did to a rule's alert (and its incident)."""

    rule: str
    fingerprint: str
    change: str  # fired | still_firing | clearing | resolved
    value: float
    incident_id: int | None = None
    notification_id: int | None = None


SEVERITY = {"critical": Severity.SEV2, "warning": Severity.SEV3}


async def _fire(
    conn: AsyncConnection, rule: Rule, reading: Reading, settings: Settings, now: datetime
) -> tuple[int, int | None]:
    """Open (or attach to) the rule's incident; queue a notification for a new one."""
    incident, opened = await open_or_attach(
        conn,
        fingerprint=f"alert:{rule.name}",
        title=rule.summary.format(threshold=rule.threshold(settings)),
        severity=SEVERITY.get(rule.severity, Severity.SEV3),
        runbook=runbook_from_label(rule.runbook),
        at=now,
        source="alert",
        correlation_ids=[str(c) for c in reading.detail.get("correlation_ids", [])],
        external_ids=ExternalIds.from_dict(reading.detail.get("external_ids", {})),
        impact_started_at=reading.impact_started_at,
    )
    assert incident.id is not None  # noqa: S101 - stored incidents have ids
    notification = None
    if opened:
        notification = await queue_notification(
            conn,
            incident.id,
            "opened",
            {
                "text": f":rotating_light: [{rule.severity}] {incident.title} "
                f"(incident {incident.id}, runbook {runbook_url(settings, rule)})"
            },
            now,
        )
    return incident.id, notification


async def evaluate_all(
    engine: AsyncEngine,
    settings: Settings,
    now: datetime,
    *,
    verified_by_runbooks: frozenset[Runbook] = frozenset(),
) -> list[Transition]:
    """Evaluate every rule: fire (opening or attaching an incident), or resolve once the
    condition has stayed clear for `alert_clear_seconds` (resolving the incident, verified).

    Incidents of the runbooks in `verified_by_runbooks` are left open when their alert clears:
    their runbook's verification checks resolve them (`guardia.runbooks.runner`).
    """
    out: list[Transition] = []
    clear_period = timedelta(seconds=settings.alert_clear_seconds)
    for rule in RULES:
        fingerprint = rule.name
        async with engine.begin() as conn:
            reading = await rule.evaluate(conn, settings, now)
            current = (
                await conn.execute(
                    text(
                        "SELECT id, cleared_since, incident_id FROM alerts "
                        "WHERE fingerprint = :f AND status = 'firing' FOR UPDATE"
                    ),
                    {"f": fingerprint},
                )
            ).first()
            threshold = rule.threshold(settings)
            if reading.firing:
                incident_id, notification = await _fire(conn, rule, reading, settings, now)
                if current is None:
                    await conn.execute(
                        text(
                            "INSERT INTO alerts (rule, fingerprint, status, severity, value, "
                            "threshold, summary, runbook_url, labels, started_at, last_seen_at, "
                            "incident_id) VALUES (:r, :f, 'firing', :sev, :v, :t, :s, :u, "
                            "CAST(:l AS jsonb), :now, :now, :i) ON CONFLICT DO NOTHING"
                        ),
                        {
                            "r": rule.name,
                            "f": fingerprint,
                            "sev": rule.severity,
                            "v": reading.value,
                            "t": threshold,
                            "s": rule.summary.format(threshold=threshold),
                            "u": runbook_url(settings, rule),
                            "l": json.dumps(reading.detail),
                            "now": now,
                            "i": incident_id,
                        },
                    )
                    change = "fired"
                    log.error(
                        "alert_fired", rule=rule.name, value=reading.value, incident=incident_id
                    )
                else:
                    await conn.execute(
                        text(
                            "UPDATE alerts SET last_seen_at = :now, value = :v, "
                            "cleared_since = NULL, incident_id = :i WHERE id = :id"
                        ),
                        {"now": now, "v": reading.value, "i": incident_id, "id": current.id},
                    )
                    change = "still_firing"
                out.append(
                    Transition(
                        rule.name, fingerprint, change, reading.value, incident_id, notification
                    )
                )
            elif current is not None:
                if current.cleared_since is None or now - current.cleared_since < clear_period:
                    if current.cleared_since is None:
                        await conn.execute(
                            text("UPDATE alerts SET cleared_since = :now WHERE id = :id"),
                            {"now": now, "id": current.id},
                        )
                    out.append(
                        Transition(
                            rule.name, fingerprint, "clearing", reading.value, current.incident_id
                        )
                    )
                    continue
                await conn.execute(
                    text(
                        "UPDATE alerts SET status = 'resolved', resolved_at = :now, value = :v "
                        "WHERE id = :id"
                    ),
                    {"now": now, "v": reading.value, "id": current.id},
                )
                notification = None
                if (
                    current.incident_id is not None
                    and runbook_from_label(rule.runbook) not in verified_by_runbooks
                ):
                    notification = await _resolve_incident(
                        conn, int(current.incident_id), rule, now, clear_period
                    )
                out.append(
                    Transition(
                        rule.name,
                        fingerprint,
                        "resolved",
                        reading.value,
                        current.incident_id,
                        notification,
                    )
                )
                log.info("alert_resolved", rule=rule.name, value=reading.value)
    return out


async def _resolve_incident(
    conn: AsyncConnection, incident_id: int, rule: Rule, now: datetime, clear_period: timedelta
) -> int | None:
    """Resolve the alert's incident, verified by the condition staying clear."""
    try:
        incident = await move(
            conn,
            incident_id,
            IncidentStatus.RESOLVED,
            at=now,
            actor="alert-engine",
            reason=f"{rule.name} clear for {int(clear_period.total_seconds())} s",
            verified=True,
        )
    except Conflict:
        return None  # an operator already resolved or closed it
    return await queue_notification(
        conn,
        incident_id,
        "resolved",
        {"text": f":white_check_mark: resolved: {incident.title} (incident {incident_id})"},
        now,
    )


def prometheus_rules(settings: Settings) -> str:
    """Render every rule as a Prometheus rule file (YAML), with runbook_url annotations."""
    lines = ["groups:", "  - name: guardia", "    rules:"]
    for rule in RULES:
        summary = rule.summary.format(threshold=rule.threshold(settings))
        lines += [
            f"      - alert: {rule.name}",
            f"        expr: {json.dumps(rule.promql(settings))}",
            f"        for: {rule.for_}",
            "        labels:",
            f"          severity: {rule.severity}",
            "        annotations:",
            f"          summary: {json.dumps(summary)}",
            f"          runbook_url: {json.dumps(runbook_url(settings, rule))}",
        ]
    return "\n".join(lines) + "\n"
