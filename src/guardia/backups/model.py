"""Backups as plain data: names, manifests, retention, freshness and size rules, drill reports.

Pure Python (no database, no S3): every rule here takes `now` and the facts it judges.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from guardia.core.clock import local_date

MANIFEST_VERSION = 1
DUMP_FILE = "dump.pgdump"
MANIFEST_FILE = "manifest.json"
COMPLETE_FILE = "COMPLETE"


def backup_name(now: datetime) -> str:
    """A sortable, unique name for a backup started at `now` (UTC)."""
    if now.tzinfo is None:
        raise ValueError("naive datetime")
    return f"guardia-{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def dump_key(name: str) -> str:
    """Key of a backup's dump, relative to the target's root."""
    return f"{name}/{DUMP_FILE}"


def manifest_key(name: str) -> str:
    """Key of a backup's manifest."""
    return f"{name}/{MANIFEST_FILE}"


def complete_key(name: str) -> str:
    """Key of the marker that makes a backup look complete; written last."""
    return f"{name}/{COMPLETE_FILE}"


@dataclass(frozen=True, slots=True)
class Manifest:
    """What was dumped, stored beside the dump: enough to verify and drill without our DB."""

    name: str
    database: str
    started_at: str
    finished_at: str
    size_bytes: int
    sha256: str
    server_version: str
    server_version_num: int
    pg_dump_version: str
    table_rows: dict[str, int]
    money_checksums: dict[str, str]
    schema_sha256: str
    alembic_revision: str | None
    compress: str | None = None
    format_version: int = MANIFEST_VERSION

    def to_json(self) -> dict[str, Any]:
        """Serialisable form."""
        return asdict(self)

    def to_bytes(self) -> bytes:
        """Canonical JSON bytes (sorted keys) as stored beside the dump."""
        return json.dumps(self.to_json(), sort_keys=True, indent=2).encode()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        """Parse a stored manifest (unknown keys are ignored)."""
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def completion_marker(manifest_bytes: bytes, dump_sha256: str, completed_at: datetime) -> bytes:
    """The COMPLETE marker: binds the dump and the manifest by their hashes."""
    return json.dumps(
        {
            "dump_sha256": dump_sha256,
            "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
            "completed_at": completed_at.isoformat(),
        },
        sort_keys=True,
    ).encode()


def normalise_schema(sql: str) -> str:
    """A schema-only dump without what varies between runs: comments, SET lines, and the
    `\\restrict` keys newer pg_dump versions draw at random for every run."""
    kept = []
    for line in sql.splitlines():
        stripped = line.strip()
        if (
            not stripped
            or stripped.startswith("--")
            or stripped.startswith(("\\restrict", "\\unrestrict"))
            or stripped.startswith("SET ")
            or stripped.startswith("SELECT pg_catalog.set_config(")
        ):
            continue
        kept.append(line.rstrip())
    return "\n".join(kept) + "\n"


def schema_hash(sql: str) -> str:
    """SHA-256 of the normalised schema dump."""
    return hashlib.sha256(normalise_schema(sql).encode()).hexdigest()


# --- retention -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredBackup:
    """A successful backup still present in the target, as retention sees it."""

    id: int
    finished_at: datetime
    verified: bool
    name: str = ""


def select_retained(backups: Iterable[StoredBackup], keep_daily: int, keep_weekly: int) -> set[int]:
    """Ids to keep: the newest backup of each of the last `keep_daily` days that have one, of
    each of the last `keep_weekly` ISO weeks, the newest backup, and the newest verified one.

    Days and weeks are business dates in America/Mexico_City.
    """
    ordered = sorted(backups, key=lambda b: (b.finished_at, b.id), reverse=True)
    keep: set[int] = set()
    if not ordered:
        return keep
    keep.add(ordered[0].id)
    days: list[object] = []
    weeks: list[object] = []
    for b in ordered:
        day = local_date(b.finished_at)
        week = day.isocalendar()[:2]
        if day not in days and len(days) < keep_daily:
            days.append(day)
            keep.add(b.id)
        if week not in weeks and len(weeks) < keep_weekly:
            weeks.append(week)
            keep.add(b.id)
    verified = [b for b in ordered if b.verified]
    if verified:
        keep.add(verified[0].id)
    return keep


