"""Backups against real PostgreSQL and an S3 endpoint served by moto on 127.0.0.1: backup, verify,
restore drill, corruption, missing bucket and pg_dump, interruption, freshness, retention."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from moto.server import ThreadedMotoServer
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine
from structlog.testing import capture_logs
from typer.testing import CliRunner

from guardia.adapters.postgres.database import sqlalchemy_url
from guardia.adapters.s3.store import S3Store
from guardia.backups import repository as repo
from guardia.backups.cli import make_app
from guardia.backups.config import BackupConfig, LocalTarget, S3Target
from guardia.backups.context import BackupContext
from guardia.backups.drill import restore_drill
from guardia.backups.errors import BackupFailed, NoBackup
from guardia.backups.health import BackupGauges, evaluate_alerts, read_health, readiness
from guardia.backups.local_store import LocalStore
from guardia.backups.model import BACKUP_FAILING, BACKUP_STALE, RESTORE_DRILL_STALE, Manifest
from guardia.backups.pgtools import resolve_tools
from guardia.backups.service import check_backups, run_backup, verify_backup
from guardia.backups.tables import backups, restore_drills
from guardia.core.clock import FakeClock
from guardia.ledger.check import store_report

pytestmark = pytest.mark.integration

EVERY_CHECK = [f"D{i}" for i in range(1, 13)]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """An S3 API served by moto on a free loopback port."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint: str) -> Any:
    """A plain boto3 client, to inspect and tamper with what Guardia stored."""
    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@pytest.fixture
def bucket(s3: Any) -> str:
    """A fresh bucket."""
    name = f"guardia-test-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    return name


def s3_target(endpoint: str, bucket: str, sse: str | None = None) -> S3Target:
    """Guardia's S3 target on moto."""
    return S3Target(
        bucket=bucket,
        prefix="pilot/",
        endpoint_url=endpoint,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
        server_side_encryption=sse,
    )


def context(
    db_url: str, tmp_path: Path, target: LocalTarget | S3Target, **config: Any
) -> BackupContext:
    """A backup context on the test database."""
    clock = config.pop("clock", None)
    cfg = BackupConfig(
        target=target, staging_dir=tmp_path / "staging", staging_floor_bytes=1 << 20, **config
    )
    return BackupContext(db_url, cfg, **({"clock": clock} if clock else {}))


def seed(db_url: str, orders: int = 6) -> None:
    """Payments, their transitions and postings, and the webhook events behind them."""
    with psycopg.connect(db_url) as conn:
        for n in range(orders):
            order = f"ord_test{n:04d}"
            body = {"id": f"evt_{n}", "type": "order.paid", "data": {"object": {"id": order}}}
            conn.execute(
                "INSERT INTO webhook_events (provider, event_id, event_type, order_id, "
                "correlation_id, body, body_sha256, status) VALUES ('conekta', %s, "
                "'order.paid', %s, %s, %s, %s, 'processed')",
                (f"evt_{n}", order, f"corr{n}", json.dumps(body), "0" * 64),
            )
            conn.execute(
                "INSERT INTO payments (order_id, status, amount_cents, currency, "
                "amount_refunded_cents, source_updated_at, provenance, correlation_id) VALUES "
                "(%s, 'paid', %s, 'MXN', %s, now(), '{}', %s)",
                (order, 10_000 + n, 1_000 if n % 3 == 0 else 0, f"corr{n}"),
            )
            conn.execute(
                "INSERT INTO payment_transitions (order_id, from_status, to_status, source, "
                "correlation_id) VALUES (%s, NULL, 'pending_payment', 'webhook', %s), "
                "(%s, 'pending_payment', 'paid', 'webhook', %s)",
                (order, f"corr{n}", order, f"corr{n}"),
            )
            conn.execute(
                "INSERT INTO postings (order_id, kind, state, amount_cents, currency, "
                "entry_date, ref, odoo_move_id, correlation_id) VALUES (%s, 'payment', "
                "'posted', %s, 'MXN', current_date, %s, %s, %s)",
                (order, 10_000 + n, order, 100 + n, f"corr{n}"),
            )


def keys_under(s3: Any, bucket: str, prefix: str = "pilot/") -> list[str]:
    """Every object key under the prefix."""
    return sorted(
        o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    )


