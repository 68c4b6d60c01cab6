"""`guardia backup …` (and `guardia check backups`): a Typer sub-app the main CLI mounts.

Every command takes `--json`. Progress bars go to stderr, shown on a terminal or with
`--progress`. The commands get their `BackupContext` from a factory, so the main CLI, tests
and other wiring choose where the URL and config come from (`make_app(factory)`); the
module-level `app` reads Guardia's settings.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import pool
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine

from guardia.adapters.postgres.database import Database, sqlalchemy_url
from guardia.backups import repository as repo
from guardia.backups.config import config_from_settings
from guardia.backups.context import BackupContext
from guardia.backups.drill import restore_drill
from guardia.backups.errors import BackupError
from guardia.backups.health import read_health
from guardia.backups.progress import RichProgress
from guardia.backups.service import check_backups, prune, run_backup, verify_backup
from guardia.core.errors import GuardiaError
from guardia.ledger.check import CheckReport, store_report

ContextFactory = Callable[[], AbstractContextManager[BackupContext]]

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ProgressOpt = Annotated[
    bool | None,
    typer.Option("--progress/--no-progress", help="Progress bars (default: on a terminal)."),
]
WhichArg = Annotated[str, typer.Argument(help="Backup id, or `latest`.")]


@contextmanager
def settings_context() -> Iterator[BackupContext]:
    """A context from Guardia's settings (the embedded database when no URL is set)."""
    from guardia.core.logging import configure_logging
    from guardia.settings import Settings

    settings = Settings()
    configure_logging(json=settings.log_json, level=settings.log_level)
    database = Database.open(settings)
    ctx = BackupContext(database.direct_url, config_from_settings(settings))
    try:
        yield ctx
    finally:
        ctx.close()
        database.close()


def _which(value: str) -> int | str:
    if value == repo.LATEST:
        return value
    try:
        return int(value)
    except ValueError as exc:
        raise typer.BadParameter("a backup id or `latest`") from exc


def _print_report(console: Console, report: CheckReport) -> None:
    table = Table(title=f"{report.target}: {'OK' if report.ok else 'FAILING'}")
    for col in ("check", "ok", "detail", "what to fix"):
        table.add_column(col)
    for item in report.items:
        table.add_row(item.name, "✔" if item.ok else "✘", item.detail, item.fix)
    console.print(table)


def _store(ctx: BackupContext, report: CheckReport) -> None:
    async def run() -> None:
        engine = create_async_engine(sqlalchemy_url(ctx.database_url), poolclass=pool.NullPool)
        try:
            await store_report(engine, report)
        finally:
            await engine.dispose()

    asyncio.run(run())


def run_check(open_context: ContextFactory, out: Console, as_json: bool) -> None:
    """Run the preflight, store it (readiness and alerts read it), print it; exit 1 if failing."""
    with open_context() as ctx:
        report = check_backups(ctx.config, ctx.database_url, ctx.target_store())
        _store(ctx, report)
    if as_json:
        out.print_json(json.dumps(report.to_json()))
    else:
        _print_report(out, report)
    if not report.ok:
        raise typer.Exit(code=1)


