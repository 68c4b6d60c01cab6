"""Runbook 7 against real PostgreSQL and a local backup target in a temporary directory: healthy
checks, an unwritable target named by the checks, a dry run that changes nothing, and an applied
run that takes and verifies exactly the backup the dry run listed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from guardia.backups import repository as repo
from guardia.backups.config import config_from_settings
from guardia.backups.pgtools import database_name
from guardia.backups.service import BackupOutcome, run_backup, verify_backup
from guardia.bootstrap import Container
from guardia.core.errors import InvalidInput
from guardia.incidents import service as incidents
from guardia.incidents.model import Incident, IncidentStatus, Runbook, Severity
from guardia.runbooks import runner
from guardia.runbooks.backups import NEW_BACKUP, SPEC, make_target_unwritable
from guardia.runbooks.model import CheckResult, RunContext

pytestmark = pytest.mark.integration


def by_name(checks: list[CheckResult]) -> dict[str, CheckResult]:
    return {c.name: c for c in checks}


def target_dir(container: Container) -> Path:
    return Path(container.settings.data_dir) / "backups"


def private_target(container: Container) -> Path:
    """The target directory as `guardia backup check` leaves it: created, mode 0700 (a first
    backup into a missing directory creates it with the default mode; see the xfail below)."""
    directory = target_dir(container)
    directory.mkdir(parents=True, mode=0o700)
    return directory


def files_under(directory: Path) -> dict[str, int]:
    """Every file below the directory, with its size."""
    return {
        str(p.relative_to(directory)): p.stat().st_size
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


async def backup_and_verify(container: Container) -> BackupOutcome:
    bctx = container.backup_context()
    try:
        outcome = await asyncio.to_thread(run_backup, bctx, prune_after=False)
        verified = await asyncio.to_thread(verify_backup, bctx, outcome.backup_id)
    finally:
        bctx.close()
    assert verified.ok, verified.to_json()
    return outcome


async def backup_rows(container: Container) -> list[repo.BackupRow]:
    async with container.engine.connect() as conn:
        return await conn.run_sync(lambda c: repo.list_backups(c, include_all=True))


async def incident(container: Container, incident_id: int) -> Incident:
    async with container.engine.connect() as conn:
        return await incidents.get(conn, incident_id)


async def test_after_a_verified_backup_every_check_passes_until_an_incident_postdates_it(
    container: Container,
) -> None:
    private_target(container)
    outcome = await backup_and_verify(container)
    ctx = RunContext(container, "test", container.clock.now())

    checks = by_name(await runner.run_checks(SPEC, ctx))

    assert {n: c.status.value for n, c in checks.items()} == {
        "s3_credentials": "pass",
        "pg_dump_available": "pass",
        "space_and_permissions": "pass",
        "fresh_verified_backup": "pass",
    }, [c.summary for c in checks.values()]
    assert "no S3 credentials needed" in checks["s3_credentials"].summary
    tools = checks["pg_dump_available"].evidence
    assert tools["pg_dump_major"] >= tools["server_version_num"] // 10000
    assert tools["pg_restore_major"] >= tools["pg_dump_major"]
    fresh = checks["fresh_verified_backup"].evidence
    assert fresh["backup_id"] == outcome.backup_id
    assert fresh["verify_status"] == "ok"
    assert fresh["complete_marker"] is True
    assert fresh["external_ids"] == {"backup_object": [outcome.name]}

    ctx.now = ctx.opened_at = container.clock.now()
    (later,) = await runner.run_checks(SPEC, ctx, ("fresh_verified_backup",))
    assert later.status.value == "fail"
    assert set(later.evidence["problems"]) == {"before_incident"}


async def test_unwritable_target_is_named_dry_run_changes_nothing_apply_recovers_verified(
    container: Container,
) -> None:
    directory = private_target(container)
    old = await backup_and_verify(container)
    before = files_under(directory)
    undo = make_target_unwritable(container.settings)

    dry = await runner.run(container, "backups", apply=False, actor="test")

    checks = by_name(dry.checks)
    assert checks["s3_credentials"].status.value == "pass"
    assert checks["pg_dump_available"].status.value == "pass"
    space = checks["space_and_permissions"]
    assert space.status.value == "fail"
    writable = next(i for i in space.evidence["items"] if i["name"] == "target_writable")
    assert writable["ok"] is False
    assert str(directory) in writable["detail"]
    fresh = checks["fresh_verified_backup"]
    assert fresh.status.value == "fail"
    assert fresh.evidence["backup_id"] == old.backup_id
    assert "incomplete" in fresh.evidence["problems"]
    assert dry.incident_id is None  # a dry run reports; it opens no incident
    manual, verify = dry.actions
    database = database_name(container.database.direct_url)
    assert manual.changes == [f"run a backup of {database} to file:{directory}"]
    assert verify.changes == [f"verify the checksum of {NEW_BACKUP}"]
    assert not manual.applied
    assert not verify.applied
    assert dry.verified is False
    assert [(r.id, r.status) for r in await backup_rows(container)] == [(old.backup_id, "success")]
    assert directory.is_file()
    (aside,) = directory.parent.glob("backups.moved-aside-*")
    assert files_under(aside) == before

    # The preflight's alert opens the incident; the on-call's --apply attaches to it.
    async with container.engine.begin() as conn:
        alerted, _ = await incidents.open_or_attach(
            conn,
            fingerprint="alert:BackupCheckFailing",
            title="The backup preflight fails",
            severity=Severity.SEV3,
            runbook=Runbook.BACKUPS_NOT_RUNNING,
            at=container.clock.now(),
            source="alert",
        )

    undo()
    assert files_under(directory) == before
    assert not aside.exists()

    applied = await runner.run(container, "backups", apply=True, actor="test")

    assert applied.incident_id == alerted.id
    assert [a.changes for a in applied.actions] == [a.changes for a in dry.actions]
    assert [a.applied for a in applied.actions] == [True, True]
    rows = await backup_rows(container)
    assert [r.status for r in rows] == ["success", "success"]
    new = rows[0]
    assert new.id != old.backup_id
    assert new.verify_status == "ok"
    assert applied.actions[0].evidence["backup_id"] == new.id
    assert applied.actions[1].evidence["id"] == new.id
    assert set(files_under(directory)) > set(before)
    verification = {c.name: c.status.value for c in applied.checks if c.name.startswith("verify:")}
    assert verification == {
        "verify:space_and_permissions": "pass",
        "verify:fresh_verified_backup": "pass",
    }
    assert applied.verified is True
    shown = await incident(container, applied.incident_id)
    assert shown.status is IncidentStatus.RESOLVED
    assert shown.lifecycle.resolved_verified is True
    assert new.name in shown.external_ids.backup_object

    again = await runner.run(
        container, "backups", apply=True, actor="test", incident_id=applied.incident_id
    )
    assert [a.changes for a in again.actions] == [[], []]
    assert len(await backup_rows(container)) == 2


async def test_backup_to_an_unwritable_target_fails_cleanly_and_leaves_the_incident_open(
    container: Container,
) -> None:
    directory = target_dir(container)
    existed = directory.exists()
    undo = make_target_unwritable(container.settings)

    report = await runner.run(container, "backups", apply=True, actor="test")

    manual, verify = report.actions
    assert manual.applied is False
    assert manual.changes[0].startswith("FAILED: run a backup of ")
    assert manual.evidence["error"]
    (failed,) = await backup_rows(container)
    assert failed.status == "failed"
    assert manual.evidence["failed_run"]["id"] == failed.id
    assert verify.changes == []
    assert report.verified is False
    # The applied run took ownership; nothing it did mitigated the fault.
    assert (await incident(container, report.incident_id)).status is IncidentStatus.ACKNOWLEDGED

    undo()
    assert directory.exists() is existed
    assert not directory.exists() or files_under(directory) == {}


async def test_making_an_s3_target_unwritable_is_refused(container: Container) -> None:
    settings = container.settings.model_copy(
        update={"backup_target": "s3", "backup_s3_bucket": "guardia-backups"}
    )
    assert config_from_settings(settings).target.kind == "s3"

    with pytest.raises(InvalidInput, match="local backup target only"):
        make_target_unwritable(settings)


async def test_a_first_backup_into_a_missing_target_leaves_it_private(
    container: Container,
) -> None:
    await backup_and_verify(container)
    ctx = RunContext(container, "test", container.clock.now())

    (space,) = await runner.run_checks(SPEC, ctx, ("space_and_permissions",))

    assert space.status.value == "pass", space.summary
