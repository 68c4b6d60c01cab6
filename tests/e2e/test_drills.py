"""`guardia drill all` against the real `guardia up` (API, worker, scheduler, simulators on
127.0.0.1): every drill ends in a verified recovery and a closed incident with its evidence."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from tests.e2e.conftest import Running

pytestmark = pytest.mark.e2e

STATS = (sys.executable, "-m", "guardia.entrypoints", "incidents", "stats")


def test_every_drill_recovers_verified_with_complete_evidence(guardia_up: Running) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "guardia.entrypoints", "drill", "all", "--json", "--timeout", "240"],
        env=guardia_up.env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    reports = {r["name"]: r for r in json.loads(done.stdout)}
    assert set(reports) == {"conekta-webhook", "odoo-posting", "recon-orphan", "backups"}
    with guardia_up.guardia() as api:
        for name, report in reports.items():
            assert report["recovered"], (name, report)
            assert report["verified"], (name, report)
            assert report["evidence_complete"], (name, report["evidence_missing"])
            assert report["time_to_detect_s"] <= report["time_to_verified_recovery_s"]
            incident = api.get(f"/api/incidents/{report['incident_id']}").json()
            assert incident["status"] == "closed", (name, incident["status"])
            assert incident["resolved_verified"] is True
            assert any(incident["external_ids"].values()), name
            notes = [e["summary"] for e in incident["timeline"] if e["kind"] == "note"]
            if not report["automatic_fix"]:
                assert any("(applied)" in n for n in notes), (name, notes)
    # The drills' figures joined the statistics, tagged as drills: MTTD and MTTR per runbook.
    stats = subprocess.run(
        [*STATS, "--origin", "drill", "--json"],
        env=guardia_up.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert stats.returncode == 0, stats.stderr[-3000:]
    per_runbook = json.loads(stats.stdout)["per_runbook"]
    assert set(per_runbook) == {"1", "2", "3", "7"}
    for runbook, group in per_runbook.items():
        for metric in ("time_to_detect", "time_to_resolve"):
            figures = group["metrics"][metric]
            assert figures["median_seconds"] is not None, (runbook, metric)
            assert figures["p90_seconds"] is not None, (runbook, metric)
    # The faults are gone: the stack is healthy again for whatever runs next.
    with httpx.Client(base_url=guardia_up.sim, timeout=10) as sim:
        assert sim.get("/_sandbox/faults").json()["data"] == []