def database_exists(db_url: str, name: str) -> bool:
    """Whether a database of that name exists on the test server."""
    with psycopg.connect(db_url) as conn:
        return (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            is not None
        )


def test_backup_to_s3_verifies_and_its_restore_drill_passes_every_check(
    db_url: str, tmp_path: Path, s3_endpoint: str, s3: Any, bucket: str
) -> None:
    seed(db_url)
    ctx = context(db_url, tmp_path, s3_target(s3_endpoint, bucket, sse="AES256"))

    outcome = run_backup(ctx)

    name = outcome.name
    assert keys_under(s3, bucket) == [
        f"pilot/{name}/COMPLETE",
        f"pilot/{name}/dump.pgdump",
        f"pilot/{name}/manifest.json",
    ]
    assert (
        s3.head_object(Bucket=bucket, Key=f"pilot/{name}/dump.pgdump")["ServerSideEncryption"]
        == "AES256"
    )
    manifest = Manifest.from_json(
        json.loads(s3.get_object(Bucket=bucket, Key=f"pilot/{name}/manifest.json")["Body"].read())
    )
    assert manifest.sha256 == outcome.sha256
    assert manifest.size_bytes == outcome.size_bytes
    assert manifest.table_rows["public.payments"] == 6
    assert manifest.table_rows["public.payment_transitions"] == 12
    assert manifest.money_checksums["public.postings"].startswith("6:")
    assert manifest.alembic_revision is not None

    verified = verify_backup(ctx, outcome.backup_id)
    assert verified.status == "ok", verified.report.to_json()

    report = restore_drill(ctx, "latest")

    assert [c.id for c in report.checks] == EVERY_CHECK
    amcheck_absent = resolve_tools(None).pg_amcheck is None or not _has_amcheck(db_url)
    for check in report.checks:
        expected = "skip" if check.id == "D10" and amcheck_absent else "pass"
        assert check.status == expected, check
    assert report.ok
    assert not database_exists(db_url, report.scratch_database)
    with ctx.engine().connect() as conn:
        stored = conn.execute(restore_drills.select()).one()
        row = repo.get_backup(conn, outcome.backup_id)
    assert stored.ok is True
    assert stored.backup_id == outcome.backup_id
    assert row.verify_status == "ok"
    ctx.close()


def _has_amcheck(db_url: str) -> bool:
    with psycopg.connect(db_url) as conn:
        query = "SELECT 1 FROM pg_available_extensions WHERE name = 'amcheck'"
        return conn.execute(query).fetchone() is not None


def _tamper(s3: Any, bucket: str, key: str, change: Any) -> None:
    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=bucket, Key=key, Body=change(data))


def test_a_flipped_byte_in_the_stored_dump_is_reported_as_corrupt(
    db_url: str, tmp_path: Path, s3_endpoint: str, s3: Any, bucket: str
) -> None:
    seed(db_url)
    ctx = context(db_url, tmp_path, s3_target(s3_endpoint, bucket))
    outcome = run_backup(ctx)

    def flip(data: bytes) -> bytes:
        middle = len(data) // 2
        return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]

    _tamper(s3, bucket, f"pilot/{outcome.name}/dump.pgdump", flip)

    result = verify_backup(ctx, "latest")

    assert result.status == "corrupt"
    failed = {i.name: i.detail for i in result.report.failures()}
    # The checksum always catches the flip; whether pg_restore --list also trips depends on
    # where in the compressed dump the flipped byte lands, so it may fail too.
    assert set(failed) - {"pg_restore_list"} == {"sha256"}
    assert "corrupt: SHA-256 of the stored dump" in failed["sha256"]
    with ctx.engine().connect() as conn:
        assert repo.get_backup(conn, outcome.backup_id).verify_status == "corrupt"
    drill = restore_drill(ctx, outcome.backup_id)
    assert not drill.ok
    statuses = {c.id: c.status for c in drill.checks}
    assert statuses["D3"] == "fail"
    assert statuses["D4"] == "skip"
    ctx.close()


