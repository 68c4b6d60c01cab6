"""The restore drill: restore a backup into a scratch database and prove it is the data we
dumped (reliability.md §1.4, checks D1-D12). The scratch database is dropped afterwards and
the report is stored in `restore_drills`.
"""

from __future__ import annotations

import difflib
import secrets
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg
import structlog
from alembic.script import ScriptDirectory
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy import Table

import guardia.backups.tables  # noqa: F401 - registers the backups tables on the metadata
from guardia.adapters.postgres.database import MIGRATIONS_DIR
from guardia.adapters.postgres.tables import metadata
from guardia.backups import repository as repo
from guardia.backups.context import BackupContext
from guardia.backups.errors import BackupError
from guardia.backups.model import (
    DrillReport,
    Manifest,
    backup_stale,
    backup_too_small,
    normalise_schema,
    schema_hash,
)
from guardia.backups.pgtools import PgTools, libpq_args, resolve_tools, scrub
from guardia.backups.service import OK, Integrity, check_integrity, discard
from guardia.backups.snapshot import (
    alembic_revision,
    existing,
    money_checksums,
    open_session,
    table_rows,
    user_tables,
)
from guardia.core.ids import new_correlation_id

log = structlog.get_logger(__name__)

# Ledger invariants on the restored data: (name, tables it needs, query counting violations).
INVARIANTS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "at most one posting per order and kind",
        ("postings",),
        "SELECT count(*) FROM (SELECT 1 FROM postings GROUP BY order_id, kind "
        "HAVING count(*) > 1) d",
    ),
    (
        "each Odoo move backs at most one posting",
        ("postings",),
        "SELECT count(*) FROM (SELECT 1 FROM postings WHERE odoo_move_id IS NOT NULL "
        "GROUP BY odoo_move_id HAVING count(*) > 1) d",
    ),
    (
        "posted postings carry their move id",
        ("postings",),
        "SELECT count(*) FROM postings WHERE state = 'posted' AND odoo_move_id IS NULL",
    ),
    (
        "posting amounts are not negative",
        ("postings",),
        "SELECT count(*) FROM postings WHERE amount_cents < 0",
    ),
    (
        "payment amounts are not negative",
        ("payments",),
        "SELECT count(*) FROM payments WHERE amount_cents < 0 OR amount_refunded_cents < 0 "
        "OR fee_cents < 0",
    ),
    (
        "refunded never exceeds the amount",
        ("payments",),
        "SELECT count(*) FROM payments WHERE amount_refunded_cents > amount_cents",
    ),
    (
        "every posting belongs to a payment",
        ("postings", "payments"),
        "SELECT count(*) FROM postings p WHERE NOT EXISTS "
        "(SELECT 1 FROM payments y WHERE y.order_id = p.order_id)",
    ),
    (
        "every transition belongs to a payment",
        ("payment_transitions", "payments"),
        "SELECT count(*) FROM payment_transitions t WHERE NOT EXISTS "
        "(SELECT 1 FROM payments y WHERE y.order_id = t.order_id)",
    ),
    (
        "each provider event stored once",
        ("webhook_events",),
        "SELECT count(*) FROM (SELECT 1 FROM webhook_events GROUP BY provider, event_id "
        "HAVING count(*) > 1) d",
    ),
)

SMOKE_QUERIES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "payments with their postings",
        ("payments", "postings"),
        "SELECT p.order_id, p.status, count(x.id) FROM payments p LEFT JOIN postings x "
        "ON x.order_id = p.order_id GROUP BY p.order_id, p.status ORDER BY p.order_id LIMIT 20",
    ),
    (
        "latest webhook events",
        ("webhook_events",),
        "SELECT id, event_type, status FROM webhook_events ORDER BY received_at DESC LIMIT 20",
    ),
    (
        "open dead letters by cause",
        ("dead_letters",),
        "SELECT cause, count(*) FROM dead_letters WHERE status = 'open' GROUP BY cause",
    ),
)


def code_head() -> str | None:
    """The newest migration revision this code knows."""
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def _scratch_admin(ctx: BackupContext) -> str:
    return ctx.config.scratch_url or ctx.database_url


