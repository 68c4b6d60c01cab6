"""Runbook 7, "Backups no se ejecutan", as code."""

from __future__ import annotations

from guardia.incidents.model import Runbook as RunbookId
from guardia.runbooks.model import RunbookSpec

SPEC = RunbookSpec(
    name="backups",
    runbook=RunbookId.BACKUPS_NOT_RUNNING,
    title="Backups no se ejecutan",
    checks=(),
    actions=(),
    verification=(),
    prevention=(
        "Alert when no backup succeeded in 24 h (BackupStale)",
        "Weekly restore drill into a scratch database (RestoreDrillStale)",
    ),
)
