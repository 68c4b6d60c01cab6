"""Incidents carry their origin (live or drill); the database records when Guardia was installed.

- `incidents.origin`: `drill` for the incidents `guardia drill` injects, so their figures join
  the MTTR statistics yet stay separable from production's. Existing incidents are `live`.
- `kv_state['installed_at']`: the install grace of BackupStale and RestoreDrillStale. A fresh
  install has no backup and no restore drill yet; the rules wait their own limit (24 h, 8 days
  by default) from this moment before calling that stale. An existing database takes the
  earliest row it holds, so an old install that never backed up still alerts at once.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

DDL = """
ALTER TABLE incidents
    ADD COLUMN origin TEXT NOT NULL DEFAULT 'live'
        CONSTRAINT ck_incidents_origin CHECK (origin IN ('live', 'drill'));

INSERT INTO kv_state (key, value, updated_at)
SELECT 'installed_at', jsonb_build_object('at', least(
    (SELECT min(received_at) FROM webhook_attempts),
    (SELECT min(detected_at) FROM incidents),
    (SELECT min(started_at) FROM backups),
    (SELECT min(at) FROM audit_log),
    now()
)), now()
ON CONFLICT (key) DO NOTHING;
"""


def upgrade() -> None:
    """Add incidents.origin and record the install time."""
    op.execute(DDL)


def downgrade() -> None:
    """Drop the column and the install time."""
    op.execute(
        "ALTER TABLE incidents DROP COLUMN origin; DELETE FROM kv_state WHERE key = 'installed_at'"
    )
