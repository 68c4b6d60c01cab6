"""Backup rules as plain data: retention, freshness/size/drill alerts, schema normalisation,
manifests, names, configuration."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from guardia.backups.config import LocalTarget, S3Target, config_from_values
from guardia.backups.model import (
    BACKUP_FAILING,
    BACKUP_STALE,
    BACKUP_TOO_SMALL,
    RESTORE_DRILL_STALE,
    BackupFacts,
    DrillReport,
    HealthPolicy,
    Manifest,
    StoredBackup,
    backup_name,
    completion_marker,
    evaluate_health,
    normalise_schema,
    schema_hash,
    select_retained,
)

T0 = datetime(2026, 3, 17, 18, 0, tzinfo=UTC)  # Tuesday, 12:00 in Mexico City
POLICY = HealthPolicy()


def daily(days: int, *, verified: set[int] | None = None) -> list[StoredBackup]:
    """One backup a day going back `days` days; ids count back from 0 (the newest)."""
    return [
        StoredBackup(i, T0 - timedelta(days=i), i in (verified or set()), f"b{i}")
        for i in range(days)
    ]


def alerts(facts: BackupFacts, now: datetime) -> dict[str, bool]:
    return {a.name: a.firing for a in evaluate_health(facts, POLICY, now)}


def test_retention_keeps_the_newest_of_each_recent_day_and_week() -> None:
    kept = select_retained(daily(30), keep_daily=3, keep_weekly=3)
    # days 0-2; weeks: this week's newest (0), last week's newest (Sunday = 2), and the one before
    assert kept == {0, 1, 2, 9}


def test_retention_never_drops_the_newest_verified_backup() -> None:
    kept = select_retained(daily(30, verified={25, 27}), keep_daily=2, keep_weekly=1)
    assert kept == {0, 1, 25}


def test_retention_keeps_the_newest_backup_even_when_asked_to_keep_nothing() -> None:
    assert select_retained(daily(5), keep_daily=0, keep_weekly=0) == {0}
    assert select_retained([], keep_daily=3, keep_weekly=3) == set()


def test_retention_counts_days_in_mexico_city_not_utc() -> None:
    late = StoredBackup(1, datetime(2026, 3, 18, 5, 30, tzinfo=UTC), False)  # 23:30 on the 17th
    earlier = StoredBackup(2, datetime(2026, 3, 17, 20, 0, tzinfo=UTC), False)  # 14:00, same day
    assert select_retained([late, earlier], keep_daily=5, keep_weekly=0) == {1}


def test_retention_keeps_only_the_newest_backup_of_a_day() -> None:
    same_day = [StoredBackup(i, T0 - timedelta(hours=i), False) for i in range(4)]
    assert select_retained(same_day, keep_daily=7, keep_weekly=4) == {0}


def test_freshness_fires_at_exactly_the_limit_and_not_a_second_before() -> None:
    facts = BackupFacts(last_success_at=T0, last_size_bytes=100)
    assert not alerts(facts, T0 + timedelta(hours=24) - timedelta(seconds=1))[BACKUP_STALE]
    assert alerts(facts, T0 + timedelta(hours=24))[BACKUP_STALE]


def test_freshness_fires_when_no_backup_ever_succeeded() -> None:
    assert alerts(BackupFacts(), T0)[BACKUP_STALE]


def test_a_backup_under_half_the_recent_median_fires_the_size_alert() -> None:
    previous = (1000, 1100, 900, 1000, 5000)
    assert alerts(BackupFacts(T0, 499, previous_sizes=previous), T0)[BACKUP_TOO_SMALL]
    assert not alerts(BackupFacts(T0, 500, previous_sizes=previous), T0)[BACKUP_TOO_SMALL]
    assert alerts(BackupFacts(T0, 0), T0)[BACKUP_TOO_SMALL]
    assert not alerts(BackupFacts(T0, 10), T0)[BACKUP_TOO_SMALL]  # nothing to compare with


def test_the_drill_alert_fires_after_eight_days_without_a_passing_drill() -> None:
    facts = BackupFacts(last_drill_success_at=T0)
    assert not alerts(facts, T0 + timedelta(days=8) - timedelta(seconds=1))[RESTORE_DRILL_STALE]
    assert alerts(facts, T0 + timedelta(days=8))[RESTORE_DRILL_STALE]
    assert alerts(BackupFacts(), T0)[RESTORE_DRILL_STALE]


def test_a_failed_run_after_the_last_success_fires_until_a_backup_succeeds() -> None:
    failed_after = BackupFacts(last_success_at=T0, last_failure_at=T0 + timedelta(hours=1))
    assert alerts(failed_after, T0 + timedelta(hours=2))[BACKUP_FAILING]
    healed = BackupFacts(last_success_at=T0 + timedelta(hours=3), last_failure_at=T0)
    assert not alerts(healed, T0 + timedelta(hours=4))[BACKUP_FAILING]
    assert alerts(BackupFacts(last_failure_at=T0), T0)[BACKUP_FAILING]


def test_schema_normalisation_ignores_restrict_keys_comments_and_settings() -> None:
    body = "CREATE TABLE public.t (\n    id integer NOT NULL\n);\n"

    def dump(key: str, version: str) -> str:
        return (
            f"--\n-- PostgreSQL database dump\n--\n\n\\restrict {key}\n\n"
            f"-- Dumped by pg_dump version {version}\n\nSET lock_timeout = 0;\n"
            "SELECT pg_catalog.set_config('search_path', '', false);\n\n"
            f"{body}\n\\unrestrict {key}\n"
        )

    assert schema_hash(dump("AbC", "18.4")) == schema_hash(dump("xYz", "18.5"))
    assert normalise_schema(dump("AbC", "18.4")) == body
    assert schema_hash(body) != schema_hash(body.replace("integer", "bigint"))


def test_the_completion_marker_binds_the_manifest_bytes() -> None:
    manifest = Manifest(
        name="guardia-x",
        database="guardia",
        started_at=T0.isoformat(),
        finished_at=T0.isoformat(),
        size_bytes=10,
        sha256="ab" * 32,
        server_version="18.4",
        server_version_num=180004,
        pg_dump_version="18.4",
        table_rows={"public.payments": 3},
        money_checksums={"public.payments": "3:42"},
        schema_sha256="cd" * 32,
        alembic_revision="0003",
    )
    body = manifest.to_bytes()
    marker = json.loads(completion_marker(body, manifest.sha256, T0))
    assert marker["manifest_sha256"] == hashlib.sha256(body).hexdigest()
    assert Manifest.from_json(json.loads(body) | {"added_later": 1}) == manifest


def test_backup_names_sort_by_time_and_need_an_aware_instant() -> None:
    first, second = backup_name(T0), backup_name(T0 + timedelta(seconds=1))
    assert first.startswith("guardia-20260317T180000Z-")
    assert first < second
    with pytest.raises(ValueError, match="naive"):
        backup_name(datetime(2026, 3, 17))  # noqa: DTZ001 - the point of the test


def test_a_drill_with_a_skipped_check_passes_and_one_failure_fails_it() -> None:
    report = DrillReport(1, "b", T0, "scratch", 1800.0)
    report.add("D1", "freshness", True, "fresh")
    report.skip("D10", "pg_amcheck", "no amcheck here")
    assert report.ok
    report.add("D7", "row counts", False, "payments differ", "do not trust it")
    assert not report.ok
    assert report.to_json()["checks"][2]["fix"] == "do not trust it"


def test_configuration_defaults_to_a_local_directory_under_the_data_dir() -> None:
    config = config_from_values({}, Path("data"))
    assert config.target == LocalTarget(Path("data/backups"))
    assert config.staging_dir == Path("data/backup-staging")
    assert config.max_age == timedelta(hours=24)
    assert config.drill_max_age == timedelta(days=8)


def test_s3_configuration_reads_secrets_and_hides_them_from_repr() -> None:
    config = config_from_values(
        {
            "backup_target": "s3",
            "backup_s3_bucket": "pilot-backups",
            "backup_s3_sse": "aws:kms",
            "backup_s3_sse_kms_key_id": "alias/guardia",
            "backup_s3_access_key_id": "AKIAEXAMPLE",
            "backup_s3_secret_access_key": SecretStr("very-secret-value"),
            "backup_keep_daily": 35,
        },
        Path("data"),
    )
    assert isinstance(config.target, S3Target)
    assert config.target.secret_access_key == "very-secret-value"
    assert config.target.server_side_encryption == "aws:kms"
    assert config.keep_daily == 35
    assert "very-secret-value" not in repr(config)


def test_s3_configuration_without_a_bucket_says_which_setting_is_missing() -> None:
    with pytest.raises(ValueError, match="GUARDIA_BACKUP_S3_BUCKET"):
        config_from_values({"backup_target": "s3"}, Path("data"))
    with pytest.raises(ValueError, match="local or s3"):
        config_from_values({"backup_target": "ftp"}, Path("data"))
