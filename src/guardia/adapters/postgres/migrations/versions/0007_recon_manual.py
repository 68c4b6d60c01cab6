"""Manual reconciliation actions (match, unmatch) with a second operator's approval.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

DDL = """
CREATE TABLE recon_manual (
	id BIGSERIAL NOT NULL,
	run_id BIGINT NOT NULL,
	action TEXT NOT NULL,
	bank_line_id TEXT NOT NULL,
	ledger_ids JSONB NOT NULL,
	amount_cents BIGINT NOT NULL,
	reason TEXT NOT NULL,
	actor TEXT NOT NULL,
	status TEXT NOT NULL,
	approved_by TEXT,
	approved_at TIMESTAMP WITH TIME ZONE,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_recon_manual_run ON recon_manual (run_id);

ALTER TABLE recon_exceptions ADD COLUMN resolved_by_manual_id BIGINT;
"""


def upgrade() -> None:
    """Create recon_manual; exceptions remember the manual action that settled them."""
    op.execute(DDL)


def downgrade() -> None:
    """Refuse: manual reconciliation is evidence."""
    raise RuntimeError("recon_manual is not dropped by a migration")
