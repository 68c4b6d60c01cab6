"""A drill's report: times from the injection, what counts as recovered, and the table."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from rich.console import Console

from guardia.drills.cli import TABLE_WIDTH, report_table
from guardia.drills.model import DrillReport

T0 = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def healed(**kwargs: object) -> DrillReport:
    report = DrillReport("recon-orphan", "3-conciliacion", "orphan line", T0, incident_id=5)
    report.detected_at, report.mitigated_at, report.recovered_at = at(11.24), at(13.4), at(26.8)
    report.verified = True
    for name, value in kwargs.items():
        setattr(report, name, value)
    return report


def test_times_are_seconds_from_the_injection_rounded_to_a_tenth() -> None:
    report = healed()
    assert (report.time_to_detect, report.time_to_mitigate, report.time_to_recover) == (
        11.2,
        13.4,
        26.8,
    )
    assert report.recovered is True
    assert report.evidence_complete is True
    data = report.as_dict()
    assert data["time_to_verified_recovery_s"] == 26.8
    assert data["injected_at"] == T0.isoformat()


def test_an_unverified_resolution_an_error_or_missing_evidence_is_not_a_success() -> None:
    assert healed(verified=False).recovered is False
    assert healed(error="timed out").recovered is False
    missing = healed(evidence_missing=["correlation_id"])
    assert missing.recovered is True
    assert missing.evidence_complete is False
    assert DrillReport("x", "1", "f", T0).evidence_complete is False  # no incident at all


def test_the_table_shows_every_drill_and_marks_what_misses_the_targets() -> None:
    slow = healed(name="conekta-webhook", detected_at=at(75.0), recovered_at=at(400.0))
    failed = DrillReport("backups", "7-backups", "unwritable", T0, error="timed out after 5 s")
    console = Console(file=io.StringIO(), width=TABLE_WIDTH, record=True, color_system="truecolor")
    console.print(report_table([healed(), slow, failed]))
    text = console.export_text(clear=False)
    assert "recon-orphan" in text
    assert "26.8" in text
    assert "FAILED: timed out after 5" in text
    assert text.count("verified") == 2
    styled = console.export_text(styles=True)
    assert "75.0" in styled
    assert "\x1b[31m75.0" in styled or "\x1b[1;31m75.0" in styled  # red: detect > 60 s
    assert "\x1b[31m26.8" not in styled
