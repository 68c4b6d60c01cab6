"""Incident tables: the incident (lifecycle as columns, the rest as JSON), notes, notifications."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Index,
    Integer,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from guardia.adapters.postgres.tables import metadata
from guardia.adapters.postgres.tables import timestamp_column as _ts

incidents = Table(
    "incidents",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("title", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("runbook", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("fingerprint", Text),
    Column("source", Text, nullable=False),
    _ts("impact_started_at"),
    _ts("detected_at", nullable=False),
    _ts("acknowledged_at"),
    _ts("mitigated_at"),
    _ts("resolved_at"),
    _ts("closed_at"),
    Column("resolved_verified", Boolean, nullable=False, server_default=text("false")),
    Column("correlation_ids", JSONB, nullable=False),
    Column("external_ids", JSONB, nullable=False),
    Column("corrective_actions", JSONB, nullable=False),
    Column("postmortem", JSONB),
    Column("no_correlation_id_reason", Text),
    _ts("last_signal_at"),
    _ts("updated_at", nullable=False),
    Column("origin", Text, nullable=False, server_default="live"),
    CheckConstraint("origin IN ('live', 'drill')", name="ck_incidents_origin"),
    Index(
        "uq_incidents_active_fingerprint",
        "fingerprint",
        unique=True,
        postgresql_where=text("status IN ('open', 'acknowledged', 'mitigated')"),
    ),
    Index("ix_incidents_detected", "detected_at"),
)

incident_notes = Table(
    "incident_notes",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("incident_id", BigInteger, nullable=False),
    _ts("at", nullable=False),
    Column("actor", Text, nullable=False),
    Column("text", Text, nullable=False),
    Index("ix_incident_notes_incident", "incident_id"),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("incident_id", BigInteger, nullable=False),
    Column("kind", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    _ts("created_at", nullable=False),
    _ts("sent_at"),
)
