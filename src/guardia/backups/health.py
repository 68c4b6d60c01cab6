"""Backup health for alerts, metrics and readiness.

- `evaluate_alerts` (async, for the alert evaluator): BackupStale, BackupFailing,
  BackupTooSmall, RestoreDrillStale at a given `now`.
- `BackupGauges`: a Prometheus collector reading the tables at scrape time. It exports
  timestamps, not ages (Prometheus practice for batch jobs), and 0 for "never", so
  `time() - guardia_backup_last_success_timestamp_seconds` fires when no backup ever succeeded.
- `readiness`: the `/readyz` detail. It reports but never turns readiness red: an unreachable
  bucket must not take the API out of the load balancer; the alerts page instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Connection, create_engine, pool
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from guardia.adapters.postgres.database import sqlalchemy_url
from guardia.backups.model import (
    BACKUP_FAILING,
    BACKUP_STALE,
    BACKUP_TOO_SMALL,
    RESTORE_DRILL_STALE,
    BackupFacts,
    HealthAlert,
    HealthPolicy,
    evaluate_health,
)
from guardia.backups.repository import read_facts
from guardia.ledger.check import latest_report

log = structlog.get_logger(__name__)

RUNBOOK = "7-backups-no-se-ejecutan"


def _ts(at: datetime | None) -> float:
    return at.timestamp() if at else 0.0


def read_health(
    conn: Connection, policy: HealthPolicy, now: datetime, size_window: int = 7
) -> tuple[BackupFacts, list[HealthAlert]]:
    """Facts and the alerts, on a synchronous connection."""
    facts = read_facts(conn, size_window)
    return facts, evaluate_health(facts, policy, now)


async def evaluate_alerts(
    conn: AsyncConnection, policy: HealthPolicy, now: datetime, size_window: int = 7
) -> dict[str, HealthAlert]:
    """The backup alerts by name, on the alert evaluator's async connection."""
    facts = await conn.run_sync(lambda sync: read_facts(sync, size_window))
    return {a.name: a for a in evaluate_health(facts, policy, now)}


def metric_values(facts: BackupFacts) -> dict[str, float]:
    """The exported values (0 for never)."""
    return {
        "guardia_backup_last_success_timestamp_seconds": _ts(facts.last_success_at),
        "guardia_backup_last_size_bytes": float(facts.last_size_bytes or 0),
        "guardia_backup_recent_median_size_bytes": float(facts.recent_median_size or 0),
        "guardia_backup_duration_seconds": float(facts.last_duration_seconds or 0),
        "guardia_backup_failures": float(facts.failures_total),
        "guardia_backup_last_failure_timestamp_seconds": _ts(facts.last_failure_at),
        "guardia_restore_drill_last_success_timestamp_seconds": _ts(facts.last_drill_success_at),
        "guardia_restore_drill_duration_seconds": float(facts.last_drill_duration_seconds or 0),
    }


HELP = {
    "guardia_backup_last_success_timestamp_seconds": "Unix time the last successful backup "
    "finished (0: never)",
    "guardia_backup_last_size_bytes": "Size of the last successful backup",
    "guardia_backup_recent_median_size_bytes": "Median size of the successful backups before it",
    "guardia_backup_duration_seconds": "Wall time of the last successful backup",
    "guardia_backup_failures": "Failed backup runs, ever",
    "guardia_backup_last_failure_timestamp_seconds": "Unix time the last failed backup run "
    "finished (0: never)",
    "guardia_restore_drill_last_success_timestamp_seconds": "Unix time the last passing restore "
    "drill finished (0: never)",
    "guardia_restore_drill_duration_seconds": "Wall time of the last passing restore drill",
}


class BackupGauges(Collector):
    """Reads backup and drill state from the database when Prometheus scrapes."""

    def __init__(self, url: str, size_window: int = 7) -> None:
        self._engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
        self._size_window = size_window

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """Yield the metrics; nothing when the database (or the table) is unavailable."""
        try:
            with self._engine.connect() as conn:
                facts = read_facts(conn, self._size_window)
        except SQLAlchemyError:
            return
        for name, value in metric_values(facts).items():
            if name == "guardia_backup_failures":
                yield CounterMetricFamily(name, HELP[name], value=value)
            else:
                yield GaugeMetricFamily(name, HELP[name], value=value)


async def readiness(engine: AsyncEngine, policy: HealthPolicy, now: datetime) -> dict[str, Any]:
    """`/readyz` detail: latest preflight and firing alerts. `ok` is always True (see above)."""
    try:
        stored = await latest_report(engine, "backups")
        async with engine.connect() as conn:
            alerts = await evaluate_alerts(conn, policy, now)
    except SQLAlchemyError as exc:
        return {"ok": True, "healthy": False, "detail": f"unreadable ({type(exc).__name__})"}
    firing = sorted(name for name, a in alerts.items() if a.firing)
    detail: dict[str, Any] = {
        "ok": True,
        "healthy": bool(stored and stored[0]) and not firing,
        "alerts_firing": firing,
    }
    if stored is None:
        detail["preflight"] = "not run yet: `guardia check backups`"
    else:
        detail["preflight_ok"] = stored[0]
        detail["checked_at"] = stored[1].isoformat()
        detail["failures"] = [i for i in stored[2].get("items", []) if not i["ok"]]
    return detail


@dataclass(frozen=True, slots=True)
class PromRule:
    """A Prometheus rule over the exported metrics."""

    name: str
    severity: str
    expr: str
    for_: str
    summary: str


def prometheus_rules(policy: HealthPolicy) -> list[PromRule]:
    """The four rules, with the configured thresholds."""
    max_age = int(policy.max_age.total_seconds())
    drill_age = int(policy.drill_max_age.total_seconds())
    return [
        PromRule(
            BACKUP_STALE,
            "critical",
            f"time() - guardia_backup_last_success_timestamp_seconds >= {max_age}",
            "0m",
            f"No successful backup in {max_age / 3600:.0f} h",
        ),
        PromRule(
            BACKUP_FAILING,
            "warning",
            "guardia_backup_last_failure_timestamp_seconds > "
            "guardia_backup_last_success_timestamp_seconds",
            "0m",
            "The last backup run failed",
        ),
        PromRule(
            BACKUP_TOO_SMALL,
            "warning",
            "guardia_backup_last_size_bytes < "
            f"{policy.min_size_ratio!r} * guardia_backup_recent_median_size_bytes",
            "0m",
            f"The last backup is smaller than {policy.min_size_ratio:.0%} of the recent median",
        ),
        PromRule(
            RESTORE_DRILL_STALE,
            "warning",
            f"time() - guardia_restore_drill_last_success_timestamp_seconds >= {drill_age}",
            "0m",
            f"No passing restore drill in {drill_age / 86400:.0f} days",
        ),
    ]
