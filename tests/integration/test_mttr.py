"""MTTR measured from facts: every incident's impact start comes from its evidence (the first
symptom row its rule saw, a drill's injection, a manual report), and the statistics, metrics
and evidence bundle carry the durations (operations.md §1.1)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from io import StringIO
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from rich.console import Console
from sqlalchemy import text

from guardia.alerts.rules import evaluate_all
from guardia.auth.tokens import Role
from guardia.bootstrap import Container
from guardia.incidents import service
from guardia.incidents.model import IncidentStatus, Runbook, Severity
from guardia.observability.metrics import DatabaseGauges
from guardia.runbooks import runner
from tests.conftest import Signer
from tests.integration.conftest import auth
from tests.integration.test_webhook_ingest import fixture_event, post_event

pytestmark = pytest.mark.integration


async def _impact_of(container: Container, incident_id: int | None) -> datetime | None:
    assert incident_id is not None
    async with container.engine.connect() as conn:
        return (await service.get(conn, incident_id)).lifecycle.impact_started_at


async def test_each_alert_rules_incident_starts_at_the_first_symptom_row_it_saw(
    client: httpx.AsyncClient, container: Container, signer: Signer
) -> None:
    event = fixture_event("order_paid_spei.json")
    for _ in range(6):
        await post_event(client, signer, event, digest="Zm9yZ2Vk")
    now = datetime.now(UTC) + timedelta(seconds=1)
    async with container.engine.begin() as conn:
        first_failed = await conn.scalar(
            text(
                "SELECT min(received_at) FROM webhook_attempts WHERE outcome = 'invalid_signature'"
            )
        )
        for ago in (120, 60):
            await conn.execute(
                text(
                    "INSERT INTO dead_letters (task_name, task_kwargs, queue, cause, error_type, "
                    "error_message, attempts, failed_at) VALUES ('guardia:post_entry', "
                    "CAST(:kw AS jsonb), 'ledger', 'missing_account', 'ProviderRejected', "
                    "'account 401.01.01 not found', 1, :at)"
                ),
                {"kw": f'{{"order_id": "ord_{ago}"}}', "at": now - timedelta(seconds=ago)},
            )
        for ok, ago in ((True, 900), (False, 600), (False, 300)):
            await conn.execute(
                text(
                    "INSERT INTO config_checks (target, ok, results, correlation_id, checked_at) "
                    "VALUES ('odoo', :ok, '{}', 'c', :at)"
                ),
                {"ok": ok, "at": now - timedelta(seconds=ago)},
            )
        last_good = now - timedelta(hours=30)
        for name, status, finished in (
            ("b-good", "success", last_good),
            ("b-bad", "failed", now - timedelta(hours=2)),
        ):
            await conn.execute(
                text(
                    "INSERT INTO backups (name, target, location, status, started_at, "
                    "finished_at, size_bytes, correlation_id) VALUES (:n, 'local', 'x', :s, "
                    ":f, :f, 1000, 'c')"
                ),
                {"n": name, "s": status, "f": finished},
            )
        run_id = await conn.scalar(
            text(
                "INSERT INTO recon_runs (started_at, finished_at, actor, statement_ids, "
                "ledger_source, lines, matched_lines, amount_cents, matched_amount_cents, "
                "match_rate_count, match_rate_amount, exceptions, summary) VALUES (:now, :now, "
                "'t', '[1]', 'test', 4, 2, 400, 200, 0.5, 0.5, 2, '{}') RETURNING id"
            ),
            {"now": now},
        )
        for line, day in (("L-2", date(2026, 11, 30)), ("L-1", date(2026, 11, 29))):
            await conn.execute(
                text(
                    "INSERT INTO recon_exceptions (run_id, side, bank_line_id, reason, "
                    "candidates, account, local_date, amount_cents) VALUES (:r, 'bank', :l, "
                    "'no_candidate', '[]', '0123', :d, 100)"
                ),
                {"r": run_id, "l": line, "d": day},
            )

    fired = {
        t.rule: t.incident_id
        for t in await evaluate_all(container.engine, container.settings, now)
        if t.change == "fired"
    }

    expected = {
        "WebhookFailureRateHigh": first_failed,
        "DeadLettersGrowing": now - timedelta(seconds=120),
        "OdooConfigCheckFailing": now - timedelta(seconds=600),
        "BackupStale": last_good + timedelta(hours=24),
        "BackupFailing": now - timedelta(hours=2),
        # Midnight of 29 November in Mexico City (UTC-6) is 06:00 UTC.
        "ReconKpiLow": datetime(2026, 11, 29, 6, 0, tzinfo=UTC),
    }
    assert set(expected) <= set(fired)
    for rule, impact in expected.items():
        assert await _impact_of(container, fired[rule]) == impact, rule


async def test_an_attached_signal_keeps_the_earliest_impact_start(container: Container) -> None:
    t0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    async with container.engine.begin() as conn:
        opened, _ = await service.open_or_attach(
            conn,
            fingerprint="alert:Test",
            title="test",
            severity=Severity.SEV3,
            runbook=Runbook.OTHER,
            at=t0,
            source="alert",
            impact_started_at=t0 - timedelta(minutes=5),
        )
        for impact in (t0 - timedelta(minutes=9), t0 - timedelta(minutes=1)):
            await service.open_or_attach(
                conn,
                fingerprint="alert:Test",
                title="test",
                severity=Severity.SEV3,
                runbook=Runbook.OTHER,
                at=t0 + timedelta(minutes=1),
                source="alert",
                impact_started_at=impact,
            )
    assert await _impact_of(container, opened.id) == t0 - timedelta(minutes=9)


async def test_a_manual_incident_stores_the_impact_start_it_was_given(
    client: httpx.AsyncClient, container: Container
) -> None:
    impact = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=42)
    opened = await client.post(
        "/api/incidents",
        json={
            "title": "PWA shows pending",
            "runbook": "1",
            "impact_started_at": impact.isoformat(),
        },
        headers=auth(Role.OPERATOR),
    )
    assert opened.status_code == 200, opened.text
    assert opened.json()["impact_started_at"] == impact.isoformat()
    assert await _impact_of(container, opened.json()["id"]) == impact
    assert opened.json()["durations_seconds"]["time_to_detect"] >= 42 * 60


async def _incident(
    container: Container,
    name: str,
    runbook: Runbook,
    impact: datetime,
    detect_after: timedelta,
    resolve_after: timedelta,
    *,
    drill: bool = False,
) -> int:
    detected = impact + detect_after
    async with container.engine.begin() as conn:
        opened, _ = await service.open_or_attach(
            conn,
            fingerprint=f"test:{name}",
            title=name,
            severity=Severity.SEV3,
            runbook=runbook,
            at=detected,
            source="test",
            impact_started_at=impact,
        )
        assert opened.id is not None
        if drill:
            await service.mark_drill(
                conn, opened.id, injected_at=impact, at=detected, actor="drill:test"
            )
        await service.move(
            conn,
            opened.id,
            IncidentStatus.RESOLVED,
            at=impact + resolve_after,
            actor="test",
            verified=True,
        )
    return opened.id


async def test_stats_give_median_and_p90_per_runbook_with_drills_separable_and_compared(
    client: httpx.AsyncClient, container: Container
) -> None:
    base = datetime.now(UTC) - timedelta(days=1)
    minute = timedelta(minutes=1)
    for n, (detect, resolve) in enumerate(((1, 10), (2, 20), (3, 30), (4, 40))):
        await _incident(
            container, f"w{n}", Runbook.WEBHOOK_MISSING, base, detect * minute, resolve * minute
        )
    await _incident(
        container, "d0", Runbook.ODOO_POSTING_FAILS, base, minute, 5 * minute, drill=True
    )
    # The previous 30-day window: one slower webhook incident.
    await _incident(
        container,
        "old",
        Runbook.WEBHOOK_MISSING,
        base - timedelta(days=31),
        10 * minute,
        90 * minute,
    )

    everything = (
        await client.get("/api/incidents/stats", params={"days": 30}, headers=auth(Role.AUDITOR))
    ).json()
    webhook = everything["per_runbook"]["1"]["metrics"]
    assert webhook["time_to_detect"]["median_seconds"] == 120.0
    assert webhook["time_to_detect"]["p90_seconds"] == 240.0
    assert webhook["time_to_resolve"]["median_seconds"] == 1200.0
    assert webhook["time_to_resolve"]["p90_seconds"] == 2400.0
    assert everything["per_origin"]["drill"]["incidents"] == 1
    assert everything["per_origin"]["live"]["incidents"] == 4

    drills = (
        await client.get(
            "/api/incidents/stats",
            params={"days": 30, "origin": "drill"},
            headers=auth(Role.AUDITOR),
        )
    ).json()
    assert list(drills["per_runbook"]) == ["2"]
    assert drills["overall"]["metrics"]["time_to_resolve"]["median_seconds"] == 300.0

    compared = (
        await client.get(
            "/api/incidents/stats",
            params={"days": 30, "compare": "true", "origin": "live"},
            headers=auth(Role.AUDITOR),
        )
    ).json()
    assert compared["previous"]["per_runbook"]["1"]["incidents"] == 1
    assert compared["change"]["1"]["time_to_resolve"]["median_seconds"] == 1200.0 - 5400.0

    from guardia.entrypoints.incidents_cli import stats_table

    out = StringIO()
    Console(file=out, width=200).print(
        stats_table(compared["current"], "runbook", compared["previous"])
    )
    rendered = out.getvalue()
    assert "20m / 40m (n=4)" in rendered
    assert "was 1h30m / 1h30m (n=1)" in rendered


async def test_metrics_export_incident_durations_as_histogram_samples(
    container: Container, db_url: str
) -> None:
    impact = datetime.now(UTC) - timedelta(hours=1)
    await _incident(
        container,
        "m",
        Runbook.WEBHOOK_MISSING,
        impact,
        timedelta(seconds=90),
        timedelta(minutes=20),
    )
    await _incident(
        container,
        "md",
        Runbook.WEBHOOK_MISSING,
        impact,
        timedelta(seconds=30),
        timedelta(minutes=3),
        drill=True,
    )
    registry = CollectorRegistry()
    registry.register(DatabaseGauges(db_url))
    exposed = generate_latest(registry).decode()
    assert (
        'guardia_incident_seconds_bucket{le="300.0",origin="live",phase="detect",runbook="1"} 1.0'
        in exposed
    )
    assert (
        'guardia_incident_seconds_bucket{le="900.0",origin="live",phase="resolve",runbook="1"} 0.0'
        in exposed
    )
    assert (
        'guardia_incident_seconds_count{origin="live",phase="resolve",runbook="1"} 1.0' in exposed
    )
    assert (
        'guardia_incident_seconds_sum{origin="drill",phase="resolve",runbook="1"} 180.0' in exposed
    )
    assert "quantile" not in "".join(
        line for line in exposed.splitlines() if "guardia_incident_seconds" in line
    )


async def test_the_evidence_bundle_carries_the_durations(
    container: Container, tmp_path: Path
) -> None:
    impact = datetime.now(UTC) - timedelta(hours=1)
    incident_id = await _incident(
        container, "e", Runbook.OTHER, impact, timedelta(seconds=90), timedelta(minutes=20)
    )
    path, _ = await service.export(
        container.engine, incident_id, tmp_path / "bundle", actor="t", at=datetime.now(UTC)
    )
    markdown = (path / "bundle.md").read_text()
    assert "| time_to_detect | 90 |" in markdown
    assert "| time_to_resolve | 1200 |" in markdown


async def test_a_runbook_dry_run_opens_no_incident_and_an_apply_with_nothing_failing_neither(
    container: Container,
) -> None:
    dry = await runner.run(container, "odoo-posting", order_id=None, apply=False, actor="t")
    assert dry.incident_id is None
    applied = await runner.run(container, "odoo-posting", order_id=None, apply=True, actor="t")
    assert applied.incident_id is None
    assert applied.verified is True
    assert not applied.next_step.startswith("failing")
    assert await service.list_incidents(container.engine) == []


async def test_a_fresh_install_opens_no_backup_or_restore_drill_incident_until_its_grace_ends(
    container: Container,
) -> None:
    now = datetime.now(UTC)
    fresh = await evaluate_all(container.engine, container.settings, now)
    assert {t.rule for t in fresh} & {"BackupStale", "RestoreDrillStale"} == set()
    assert await service.list_incidents(container.engine) == []

    async with container.engine.connect() as conn:
        installed = datetime.fromisoformat(
            await conn.scalar(text("SELECT value->>'at' FROM kv_state WHERE key = 'installed_at'"))
        )
    later = now + timedelta(hours=container.settings.backup_max_age_hours, minutes=1)
    stale = {t.rule: t for t in await evaluate_all(container.engine, container.settings, later)}
    assert stale["BackupStale"].change == "fired"
    assert "RestoreDrillStale" not in stale
    impact = await _impact_of(container, stale["BackupStale"].incident_id)
    assert impact == installed + timedelta(hours=container.settings.backup_max_age_hours)


async def test_an_applied_runbook_acknowledges_the_incident_it_works_on(
    container: Container,
) -> None:
    detected = datetime.now(UTC) - timedelta(minutes=3)
    async with container.engine.begin() as conn:
        opened, _ = await service.open_or_attach(
            conn,
            fingerprint="alert:DeadLettersGrowing",
            title="dead letters",
            severity=Severity.SEV3,
            runbook=Runbook.ODOO_POSTING_FAILS,
            at=detected,
            source="alert",
            impact_started_at=detected - timedelta(minutes=2),
        )
    applied = await runner.run(
        container, "odoo-posting", order_id=None, apply=True, actor="ana", incident_id=opened.id
    )
    assert applied.incident_id == opened.id
    async with container.engine.connect() as conn:
        life = (await service.get(conn, opened.id or 0)).lifecycle
    assert life.acknowledged_at is not None
    assert detected < life.acknowledged_at
    assert life.resolved_at is not None
    assert life.acknowledged_at <= life.resolved_at