def make_app(open_context: ContextFactory, *, console: Console | None = None) -> typer.Typer:
    """Build the `backup` sub-app on a context factory."""
    out = console or Console()
    err = Console(stderr=True)
    app = typer.Typer(help="Backups: pg_dump to S3 or a directory, verify, restore drills.")

    def emit(data: Any, as_json: bool, human: Callable[[], None]) -> None:
        if as_json:
            out.print_json(json.dumps(data, default=str))
        else:
            human()

    def fail(exc: GuardiaError | SQLAlchemyError, as_json: bool) -> typer.Exit:
        if isinstance(exc, SQLAlchemyError):
            cause = type(getattr(exc, "orig", None) or exc).__name__
            exc = BackupError(f"database error ({cause}): is it migrated? `guardia db upgrade`")
        if as_json:
            out.print_json(json.dumps({"ok": False, "error": exc.message}))
        else:
            err.print(f"[red]error:[/red] {exc.message}")
        return typer.Exit(code=1)

    @contextmanager
    def opened(progress: bool | None) -> Iterator[BackupContext]:
        with open_context() as ctx:
            show = progress if progress is not None else sys.stderr.isatty()
            if show:
                with RichProgress(err) as bars:
                    ctx.progress = bars
                    yield ctx
            else:
                yield ctx

    @app.command("check")
    def check(as_json: JsonOpt = False) -> None:
        """Preflight: target writable, pg_dump new enough, staging space and permissions."""
        run_check(open_context, out, as_json)

    @app.command("run")
    def run(
        as_json: JsonOpt = False,
        progress: ProgressOpt = None,
        no_prune: Annotated[
            bool, typer.Option("--no-prune", help="Skip retention after success.")
        ] = False,
    ) -> None:
        """Back up now (pg_dump -Fc streamed to the target, manifest, marker), then prune."""
        try:
            with opened(progress) as ctx:
                outcome = run_backup(ctx, prune_after=False if no_prune else None)
        except (GuardiaError, SQLAlchemyError) as exc:
            raise fail(exc, as_json) from exc
        data = outcome.to_json()
        emit(
            data,
            as_json,
            lambda: out.print(
                f"backup {outcome.backup_id} {outcome.name}: {outcome.size_bytes} bytes, "
                f"sha256 {outcome.sha256[:16]}…, {outcome.duration_seconds:.1f} s → "
                f"{outcome.location}"
                + (f"; pruned {', '.join(outcome.pruned)}" if outcome.pruned else "")
            ),
        )

    @app.command("verify")
    def verify(
        which: WhichArg = repo.LATEST, as_json: JsonOpt = False, progress: ProgressOpt = None
    ) -> None:
        """Download a backup, recompute its SHA-256, compare with the manifest, list its TOC."""
        try:
            with opened(progress) as ctx:
                result = verify_backup(ctx, _which(which))
        except (GuardiaError, SQLAlchemyError) as exc:
            raise fail(exc, as_json) from exc

        def human() -> None:
            _print_report(out, result.report)
            out.print(f"backup {result.backup.id} {result.backup.name}: {result.status}")

        emit(result.to_json(), as_json, human)
        if not result.ok:
            raise typer.Exit(code=1)

    @app.command("restore-test")
    def restore_test(
        which: WhichArg = repo.LATEST, as_json: JsonOpt = False, progress: ProgressOpt = None
    ) -> None:
        """Restore into a scratch database and run the drill checks D1-D12; drop it after."""
        try:
            with opened(progress) as ctx:
                report = restore_drill(ctx, _which(which))
        except (GuardiaError, SQLAlchemyError) as exc:
            raise fail(exc, as_json) from exc

        def human() -> None:
            table = Table(
                title=f"restore drill {report.id} of backup {report.backup_id}: "
                f"{'PASSED' if report.ok else 'FAILED'}"
            )
            for col in ("check", "name", "result", "detail", "what to fix"):
                table.add_column(col)
            marks = {"pass": "✔", "fail": "✘", "skip": "-"}
            for c in report.checks:
                table.add_row(c.id, c.name, marks[c.status], c.detail, c.fix)
            out.print(table)

        emit(report.to_json(), as_json, human)
        if not report.ok:
            raise typer.Exit(code=1)

    @app.command("list")
    def list_(
        all_: Annotated[bool, typer.Option("--all", help="Failed and pruned runs too.")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Backups, newest first."""
        with opened(False) as ctx, ctx.engine().connect() as conn:
            rows = repo.list_backups(conn, include_all=all_)
        data = [r.to_json() for r in rows]

        def human() -> None:
            table = Table(title="backups")
            cols = ("id", "name", "status", "finished_at", "size_bytes", "verify_status", "error")
            for col in cols:
                table.add_column(col)
            for d in data:
                table.add_row(*(str(d[k] if d[k] is not None else "") for k in cols))
            out.print(table)

        emit(data, as_json, human)

    @app.command("prune")
    def prune_(
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Show, delete nothing.")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Apply retention: N daily + M weekly, never the newest verified backup."""
        try:
            with opened(False) as ctx:
                result = prune(ctx, dry_run=dry_run)
        except BackupError as exc:
            raise fail(exc, as_json) from exc
        emit(
            result.to_json(),
            as_json,
            lambda: out.print(
                f"kept {len(result.kept)}; "
                + ("would delete" if dry_run else "deleted")
                + f" {[n for _, n in result.deleted] or 'nothing'}"
            ),
        )

    @app.command("status")
    def status(as_json: JsonOpt = False) -> None:
        """Freshness, size and drill alerts now, and the exported metric values."""
        with opened(False) as ctx, ctx.engine().connect() as conn:
            facts, alerts = read_health(
                conn, ctx.config.health_policy, ctx.clock.now(), ctx.config.size_window
            )
        data = {
            "last_success_at": facts.last_success_at,
            "last_size_bytes": facts.last_size_bytes,
            "recent_median_size_bytes": facts.recent_median_size,
            "failures_total": facts.failures_total,
            "last_drill_success_at": facts.last_drill_success_at,
            "alerts": [{"name": a.name, "firing": a.firing, "detail": a.detail} for a in alerts],
        }

        def human() -> None:
            for a in alerts:
                out.print(f"{'FIRING' if a.firing else 'ok':6}  {a.name:18} {a.detail}")

        emit(data, as_json, human)

    return app


app = make_app(settings_context)
"""The sub-app on Guardia's settings: mount with `app.add_typer(app, name="backup")`."""


def check_command(as_json: JsonOpt = False) -> None:
    """Check backups: target writable, pg_dump new enough, staging space and permissions."""
    run_check(settings_context, Console(), as_json)
