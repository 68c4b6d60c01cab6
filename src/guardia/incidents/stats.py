"""MTTR and friends: time to detect, acknowledge, mitigate and resolve, as median and p90.

Definitions follow `shared/docs/operations.md` §1.1, which takes the incident.io and FireHydrant
anchor over PagerDuty's, Datadog's and Four Keys' (§1.2: "measure from impact started, not from
declaration"):

- time_to_detect      = detected_at     - impact_started_at
- time_to_acknowledge = acknowledged_at - detected_at
- time_to_mitigate    = mitigated_at    - impact_started_at
- time_to_resolve     = resolved_at     - impact_started_at

An incident lacking either timestamp of a metric is left out of that metric and counted in its
`missing` figure, never guessed (an incident with no `impact_started_at` has no TTD, TTM or TTR).
The period selects incidents by `detected_at`, half-open: `since ≤ detected_at < until`.

Percentiles are **nearest-rank**: the p-th percentile of n sorted values is the value at rank
ceil(p/100 * n), so every figure is one incident's real duration (PostgreSQL's
`percentile_disc` gives the same). The median is the nearest-rank p50, which for an even count is
the lower of the two middle values. The mean is reported too, because it is asked for, but never
alone (operations.md §1.1): one long incident dominates it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from guardia.core.errors import InvalidInput
from guardia.incidents.model import Incident, Runbook

__all__ = [
    "METRICS",
    "GroupStats",
    "Metric",
    "MetricSummary",
    "MttrReport",
    "mttr_report",
    "nearest_rank",
    "summarise",
]


@dataclass(frozen=True, slots=True)
class Metric:
    """A duration between two lifecycle timestamps."""

    name: str
    start: str
    end: str

    def duration(self, incident: Incident) -> timedelta | None:
        """The incident's duration for this metric, or None if a timestamp is missing."""
        start: datetime | None = getattr(incident.lifecycle, self.start)
        end: datetime | None = getattr(incident.lifecycle, self.end)
        if start is None or end is None:
            return None
        return end - start


METRICS: tuple[Metric, ...] = (
    Metric("time_to_detect", "impact_started_at", "detected_at"),
    Metric("time_to_acknowledge", "detected_at", "acknowledged_at"),
    Metric("time_to_mitigate", "impact_started_at", "mitigated_at"),
    Metric("time_to_resolve", "impact_started_at", "resolved_at"),
)


@dataclass(frozen=True, slots=True)
class MetricSummary:
    """One metric over a group of incidents: how many counted, how many lacked a timestamp."""

    count: int
    missing: int
    median: timedelta | None
    p90: timedelta | None
    mean: timedelta | None

    def as_dict(self) -> dict[str, int | float | None]:
        """JSON-ready form with durations in seconds."""
        return {
            "count": self.count,
            "missing": self.missing,
            "median_seconds": _seconds(self.median),
            "p90_seconds": _seconds(self.p90),
            "mean_seconds": _seconds(self.mean),
        }


@dataclass(frozen=True, slots=True)
class GroupStats:
    """Every metric over one group of incidents (one runbook, or all of them)."""

    incidents: int
    unverified_resolutions: int
    metrics: dict[str, MetricSummary]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "incidents": self.incidents,
            "unverified_resolutions": self.unverified_resolutions,
            "metrics": {name: summary.as_dict() for name, summary in self.metrics.items()},
        }


@dataclass(frozen=True, slots=True)
class MttrReport:
    """MTTR and friends over a period, overall and per runbook (only runbooks with incidents)."""

    since: datetime
    until: datetime
    overall: GroupStats
    per_runbook: dict[Runbook, GroupStats]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the definitions it was computed by."""
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "period_selects": "since <= detected_at < until",
            "percentile_method": "nearest-rank",
            "definitions": {metric.name: f"{metric.end} - {metric.start}" for metric in METRICS},
            "overall": self.overall.as_dict(),
            "per_runbook": {
                runbook.value: stats.as_dict() for runbook, stats in self.per_runbook.items()
            },
        }


def nearest_rank(values: Sequence[timedelta], percent: int) -> timedelta:
    """Return the nearest-rank percentile: the sorted value at rank ceil(percent/100 * n)."""
    if not values:
        raise InvalidInput("a percentile needs at least one value")
    if not 0 < percent <= 100:
        raise InvalidInput("percent must be in (0, 100]")
    ordered = sorted(values)
    rank = -(-percent * len(ordered) // 100)  # integer ceiling: no float rounding
    return ordered[rank - 1]


def summarise(incidents: Sequence[Incident]) -> GroupStats:
    """Compute every metric over a group of incidents, whatever their dates."""
    metrics: dict[str, MetricSummary] = {}
    for metric in METRICS:
        durations = [d for d in (metric.duration(i) for i in incidents) if d is not None]
        metrics[metric.name] = MetricSummary(
            count=len(durations),
            missing=len(incidents) - len(durations),
            median=nearest_rank(durations, 50) if durations else None,
            p90=nearest_rank(durations, 90) if durations else None,
            mean=sum(durations, timedelta()) / len(durations) if durations else None,
        )
    unverified = sum(
        1
        for i in incidents
        if i.lifecycle.resolved_at is not None and not i.lifecycle.resolved_verified
    )
    return GroupStats(incidents=len(incidents), unverified_resolutions=unverified, metrics=metrics)


def mttr_report(incidents: Iterable[Incident], since: datetime, until: datetime) -> MttrReport:
    """Report every metric over incidents detected in [since, until), overall and per runbook."""
    for name, moment in (("since", since), ("until", until)):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise InvalidInput(f"{name} must be timezone-aware")
    if until < since:
        raise InvalidInput("until must not be before since")
    chosen = [i for i in incidents if since <= i.lifecycle.detected_at < until]
    per_runbook = {
        runbook: summarise(group)
        for runbook in Runbook
        if (group := [i for i in chosen if i.runbook is runbook])
    }
    return MttrReport(since=since, until=until, overall=summarise(chosen), per_runbook=per_runbook)


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()
