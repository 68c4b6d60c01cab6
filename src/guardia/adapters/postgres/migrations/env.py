"""Alembic environment: runs Guardia's migrations on the direct (session) connection."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from guardia.adapters.postgres.tables import metadata
from guardia.audit import tables as _audit_tables  # noqa: F401 - registers the audit tables
from guardia.incidents import tables as _incident_tables  # noqa: F401 - registers them too
from guardia.recon import tables as _recon_tables  # noqa: F401 - and these

config = context.config


def run_migrations_online() -> None:
    """Run migrations against the URL the caller put in the Alembic config."""
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL given to the migration environment")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
