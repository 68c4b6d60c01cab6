"""Runbook 7, "Backups no se ejecutan", as code.

Recovery means a backup finished after the incident was opened, is still complete in the
configured target, is younger than `backup_max_age_hours`, and its checksum was verified. An
older backup, however sound, proves nothing about the fault the incident is about.

An action that was asked to apply and failed reports `applied=False` with its `changes` starting
with "FAILED:" and the cause in its evidence: applied changes move the incident to mitigated,
and a backup that did not happen mitigates nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from guardia.backups import repository as repo
from guardia.backups.config import BackupConfig, LocalTarget, config_from_settings
from guardia.backups.context import BackupContext
from guardia.backups.errors import BackupError, NoBackup, ObjectMissing, ToolMissing
from guardia.backups.model import complete_key
from guardia.backups.pgtools import database_name, resolve_tools, tool_version
from guardia.backups.service import OK, PG_DUMP_FIX, check_backups, run_backup, verify_backup
from guardia.core.errors import Conflict, InvalidInput
from guardia.incidents.model import Runbook as RunbookId
from guardia.runbooks.model import (
    Action,
    ActionResult,
    Check,
    CheckResult,
    RunbookSpec,
    RunContext,
    Status,
)

if TYPE_CHECKING:
    from guardia.settings import Settings

# Preflight items about where dumps are written (target and staging), as opposed to the
# tools and the database, which `pg_dump_available` covers.
PLACE_ITEMS = ("target", "staging", "bucket_writable")
# Problems of the newest backup that only a new backup fixes (the rest, verifying it).
NEEDS_BACKUP = ("missing", "stale", "before_incident", "incomplete", "verify_failed")
PLACEHOLDER = (
    b"Guardia drill: the backup directory was moved aside so backups cannot be written here.\n"
    b"The drill's undo puts it back; by hand: remove this file and rename the directory back.\n"
)


@contextlib.contextmanager
def _backup_context(ctx: RunContext) -> Iterator[BackupContext]:
    bctx = ctx.container.backup_context()
    try:
        yield bctx
    finally:
        bctx.close()


def _config(ctx: RunContext) -> BackupConfig:
    return config_from_settings(ctx.container.settings)


def _hours(seconds: float) -> float:
    return round(seconds / 3600, 3)


# --- the newest backup -----------------------------------------------------------------------


@dataclass
class Newest:
    """The newest successful backup still stored, and why it is not yet the proof of recovery."""

    row: repo.BackupRow | None
    database: str
    location: str
    problems: dict[str, str] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def needs_backup(self) -> bool:
        """Only a new backup can fix what is wrong with this one."""
        return any(p in self.problems for p in NEEDS_BACKUP)

    @property
    def needs_verify(self) -> bool:
        """A fresh backup newer than the incident whose checksum nobody has verified yet."""
        return not self.needs_backup and "unverified" in self.problems


def _marker(bctx: BackupContext, row: repo.BackupRow) -> str | None:
    """None when the COMPLETE marker is readable in the configured target, else why not."""
    store = bctx.target_store()
    if row.location != store.location:
        return f"it is stored at {row.location}, the configured target is {store.location}"
    try:
        store.get_bytes(complete_key(row.name))
    except ObjectMissing:
        return f"its COMPLETE marker is missing from {store.location}"
    except (BackupError, OSError) as exc:
        reason = exc.message if isinstance(exc, BackupError) else exc.strerror or str(exc)
        return f"its COMPLETE marker is unreadable in {store.location}: {reason}"
    return None


async def find_newest(ctx: RunContext) -> Newest:
    """Read the newest backup and judge it against the freshness policy and the incident."""
    config = _config(ctx)
    async with ctx.container.engine.connect() as conn:
        try:
            row: repo.BackupRow | None = await conn.run_sync(
                lambda c: repo.get_backup(c, repo.LATEST)
            )
        except NoBackup:
            row = None
        runs = await conn.run_sync(lambda c: repo.list_backups(c, include_all=True, limit=1))
    with _backup_context(ctx) as bctx:
        newest = Newest(row, database_name(bctx.database_url), bctx.target_store().location)
        marker = await asyncio.to_thread(_marker, bctx, row) if row is not None else None
    max_age = config.max_age.total_seconds()
    evidence = newest.evidence
    evidence["max_age_hours"] = _hours(max_age)
    evidence["incident_opened_at"] = ctx.opened_at.isoformat() if ctx.opened_at else None
    if runs:
        last = runs[0]
        evidence["latest_run"] = {"id": last.id, "status": last.status, "error": last.error}
    if row is None:
        newest.problems["missing"] = "no successful backup is stored"
        return newest
    assert row.finished_at is not None  # noqa: S101 - a successful backup has finished
    age = (ctx.now - row.finished_at).total_seconds()
    evidence.update(
        backup_id=row.id,
        name=row.name,
        location=row.location,
        finished_at=row.finished_at.isoformat(),
        age_hours=_hours(age),
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        complete_marker=marker is None,
        verify_status=row.verify_status,
        verified_at=row.verified_at.isoformat() if row.verified_at else None,
        external_ids={"backup_object": [row.name]},
    )
    if age >= max_age:
        newest.problems["stale"] = (
            f"it finished {_hours(age)} h ago, the limit is {_hours(max_age)} h"
        )
    if ctx.opened_at is not None and row.finished_at <= ctx.opened_at:
        newest.problems["before_incident"] = (
            f"it finished at {row.finished_at.isoformat()}, before the incident was opened "
            f"({ctx.opened_at.isoformat()})"
        )
    if marker is not None:
        newest.problems["incomplete"] = marker
    if row.verify_status is None:
        newest.problems["unverified"] = "its checksum has not been verified"
    elif row.verify_status != OK:
        newest.problems["verify_failed"] = (
            f"its verification said {row.verify_status}: {row.verify_detail}"
        )
    return newest


# --- checks ----------------------------------------------------------------------------------


async def s3_credentials(ctx: RunContext) -> CheckResult:
    """S3 target: the preflight's probe (bucket reachable, a probe object written and deleted)."""
    name = "s3_credentials"
    config = _config(ctx)
    if isinstance(config.target, LocalTarget):
        return CheckResult(
            name,
            Status.PASS,
            f"local target ({config.target.directory}), no S3 credentials needed",
            {"target": "local", "directory": str(config.target.directory)},
        )
    target = config.target
    evidence: dict[str, Any] = {
        "target": "s3",
        "bucket": target.bucket,
        "prefix": target.prefix,
        "endpoint_url": target.endpoint_url,
        "credentials": "settings" if target.access_key_id else "boto3 chain",
    }
    with _backup_context(ctx) as bctx:
        try:
            items = await asyncio.to_thread(lambda: bctx.target_store().probe())
        except BackupError as exc:
            return CheckResult(name, Status.FAIL, exc.message, evidence)
    evidence["items"] = [asdict(i) for i in items]
    failed = [i for i in items if not i.ok]
    if failed:
        return CheckResult(
            name,
            Status.FAIL,
            "; ".join(f"{i.name}: {i.detail} → {i.fix}" for i in failed),
            evidence,
        )
    return CheckResult(
        name,
        Status.PASS,
        f"s3://{target.bucket}/{target.prefix} written with these credentials",
        evidence,
    )


