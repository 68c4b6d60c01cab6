"""Foundation: webhook inbox, payments, dead letters, alerts, and procrastinate's job tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from alembic import op
from procrastinate.schema import SchemaManager

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen DDL: later changes go in new revisions, never here.
DDL = """
CREATE TABLE alerts (
	id BIGSERIAL NOT NULL,
	rule TEXT NOT NULL,
	fingerprint TEXT NOT NULL,
	status TEXT NOT NULL,
	severity TEXT NOT NULL,
	value FLOAT,
	threshold FLOAT,
	summary TEXT NOT NULL,
	runbook_url TEXT NOT NULL,
	labels JSONB NOT NULL,
	started_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
	last_seen_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
	resolved_at TIMESTAMP WITH TIME ZONE,
	PRIMARY KEY (id)
);

CREATE UNIQUE INDEX uq_alerts_firing_fingerprint ON alerts (fingerprint) WHERE status = 'firing';

CREATE TABLE dead_letters (
	id BIGSERIAL NOT NULL,
	job_id BIGINT,
	task_name TEXT NOT NULL,
	task_kwargs JSONB NOT NULL,
	queue TEXT NOT NULL,
	lock TEXT,
	cause TEXT NOT NULL,
	error_type TEXT NOT NULL,
	error_message TEXT NOT NULL,
	attempts INTEGER NOT NULL,
	correlation_id TEXT,
	order_id TEXT,
	failed_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
	status TEXT DEFAULT 'open' NOT NULL,
	retried_at TIMESTAMP WITH TIME ZONE,
	retried_by TEXT,
	retry_job_id BIGINT,
	PRIMARY KEY (id)
);

CREATE INDEX ix_dead_letters_status_cause ON dead_letters (status, cause);

CREATE TABLE kv_state (
	key TEXT NOT NULL,
	value JSONB NOT NULL,
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
	PRIMARY KEY (key)
);

CREATE TABLE payment_transitions (
	id BIGSERIAL NOT NULL,
	order_id TEXT NOT NULL,
	from_status TEXT,
	to_status TEXT NOT NULL,
	source TEXT NOT NULL,
	event_id TEXT,
	correlation_id TEXT NOT NULL,
	at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_payment_transitions_order ON payment_transitions (order_id);

CREATE TABLE payments (
	order_id TEXT NOT NULL,
	status TEXT NOT NULL,
	amount_cents BIGINT NOT NULL,
	currency TEXT NOT NULL,
	amount_refunded_cents BIGINT DEFAULT '0' NOT NULL,
	fee_cents BIGINT,
	method_kind TEXT,
	method_reference TEXT,
	clabe TEXT,
	tracking_code TEXT,
	reference_number TEXT,
	charge_id TEXT,
	customer_id TEXT,
	paid_at TIMESTAMP WITH TIME ZONE,
	source_updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
	provenance JSONB NOT NULL,
	correlation_id TEXT NOT NULL,
	last_event_id TEXT,
	last_event_type TEXT,
	last_event_at TIMESTAMP WITH TIME ZONE,
	created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
	PRIMARY KEY (order_id)
);

CREATE INDEX ix_payments_status_created ON payments (status, created_at);

CREATE TABLE recovery_actions (
	id BIGSERIAL NOT NULL,
	kind TEXT NOT NULL,
	actor TEXT NOT NULL,
	target JSONB NOT NULL,
	correlation_id TEXT NOT NULL,
	dry_run BOOLEAN DEFAULT false NOT NULL,
	result JSONB NOT NULL,
	at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_recovery_actions_at ON recovery_actions (at);

CREATE TABLE webhook_attempts (
	id BIGSERIAL NOT NULL,
	provider TEXT NOT NULL,
	received_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
	outcome TEXT NOT NULL,
	http_status INTEGER NOT NULL,
	event_id TEXT,
	order_id TEXT,
	body_sha256 TEXT,
	body_size INTEGER NOT NULL,
	headers JSONB NOT NULL,
	remote_addr TEXT,
	correlation_id TEXT NOT NULL,
	detail TEXT,
	PRIMARY KEY (id)
);

CREATE INDEX ix_webhook_attempts_received ON webhook_attempts (received_at);

CREATE INDEX ix_webhook_attempts_event ON webhook_attempts (event_id);

CREATE TABLE webhook_events (
	id BIGSERIAL NOT NULL,
	provider TEXT NOT NULL,
	event_id TEXT NOT NULL,
	event_type TEXT NOT NULL,
	livemode BOOLEAN DEFAULT false NOT NULL,
	order_id TEXT,
	object_type TEXT,
	correlation_id TEXT NOT NULL,
	received_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
	provider_created_at TIMESTAMP WITH TIME ZONE,
	body JSONB NOT NULL,
	body_sha256 TEXT NOT NULL,
	signature_key_id TEXT,
	signature_branch TEXT,
	status TEXT DEFAULT 'received' NOT NULL,
	processed_at TIMESTAMP WITH TIME ZONE,
	attempts INTEGER DEFAULT '0' NOT NULL,
	last_error TEXT,
	PRIMARY KEY (id),
	CONSTRAINT uq_webhook_events_provider_event UNIQUE (provider, event_id)
);

CREATE INDEX ix_webhook_events_received ON webhook_events (received_at);

CREATE INDEX ix_webhook_events_order ON webhook_events (order_id);

CREATE INDEX ix_webhook_events_status_received ON webhook_events (status, received_at);"""


def upgrade() -> None:
    """Create Guardia's tables and procrastinate's schema (the locked version's schema.sql)."""
    op.execute(SchemaManager.get_schema())
    op.execute(DDL)


def downgrade() -> None:
    """Refuse: dropping a payments database is not a migration."""
    raise RuntimeError("downgrade of the foundation revision is not supported")
