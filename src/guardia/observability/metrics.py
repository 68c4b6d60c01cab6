"""Prometheus metrics. Counters live in-process; gauges that must agree across processes
(dead letters, job lag, firing alerts) are read from PostgreSQL at scrape time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

# Anchors as in guardia.incidents.stats (operations.md §1.2): detect from impact start,
# acknowledge from detection, mitigate and resolve from impact start. Every incident ever, so the
# histogram only grows (Prometheus takes rates and quantiles over time: histogram_quantile).
INCIDENT_PHASES = """
SELECT runbook, origin, 'detect' AS phase, extract(epoch FROM detected_at - impact_started_at) AS s
  FROM incidents
UNION ALL SELECT runbook, origin, 'acknowledge', extract(epoch FROM acknowledged_at - detected_at)
  FROM incidents
UNION ALL SELECT runbook, origin, 'mitigate', extract(epoch FROM mitigated_at - impact_started_at)
  FROM incidents
UNION ALL SELECT runbook, origin, 'resolve', extract(epoch FROM resolved_at - impact_started_at)
  FROM incidents
"""

# From a minute to a week: incidents are detected in seconds to hours and resolved in minutes
# to days.
INCIDENT_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400, 259200, 604800)

# The bucket bounds are the integer constants above, never input.
INCIDENT_DURATIONS = (
    "SELECT runbook, origin, phase, "  # noqa: S608
    + ", ".join(f"count(*) FILTER (WHERE s <= {b})" for b in INCIDENT_BUCKETS)
    + f", count(*), sum(s) FROM ({INCIDENT_PHASES}) d WHERE s IS NOT NULL "
    "GROUP BY runbook, origin, phase ORDER BY runbook, origin, phase"
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


def incident_histogram(rows: Iterable[Sequence[Any]]) -> HistogramMetricFamily:
    """`guardia_incident_seconds` from INCIDENT_DURATIONS rows: one histogram per runbook,
    origin (live, drill) and phase (detect, acknowledge, mitigate, resolve)."""
    h = HistogramMetricFamily(
        "guardia_incident_seconds",
        "Incident phase durations: detect and mitigate/resolve from impact start, acknowledge "
        "from detection",
        labels=["runbook", "origin", "phase"],
    )
    for runbook, origin, phase, *counts, total, seconds in rows:
        buckets = [(str(float(b)), int(n)) for b, n in zip(INCIDENT_BUCKETS, counts, strict=True)]
        h.add_metric(
            [runbook, origin, phase], [*buckets, ("+Inf", int(total))], float(seconds or 0)
        )
    return h


class DatabaseGauges(Collector):
    """Reads queue and dead-letter state from the database when Prometheus scrapes."""

    def __init__(self, url: str) -> None:
        self._url = url

    def collect(
        self,
    ) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        """Yield the gauges; on a database error yield `guardia_db_up 0` and nothing else."""
        up = GaugeMetricFamily("guardia_db_up", "1 if the database answered the scrape")
        try:
            with psycopg.connect(self._url, connect_timeout=3) as conn:
                dead = conn.execute(
                    "SELECT cause, count(*) FROM dead_letters WHERE status = 'open' GROUP BY cause"
                ).fetchall()
                lag = conn.execute(
                    "SELECT queue_name, extract(epoch FROM now() - min(scheduled_at_or_created)) "
                    "FROM (SELECT queue_name, coalesce(scheduled_at, "
                    "(SELECT min(at) FROM procrastinate_events e WHERE e.job_id = j.id)) "
                    "AS scheduled_at_or_created FROM procrastinate_jobs j "
                    "WHERE status = 'todo' AND (scheduled_at IS NULL OR scheduled_at <= now())) q "
                    "GROUP BY queue_name"
                ).fetchall()
                firing = conn.execute(
                    "SELECT rule, count(*) FROM alerts WHERE status = 'firing' GROUP BY rule"
                ).fetchall()
                checks = conn.execute(
                    "SELECT DISTINCT ON (target) target, ok FROM config_checks "
                    "ORDER BY target, checked_at DESC, id DESC"
                ).fetchall()
                dead_total = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
                active = conn.execute(
                    "SELECT runbook, count(*) FROM incidents "
                    "WHERE status IN ('open', 'acknowledged', 'mitigated') GROUP BY runbook"
                ).fetchall()
                durations = conn.execute(INCIDENT_DURATIONS).fetchall()
                recon = conn.execute(
                    "SELECT account, sum(matched_lines)::float / nullif(sum(lines), 0), "
                    "sum(matched_amount_cents)::float / nullif(sum(amount_cents), 0) "
                    "FROM recon_kpi WHERE run_id = (SELECT max(id) FROM recon_runs) "
                    "GROUP BY account"
                ).fetchall()
                unprocessed = conn.execute(
                    "SELECT count(*) FROM webhook_events WHERE status = 'received'"
                ).fetchone()
        except psycopg.Error:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        g = GaugeMetricFamily("guardia_dead_letters_open", "Open dead letters", labels=["cause"])
        for cause, n in dead:
            g.add_metric([cause], n)
        yield g
        g = GaugeMetricFamily(
            "guardia_job_lag_seconds", "Age of the oldest runnable job", labels=["queue"]
        )
        for queue, seconds in lag:
            g.add_metric([queue], float(seconds or 0))
        yield g
        g = GaugeMetricFamily("guardia_alerts_firing", "Firing alerts", labels=["rule"])
        for rule, n in firing:
            g.add_metric([rule], n)
        yield g
        g = GaugeMetricFamily(
            "guardia_config_check_ok", "1 if the latest check passed", labels=["target"]
        )
        for target, ok in checks:
            g.add_metric([target], 1.0 if ok else 0.0)
        yield g
        g = GaugeMetricFamily("guardia_incidents_active", "Active incidents", labels=["runbook"])
        for runbook, n in active:
            g.add_metric([runbook], n)
        yield g
        yield incident_histogram(durations)
        g = GaugeMetricFamily(
            "guardia_recon_match_rate",
            "Matched share of the latest reconciliation run",
            labels=["account", "by"],
        )
        for account, by_count, by_amount in recon:
            g.add_metric([account, "count"], float(by_count or 0))
            g.add_metric([account, "amount"], float(by_amount or 0))
        yield g
        yield CounterMetricFamily(
            "guardia_dead_letters",
            "Jobs that became dead letters, ever",
            value=float(dead_total[0] if dead_total else 0),
        )
        yield GaugeMetricFamily(
            "guardia_webhook_events_unprocessed",
            "Stored events not processed yet",
            value=float(unprocessed[0] if unprocessed else 0),
        )


class Metrics:
    """Guardia's metrics, on a registry of their own (one per process)."""

    def __init__(self, database_url: str | None = None) -> None:
        self.registry = CollectorRegistry()
        self.webhooks = Counter(
            "guardia_webhooks_received",
            "Webhook deliveries by provider and outcome",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.signature_failures = Counter(
            "guardia_webhook_signature_failures",
            "Webhook deliveries whose signature did not verify",
            ["provider"],
            registry=self.registry,
        )
        self.processing_latency = Histogram(
            "guardia_webhook_processing_seconds",
            "From webhook receipt to its effect committed",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.provider_calls = Counter(
            "guardia_recovery_actions",
            "Recovery actions run (replay, pull, resend, sweep)",
            ["kind"],
            registry=self.registry,
        )
        self.postings = Counter(
            "guardia_postings",
            "Journal entries posted to Odoo, by kind and how (posted, adopted)",
            ["kind", "how"],
            registry=self.registry,
        )
        self.jobs = Counter(
            "guardia_jobs_finished",
            "Background jobs finished by task and outcome",
            ["task", "outcome"],
            registry=self.registry,
        )
        if database_url is not None:
            self.registry.register(DatabaseGauges(database_url))
