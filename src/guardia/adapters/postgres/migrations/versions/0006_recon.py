"""Reconciliation: statements, lines, runs, KPI, matches and exceptions.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

DDL = """
CREATE TABLE recon_statements (
	id BIGSERIAL NOT NULL,
	file_sha256 TEXT NOT NULL,
	file_name TEXT NOT NULL,
	bank TEXT NOT NULL,
	account TEXT NOT NULL,
	lines INTEGER NOT NULL,
	balance_breaks JSONB NOT NULL,
	imported_by TEXT NOT NULL,
	imported_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (file_sha256)
);

CREATE TABLE recon_lines (
	line_id TEXT NOT NULL,
	statement_id BIGINT NOT NULL,
	account TEXT NOT NULL,
	row_no BIGINT NOT NULL,
	operation_date DATE NOT NULL,
	concept TEXT,
	reference TEXT,
	cargo TEXT,
	abono TEXT,
	balance TEXT,
	PRIMARY KEY (line_id)
);

CREATE INDEX ix_recon_lines_statement ON recon_lines (statement_id);

CREATE TABLE recon_runs (
	id BIGSERIAL NOT NULL,
	started_at TIMESTAMP WITH TIME ZONE NOT NULL,
	finished_at TIMESTAMP WITH TIME ZONE NOT NULL,
	actor TEXT NOT NULL,
	statement_ids JSONB NOT NULL,
	ledger_source TEXT NOT NULL,
	lines INTEGER NOT NULL,
	matched_lines INTEGER NOT NULL,
	amount_cents BIGINT NOT NULL,
	matched_amount_cents BIGINT NOT NULL,
	match_rate_count FLOAT NOT NULL,
	match_rate_amount FLOAT NOT NULL,
	exceptions INTEGER NOT NULL,
	summary JSONB NOT NULL,
	PRIMARY KEY (id)
);

CREATE TABLE recon_kpi (
	run_id BIGINT NOT NULL,
	account TEXT NOT NULL,
	local_date DATE NOT NULL,
	lines INTEGER NOT NULL,
	matched_lines INTEGER NOT NULL,
	amount_cents BIGINT NOT NULL,
	matched_amount_cents BIGINT NOT NULL,
	match_rate_count FLOAT NOT NULL,
	match_rate_amount FLOAT NOT NULL
);

CREATE INDEX ix_recon_kpi_run ON recon_kpi (run_id);

CREATE TABLE recon_matches (
	id BIGSERIAL NOT NULL,
	run_id BIGINT NOT NULL,
	bank_line_id TEXT NOT NULL,
	ledger_ids JSONB NOT NULL,
	rule TEXT NOT NULL,
	score FLOAT NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_recon_matches_run ON recon_matches (run_id);

CREATE TABLE recon_exceptions (
	id BIGSERIAL NOT NULL,
	run_id BIGINT NOT NULL,
	side TEXT NOT NULL,
	bank_line_id TEXT,
	ledger_id TEXT,
	reason TEXT NOT NULL,
	candidates JSONB NOT NULL,
	account TEXT,
	local_date DATE,
	amount_cents BIGINT,
	status TEXT DEFAULT 'open' NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_recon_exceptions_run ON recon_exceptions (run_id);
"""


def upgrade() -> None:
    """Create the reconciliation tables."""
    op.execute(DDL)


def downgrade() -> None:
    """Refuse: reconciliation results are evidence."""
    raise RuntimeError("reconciliation tables are not dropped by a migration")