def _create_scratch(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))


def _drop_scratch(admin_url: str, name: str) -> bool:
    try:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    except psycopg.Error as exc:
        log.error("scratch_drop_failed", database=name, error=type(exc).__name__)
        return False
    return True


def _restore(
    ctx: BackupContext, tools: PgTools, scratch_url: str, dump: Path, toc_entries: int
) -> tuple[int, str]:
    """pg_restore into the scratch database: (exit status, last error lines)."""
    conninfo, env = libpq_args(scratch_url)
    args = [
        str(tools.pg_restore),
        "--exit-on-error",
        "--single-transaction",
        "--no-owner",
        "--no-privileges",
        "--verbose",
        "--no-password",
        f"--dbname={conninfo}",
        str(dump),
    ]
    proc = subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    assert proc.stderr is not None  # noqa: S101 - PIPE given
    tail: list[str] = []
    ctx.progress.start("pg_restore", toc_entries or None, unit="items")
    try:
        for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            if " creating " in line or "processing data for table" in line:
                ctx.progress.advance(1)
            if "error" in line.lower() or "warning" in line.lower():
                tail.append(line)
                del tail[:-10]
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        ctx.progress.finish()
        proc.stderr.close()
    return code, scrub(" | ".join(tail))


def _schema_of(tools: PgTools, url: str) -> tuple[bool, str]:
    conninfo, env = libpq_args(url)
    done = subprocess.run(  # noqa: S603 - fixed argument list, no shell
        [
            str(tools.pg_dump),
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "--no-password",
            f"--dbname={conninfo}",
        ],
        capture_output=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        return False, scrub(done.stderr.decode(errors="replace"))
    return True, done.stdout.decode()


def _archive_schema(tools: PgTools, dump: Path) -> str:
    done = subprocess.run(  # noqa: S603 - fixed argument list, no shell
        [
            str(tools.pg_restore),
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "--file=-",
            str(dump),
        ],
        capture_output=True,
        check=False,
    )
    return done.stdout.decode(errors="replace")


def _compare(expected: dict[str, object], actual: dict[str, object]) -> list[str]:
    names = sorted(set(expected) | set(actual))
    return [
        f"{n}: restored {actual.get(n, 'absent')} vs manifest {expected.get(n, 'absent')}"
        for n in names
        if expected.get(n) != actual.get(n)
    ]


def _count(conn: psycopg.Connection, query: str) -> int:
    row = conn.execute(query).fetchone()  # fixed queries from this module
    return int(row[0]) if row else 0


def _check_restored(
    report: DrillReport,
    tools: PgTools,
    scratch_url: str,
    manifest: Manifest,
    dump: Path,
) -> None:
    """D6-D11 on the restored database."""
    ok, schema = _schema_of(tools, scratch_url)
    if not ok:
        report.add("D6", "schema parity", False, f"pg_dump --schema-only failed: {schema}")
    else:
        same = schema_hash(schema) == manifest.schema_sha256
        detail = "normalised schema identical to the one dumped"
        if not same:
            diff = list(
                difflib.unified_diff(
                    normalise_schema(_archive_schema(tools, dump)).splitlines(),
                    normalise_schema(schema).splitlines(),
                    "dumped",
                    "restored",
                    lineterm="",
                    n=0,
                )
            )
            detail = "schema differs from the one dumped: " + " | ".join(diff[2:12])
        report.add("D6", "schema parity", same, detail, "compare the schemas; restore by hand")
    with open_session(scratch_url, application_name="guardia-drill") as conn:
        rows = table_rows(conn, user_tables(conn))
        differences = _compare(dict(manifest.table_rows), dict(rows))
        report.add(
            "D7",
            "row counts per table",
            not differences,
            f"{len(rows)} tables, all equal to the manifest"
            if not differences
            else "; ".join(differences[:10]),
            "the restored data differs from the snapshot: do not trust this backup",
        )
        sums = money_checksums(conn, list(manifest.money_checksums))
        differences = _compare(dict(manifest.money_checksums), dict(sums))
        report.add(
            "D8",
            "money-table checksums",
            not differences and bool(sums),
            f"{', '.join(sorted(sums))} equal to the manifest"
            if not differences
            else "; ".join(differences),
            "money rows differ from the snapshot: do not trust this backup",
        )
        _invariants(report, conn)
        _amcheck(report, conn, tools, scratch_url)
        _smoke(report, conn, manifest)


def _invariants(report: DrillReport, conn: psycopg.Connection) -> None:
    violations: list[str] = []
    ran = 0
    for name, tables, query in INVARIANTS:
        if len(existing(conn, tables)) < len(tables):
            continue
        ran += 1
        found = _count(conn, query)
        if found:
            violations.append(f"{name}: {found}")
    report.add(
        "D9",
        "ledger invariants",
        not violations and ran > 0,
        f"{ran} invariants, 0 violations" if not violations else "; ".join(violations),
        "investigate the listed rows in production too: the backup holds what the database held",
    )


def _amcheck(
    report: DrillReport, conn: psycopg.Connection, tools: PgTools, scratch_url: str
) -> None:
    checksums = conn.execute("SHOW data_checksums").fetchone()
    pages = f"data_checksums={checksums[0] if checksums else '?'}"
    if tools.pg_amcheck is None:
        report.skip("D10", "pg_amcheck", f"pg_amcheck not found beside pg_dump ({pages})")
        return
    available = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'amcheck'"
    ).fetchone()
    if not available:
        report.skip(
            "D10",
            "pg_amcheck",
            "the amcheck extension is not installed on the scratch server (the embedded "
            f"PostgreSQL package does not ship it); D7/D8 read every heap page ({pages})",
        )
        return
    conninfo, env = libpq_args(scratch_url)
    done = subprocess.run(  # noqa: S603 - fixed argument list, no shell
        [
            str(tools.pg_amcheck),
            "--install-missing",
            "--no-password",
            f"--maintenance-db={conninfo}",
            f"--database={conninfo_to_dict(scratch_url).get('dbname')}",
        ],
        capture_output=True,
        env=env,
        check=False,
    )
    output = scrub((done.stdout + done.stderr).decode(errors="replace"))
    report.add(
        "D10",
        "pg_amcheck",
        done.returncode == 0,
        "0 corruption reports" if done.returncode == 0 else f"exit {done.returncode}: {output}",
        "corruption in the restored copy: check the source with pg_amcheck too",
    )


