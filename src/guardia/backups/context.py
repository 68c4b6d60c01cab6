"""What every backup command needs: the direct database URL, the config, a clock, progress."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, create_engine, pool

from guardia.adapters.postgres.database import sqlalchemy_url
from guardia.backups.config import BackupConfig, LocalTarget, S3Target
from guardia.backups.local_store import LocalStore
from guardia.backups.ports import BackupStore
from guardia.backups.progress import NullProgress, ProgressSink
from guardia.core.clock import Clock, SystemClock


def build_store(config: BackupConfig) -> BackupStore:
    """The configured target's store."""
    target = config.target
    if isinstance(target, LocalTarget):
        return LocalStore(target.directory)
    if isinstance(target, S3Target):
        from guardia.adapters.s3.store import S3Store  # boto3 only when S3 is used

        return S3Store(target)
    raise TypeError(f"unknown backup target {target!r}")


@dataclass
class BackupContext:
    """Built by the caller (CLI, worker task, test) from settings.

    `database_url` must be the direct (session) URL: pg_dump and the exported snapshot need a
    session, which Neon's transaction pooler does not keep. It is never printed.
    """

    database_url: str = field(repr=False)
    config: BackupConfig
    clock: Clock = field(default_factory=SystemClock)
    progress: ProgressSink = field(default_factory=NullProgress)
    store: BackupStore | None = None
    _engine: Engine | None = field(default=None, repr=False)

    def engine(self) -> Engine:
        """A small synchronous engine for the backup rows (no pool kept between commands)."""
        if self._engine is None:
            self._engine = create_engine(sqlalchemy_url(self.database_url), poolclass=pool.NullPool)
        return self._engine

    def target_store(self) -> BackupStore:
        """The store (built once from the config unless injected)."""
        if self.store is None:
            self.store = build_store(self.config)
        return self.store

    def close(self) -> None:
        """Release the engine."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