async def pg_dump_available(ctx: RunContext) -> CheckResult:
    """pg_dump and pg_restore found, their versions, and pg_dump at least as new as the server."""
    name = "pg_dump_available"
    configured = _config(ctx).pg_dump
    evidence: dict[str, Any] = {"configured": configured}
    try:
        tools = await asyncio.to_thread(resolve_tools, configured)
        restore_version, restore_major = await asyncio.to_thread(tool_version, tools.pg_restore)
    except ToolMissing as exc:
        return CheckResult(name, Status.FAIL, f"{exc.message}; fix: {PG_DUMP_FIX}", evidence)
    evidence.update(
        pg_dump=str(tools.pg_dump),
        pg_dump_version=tools.version,
        pg_dump_major=tools.major,
        pg_restore=str(tools.pg_restore),
        pg_restore_version=restore_version,
        pg_restore_major=restore_major,
    )
    try:
        async with ctx.container.engine.connect() as conn:
            server_text = str(await conn.scalar(text("SHOW server_version")))
            server_num = int(await conn.scalar(text("SHOW server_version_num")) or 0)
    except SQLAlchemyError as exc:
        return CheckResult(
            name,
            Status.UNKNOWN,
            f"pg_dump {tools.version} found; the server's version is unreadable "
            f"({type(exc).__name__})",
            evidence,
        )
    server_major = server_num // 10000
    evidence.update(server_version=server_text, server_version_num=server_num)
    if tools.major < server_major:
        return CheckResult(
            name,
            Status.FAIL,
            f"pg_dump {tools.version} is older than the server ({server_text}) and refuses to "
            f"dump it; fix: {PG_DUMP_FIX}",
            evidence,
        )
    if restore_major < tools.major:
        return CheckResult(
            name,
            Status.FAIL,
            f"pg_restore {restore_version} ({tools.pg_restore}) cannot read what pg_dump "
            f"{tools.version} writes: install both from one PostgreSQL client",
            evidence,
        )
    return CheckResult(
        name,
        Status.PASS,
        f"pg_dump {tools.version} and pg_restore {restore_version} for server {server_text}",
        evidence,
    )


def _free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