def _smoke(report: DrillReport, conn: psycopg.Connection, manifest: Manifest) -> None:
    failures: list[str] = []
    revision = alembic_revision(conn)
    head = code_head()
    if revision != manifest.alembic_revision:
        failures.append(f"migration {revision} restored, {manifest.alembic_revision} dumped")
    present = set(user_tables(conn))
    tables: Sequence[Table] = metadata.sorted_tables
    queried = 0
    for table in tables:
        name = f"public.{table.name}"
        if name not in present:
            if revision == head:
                failures.append(f"table {table.name} missing")
            continue
        query = sql.SQL("SELECT {} FROM {} LIMIT 5").format(
            sql.SQL(", ").join(sql.Identifier(c.name) for c in table.columns),
            sql.Identifier("public", table.name),
        )
        try:
            conn.execute(query)  # every column Guardia's code knows for this table
            queried += 1
        except psycopg.Error as exc:
            failures.append(f"{table.name}: {type(exc).__name__}")
    for name, needs, smoke in SMOKE_QUERIES:
        if len(existing(conn, needs)) < len(needs):
            continue
        try:
            conn.execute(smoke)  # fixed queries from this module
            queried += 1
        except psycopg.Error as exc:
            failures.append(f"{name}: {type(exc).__name__}")
    report.add(
        "D11",
        "app smoke queries",
        not failures and queried > 0,
        f"migration {revision} (code head {head}); {queried} read-only queries passed"
        if not failures
        else "; ".join(failures[:10]),
        "the restored database does not serve Guardia: check migrations and schema",
    )


