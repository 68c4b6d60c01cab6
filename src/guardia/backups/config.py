"""What a backup needs to know: the target, the staging directory, the client tools, and the
freshness, size, drill and retention policy.

`config_from_settings` reads the `backup_*` fields of Guardia's settings when they exist and
falls back to the defaults here, so the CLI works before and after the fields are added.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from guardia.backups.model import HealthPolicy

MIB = 1024 * 1024
GIB = 1024 * MIB
MONEY_TABLES = ("payments", "postings", "payment_transitions")


@dataclass(frozen=True, slots=True)
class LocalTarget:
    """Backups kept in a directory of this machine (the embedded default)."""

    directory: Path

    @property
    def kind(self) -> str:
        """Target kind, as stored on backup rows."""
        return "local"


@dataclass(frozen=True, slots=True)
class S3Target:
    """Backups kept in any S3-compatible bucket.

    Credentials come from the usual boto3 chain (environment, profile, instance role) unless
    given here. `server_side_encryption` is S3's `ServerSideEncryption` ("AES256" or
    "aws:kms"); `sse_kms_key_id` its `SSEKMSKeyId`.
    """

    bucket: str
    prefix: str = "guardia/"
    endpoint_url: str | None = None
    region: str | None = None
    server_side_encryption: str | None = None
    sse_kms_key_id: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    addressing_style: str | None = None
    part_size: int = 32 * MIB
    max_concurrency: int = 3

    @property
    def kind(self) -> str:
        """Target kind, as stored on backup rows."""
        return "s3"


Target = LocalTarget | S3Target


@dataclass(frozen=True, slots=True)
class BackupConfig:
    """Everything a backup, a verification, a drill or a prune reads.

    `pg_dump` is a path or a command name; unset, the newest client bundled with the embedded
    PostgreSQL package is used (it dumps older servers too), else `pg_dump` on PATH.
    `pg_restore` and `pg_amcheck` are taken from the same directory.
    `scratch_url` names a server where drills may create and drop a scratch database; unset,
    the backed-up server itself is used.
    """

    target: Target
    staging_dir: Path
    pg_dump: str | None = None
    keep_daily: int = 14
    keep_weekly: int = 8
    max_age: timedelta = timedelta(hours=24)
    min_size_ratio: float = 0.5
    size_window: int = 7
    drill_max_age: timedelta = timedelta(days=8)
    rto_target_seconds: float = 1800.0
    scratch_url: str | None = field(default=None, repr=False)
    staging_floor_bytes: int = 512 * MIB
    money_tables: tuple[str, ...] = MONEY_TABLES
    compress: str | None = None
    prune_after_backup: bool = True

    @property
    def health_policy(self) -> HealthPolicy:
        """Thresholds of the freshness, size and drill alerts."""
        return HealthPolicy(self.max_age, self.min_size_ratio, self.drill_max_age)


def _secret(value: object) -> str | None:
    if value is None or value == "":
        return None
    getter = getattr(value, "get_secret_value", None)
    return str(getter() if callable(getter) else value)


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def config_from_values(values: Mapping[str, Any], data_dir: Path) -> BackupConfig:
    """Build a BackupConfig from `backup_*` setting values (missing ones take defaults)."""

    def get(name: str, default: Any = None) -> Any:
        value = values.get(f"backup_{name}")
        return default if value is None or value == "" else value

    kind = str(get("target", "local")).lower()
    target: Target
    if kind == "s3":
        bucket = _text(get("s3_bucket"))
        if bucket is None:
            raise ValueError("GUARDIA_BACKUP_TARGET=s3 needs GUARDIA_BACKUP_S3_BUCKET")
        target = S3Target(
            bucket=bucket,
            prefix=str(get("s3_prefix", "guardia/")),
            endpoint_url=_text(get("s3_endpoint_url")),
            region=_text(get("s3_region")),
            server_side_encryption=_text(get("s3_sse")),
            sse_kms_key_id=_text(get("s3_sse_kms_key_id")),
            access_key_id=_secret(get("s3_access_key_id")),
            secret_access_key=_secret(get("s3_secret_access_key")),
            session_token=_secret(get("s3_session_token")),
            part_size=int(get("s3_part_size_mb", 32)) * MIB,
            max_concurrency=int(get("s3_max_concurrency", 3)),
        )
    elif kind == "local":
        target = LocalTarget(Path(get("local_dir", data_dir / "backups")))
    else:
        raise ValueError(f"GUARDIA_BACKUP_TARGET must be local or s3, not {kind!r}")
    return BackupConfig(
        target=target,
        staging_dir=Path(get("staging_dir", data_dir / "backup-staging")),
        pg_dump=_text(get("pg_dump")),
        keep_daily=int(get("keep_daily", 14)),
        keep_weekly=int(get("keep_weekly", 8)),
        max_age=timedelta(hours=float(get("max_age_hours", 24.0))),
        min_size_ratio=float(get("min_size_ratio", 0.5)),
        drill_max_age=timedelta(days=float(get("drill_max_age_days", 8.0))),
        rto_target_seconds=float(get("rto_seconds", 1800.0)),
        scratch_url=_secret(get("scratch_url")),
        compress=_text(get("compress")),
    )


def config_from_settings(settings: Any) -> BackupConfig:
    """Build a BackupConfig from Guardia's Settings (`backup_*` fields and `data_dir`)."""
    values: dict[str, Any] = {
        name: getattr(settings, name)
        for name in type(settings).model_fields
        if name.startswith("backup_")
    }
    return config_from_values(values, Path(settings.data_dir))