async def space_and_permissions(ctx: RunContext) -> CheckResult:
    """The preflight's target and staging items: writable, private, and with room."""
    name = "space_and_permissions"
    with _backup_context(ctx) as bctx:
        store = bctx.target_store()
        report = await asyncio.to_thread(check_backups, bctx.config, bctx.database_url, store)
        staging = bctx.config.staging_dir
        free = {"staging": await asyncio.to_thread(_free_bytes, staging)}
        if isinstance(bctx.config.target, LocalTarget):
            free["target"] = await asyncio.to_thread(_free_bytes, bctx.config.target.directory)
        location = store.location
        floor = bctx.config.staging_floor_bytes
    items = [i for i in report.items if i.name.startswith(PLACE_ITEMS)]
    evidence: dict[str, Any] = {
        "target": location,
        "staging_dir": str(staging),
        "free_bytes": free,
        "staging_floor_bytes": floor,
        "items": [asdict(i) for i in items],
    }
    failed = [i for i in items if not i.ok]
    if failed:
        return CheckResult(
            name,
            Status.FAIL,
            "; ".join(f"{i.name}: {i.detail} → {i.fix}" for i in failed),
            evidence,
        )
    if not items:
        return CheckResult(name, Status.UNKNOWN, "the preflight said nothing about space", evidence)
    return CheckResult(
        name,
        Status.PASS,
        f"{location} and {staging} writable, private, with room ({len(items)} items)",
        evidence,
    )


async def fresh_verified_backup(ctx: RunContext) -> CheckResult:
    """The newest backup is complete, verified, fresh, and finished after the incident opened."""
    name = "fresh_verified_backup"
    newest = await find_newest(ctx)
    evidence = {**newest.evidence, "problems": newest.problems}
    if newest.row is None:
        return CheckResult(name, Status.FAIL, "no successful backup is stored", evidence)
    if newest.problems:
        return CheckResult(
            name,
            Status.FAIL,
            f"backup {newest.row.name}: " + "; ".join(newest.problems.values()),
            evidence,
        )
    return CheckResult(
        name,
        Status.PASS,
        f"backup {newest.row.name} is complete, verified, {evidence['age_hours']} h old"
        + (", newer than the incident" if ctx.opened_at else ""),
        evidence,
    )


# --- actions ---------------------------------------------------------------------------------


def _run_change(newest: Newest) -> str:
    return f"run a backup of {newest.database} to {newest.location}"


async def manual_backup(ctx: RunContext, apply: bool) -> ActionResult:
    """Back up now to the configured target, unless a fresh backup newer than the incident is
    stored (without pruning: a manual run during an incident deletes nothing)."""
    name = "manual_backup"
    newest = await find_newest(ctx)
    if not newest.needs_backup:
        assert newest.row is not None  # noqa: S101 - no problem needing a backup means a row
        return ActionResult(
            name,
            False,
            [],
            {
                "skipped": f"backup {newest.row.name} is fresh"
                + (" and newer than the incident" if ctx.opened_at else ""),
                "external_ids": {"backup_object": [newest.row.name]},
            },
        )
    change = _run_change(newest)
    evidence: dict[str, Any] = {"because": newest.problems}
    if not apply:
        return ActionResult(name, False, [change], evidence)
    with _backup_context(ctx) as bctx:
        try:
            outcome = await asyncio.to_thread(run_backup, bctx, prune_after=False)
        except BackupError as exc:
            evidence["error"] = exc.message
            async with ctx.container.engine.connect() as conn:
                runs = await conn.run_sync(
                    lambda c: repo.list_backups(c, include_all=True, limit=1)
                )
            if runs and runs[0].status == "failed":
                evidence["failed_run"] = {"id": runs[0].id, "name": runs[0].name}
            return ActionResult(
                name, False, [f"FAILED: {change}: {exc.message}"], evidence, failed=True
            )
    evidence.update(
        backup_id=outcome.backup_id,
        name=outcome.name,
        size_bytes=outcome.size_bytes,
        sha256=outcome.sha256,
        external_ids={"backup_object": [outcome.name]},
    )
    return ActionResult(name, True, [change], evidence)


NEW_BACKUP = "the backup manual_backup takes"


