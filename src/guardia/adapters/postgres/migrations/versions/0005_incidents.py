"""Incidents, their notes and outbound notifications; alerts remember when they cleared.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DDL = """
CREATE TABLE incidents (
	id BIGSERIAL NOT NULL,
	title TEXT NOT NULL,
	severity TEXT NOT NULL,
	runbook TEXT NOT NULL,
	status TEXT NOT NULL,
	fingerprint TEXT,
	source TEXT NOT NULL,
	impact_started_at TIMESTAMP WITH TIME ZONE,
	detected_at TIMESTAMP WITH TIME ZONE NOT NULL,
	acknowledged_at TIMESTAMP WITH TIME ZONE,
	mitigated_at TIMESTAMP WITH TIME ZONE,
	resolved_at TIMESTAMP WITH TIME ZONE,
	closed_at TIMESTAMP WITH TIME ZONE,
	resolved_verified BOOLEAN DEFAULT false NOT NULL,
	correlation_ids JSONB NOT NULL,
	external_ids JSONB NOT NULL,
	corrective_actions JSONB NOT NULL,
	postmortem JSONB,
	no_correlation_id_reason TEXT,
	last_signal_at TIMESTAMP WITH TIME ZONE,
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (id)
);

CREATE UNIQUE INDEX uq_incidents_active_fingerprint ON incidents (fingerprint)
    WHERE status IN ('open', 'acknowledged', 'mitigated');

CREATE INDEX ix_incidents_detected ON incidents (detected_at);

CREATE TABLE incident_notes (
	id BIGSERIAL NOT NULL,
	incident_id BIGINT NOT NULL,
	at TIMESTAMP WITH TIME ZONE NOT NULL,
	actor TEXT NOT NULL,
	text TEXT NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_incident_notes_incident ON incident_notes (incident_id);

CREATE TABLE notifications (
	id BIGSERIAL NOT NULL,
	incident_id BIGINT NOT NULL,
	kind TEXT NOT NULL,
	payload JSONB NOT NULL,
	status TEXT DEFAULT 'pending' NOT NULL,
	attempts INTEGER DEFAULT '0' NOT NULL,
	last_error TEXT,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	sent_at TIMESTAMP WITH TIME ZONE,
	PRIMARY KEY (id)
);

ALTER TABLE alerts ADD COLUMN cleared_since TIMESTAMP WITH TIME ZONE;

ALTER TABLE alerts ADD COLUMN incident_id BIGINT;
"""


def upgrade() -> None:
    """Create the incident tables; add cleared_since and incident_id to alerts."""
    op.execute(DDL)


def downgrade() -> None:
    """Refuse: incidents are evidence."""
    raise RuntimeError("incident tables are not dropped by a migration")
