"""Rows of `backups` and `restore_drills` (SQLAlchemy Core, synchronous connections; async
callers use `AsyncConnection.run_sync`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, text, update

from guardia.backups.errors import NoBackup
from guardia.backups.model import BackupFacts, DrillReport, StoredBackup
from guardia.backups.tables import backups, restore_drills

LATEST = "latest"


@dataclass(frozen=True, slots=True)
class BackupRow:
    """One backup run."""

    id: int
    name: str
    target: str
    location: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    duration_seconds: float | None
    size_bytes: int | None
    sha256: str | None
    manifest: dict[str, Any] | None
    error: str | None
    verified_at: datetime | None
    verify_status: str | None
    verify_detail: str | None
    deleted_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        """Serialisable summary (the manifest's table counts left out)."""
        return {
            "id": self.id,
            "name": self.name,
            "target": self.target,
            "location": self.location,
            "status": self.status,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "duration_seconds": self.duration_seconds,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "error": self.error,
            "verified_at": _iso(self.verified_at),
            "verify_status": self.verify_status,
            "verify_detail": self.verify_detail,
            "deleted_at": _iso(self.deleted_at),
        }


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def _row(r: Any) -> BackupRow:
    return BackupRow(
        **{c.name: getattr(r, c.name) for c in backups.columns if c.name not in ("correlation_id",)}
    )


def insert_running(
    conn: Connection, name: str, target: str, location: str, at: datetime, correlation_id: str
) -> int:
    """Record a backup that starts now."""
    return int(
        conn.execute(
            insert(backups)
            .values(
                name=name,
                target=target,
                location=location,
                status="running",
                started_at=at,
                correlation_id=correlation_id,
            )
            .returning(backups.c.id)
        ).scalar_one()
    )


def mark_interrupted(conn: Connection, at: datetime) -> list[tuple[int, str]]:
    """Fail every row still `running` (call only while holding the backup lock: their
    processes are gone). Returns (id, name) of each."""
    rows = conn.execute(
        update(backups)
        .where(backups.c.status == "running")
        .values(
            status="failed",
            finished_at=at,
            error="interrupted: the process running this backup stopped before it finished",
        )
        .returning(backups.c.id, backups.c.name)
    ).all()
    return [(int(r.id), str(r.name)) for r in rows]


def finish_success(
    conn: Connection,
    backup_id: int,
    at: datetime,
    duration: float,
    size: int,
    sha256: str,
    manifest: dict[str, Any],
) -> None:
    """Mark a backup successful, with its manifest."""
    conn.execute(
        update(backups)
        .where(backups.c.id == backup_id)
        .values(
            status="success",
            finished_at=at,
            duration_seconds=duration,
            size_bytes=size,
            sha256=sha256,
            manifest=manifest,
        )
    )


def finish_failed(
    conn: Connection, backup_id: int, at: datetime, duration: float, error: str
) -> None:
    """Mark a backup failed, with why."""
    conn.execute(
        update(backups)
        .where(backups.c.id == backup_id)
        .values(status="failed", finished_at=at, duration_seconds=duration, error=error)
    )


def get_backup(conn: Connection, which: int | str) -> BackupRow:
    """A backup by id, or the newest successful one still stored (`latest`)."""
    query = select(backups)
    if which == LATEST:
        query = (
            query.where(backups.c.status == "success", backups.c.deleted_at.is_(None))
            .order_by(backups.c.finished_at.desc(), backups.c.id.desc())
            .limit(1)
        )
    else:
        query = query.where(backups.c.id == int(which))
    row = conn.execute(query).first()
    if row is None:
        raise NoBackup(
            "no successful backup yet: run `guardia backup run`"
            if which == LATEST
            else f"no backup with id {which}"
        )
    return _row(row)


def get_completed(conn: Connection, which: int | str) -> BackupRow:
    """Like get_backup, but only a backup that succeeded and is still stored."""
    row = get_backup(conn, which)
    if row.status != "success":
        raise NoBackup(f"backup {row.id} did not complete ({row.status}): nothing to read back")
    if row.deleted_at is not None:
        raise NoBackup(f"backup {row.id} was removed by retention on {row.deleted_at.isoformat()}")
    return row


def list_backups(
    conn: Connection, *, include_all: bool = False, limit: int = 100
) -> list[BackupRow]:
    """Newest first: successful ones still stored, or every run with `include_all`."""
    query = select(backups).order_by(backups.c.started_at.desc(), backups.c.id.desc()).limit(limit)
    if not include_all:
        query = query.where(backups.c.status == "success", backups.c.deleted_at.is_(None))
    return [_row(r) for r in conn.execute(query).all()]


def stored_backups(conn: Connection, location: str) -> list[StoredBackup]:
    """Successful backups still in the target at `location`, as retention sees them."""
    rows = conn.execute(
        select(backups.c.id, backups.c.name, backups.c.finished_at, backups.c.verify_status).where(
            backups.c.status == "success",
            backups.c.deleted_at.is_(None),
            backups.c.location == location,
        )
    ).all()
    return [
        StoredBackup(int(r.id), r.finished_at, r.verify_status == "ok", str(r.name)) for r in rows
    ]


def mark_deleted(conn: Connection, ids: Sequence[int], at: datetime) -> None:
    """Record that retention removed these backups from the target (rows stay as evidence)."""
    if ids:
        conn.execute(update(backups).where(backups.c.id.in_(list(ids))).values(deleted_at=at))


def set_verified(conn: Connection, backup_id: int, at: datetime, status: str, detail: str) -> None:
    """Store a verification result (ok, corrupt, missing, error)."""
    conn.execute(
        update(backups)
        .where(backups.c.id == backup_id)
        .values(verified_at=at, verify_status=status, verify_detail=detail)
    )


def insert_drill(
    conn: Connection, report: DrillReport, error: str | None, correlation_id: str
) -> int:
    """Store a restore drill report."""
    finished = report.finished_at or report.started_at
    return int(
        conn.execute(
            insert(restore_drills)
            .values(
                backup_id=report.backup_id,
                backup_name=report.backup_name,
                started_at=report.started_at,
                finished_at=finished,
                ok=report.ok,
                duration_seconds=report.duration_seconds
                if report.duration_seconds is not None
                else (finished - report.started_at).total_seconds(),
                rto_seconds=report.rto_seconds,
                restore_seconds=report.restore_seconds,
                rto_target_seconds=report.rto_target_seconds,
                scratch_database=report.scratch_database,
                checks=report.to_json()["checks"],
                error=error,
                correlation_id=correlation_id,
            )
            .returning(restore_drills.c.id)
        ).scalar_one()
    )


def read_facts(conn: Connection, size_window: int = 7) -> BackupFacts:
    """What the backup alerts and metrics need, in five small queries."""
    ok = and_(backups.c.status == "success", backups.c.finished_at.is_not(None))
    recent = conn.execute(
        select(backups.c.finished_at, backups.c.size_bytes, backups.c.duration_seconds)
        .where(ok)
        .order_by(backups.c.finished_at.desc(), backups.c.id.desc())
        .limit(size_window + 1)
    ).all()
    failures = conn.execute(
        select(func.count(), func.max(backups.c.finished_at)).where(backups.c.status == "failed")
    ).one()
    drill = conn.execute(
        select(restore_drills.c.finished_at, restore_drills.c.duration_seconds)
        .where(restore_drills.c.ok.is_(True))
        .order_by(restore_drills.c.finished_at.desc(), restore_drills.c.id.desc())
        .limit(1)
    ).first()
    last_drill = conn.execute(
        select(restore_drills.c.ok)
        .order_by(restore_drills.c.finished_at.desc(), restore_drills.c.id.desc())
        .limit(1)
    ).first()
    installed = conn.execute(
        text("SELECT value->>'at' FROM kv_state WHERE key = 'installed_at'")
    ).scalar()
    last = recent[0] if recent else None
    return BackupFacts(
        last_success_at=last.finished_at if last else None,
        last_size_bytes=int(last.size_bytes) if last and last.size_bytes is not None else None,
        last_duration_seconds=last.duration_seconds if last else None,
        previous_sizes=tuple(int(r.size_bytes) for r in recent[1:] if r.size_bytes is not None),
        failures_total=int(failures[0]),
        last_failure_at=failures[1],
        last_drill_success_at=drill.finished_at if drill else None,
        last_drill_duration_seconds=drill.duration_seconds if drill else None,
        last_drill_ok=bool(last_drill.ok) if last_drill else None,
        installed_at=datetime.fromisoformat(installed) if installed else None,
    )