# --- freshness and size ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """Thresholds of the backup alerts."""

    max_age: timedelta = timedelta(hours=24)
    min_size_ratio: float = 0.5
    drill_max_age: timedelta = timedelta(days=8)


@dataclass(frozen=True, slots=True)
class BackupFacts:
    """What the alerts judge, read from the backups and restore_drills tables."""

    last_success_at: datetime | None = None
    last_size_bytes: int | None = None
    last_duration_seconds: float | None = None
    previous_sizes: tuple[int, ...] = ()
    failures_total: int = 0
    last_failure_at: datetime | None = None
    last_drill_success_at: datetime | None = None
    last_drill_duration_seconds: float | None = None
    last_drill_ok: bool | None = None
    installed_at: datetime | None = None  # when the database was set up (migration 0009)

    @property
    def recent_median_size(self) -> float | None:
        """Median size of the successful backups before the last one."""
        return median(self.previous_sizes)


def median(values: Sequence[int]) -> float | None:
    """The median, or None for no values."""
    return float(statistics.median(values)) if values else None


@dataclass(frozen=True, slots=True)
class HealthAlert:
    """One backup alert evaluated at an instant."""

    name: str
    firing: bool
    value: float
    threshold: float
    detail: str
    since: datetime | None = None  # when the condition began, from the rows: the impact start


BACKUP_STALE = "BackupStale"
BACKUP_TOO_SMALL = "BackupTooSmall"
BACKUP_FAILING = "BackupFailing"
RESTORE_DRILL_STALE = "RestoreDrillStale"
NEVER = -1.0  # the value of an age alert when the thing never happened (finite: JSON-safe)


def _age(at: datetime | None, now: datetime) -> float | None:
    return None if at is None else (now - at).total_seconds()


def _never(
    name: str, what: str, installed_at: datetime | None, limit: timedelta, now: datetime
) -> HealthAlert:
    """The alert when the thing never happened: a fresh install gets `limit` from its install
    time to run it (the first backup, the first drill) before that counts as stale."""
    seconds = limit.total_seconds()
    if installed_at is None:
        return HealthAlert(name, True, NEVER, seconds, f"{what} (install time unknown)")
    due = installed_at + limit
    if now < due:
        return HealthAlert(
            name, False, NEVER, seconds, f"{what} yet; install grace until {due.isoformat()}"
        )
    return HealthAlert(name, True, NEVER, seconds, f"{what} since install", since=due)


def backup_stale(facts: BackupFacts, policy: HealthPolicy, now: datetime) -> HealthAlert:
    """Fires when no backup succeeded within `max_age` (or ever, once `max_age` has passed
    since the install)."""
    limit = policy.max_age.total_seconds()
    age = _age(facts.last_success_at, now)
    if age is None or facts.last_success_at is None:
        return _never(
            BACKUP_STALE, "no backup has ever succeeded", facts.installed_at, policy.max_age, now
        )
    return HealthAlert(
        BACKUP_STALE,
        age >= limit,
        age,
        limit,
        f"last successful backup {age / 3600:.1f} h ago (limit {limit / 3600:.1f} h)",
        since=facts.last_success_at + policy.max_age,
    )


def backup_too_small(facts: BackupFacts, policy: HealthPolicy) -> HealthAlert:
    """Fires when the last backup is empty or smaller than `min_size_ratio` times the median of the
    previous ones (Barman's `last_backup_minimum_size`, relative)."""
    size = facts.last_size_bytes
    med = facts.recent_median_size
    if size is None:
        return HealthAlert(BACKUP_TOO_SMALL, False, 0.0, policy.min_size_ratio, "no backup yet")
    if size <= 0:
        return HealthAlert(
            BACKUP_TOO_SMALL,
            True,
            0.0,
            policy.min_size_ratio,
            "empty backup",
            since=facts.last_success_at,
        )
    if not med:
        return HealthAlert(
            BACKUP_TOO_SMALL, False, 1.0, policy.min_size_ratio, "no earlier backups to compare"
        )
    ratio = size / med
    return HealthAlert(
        BACKUP_TOO_SMALL,
        ratio < policy.min_size_ratio,
        ratio,
        policy.min_size_ratio,
        f"last backup {size} bytes = {ratio:.2f} x the median of the previous "
        f"{len(facts.previous_sizes)} ({med:.0f} bytes)",
        since=facts.last_success_at,
    )


