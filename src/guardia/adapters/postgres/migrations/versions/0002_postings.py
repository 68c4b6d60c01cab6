"""Odoo postings (the ledger outbox) and stored config-check results.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

DDL = """
CREATE TABLE postings (
	id BIGSERIAL NOT NULL,
	order_id TEXT NOT NULL,
	kind TEXT NOT NULL,
	state TEXT DEFAULT 'pending' NOT NULL,
	amount_cents BIGINT NOT NULL,
	currency TEXT NOT NULL,
	entry_date DATE NOT NULL,
	ref TEXT NOT NULL,
	odoo_move_id BIGINT,
	odoo_move_name TEXT,
	odoo_state TEXT,
	attempts INTEGER DEFAULT '0' NOT NULL,
	cause TEXT,
	last_error TEXT,
	correlation_id TEXT NOT NULL,
	created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
	posted_at TIMESTAMP WITH TIME ZONE,
	PRIMARY KEY (id),
	CONSTRAINT uq_postings_order_kind UNIQUE (order_id, kind)
);

CREATE INDEX ix_postings_state ON postings (state);

CREATE TABLE config_checks (
	id BIGSERIAL NOT NULL,
	target TEXT NOT NULL,
	ok BOOLEAN NOT NULL,
	results JSONB NOT NULL,
	correlation_id TEXT NOT NULL,
	checked_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_config_checks_target_checked ON config_checks (target, checked_at);
"""


def upgrade() -> None:
    """Create the postings outbox and config_checks."""
    op.execute(DDL)


def downgrade() -> None:
    """Drop them (postings are the local idempotency record: only for a rebuilt database)."""
    op.execute("DROP TABLE config_checks; DROP TABLE postings;")