async def verify_integrity(ctx: RunContext, apply: bool) -> ActionResult:
    """Verify the checksum of the newest backup (read back, SHA-256, TOC), recording the result;
    only a backup that can prove the recovery (fresh, newer than the incident) is worth it."""
    name = "verify_integrity"
    newest = await find_newest(ctx)
    row = newest.row
    if not apply and newest.needs_backup:
        return ActionResult(
            name, False, [f"verify the checksum of {NEW_BACKUP}"], {"because": newest.problems}
        )
    if row is None or newest.needs_backup:
        return ActionResult(
            name,
            False,
            [],
            {
                "skipped": "no fresh backup newer than the incident to verify",
                "because": newest.problems,
            },
        )
    ids = {"backup_object": [row.name]}
    if not newest.needs_verify:
        return ActionResult(
            name,
            False,
            [],
            {"skipped": f"backup {row.name} is already verified", "external_ids": ids},
        )
    # Taken during this run: the dry run could only call it "the backup manual_backup takes".
    subject = NEW_BACKUP if row.started_at >= ctx.now else f"backup {row.name}"
    change = f"verify the checksum of {subject}"
    evidence: dict[str, Any] = {"backup_id": row.id, "name": row.name, "external_ids": ids}
    if not apply:
        return ActionResult(name, False, [change], evidence)
    with _backup_context(ctx) as bctx:
        try:
            result = await asyncio.to_thread(verify_backup, bctx, row.id)
        except BackupError as exc:
            evidence["error"] = exc.message
            return ActionResult(
                name, False, [f"FAILED: {change}: {exc.message}"], evidence, failed=True
            )
    evidence.update(result.to_json())
    evidence["external_ids"] = ids
    if not result.ok:
        failures = "; ".join(i.detail for i in result.report.failures())
        return ActionResult(
            name, False, [f"FAILED: {change}: {result.status}: {failures}"], evidence, failed=True
        )
    return ActionResult(name, True, [change], evidence)


SPEC = RunbookSpec(
    name="backups",
    runbook=RunbookId.BACKUPS_NOT_RUNNING,
    title="Backups no se ejecutan",
    checks=(
        Check("s3_credentials", "S3 target: the credentials write a probe object", s3_credentials),
        Check(
            "pg_dump_available",
            "pg_dump and pg_restore found, as new as the server",
            pg_dump_available,
        ),
        Check(
            "space_and_permissions",
            "target writable and private, staging with room",
            space_and_permissions,
        ),
        Check(
            "fresh_verified_backup",
            "newest backup complete, checksum verified, fresh, newer than the incident",
            fresh_verified_backup,
        ),
    ),
    actions=(
        Action("manual_backup", "run a backup now to the configured target", False, manual_backup),
        Action("verify_integrity", "verify the newest backup's checksum", False, verify_integrity),
    ),
    verification=("space_and_permissions", "fresh_verified_backup"),
    symptoms="No recent backup; a backup much smaller than usual; no restore drill this week.",
    commands=(
        "guardia check backups",
        "guardia backup run",
        "guardia backup verify latest",
        "guardia backup restore-test latest",
        "guardia backup list --all",
    ),
    no_correlation_reason="a backup is not part of a payment flow: no correlation id exists; "
    "the backup's name is its external id",
    prevention=(
        "Alert when no backup succeeded in 24 h (BackupStale)",
        "Weekly restore drill into a scratch database (RestoreDrillStale)",
    ),
)


# --- drill helper ----------------------------------------------------------------------------


def make_target_unwritable(settings: Settings) -> Callable[[], None]:
    """Break the local backup target: move its directory aside and put a regular file at its
    path (root ignores permission bits, not file types); return the function that undoes it."""
    target = config_from_settings(settings).target
    if not isinstance(target, LocalTarget):
        raise InvalidInput(
            f"make_target_unwritable breaks a local backup target only; this one is "
            f"{target.kind} (GUARDIA_BACKUP_TARGET)"
        )
    directory = target.directory
    if directory.exists() and not directory.is_dir():
        raise Conflict(f"{directory} is not a directory: is the target already broken?")
    created = [p for p in reversed(directory.parents) if not p.exists()]
    directory.parent.mkdir(parents=True, exist_ok=True)
    aside: Path | None = None
    if directory.exists():
        aside = directory.with_name(f"{directory.name}.moved-aside-{secrets.token_hex(4)}")
        directory.rename(aside)
    try:
        fd = os.open(directory, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "wb") as fh:
            fh.write(PLACEHOLDER)
    except BaseException:
        if aside is not None:
            aside.rename(directory)
        raise
    placed = directory.lstat()
    undone = False

    def undo() -> None:
        """Remove the placeholder file and put the directory back (once)."""
        nonlocal undone
        if undone:
            return
        try:
            now = directory.lstat()
        except FileNotFoundError:
            pass
        else:
            if (now.st_dev, now.st_ino) != (placed.st_dev, placed.st_ino):
                raise Conflict(
                    f"{directory} is no longer the drill's placeholder; left as is"
                    + (f"; the backups are in {aside}" if aside else "")
                )
            directory.unlink()
        if aside is not None:
            aside.rename(directory)
        else:
            for parent in reversed(created):
                with contextlib.suppress(OSError):  # not empty: someone uses it now
                    parent.rmdir()
        undone = True

    return undo