def drill_stale(facts: BackupFacts, policy: HealthPolicy, now: datetime) -> HealthAlert:
    """Fires when no restore drill succeeded within `drill_max_age` (or ever, once
    `drill_max_age` has passed since the install)."""
    limit = policy.drill_max_age.total_seconds()
    age = _age(facts.last_drill_success_at, now)
    if age is None or facts.last_drill_success_at is None:
        return _never(
            RESTORE_DRILL_STALE,
            "no restore drill has ever passed",
            facts.installed_at,
            policy.drill_max_age,
            now,
        )
    return HealthAlert(
        RESTORE_DRILL_STALE,
        age >= limit,
        age,
        limit,
        f"last passing restore drill {age / 86400:.1f} days ago (limit {limit / 86400:.1f})",
        since=facts.last_drill_success_at + policy.drill_max_age,
    )


def backup_failing(facts: BackupFacts) -> HealthAlert:
    """Fires when the most recent finished run failed (before the freshness limit is reached)."""
    failed = facts.last_failure_at
    firing = failed is not None and (
        facts.last_success_at is None or failed > facts.last_success_at
    )
    return HealthAlert(
        BACKUP_FAILING,
        firing,
        1.0 if firing else 0.0,
        1.0,
        f"the last backup run failed at {failed.isoformat()}"
        if firing and failed
        else "the last backup run succeeded",
        since=failed if firing else None,
    )


def evaluate_health(facts: BackupFacts, policy: HealthPolicy, now: datetime) -> list[HealthAlert]:
    """Every backup alert at `now`."""
    return [
        backup_stale(facts, policy, now),
        backup_failing(facts),
        backup_too_small(facts, policy),
        drill_stale(facts, policy, now),
    ]


# --- drill report ----------------------------------------------------------------------------

PASS = "pass"  # noqa: S105 - a check status, not a password
FAIL = "fail"
SKIP = "skip"


@dataclass(frozen=True, slots=True)
class DrillCheck:
    """One check of the restore drill (reliability.md §1.4, D1-D12)."""

    id: str
    name: str
    status: str
    detail: str
    fix: str = ""


@dataclass
class DrillReport:
    """A restore drill: every check, the timings, and the verdict."""

    backup_id: int
    backup_name: str
    started_at: datetime
    scratch_database: str
    rto_target_seconds: float
    checks: list[DrillCheck] = field(default_factory=list)
    finished_at: datetime | None = None
    rto_seconds: float | None = None
    restore_seconds: float | None = None
    duration_seconds: float | None = None
    id: int | None = None

    @property
    def ok(self) -> bool:
        """True when no check failed (a check may be skipped, with its reason)."""
        return bool(self.checks) and all(c.status != FAIL for c in self.checks)

    def add(self, id_: str, name: str, ok: bool, detail: str, fix: str = "") -> bool:
        """Record a pass or a failure; return ok."""
        self.checks.append(DrillCheck(id_, name, PASS if ok else FAIL, detail, "" if ok else fix))
        return ok

    def skip(self, id_: str, name: str, reason: str) -> None:
        """Record a check that could not run here, and why."""
        self.checks.append(DrillCheck(id_, name, SKIP, reason))

    def to_json(self) -> dict[str, Any]:
        """Serialisable form."""
        return {
            "id": self.id,
            "backup_id": self.backup_id,
            "backup_name": self.backup_name,
            "ok": self.ok,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_seconds": self.duration_seconds,
            "rto_seconds": self.rto_seconds,
            "restore_seconds": self.restore_seconds,
            "rto_target_seconds": self.rto_target_seconds,
            "scratch_database": self.scratch_database,
            "checks": [asdict(c) for c in self.checks],
        }
