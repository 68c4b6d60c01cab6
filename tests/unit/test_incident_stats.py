"""MTTR and friends: nearest-rank median and p90, per runbook and overall, on hand-computed data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from guardia.core.errors import InvalidInput
from guardia.incidents.model import Incident, Lifecycle, Runbook, Severity
from guardia.incidents.stats import METRICS, mttr_report, nearest_rank

SINCE = datetime(2026, 3, 1, tzinfo=UTC)
UNTIL = datetime(2026, 4, 1, tzinfo=UTC)


def _m(n: float) -> timedelta:
    return timedelta(minutes=n)


def _incident(
    runbook: Runbook,
    day: int,
    *,
    impact: int | None = None,
    ack: int | None = None,
    mitigated: int | None = None,
    resolved: int | None = None,
    verified: bool = False,
) -> Incident:
    """An incident detected at noon on a March day; other milestones in minutes from detection."""
    detected = datetime(2026, 3, day, 12, tzinfo=UTC)

    def at(offset: int | None) -> datetime | None:
        return None if offset is None else detected + _m(offset)

    return Incident(
        id=day,
        title=f"incident on day {day}",
        severity=Severity.SEV2,
        runbook=runbook,
        lifecycle=Lifecycle(
            impact_started_at=at(impact),
            detected_at=detected,
            acknowledged_at=at(ack),
            mitigated_at=at(mitigated),
            resolved_at=at(resolved),
            resolved_verified=verified,
        ),
    )


WEBHOOK = Runbook.WEBHOOK_MISSING
ODOO = Runbook.ODOO_POSTING_FAILS

# Hand-computed (minutes):        TTD  TTA  TTM  TTR
#   a  webhook, verified           10    5   30   60
#   b  webhook, manual resolve      2    1   10   20
#   c  webhook, no impact start     -   30    -    -   (resolved, unverified)
#   d  odoo, verified              60   10  120  300
#   e  odoo, still open             4    -    -    -
INCIDENTS = [
    _incident(WEBHOOK, 2, impact=-10, ack=5, mitigated=20, resolved=50, verified=True),
    _incident(WEBHOOK, 3, impact=-2, ack=1, mitigated=8, resolved=18),
    _incident(WEBHOOK, 4, ack=30, resolved=100),
    _incident(ODOO, 5, impact=-60, ack=10, mitigated=60, resolved=240, verified=True),
    _incident(ODOO, 6, impact=-4),
]


def test_nearest_rank_median_and_p90_of_one_to_ten_are_five_and_nine() -> None:
    values = [_m(n) for n in range(10, 0, -1)]
    assert nearest_rank(values, 50) == _m(5)
    assert nearest_rank(values, 90) == _m(9)


def test_nearest_rank_p90_of_twenty_values_is_the_eighteenth() -> None:
    assert nearest_rank([_m(n) for n in range(1, 21)], 90) == _m(18)


def test_the_median_of_an_even_count_is_the_lower_middle_value() -> None:
    assert nearest_rank([_m(40), _m(10), _m(30), _m(20)], 50) == _m(20)


def test_every_percentile_of_one_value_is_that_value() -> None:
    assert nearest_rank([_m(7)], 50) == nearest_rank([_m(7)], 90) == _m(7)


def test_the_hundredth_percentile_is_the_maximum() -> None:
    assert nearest_rank([_m(3), _m(9), _m(1)], 100) == _m(9)


@pytest.mark.parametrize("percent", [0, 101, -5])
def test_a_percent_outside_one_to_a_hundred_is_refused(percent: int) -> None:
    with pytest.raises(InvalidInput):
        nearest_rank([_m(1)], percent)


def test_a_percentile_of_nothing_is_refused() -> None:
    with pytest.raises(InvalidInput):
        nearest_rank([], 50)


def test_metrics_follow_operations_md_anchoring_mitigate_and_resolve_at_impact_start() -> None:
    anchors = {metric.name: (metric.start, metric.end) for metric in METRICS}
    assert anchors == {
        "time_to_detect": ("impact_started_at", "detected_at"),
        "time_to_acknowledge": ("detected_at", "acknowledged_at"),
        "time_to_mitigate": ("impact_started_at", "mitigated_at"),
        "time_to_resolve": ("impact_started_at", "resolved_at"),
    }


def test_overall_figures_match_the_hand_computed_table() -> None:
    overall = mttr_report(INCIDENTS, SINCE, UNTIL).overall
    assert overall.incidents == 5
    ttd = overall.metrics["time_to_detect"]
    assert (ttd.count, ttd.missing) == (4, 1)
    assert (ttd.median, ttd.p90, ttd.mean) == (_m(4), _m(60), _m(19))  # [2, 4, 10, 60]
    tta = overall.metrics["time_to_acknowledge"]
    assert (tta.count, tta.missing) == (4, 1)
    assert (tta.median, tta.p90, tta.mean) == (_m(5), _m(30), _m(11.5))  # [1, 5, 10, 30]
    ttm = overall.metrics["time_to_mitigate"]
    assert (ttm.count, ttm.missing) == (3, 2)
    assert (ttm.median, ttm.p90) == (_m(30), _m(120))  # [10, 30, 120]
    assert ttm.mean == timedelta(seconds=3200)  # 160 min / 3
    ttr = overall.metrics["time_to_resolve"]
    assert (ttr.count, ttr.missing) == (3, 2)
    assert (ttr.median, ttr.p90) == (_m(60), _m(300))  # [20, 60, 300]
    assert ttr.mean == timedelta(seconds=7600)  # 380 min / 3


def test_an_incident_without_impact_start_has_no_resolve_time_but_is_counted_missing() -> None:
    report = mttr_report([INCIDENTS[2]], SINCE, UNTIL)
    ttr = report.overall.metrics["time_to_resolve"]
    assert (ttr.count, ttr.missing, ttr.median, ttr.p90, ttr.mean) == (0, 1, None, None, None)
    assert report.overall.metrics["time_to_acknowledge"].median == _m(30)


def test_per_runbook_figures_match_the_hand_computed_table() -> None:
    per_runbook = mttr_report(INCIDENTS, SINCE, UNTIL).per_runbook
    assert list(per_runbook) == [WEBHOOK, ODOO]
    webhook = per_runbook[WEBHOOK]
    assert webhook.incidents == 3
    assert webhook.metrics["time_to_detect"].median == _m(2)  # [2, 10]: lower middle
    assert webhook.metrics["time_to_detect"].p90 == _m(10)
    assert webhook.metrics["time_to_resolve"].median == _m(20)  # [20, 60]
    assert webhook.metrics["time_to_resolve"].missing == 1
    odoo = per_runbook[ODOO]
    assert odoo.metrics["time_to_detect"].median == _m(4)  # [4, 60]
    assert odoo.metrics["time_to_acknowledge"].count == 1
    assert odoo.metrics["time_to_resolve"].p90 == _m(300)


def test_unverified_resolutions_are_counted() -> None:
    report = mttr_report(INCIDENTS, SINCE, UNTIL)
    assert report.overall.unverified_resolutions == 2
    assert report.per_runbook[WEBHOOK].unverified_resolutions == 2
    assert report.per_runbook[ODOO].unverified_resolutions == 0


def test_the_period_selects_by_detection_and_excludes_its_end() -> None:
    before = Incident(
        id=90,
        title="before",
        severity=Severity.SEV3,
        runbook=WEBHOOK,
        lifecycle=Lifecycle(detected_at=SINCE - timedelta(seconds=1)),
    )
    at_end = Incident(
        id=91,
        title="at the end",
        severity=Severity.SEV3,
        runbook=ODOO,
        lifecycle=Lifecycle(detected_at=UNTIL),
    )
    at_start = Incident(
        id=92,
        title="at the start",
        severity=Severity.SEV3,
        runbook=ODOO,
        lifecycle=Lifecycle(detected_at=SINCE),
    )
    report = mttr_report([before, at_end, at_start], SINCE, UNTIL)
    assert report.overall.incidents == 1
    assert list(report.per_runbook) == [ODOO]


def test_an_empty_period_reports_zero_incidents_and_no_runbooks() -> None:
    report = mttr_report(INCIDENTS, UNTIL, UNTIL)
    assert report.overall.incidents == 0
    assert report.overall.metrics["time_to_resolve"].median is None
    assert report.per_runbook == {}


def test_the_report_as_a_dict_gives_seconds_and_its_definitions() -> None:
    data = mttr_report(INCIDENTS, SINCE, UNTIL).as_dict()
    assert data["percentile_method"] == "nearest-rank"
    assert data["definitions"]["time_to_resolve"] == "resolved_at - impact_started_at"
    assert data["overall"]["metrics"]["time_to_resolve"] == {
        "count": 3,
        "missing": 2,
        "median_seconds": 3600.0,
        "p90_seconds": 18000.0,
        "mean_seconds": 7600.0,
    }
    assert list(data["per_runbook"]) == ["1", "2"]
    assert data["per_runbook"]["2"]["incidents"] == 2
    assert data["since"] == "2026-03-01T00:00:00+00:00"


def test_a_naive_or_inverted_period_is_refused() -> None:
    with pytest.raises(InvalidInput, match="timezone-aware"):
        mttr_report(INCIDENTS, datetime(2026, 3, 1), UNTIL)  # noqa: DTZ001
    with pytest.raises(InvalidInput, match="before since"):
        mttr_report(INCIDENTS, UNTIL, SINCE)
