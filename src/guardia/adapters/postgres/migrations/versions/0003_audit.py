"""Audit log: append-only (trigger), hash-chained, with a single-row chain head.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

DDL = """
CREATE TABLE audit_log (
	seq BIGINT NOT NULL,
	at TIMESTAMP WITH TIME ZONE NOT NULL,
	actor TEXT NOT NULL,
	action TEXT NOT NULL,
	target JSONB NOT NULL,
	reason TEXT NOT NULL,
	correlation_id TEXT,
	prev_hash TEXT NOT NULL,
	hash TEXT NOT NULL,
	PRIMARY KEY (seq)
);

CREATE INDEX ix_audit_log_correlation ON audit_log (correlation_id);

CREATE TABLE audit_head (
	id INTEGER NOT NULL,
	seq BIGINT NOT NULL,
	hash TEXT NOT NULL,
	PRIMARY KEY (id),
	CONSTRAINT ck_audit_head_single_row CHECK (id = 1)
);

CREATE FUNCTION guardia_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION guardia_audit_append_only();

CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION guardia_audit_append_only();
"""


def upgrade() -> None:
    """Create the audit log, its head and the append-only triggers."""
    op.execute(DDL)


def downgrade() -> None:
    """Refuse: the audit log is evidence."""
    raise RuntimeError("the audit log is not dropped by a migration")
