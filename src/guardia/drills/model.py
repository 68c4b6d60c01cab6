"""A drill's report: when the fault went in, when Guardia detected it, mitigated it and verified
the recovery, and whether the incident carries the runbook's five mandatory fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 1)


@dataclass
class DrillReport:
    """One drill's outcome; times are seconds from the fault's injection."""

    name: str
    runbook: str
    fault: str
    injected_at: datetime
    detected_at: datetime | None = None
    mitigated_at: datetime | None = None
    recovered_at: datetime | None = None
    verified: bool = False
    incident_id: int | None = None
    evidence_missing: list[str] = field(default_factory=list)
    automatic_fix: bool = True
    steps: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def time_to_detect(self) -> float | None:
        """Seconds from injection to the incident's detected_at."""
        return _seconds(self.injected_at, self.detected_at)

    @property
    def time_to_mitigate(self) -> float | None:
        """Seconds from injection to the incident's mitigated_at."""
        return _seconds(self.injected_at, self.mitigated_at)

    @property
    def time_to_recover(self) -> float | None:
        """Seconds from injection to the verified resolution."""
        return _seconds(self.injected_at, self.recovered_at)

    @property
    def recovered(self) -> bool:
        """Recovered, and verified by the runbook's checks."""
        return self.verified and self.recovered_at is not None and self.error is None

    @property
    def evidence_complete(self) -> bool:
        """The incident has all five mandatory fields."""
        return self.incident_id is not None and not self.evidence_missing

    def step(self, text: str) -> None:
        """Record what the drill did."""
        self.steps.append(text)

    def as_dict(self) -> dict[str, Any]:
        """Serialisable form."""
        return {
            "name": self.name,
            "runbook": self.runbook,
            "fault": self.fault,
            "incident_id": self.incident_id,
            "injected_at": self.injected_at.isoformat(),
            "time_to_detect_s": self.time_to_detect,
            "time_to_mitigate_s": self.time_to_mitigate,
            "time_to_verified_recovery_s": self.time_to_recover,
            "recovered": self.recovered,
            "verified": self.verified,
            "evidence_complete": self.evidence_complete,
            "evidence_missing": self.evidence_missing,
            "automatic_fix": self.automatic_fix,
            "steps": self.steps,
            "error": self.error,
        }
