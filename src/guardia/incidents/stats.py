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
Incidents carry their origin (`live`, or `drill` for faults `guardia drill` injected): a report
covers one origin or all, and always breaks the figures down per origin so drills stay
separable. `compare` sets a period beside the equal period just before it, so "did this change
cut MTTR?" is one call.

Percentiles are **nearest-rank**: the p-th percentile of n sorted values is the value at rank
ceil(p/100 * n), so every figure is one incident's real duration (PostgreSQL's
`percentile_disc` gives the same). The median is the nearest-rank p50, which for an even count is
the lower of the two middle values. The mean is reported too, because it is asked for, but never
alone (operations.md §1.1): one long incident dominates it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from guardia.core.errors import InvalidInput
from guardia.incidents.model import Incident, Origin, Runbook

__all__ = [
    "METRICS",
    "Comparison",
    "GroupStats",
    "Metric",
    "MetricSummary",
    "MttrReport",
    "compare",
    "durations",
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


def durations(incident: Incident) -> dict[str, float | None]:
    """Every metric of one incident, in seconds (None where a timestamp is missing)."""
    return {metric.name: _seconds(metric.duration(incident)) for metric in METRICS}


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
    per_origin: dict[Origin, GroupStats] = dataclasses.field(default_factory=dict)
    origin: Origin | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the definitions it was computed by."""
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "origin": self.origin.value if self.origin else "all",
            "period_selects": "since <= detected_at < until",
            "percentile_method": "nearest-rank",
            "definitions": {metric.name: f"{metric.end} - {metric.start}" for metric in METRICS},
            "overall": self.overall.as_dict(),
            "per_runbook": {
                runbook.value: stats.as_dict() for runbook, stats in self.per_runbook.items()
            },
            "per_origin": {
                origin.value: stats.as_dict() for origin, stats in self.per_origin.items()
            },
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    """A period's report beside the equal period just before it."""

    current: MttrReport
    previous: MttrReport

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, with each metric's median and p90 change (current - previous, in
        seconds; None where either period has no figure)."""
        groups: dict[str, tuple[GroupStats | None, GroupStats | None]] = {
            "overall": (self.current.overall, self.previous.overall)
        }
        for runbook in Runbook:
            now, before = (
                self.current.per_runbook.get(runbook),
                self.previous.per_runbook.get(runbook),
            )
            if now is not None or before is not None:
                groups[runbook.value] = (now, before)
        return {
            "current": self.current.as_dict(),
            "previous": self.previous.as_dict(),
            "change": {name: _change(now, before) for name, (now, before) in groups.items()},
        }


def _change(now: GroupStats | None, before: GroupStats | None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for metric in METRICS:
        a = now.metrics[metric.name] if now else None
        b = before.metrics[metric.name] if before else None
        out[metric.name] = {
            f"{figure}_seconds": _difference(
                getattr(a, figure) if a else None, getattr(b, figure) if b else None
            )
            for figure in ("median", "p90")
        }
    return out


def _difference(a: timedelta | None, b: timedelta | None) -> float | None:
    return None if a is None or b is None else (a - b).total_seconds()


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


def mttr_report(
    incidents: Iterable[Incident], since: datetime, until: datetime, *, origin: Origin | None = None
) -> MttrReport:
    """Report every metric over incidents detected in [since, until) (of one origin, or all),
    overall, per runbook and per origin."""
    for name, moment in (("since", since), ("until", until)):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise InvalidInput(f"{name} must be timezone-aware")
    if until < since:
        raise InvalidInput("until must not be before since")
    chosen = [
        i
        for i in incidents
        if since <= i.lifecycle.detected_at < until and origin in (None, i.origin)
    ]
    per_runbook = {
        runbook: summarise(group)
        for runbook in Runbook
        if (group := [i for i in chosen if i.runbook is runbook])
    }
    per_origin = {
        kind: summarise(group)
        for kind in Origin
        if (group := [i for i in chosen if i.origin is kind])
    }
    return MttrReport(
        since=since,
        until=until,
        overall=summarise(chosen),
        per_runbook=per_runbook,
        per_origin=per_origin,
        origin=origin,
    )


def compare(
    incidents: Iterable[Incident], until: datetime, window: timedelta, *, origin: Origin | None
) -> Comparison:
    """[until - window, until) beside [until - 2 window, until - window)."""
    if window <= timedelta(0):
        raise InvalidInput("the comparison window must be positive")
    found = list(incidents)
    return Comparison(
        current=mttr_report(found, until - window, until, origin=origin),
        previous=mttr_report(found, until - 2 * window, until - window, origin=origin),
    )


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()