def restore_drill(ctx: BackupContext, which: int | str = repo.LATEST) -> DrillReport:
    """Run every drill check against a backup; store and return the report."""
    cfg = ctx.config
    with ctx.engine().connect() as conn:
        row = repo.get_completed(conn, which)
        facts = repo.read_facts(conn, cfg.size_window)
    started = ctx.clock.now()
    t0 = time.monotonic()
    scratch = f"guardia_drill_{secrets.token_hex(5)}"
    report = DrillReport(row.id, row.name, started, scratch, cfg.rto_target_seconds)
    # D1 and D2 judge the newest backup (what a restore today would use), not the drilled one
    fresh = backup_stale(facts, cfg.health_policy, started)
    report.add("D1", "freshness", not fresh.firing, fresh.detail, "run `guardia backup run`")
    size = backup_too_small(facts, cfg.health_policy)
    report.add(
        "D2", "size sanity", not size.firing, size.detail, "compare with the previous backups"
    )
    admin = _scratch_admin(ctx)
    created = False
    integrity: Integrity | None = None
    error: str | None = None
    try:
        tools = resolve_tools(cfg.pg_dump)
        integrity = check_integrity(ctx, ctx.target_store(), row, tools)
        with ctx.engine().begin() as conn:
            repo.set_verified(conn, row.id, ctx.clock.now(), integrity.status, integrity.detail)
        report.add(
            "D3",
            "integrity (SHA-256, pg_restore --list)",
            integrity.status == OK,
            integrity.detail,
            "this backup cannot be trusted: run a new one and check the target",
        )
        if integrity.status != OK or integrity.dump is None or integrity.manifest is None:
            _skip_rest(report, "D4", "integrity failed")
            return report
        _create_scratch(admin, scratch)
        created = True
        scratch_url = make_conninfo(admin, dbname=scratch)
        r0 = time.monotonic()
        code, message = _restore(
            ctx, tools, scratch_url, integrity.dump.path, integrity.toc_entries
        )
        report.restore_seconds = time.monotonic() - r0
        report.rto_seconds = time.monotonic() - t0
        report.add(
            "D4",
            "restore (--exit-on-error --single-transaction --no-owner)",
            code == 0,
            f"exit 0 in {report.restore_seconds:.1f} s" if code == 0 else f"exit {code}: {message}",
            "read the pg_restore error; the dump or the scratch server is at fault",
        )
        report.add(
            "D5",
            "RTO",
            report.rto_seconds <= cfg.rto_target_seconds,
            f"integrity + restore took {report.rto_seconds:.1f} s, target "
            f"{cfg.rto_target_seconds:.0f} s",
            "restores are slower than agreed: revisit the RTO or the restore path",
        )
        if code != 0:
            _skip_rest(report, "D6", "restore failed")
            return report
        _check_restored(report, tools, scratch_url, integrity.manifest, integrity.dump.path)
    except (BackupError, psycopg.Error, OSError) as exc:
        error = scrub(getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")
        report.add("error", "drill", False, error, "fix the cause and run the drill again")
    finally:
        if created and not _drop_scratch(admin, scratch):
            report.add(
                "cleanup",
                "scratch database dropped",
                False,
                f"could not drop {scratch}",
                f"DROP DATABASE {scratch} by hand",
            )
        if integrity is not None:
            discard(integrity.dump)
        report.duration_seconds = time.monotonic() - t0
        report.finished_at = ctx.clock.now()
        report.add(
            "D12",
            "report stored",
            True,
            "stored in restore_drills; guardia_restore_drill_last_success_timestamp_seconds "
            + ("moves to this drill" if report.ok else "keeps the last passing drill"),
        )
        with ctx.engine().begin() as conn:
            report.id = repo.insert_drill(conn, report, error, new_correlation_id())
        log.info(
            "restore_drill_finished",
            drill_id=report.id,
            backup_id=row.id,
            ok=report.ok,
            rto_seconds=report.rto_seconds,
        )
    return report


def _skip_rest(report: DrillReport, first: str, why: str) -> None:
    names = {
        "D4": "restore",
        "D5": "RTO",
        "D6": "schema parity",
        "D7": "row counts per table",
        "D8": "money-table checksums",
        "D9": "ledger invariants",
        "D10": "pg_amcheck",
        "D11": "app smoke queries",
    }
    order = list(names)
    for check in order[order.index(first) :]:
        report.skip(check, names[check], f"not run: {why}")
