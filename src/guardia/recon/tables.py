"""Reconciliation tables: imported statements and their lines, runs, KPI, matches, exceptions."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

from guardia.adapters.postgres.tables import metadata

recon_statements = Table(
    "recon_statements",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("file_sha256", Text, nullable=False, unique=True),
    Column("file_name", Text, nullable=False),
    Column("bank", Text, nullable=False),
    Column("account", Text, nullable=False),
    Column("lines", Integer, nullable=False),
    Column("balance_breaks", JSONB, nullable=False),
    Column("imported_by", Text, nullable=False),
    Column("imported_at", DateTime(timezone=True), nullable=False),
)

recon_lines = Table(
    "recon_lines",
    metadata,
    Column("line_id", Text, primary_key=True),
    Column("statement_id", BigInteger, nullable=False),
    Column("account", Text, nullable=False),
    Column("row_no", BigInteger, nullable=False),
    Column("operation_date", Date, nullable=False),
    Column("concept", Text),
    Column("reference", Text),
    Column("cargo", Text),
    Column("abono", Text),
    Column("balance", Text),
    Index("ix_recon_lines_statement", "statement_id"),
)

recon_runs = Table(
    "recon_runs",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    Column("actor", Text, nullable=False),
    Column("statement_ids", JSONB, nullable=False),
    Column("ledger_source", Text, nullable=False),
    Column("lines", Integer, nullable=False),
    Column("matched_lines", Integer, nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("matched_amount_cents", BigInteger, nullable=False),
    Column("match_rate_count", Float, nullable=False),
    Column("match_rate_amount", Float, nullable=False),
    Column("exceptions", Integer, nullable=False),
    Column("summary", JSONB, nullable=False),
)

recon_kpi = Table(
    "recon_kpi",
    metadata,
    Column("run_id", BigInteger, nullable=False),
    Column("account", Text, nullable=False),
    Column("local_date", Date, nullable=False),
    Column("lines", Integer, nullable=False),
    Column("matched_lines", Integer, nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("matched_amount_cents", BigInteger, nullable=False),
    Column("match_rate_count", Float, nullable=False),
    Column("match_rate_amount", Float, nullable=False),
    Index("ix_recon_kpi_run", "run_id"),
)

recon_matches = Table(
    "recon_matches",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("run_id", BigInteger, nullable=False),
    Column("bank_line_id", Text, nullable=False),
    Column("ledger_ids", JSONB, nullable=False),
    Column("rule", Text, nullable=False),
    Column("score", Float, nullable=False),
    Index("ix_recon_matches_run", "run_id"),
)

recon_exceptions = Table(
    "recon_exceptions",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("run_id", BigInteger, nullable=False),
    Column("side", Text, nullable=False),
    Column("bank_line_id", Text),
    Column("ledger_id", Text),
    Column("reason", Text, nullable=False),
    Column("candidates", JSONB, nullable=False),
    Column("account", Text),
    Column("local_date", Date),
    Column("amount_cents", BigInteger),
    Column("status", Text, nullable=False, server_default="open"),
    Column("resolved_by_manual_id", BigInteger),
    Index("ix_recon_exceptions_run", "run_id"),
)

recon_manual = Table(
    "recon_manual",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("run_id", BigInteger, nullable=False),
    Column("action", Text, nullable=False),
    Column("bank_line_id", Text, nullable=False),
    Column("ledger_ids", JSONB, nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("approved_by", Text),
    Column("approved_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_recon_manual_run", "run_id"),
)