def test_a_truncated_dump_is_reported_as_corrupt(
    db_url: str, tmp_path: Path, s3_endpoint: str, s3: Any, bucket: str
) -> None:
    seed(db_url)
    ctx = context(db_url, tmp_path, s3_target(s3_endpoint, bucket))
    outcome = run_backup(ctx)
    _tamper(s3, bucket, f"pilot/{outcome.name}/dump.pgdump", lambda data: data[: len(data) // 2])

    result = verify_backup(ctx, outcome.backup_id)

    assert result.status == "corrupt"
    failed = {i.name: i.detail for i in result.report.failures()}
    assert "truncated" in failed["size"]
    assert f"the manifest says {outcome.size_bytes}" in failed["size"]
    assert not list(ctx.config.staging_dir.iterdir())  # the download was removed
    ctx.close()


def test_a_missing_bucket_fails_the_preflight_and_the_backup_with_what_to_fix(
    db_url: str, tmp_path: Path, s3_endpoint: str
) -> None:
    ctx = context(db_url, tmp_path, s3_target(s3_endpoint, "guardia-nobody-made-this"))

    report = check_backups(ctx.config, db_url)

    failed = {i.name: i for i in report.failures()}
    assert list(failed) == ["bucket"]
    assert "bucket guardia-nobody-made-this does not exist" in failed["bucket"].detail
    assert "create bucket guardia-nobody-made-this" in failed["bucket"].fix
    with pytest.raises(BackupFailed, match="does not exist"):
        run_backup(ctx)
    with ctx.engine().connect() as conn:
        (row,) = repo.list_backups(conn, include_all=True)
        facts, alerts = read_health(conn, ctx.config.health_policy, datetime.now(UTC))
        # Past the install grace (24 h for backups, 8 days for drills) staleness fires too.
        _, later = read_health(
            conn, ctx.config.health_policy, datetime.now(UTC) + timedelta(days=9)
        )
    assert row.status == "failed"
    assert "create bucket" in (row.error or "")
    assert facts.failures_total == 1
    assert facts.last_success_at is None
    assert {a.name for a in alerts if a.firing} == {BACKUP_FAILING}
    assert {a.name for a in later if a.firing} == {
        BACKUP_STALE,
        BACKUP_FAILING,
        RESTORE_DRILL_STALE,
    }
    ctx.close()


def test_an_absent_pg_dump_fails_the_preflight_and_the_backup_with_what_to_fix(
    db_url: str, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "pg_dump"
    ctx = context(db_url, tmp_path, LocalTarget(tmp_path / "backups"), pg_dump=str(missing))

    report = check_backups(ctx.config, db_url)

    failed = {i.name: i for i in report.failures()}
    assert list(failed) == ["pg_dump"]
    assert f"pg_dump not found at {missing}" in failed["pg_dump"].detail
    assert "GUARDIA_BACKUP_PG_DUMP" in failed["pg_dump"].fix
    with pytest.raises(BackupFailed, match="pg_dump not found"):
        run_backup(ctx)
    with ctx.engine().connect() as conn:
        (row,) = repo.list_backups(conn, include_all=True)
    assert row.status == "failed"
    assert LocalStore(tmp_path / "backups").complete_names() == []
    ctx.close()


def fake_tool(folder: Path, name: str, body: str) -> Path:
    """An executable shell script standing in for a PostgreSQL tool."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_a_pg_dump_older_than_the_server_is_refused_before_dumping(
    db_url: str, tmp_path: Path
) -> None:
    old = tmp_path / "pg12"
    fake_tool(old, "pg_restore", 'echo "pg_restore (PostgreSQL) 12.22"\n')
    pg_dump = fake_tool(old, "pg_dump", 'echo "pg_dump (PostgreSQL) 12.22"\n')
    ctx = context(db_url, tmp_path, LocalTarget(tmp_path / "backups"), pg_dump=str(pg_dump))

    report = check_backups(ctx.config, db_url)

    failed = {i.name: i for i in report.failures()}
    assert list(failed) == ["pg_dump_version"]
    assert "refuses to dump" in failed["pg_dump_version"].fix
    with pytest.raises(BackupFailed, match="older than the server"):
        run_backup(ctx)
    ctx.close()


def test_pg_dump_dying_mid_stream_leaves_no_object_and_a_failed_row(
    db_url: str, tmp_path: Path, s3_endpoint: str, s3: Any, bucket: str
) -> None:
    seed(db_url)
    real = resolve_tools(None)
    crashing = fake_tool(
        tmp_path / "crashing",
        "pg_dump",
        f'case "$*" in *--version*|*--schema-only*) exec "{real.pg_dump}" "$@";; esac\n'
        f'"{real.pg_dump}" "$@" | head -c 3000\n'
        'echo "pg_dump: error: simulated crash" >&2\nexit 1\n',
    )
    fake_tool(tmp_path / "crashing", "pg_restore", f'exec "{real.pg_restore}" "$@"\n')
    ctx = context(db_url, tmp_path, s3_target(s3_endpoint, bucket), pg_dump=str(crashing))

    with pytest.raises(BackupFailed, match="simulated crash"):
        run_backup(ctx)

    assert keys_under(s3, bucket) == []
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    with ctx.engine().connect() as conn:
        (row,) = repo.list_backups(conn, include_all=True)
    assert row.status == "failed"
    assert "pg_dump exited 1" in (row.error or "")
    ctx.close()


KILLED_CHILD = """
import os, signal, sys
from guardia.backups.config import BackupConfig, S3Target
from guardia.backups.context import BackupContext
from guardia.backups.service import run_backup

class DieMidUpload:
    def start(self, label, total, *, unit="bytes"): pass
    def advance(self, amount): os.kill(os.getpid(), signal.SIGKILL)
    def finish(self): pass

target = S3Target(bucket=os.environ["T_BUCKET"], prefix="pilot/",
                  endpoint_url=os.environ["T_ENDPOINT"], access_key_id="testing",
                  secret_access_key="testing", region="us-east-1")
config = BackupConfig(target=target, staging_dir=os.environ["T_STAGING"])
run_backup(BackupContext(os.environ["T_DB"], config, progress=DieMidUpload()))
"""


def test_a_backup_killed_mid_upload_leaves_nothing_that_looks_complete(
    db_url: str, tmp_path: Path, s3_endpoint: str, s3: Any, bucket: str
) -> None:
    seed(db_url)
    env = dict(
        os.environ,
        T_BUCKET=bucket,
        T_ENDPOINT=s3_endpoint,
        T_STAGING=str(tmp_path / "staging"),
        T_DB=db_url,
    )
    child = subprocess.run(
        [sys.executable, "-c", KILLED_CHILD], env=env, capture_output=True, timeout=120, check=False
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]

    ctx = context(db_url, tmp_path, s3_target(s3_endpoint, bucket))
    store = S3Store(ctx.config.target)  # type: ignore[arg-type]
    assert store.complete_names() == []
    assert keys_under(s3, bucket) == []  # an unfinished multipart upload is not an object
    assert len(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == 1
    with ctx.engine().connect() as conn:
        (dead,) = repo.list_backups(conn, include_all=True)
    assert dead.status == "running"
    with pytest.raises(NoBackup, match="did not complete"):
        verify_backup(ctx, dead.id)

    fresh = run_backup(ctx)

    assert store.complete_names() == [fresh.name]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    with ctx.engine().connect() as conn:
        dead_now = repo.get_backup(conn, dead.id)
    assert dead_now.status == "failed"
    assert (dead_now.error or "").startswith("interrupted")
    ctx.close()


async def test_the_freshness_alert_fires_at_24_hours_with_a_fake_clock(
    db_url: str, tmp_path: Path
) -> None:
    seed(db_url)
    clock = FakeClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    ctx = context(db_url, tmp_path, LocalTarget(tmp_path / "backups"), clock=clock)
    run_backup(ctx)
    drill = restore_drill(ctx)
    assert drill.ok
    policy = ctx.config.health_policy
    engine = create_async_engine(sqlalchemy_url(db_url))
    try:
        async with engine.connect() as conn:
            almost = await evaluate_alerts(
                conn, policy, clock.now() + timedelta(hours=23, minutes=59)
            )
            due = await evaluate_alerts(conn, policy, clock.now() + timedelta(hours=24))
            week = await evaluate_alerts(conn, policy, clock.now() + timedelta(days=7, hours=23))
            eight = await evaluate_alerts(conn, policy, clock.now() + timedelta(days=8))
    finally:
        await engine.dispose()
    assert not almost[BACKUP_STALE].firing
    assert due[BACKUP_STALE].firing
    assert due[BACKUP_STALE].value == 24 * 3600
    assert not week[RESTORE_DRILL_STALE].firing
    assert eight[RESTORE_DRILL_STALE].firing
    ctx.close()


def test_retention_keeps_n_daily_and_m_weekly_and_never_the_newest_verified(
    db_url: str, tmp_path: Path
) -> None:
    clock = FakeClock(datetime(2026, 3, 2, 18, 0, tzinfo=UTC))  # Monday, 12:00 in Mexico City
    ctx = context(
        db_url,
        tmp_path,
        LocalTarget(tmp_path / "backups"),
        clock=clock,
        keep_daily=2,
        keep_weekly=2,
    )
    made: dict[str, int] = {}
    for day, gap in (
        ("03-02", 0),
        ("03-03", 1),
        ("03-09", 6),
        ("03-10", 1),
        ("03-16", 6),
        ("03-17", 1),
    ):
        clock.advance(timedelta(days=gap))
        made[day] = run_backup(ctx).backup_id
        if day == "03-02":
            assert verify_backup(ctx, made[day]).ok  # the oldest becomes the newest verified

    with ctx.engine().connect() as conn:
        rows = {r.id: r for r in repo.list_backups(conn, include_all=True)}
    kept = {day for day, i in made.items() if rows[i].deleted_at is None}
    assert kept == {"03-02", "03-10", "03-16", "03-17"}
    store = LocalStore(tmp_path / "backups")
    assert store.complete_names() == sorted(rows[made[d]].name for d in kept)
    assert not (tmp_path / "backups" / rows[made["03-03"]].name).exists()
    ctx.close()


def test_the_backup_tables_match_their_migration(db_url: str) -> None:
    ctx = BackupContext(db_url, BackupConfig(LocalTarget(Path("unused")), Path("unused")))
    inspector = inspect(ctx.engine())
    for table in (backups, restore_drills):
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        assert columns == {c.name for c in table.columns}, table.name
    ctx.close()


async def test_metrics_read_zero_before_any_backup_and_readiness_reports_without_going_red(
    db_url: str, tmp_path: Path, s3_endpoint: str
) -> None:
    ctx = context(db_url, tmp_path, s3_target(s3_endpoint, "guardia-nobody-made-this"))
    values = {m.name: m.samples[0].value for m in BackupGauges(db_url).collect()}
    assert values["guardia_backup_last_success_timestamp_seconds"] == 0
    assert values["guardia_restore_drill_last_success_timestamp_seconds"] == 0
    engine = create_async_engine(sqlalchemy_url(db_url))
    try:
        await store_report(engine, check_backups(ctx.config, db_url))
        detail = await readiness(engine, ctx.config.health_policy, datetime.now(UTC))
    finally:
        await engine.dispose()
    assert detail["ok"] is True
    assert detail["healthy"] is False
    assert [f["name"] for f in detail["failures"]] == ["bucket"]
    # A fresh install: no backup and no drill yet, but within the install grace.
    assert detail["alerts_firing"] == []
    ctx.close()


def test_the_cli_backs_up_verifies_drills_lists_and_prunes_with_json_output(
    db_url: str, tmp_path: Path
) -> None:
    seed(db_url)
    from contextlib import contextmanager

    @contextmanager
    def factory() -> Iterator[BackupContext]:
        ctx = context(db_url, tmp_path, LocalTarget(tmp_path / "backups"))
        try:
            yield ctx
        finally:
            ctx.close()

    cli = make_app(factory)
    runner = CliRunner()
    logged: list[MutableMapping[str, Any]] = []

    def call(*args: str) -> Any:
        with capture_logs() as events:
            result = runner.invoke(cli, [*args, "--json"])
        logged.extend(events)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    assert call("check")["ok"] is True
    made = call("run", "--no-progress")
    assert made["size_bytes"] > 0
    assert call("verify", "latest")["status"] == "ok"
    drill = call("restore-test", str(made["id"]))
    assert drill["ok"] is True
    assert [c["id"] for c in drill["checks"]] == EVERY_CHECK
    assert [b["id"] for b in call("list")] == [made["id"]]
    status = {a["name"]: a["firing"] for a in call("status")["alerts"]}
    assert status == {
        "BackupStale": False,
        "BackupFailing": False,
        "BackupTooSmall": False,
        "RestoreDrillStale": False,
    }
    assert call("prune", "--dry-run")["deleted"] == []
    bad = runner.invoke(cli, ["verify", "999", "--json"])
    assert bad.exit_code == 1
    assert json.loads(bad.stdout) == {"ok": False, "error": "no backup with id 999"}
    assert {e["event"] for e in logged} >= {"backup_succeeded", "restore_drill_finished"}
    assert not [e for e in logged if db_url in json.dumps(e, default=str)]  # no connection strings
