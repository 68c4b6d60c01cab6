"""Guardia's tables (SQLAlchemy Core). Alembic migrations create them; this mirrors them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Computed,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()


def timestamp_column(
    name: str, *, nullable: bool = True, default_now: bool = False
) -> Column[object]:
    """A timezone-aware timestamp column (optionally defaulting to now())."""
    return Column(
        name,
        DateTime(timezone=True),
        nullable=nullable,
        server_default=func.now() if default_now else None,
    )


webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("provider", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("livemode", Boolean, nullable=False, server_default=text("false")),
    Column("order_id", Text),
    Column("object_type", Text),
    Column("correlation_id", Text, nullable=False),
    timestamp_column("received_at", nullable=False, default_now=True),
    timestamp_column("provider_created_at"),
    Column("body", JSONB, nullable=False),
    Column("body_sha256", Text, nullable=False),
    Column("signature_key_id", Text),
    Column("signature_branch", Text),
    Column("status", Text, nullable=False, server_default="received"),
    timestamp_column("processed_at"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    UniqueConstraint("provider", "event_id", name="uq_webhook_events_provider_event"),
    Index("ix_webhook_events_order", "order_id"),
    Index("ix_webhook_events_status_received", "status", "received_at"),
    Index("ix_webhook_events_received", "received_at"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("provider", Text, nullable=False),
    timestamp_column("received_at", nullable=False, default_now=True),
    Column("outcome", Text, nullable=False),
    Column("http_status", Integer, nullable=False),
    Column("event_id", Text),
    Column("order_id", Text),
    Column("body_sha256", Text),
    Column("body_size", Integer, nullable=False),
    Column("headers", JSONB, nullable=False),
    Column("remote_addr", Text),
    Column("correlation_id", Text, nullable=False),
    Column("detail", Text),
    Index("ix_webhook_attempts_received", "received_at"),
    Index("ix_webhook_attempts_event", "event_id"),
)

payments = Table(
    "payments",
    metadata,
    Column("order_id", Text, primary_key=True),
    Column("status", Text, nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("amount_refunded_cents", BigInteger, nullable=False, server_default="0"),
    Column("fee_cents", BigInteger),
    Column("method_kind", Text),
    Column("method_reference", Text),
    Column("clabe", Text),
    Column("tracking_code", Text),
    Column("reference_number", Text),
    Column("charge_id", Text),
    Column("customer_id", Text),
    timestamp_column("paid_at"),
    timestamp_column("source_updated_at", nullable=False),
    Column("provenance", JSONB, nullable=False),
    Column("correlation_id", Text, nullable=False),
    Column("last_event_id", Text),
    Column("last_event_type", Text),
    timestamp_column("last_event_at"),
    timestamp_column("created_at", nullable=False, default_now=True),
    timestamp_column("updated_at", nullable=False, default_now=True),
    Index("ix_payments_status_created", "status", "created_at"),
)

payment_transitions = Table(
    "payment_transitions",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("order_id", Text, nullable=False),
    Column("from_status", Text),
    Column("to_status", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("event_id", Text),
    Column("correlation_id", Text, nullable=False),
    timestamp_column("at", nullable=False, default_now=True),
    Index("ix_payment_transitions_order", "order_id"),
)

recovery_actions = Table(
    "recovery_actions",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("target", JSONB, nullable=False),
    Column("correlation_id", Text, nullable=False),
    Column("dry_run", Boolean, nullable=False, server_default=text("false")),
    Column("result", JSONB, nullable=False),
    timestamp_column("at", nullable=False, default_now=True),
    Index("ix_recovery_actions_at", "at"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("job_id", BigInteger),
    Column("task_name", Text, nullable=False),
    Column("task_kwargs", JSONB, nullable=False),
    Column("queue", Text, nullable=False),
    Column("lock", Text),
    Column("cause", Text, nullable=False),
    Column("error_type", Text, nullable=False),
    Column("error_message", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("correlation_id", Text),
    Column("order_id", Text),
    timestamp_column("failed_at", nullable=False, default_now=True),
    Column("status", Text, nullable=False, server_default="open"),
    timestamp_column("retried_at"),
    Column("retried_by", Text),
    Column("retry_job_id", BigInteger),
    # What the job works on: its arguments minus those describing one run (migration 0008).
    Column(
        "item",
        JSONB,
        Computed("task_kwargs - ARRAY['timestamp', 'correlation_id', 'actor']", persisted=True),
    ),
    timestamp_column("last_failed_at", nullable=False, default_now=True),
    timestamp_column("resolved_at"),
    Column("resolution", Text),
    Index("ix_dead_letters_status_cause", "status", "cause"),
    Index(
        "uq_dead_letters_open_item",
        "task_name",
        "item",
        unique=True,
        postgresql_where=text("status = 'open'"),
    ),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("rule", Text, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("value", Float),
    Column("threshold", Float),
    Column("summary", Text, nullable=False),
    Column("runbook_url", Text, nullable=False),
    Column("labels", JSONB, nullable=False),
    timestamp_column("started_at", nullable=False, default_now=True),
    timestamp_column("last_seen_at", nullable=False, default_now=True),
    timestamp_column("resolved_at"),
    timestamp_column("cleared_since"),
    Column("incident_id", BigInteger),
    Index(
        "uq_alerts_firing_fingerprint",
        "fingerprint",
        unique=True,
        postgresql_where=text("status = 'firing'"),
    ),
)

kv_state = Table(
    "kv_state",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", JSONB, nullable=False),
    timestamp_column("updated_at", nullable=False, default_now=True),
)

postings = Table(
    "postings",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("order_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("state", Text, nullable=False, server_default="pending"),
    Column("amount_cents", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("entry_date", Date, nullable=False),
    Column("ref", Text, nullable=False),
    Column("odoo_move_id", BigInteger),
    Column("odoo_move_name", Text),
    Column("odoo_state", Text),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("cause", Text),
    Column("last_error", Text),
    Column("correlation_id", Text, nullable=False),
    timestamp_column("created_at", nullable=False, default_now=True),
    timestamp_column("updated_at", nullable=False, default_now=True),
    timestamp_column("posted_at"),
    UniqueConstraint("order_id", "kind", name="uq_postings_order_kind"),
    Index("ix_postings_state", "state"),
)

config_checks = Table(
    "config_checks",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("target", Text, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("results", JSONB, nullable=False),
    Column("correlation_id", Text, nullable=False),
    timestamp_column("checked_at", nullable=False, default_now=True),
    Index("ix_config_checks_target_checked", "target", "checked_at"),
)
