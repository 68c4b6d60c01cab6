"""Backups and restore drills (issue 5): one row per backup run and per drill.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DDL = """
CREATE TABLE backups (
	id BIGSERIAL NOT NULL,
	name TEXT NOT NULL,
	target TEXT NOT NULL,
	location TEXT NOT NULL,
	status TEXT DEFAULT 'running' NOT NULL,
	started_at TIMESTAMP WITH TIME ZONE NOT NULL,
	finished_at TIMESTAMP WITH TIME ZONE,
	duration_seconds FLOAT,
	size_bytes BIGINT,
	sha256 TEXT,
	manifest JSONB,
	error TEXT,
	verified_at TIMESTAMP WITH TIME ZONE,
	verify_status TEXT,
	verify_detail TEXT,
	deleted_at TIMESTAMP WITH TIME ZONE,
	correlation_id TEXT NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (name),
	CONSTRAINT ck_backups_status CHECK (status IN ('running', 'success', 'failed'))
);

CREATE INDEX ix_backups_status_finished ON backups (status, finished_at);

CREATE TABLE restore_drills (
	id BIGSERIAL NOT NULL,
	backup_id BIGINT,
	backup_name TEXT NOT NULL,
	started_at TIMESTAMP WITH TIME ZONE NOT NULL,
	finished_at TIMESTAMP WITH TIME ZONE NOT NULL,
	ok BOOLEAN NOT NULL,
	duration_seconds FLOAT NOT NULL,
	rto_seconds FLOAT,
	restore_seconds FLOAT,
	rto_target_seconds FLOAT NOT NULL,
	scratch_database TEXT NOT NULL,
	checks JSONB NOT NULL,
	error TEXT,
	correlation_id TEXT NOT NULL,
	PRIMARY KEY (id),
	FOREIGN KEY (backup_id) REFERENCES backups (id) ON DELETE SET NULL
);

CREATE INDEX ix_restore_drills_ok_finished ON restore_drills (ok, finished_at);
"""


def upgrade() -> None:
    """Create backups and restore_drills."""
    op.execute(DDL)


def downgrade() -> None:
    """Drop them (the history of backups and drills is evidence: only for a rebuilt database)."""
    op.execute("DROP TABLE restore_drills; DROP TABLE backups;")
