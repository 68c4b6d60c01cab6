"""The backups capability's tables, on Guardia's shared metadata (migration 0003 creates them)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

from guardia.adapters.postgres.tables import metadata

backups = Table(
    "backups",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("target", Text, nullable=False),
    Column("location", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="running"),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("duration_seconds", Float),
    Column("size_bytes", BigInteger),
    Column("sha256", Text),
    Column("manifest", JSONB),
    Column("error", Text),
    Column("verified_at", DateTime(timezone=True)),
    Column("verify_status", Text),
    Column("verify_detail", Text),
    Column("deleted_at", DateTime(timezone=True)),
    Column("correlation_id", Text, nullable=False),
    CheckConstraint("status IN ('running', 'success', 'failed')", name="ck_backups_status"),
    Index("ix_backups_status_finished", "status", "finished_at"),
)

restore_drills = Table(
    "restore_drills",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("backup_id", BigInteger, ForeignKey("backups.id", ondelete="SET NULL")),
    Column("backup_name", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("duration_seconds", Float, nullable=False),
    Column("rto_seconds", Float),
    Column("restore_seconds", Float),
    Column("rto_target_seconds", Float, nullable=False),
    Column("scratch_database", Text, nullable=False),
    Column("checks", JSONB, nullable=False),
    Column("error", Text),
    Column("correlation_id", Text, nullable=False),
    Index("ix_restore_drills_ok_finished", "ok", "finished_at"),
)
