"""Audit tables: an append-only, hash-chained log and its single-row chain head."""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, Integer, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

from guardia.adapters.postgres.tables import metadata

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("target", JSONB, nullable=False),
    Column("reason", Text, nullable=False),
    Column("correlation_id", Text),
    Column("prev_hash", Text, nullable=False),
    Column("hash", Text, nullable=False),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", Text, nullable=False),
    CheckConstraint("id = 1", name="ck_audit_head_single_row"),
)
