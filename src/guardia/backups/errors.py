"""Backup failures.

BackupError                      (GuardiaError)
├── BackupBusy                   another backup holds the lock
├── ToolMissing                  pg_dump / pg_restore not found
├── ToolTooOld                   the client's major version is below the server's
├── StoreError                   the target (S3 or directory) failed
│   └── ObjectMissing            an object the manifest names is not there
├── BackupFailed                 a backup run failed (the row says why)
└── NoBackup                     no backup matches the request

Messages never carry connection strings or credentials; each says what to fix where it can.
"""

from __future__ import annotations

from guardia.core.errors import GuardiaError, NotFound


class BackupError(GuardiaError):
    """The backup operation failed."""


class BackupBusy(BackupError):
    """Another backup is running against this database; try again when it ends."""

    status_code = 409


class ToolMissing(BackupError):
    """A PostgreSQL client tool was not found."""


class ToolTooOld(BackupError):
    """The PostgreSQL client is older than the server."""


class StoreError(BackupError):
    """The backup target failed."""

    def __init__(self, message: str | None = None, *, fix: str = "") -> None:
        super().__init__(message)
        self.fix = fix


class ObjectMissing(StoreError):
    """An object of the backup is missing from the target."""


class BackupFailed(BackupError):
    """The backup failed."""


class NoBackup(NotFound):
    """No backup matches."""
