"""One open dead letter per stuck item: the item a job works on, its last failure, its
resolution.

The relays used to file a new dead letter each time they re-enqueued the same stuck item (84 a
minute were measured). `item` names what a job works on: its arguments without those that only
describe one run (`guardia.jobs.deadletters.RUN_ARGUMENTS`). A partial unique index keeps one
open dead letter per (task, item); a new failure of the item counts on it (attempts,
last_failed_at) and `failed_at` stays the first failure. A dead letter whose job later succeeds
is closed as `resolved`, with when (`resolved_at`) and how (`resolution`).

Open duplicates left by the loop are merged into the oldest one of their item (attempts summed,
the last failure kept); the others are marked `merged`, with the dead letter they joined.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

DDL = """
ALTER TABLE dead_letters
    ADD COLUMN item JSONB GENERATED ALWAYS AS
        (task_kwargs - ARRAY['timestamp', 'correlation_id', 'actor']) STORED,
    ADD COLUMN last_failed_at TIMESTAMP WITH TIME ZONE,
    ADD COLUMN resolved_at TIMESTAMP WITH TIME ZONE,
    ADD COLUMN resolution TEXT;

UPDATE dead_letters SET last_failed_at = failed_at;

UPDATE dead_letters d
SET attempts = t.attempts, last_failed_at = t.last_failed_at
FROM (
    SELECT min(id) AS keeper, sum(attempts) AS attempts, max(failed_at) AS last_failed_at
    FROM dead_letters WHERE status = 'open' GROUP BY task_name, item
) t
WHERE d.id = t.keeper;

UPDATE dead_letters d
SET status = 'merged', resolved_at = now(), resolution = 'merged into dead letter ' || k.keeper
FROM (
    SELECT id, min(id) OVER (PARTITION BY task_name, item) AS keeper
    FROM dead_letters WHERE status = 'open'
) k
WHERE d.id = k.id AND k.id <> k.keeper;

ALTER TABLE dead_letters
    ALTER COLUMN last_failed_at SET DEFAULT now(),
    ALTER COLUMN last_failed_at SET NOT NULL;

CREATE UNIQUE INDEX uq_dead_letters_open_item ON dead_letters (task_name, item)
    WHERE status = 'open';
"""


def upgrade() -> None:
    """One open dead letter per (task, item), with its attempts, last failure and resolution."""
    op.execute(DDL)


def downgrade() -> None:
    """Drop the index and the columns (merged dead letters stay merged)."""
    op.execute(
        "DROP INDEX uq_dead_letters_open_item; "
        "ALTER TABLE dead_letters DROP COLUMN item, DROP COLUMN last_failed_at, "
        "DROP COLUMN resolved_at, DROP COLUMN resolution"
    )
