"""The `guardia` command line."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from guardia.adapters.postgres.database import Database, migration_status, upgrade
from guardia.alerts.rules import prometheus_rules
from guardia.audit import log as audit
from guardia.auth.tokens import Role, hash_token, new_token
from guardia.backups import cli as backup_cli
from guardia.bootstrap import Container, check_conekta_config
from guardia.core.errors import GuardiaError, InvalidInput
from guardia.drills import cli as drill_cli
from guardia.entrypoints import incidents_cli, recon_cli, runbook_cli, runtime
from guardia.entrypoints.cli_support import load_settings, operator_identity, with_container
from guardia.entrypoints.http import order_json
from guardia.jobs import deadletters
from guardia.ledger.check import CheckReport, check_ledger, posting_test, store_report
from guardia.ledger.service import postings_of
from guardia.payments import service as payments
from guardia.recovery import resend_event
from guardia.settings import Settings

T = TypeVar("T")

app = typer.Typer(help="Guardia: payments-pilot incident prevention, recovery and evidence.")
db_app = typer.Typer(help="Database migrations.")
dlq_app = typer.Typer(help="Dead letters: jobs that exhausted their retries.")
alerts_app = typer.Typer(help="Alert rules.")
tokens_app = typer.Typer(help="API tokens.")
audit_app = typer.Typer(help="The tamper-evident audit log of operator actions.")
sandbox_app = typer.Typer(help="Local provider simulators.")
check_app = typer.Typer(help="Configuration checks (run at start-up too).")
ledger_app = typer.Typer(help="Odoo postings.")
app.add_typer(db_app, name="db")
app.add_typer(dlq_app, name="dlq")
app.add_typer(alerts_app, name="alerts")
app.add_typer(tokens_app, name="tokens")
app.add_typer(audit_app, name="audit")
app.add_typer(incidents_cli.app, name="incidents")
app.add_typer(backup_cli.app, name="backup")
app.add_typer(recon_cli.app, name="recon")
app.add_typer(runbook_cli.app, name="runbook")
sandbox_app.add_typer(recon_cli.data_app, name="recon-data")
check_app.command("backups")(backup_cli.check_command)
app.command("drill")(drill_cli.drill)
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(check_app, name="check")
app.add_typer(ledger_app, name="ledger")

console = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")]


_settings = load_settings


def _emit(data: Any, as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        console.print_json(json.dumps(data, default=str))
    else:
        human()


_with_container = with_container


def _startable_settings() -> Settings:
    """Settings a server may start with; a half-real provider configuration exits 1 in one line."""
    settings = _settings()
    try:
        check_conekta_config(settings)
    except GuardiaError as exc:
        err.print(f"[red]error:[/red] {exc.message}", soft_wrap=True)
        raise typer.Exit(code=1) from exc
    return settings


@app.command()
def up() -> None:
    """Run Guardia: embedded Postgres (unless configured), migrations, API, worker, simulators."""
    settings = _startable_settings()

    def announce(info: dict[str, Any]) -> None:
        err.rule("[bold green]Guardia is up")
        err.print(f"API:               {info['api']}")
        if info["conekta_simulator"]:
            err.print(f"Conekta simulator: {info['conekta_simulator']}")
        if info["odoo_simulator"]:
            err.print(f"Odoo simulator:    {info['odoo_simulator']}")
        err.print(f"Database:          {info['database']}")
        if info["tokens"]:
            err.print(f"Local tokens (also in {runtime.dev_tokens_path(settings)}):")
            for role, token in info["tokens"].items():
                err.print(f"  {role:9} {token}")
        for hint in runtime.sandbox_hints(settings):
            err.print(f"Try:  {hint}", soft_wrap=True)
        err.rule()

    asyncio.run(runtime.up(settings, announce=announce))


@app.command()
def serve() -> None:
    """Run the HTTP API only."""
    asyncio.run(runtime.serve(_startable_settings()))


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Jobs run at once.")] = None,
) -> None:
    """Run a worker (with the scheduler); start more on other machines to scale out."""
    asyncio.run(runtime.worker(_startable_settings(), concurrency=concurrency))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations."""
    settings = _settings()
    database = Database.open(settings)
    try:
        upgrade(database.direct_url)
        current, head = migration_status(database.direct_url)
        console.print(f"database at revision {current} (head {head})")
    finally:
        database.close()


@db_app.command("status")
def db_status(as_json: JsonOpt = False) -> None:
    """Show the database revision and the code's head."""
    settings = _settings()
    database = Database.open(settings)
    try:
        current, head = migration_status(database.direct_url)
    finally:
        database.close()
    _emit(
        {"current": current, "head": head, "up_to_date": current == head},
        as_json,
        lambda: console.print(f"current {current}, head {head}"),
    )


@app.command()
def order(order_id: str, as_json: JsonOpt = False) -> None:
    """Show a payment as the PWA sees it."""
    view = _with_container(lambda c: payments.get_order_view(c.engine, order_id))
    data = order_json(view)
    _emit(data, as_json, lambda: console.print_json(json.dumps(data)))


@app.command()
def replay(
    event_id: Annotated[
        list[str] | None, typer.Option("--event-id", help="Event id (repeat).")
    ] = None,
    order_id: Annotated[str | None, typer.Option("--order-id")] = None,
    since: Annotated[datetime | None, typer.Option(help="Received at or after (ISO 8601).")] = None,
    until: Annotated[
        datetime | None, typer.Option(help="Received at or before (ISO 8601).")
    ] = None,
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Re-apply stored events by id, by order, or by time window (idempotent)."""
    selector = payments.ReplaySelector(tuple(event_id or ()), order_id, since, until)
    result = _with_container(
        lambda c: payments.replay(c.engine, selector, actor=operator_identity(), reason=reason)
    )
    data = {"events": result.events, "orders": result.orders, "changed": result.changed_orders}
    _emit(
        data,
        as_json,
        lambda: console.print(
            f"replayed {len(result.events)} events; orders {result.orders}; "
            f"changed {result.changed_orders or 'none'}"
        ),
    )


@app.command()
def pull(
    order_id: str,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the diff; change nothing.")
    ] = False,
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Fetch an order from Conekta and apply it (`--dry-run` shows the diff first)."""

    async def run(c: Container) -> payments.PullResult:
        result = await payments.pull_order(
            c.engine, c.conekta, order_id, actor=operator_identity(), dry_run=dry_run, reason=reason
        )
        await c.defer_postings(order_id, result.correlation_id, result.postings)
        return result

    result = _with_container(run)
    changes = {k: [str(a), str(b)] for k, (a, b) in result.changes.items()}
    data = {
        "order_id": order_id,
        "dry_run": dry_run,
        "status": result.after.status.value,
        "changes": changes,
    }

    def human() -> None:
        table = Table(title=f"{order_id} {'(dry run)' if dry_run else ''}")
        table.add_column("field")
        table.add_column("ours")
        table.add_column("Conekta")
        for name, (before, after) in changes.items():
            table.add_row(name, before, after)
        console.print(
            table if changes else f"{order_id}: no difference ({result.after.status.value})"
        )

    _emit(data, as_json, human)


@app.command()
def resend(
    event_id: str,
    webhook_id: Annotated[list[str] | None, typer.Option("--webhook-id")] = None,
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Ask Conekta to deliver an event again (`POST /events/{id}/resend`)."""
    data = _with_container(
        lambda c: resend_event(
            c, event_id, list(webhook_id or []), actor=operator_identity(), reason=reason
        )
    )
    _emit(data, as_json, lambda: console.print(f"resent {event_id}: {data}"))


@app.command()
def sweep(as_json: JsonOpt = False) -> None:
    """Run one sweeper pass now (pull stale pending orders and recently updated ones)."""
    from guardia.runbooks import automation

    async def run(c: Container) -> payments.SweepResult:
        return await automation.sweep(c)

    result = _with_container(run)
    data = {"pulled": result.pulled, "discovered": result.discovered, "healed": result.healed}
    _emit(data, as_json, lambda: console.print(data))


@dlq_app.command("list")
def dlq_list(
    cause: Annotated[str | None, typer.Option()] = None,
    task: Annotated[str | None, typer.Option()] = None,
    order_id: Annotated[str | None, typer.Option("--order-id")] = None,
    status: Annotated[str, typer.Option(help="open, retried, resolved, merged or all")] = "open",
    as_json: JsonOpt = False,
) -> None:
    """List dead letters."""
    flt = deadletters.DeadLetterFilter(
        cause=cause, task_name=task, order_id=order_id, status=None if status == "all" else status
    )
    rows = _with_container(lambda c: deadletters.list_dead_letters(c.engine, flt))
    data = [
        {
            "id": d.id,
            "task": d.task_name,
            "cause": d.cause,
            "error": d.error_message,
            "attempts": d.attempts,
            "order_id": d.order_id,
            "correlation_id": d.correlation_id,
            "failed_at": d.failed_at.isoformat(),
            "last_failed_at": d.last_failed_at.isoformat() if d.last_failed_at else None,
            "status": d.status,
            "resolution": d.resolution,
        }
        for d in rows
    ]

    def human() -> None:
        table = Table(title=f"dead letters ({status})")
        for col in ("id", "task", "cause", "attempts", "order_id", "failed_at", "error"):
            table.add_column(col)
        for d in data:
            table.add_row(
                *(
                    str(d[k])
                    for k in ("id", "task", "cause", "attempts", "order_id", "failed_at", "error")
                )
            )
        console.print(table)

    _emit(data, as_json, human)


@dlq_app.command("retry")
def dlq_retry(
    dead_letter_id: Annotated[list[int] | None, typer.Option("--id")] = None,
    cause: Annotated[str | None, typer.Option()] = None,
    task: Annotated[str | None, typer.Option()] = None,
    order_id: Annotated[str | None, typer.Option("--order-id")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Retry every open dead letter.")] = False,
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Re-enqueue dead letters: one (--id), by filter (--cause/--task/--order-id), or --all."""
    if not (dead_letter_id or cause or task or order_id or all_):
        err.print("[red]error:[/red] say which: --id, --cause, --task, --order-id or --all")
        raise typer.Exit(code=2)
    flt = deadletters.DeadLetterFilter(tuple(dead_letter_id or ()), cause, task, order_id)
    done = _with_container(
        lambda c: deadletters.retry(
            c.engine, c.defer_retry, flt, actor=operator_identity(), reason=reason
        )
    )
    data = [{"dead_letter_id": d, "job_id": j} for d, j in done]
    _emit(data, as_json, lambda: console.print(f"re-enqueued {len(done)} dead letter(s)"))


@alerts_app.command("rules")
def alerts_rules() -> None:
    """Print the alert rules as a Prometheus rule file."""
    typer.echo(prometheus_rules(Settings()), nl=False)


@audit_app.command("verify")
def audit_verify(as_json: JsonOpt = False) -> None:
    """Recompute the hash chain; exit 1 and name every edited, deleted or reordered entry."""
    report = _with_container(lambda c: audit.verify(c.engine))

    def human() -> None:
        if report.ok:
            console.print(f"audit log intact: {report.entries} entries, head {report.head[:16]}…")
        for problem in report.problems:
            console.print(f"[red]✘[/red] {problem}")

    _emit(report.as_dict(), as_json, human)
    if not report.ok:
        raise typer.Exit(code=1)


@tokens_app.command("new")
def tokens_new(
    name: Annotated[str, typer.Option(help="Who holds the token.")],
    role: Annotated[Role, typer.Option(help="operator, auditor or pwa")] = Role.OPERATOR,
) -> None:
    """Mint a token; configure only the printed GUARDIA_API_TOKENS entry (the hash)."""
    token = new_token(role)
    console.print(f"token (shown once): {token}")
    console.print(f"GUARDIA_API_TOKENS entry: {name}:{role.value}:{hash_token(token)}")


def _print_report(report: CheckReport) -> None:
    table = Table(title=f"{report.target}: {'OK' if report.ok else 'FAILING'}")
    for col in ("check", "ok", "detail", "what to fix"):
        table.add_column(col)
    for item in report.items:
        table.add_row(item.name, "✔" if item.ok else "✘", item.detail, item.fix)
    console.print(table)


@check_app.command("odoo")
def check_odoo(as_json: JsonOpt = False) -> None:
    """Check Odoo: version, credentials, rights, journal, accounts, analytic account."""

    async def run(c: Container) -> CheckReport:
        report = await check_ledger(c.odoo, c.ledger_config)
        await store_report(c.engine, report)
        return report

    report = _with_container(run)
    _emit(report.to_json(), as_json, lambda: _print_report(report))
    if not report.ok:
        raise typer.Exit(code=1)


@ledger_app.command("posting-test")
def ledger_posting_test(as_json: JsonOpt = False) -> None:
    """Post and reverse a 1.00 MXN entry in the staging Odoo now."""

    async def run(c: Container) -> CheckReport:
        if c.odoo_staging is None:
            raise InvalidInput("no staging Odoo configured (GUARDIA_ODOO_STAGING_URL)")
        report = await posting_test(c.odoo_staging, c.odoo_staging, c.ledger_config, c.clock)
        await store_report(c.engine, report)
        return report

    report = _with_container(run)
    _emit(report.to_json(), as_json, lambda: _print_report(report))
    if not report.ok:
        raise typer.Exit(code=1)


@ledger_app.command("postings")
def ledger_postings(order_id: str, as_json: JsonOpt = False) -> None:
    """An order's Odoo postings (kind, state, move id and name)."""
    rows = _with_container(lambda c: postings_of(c.engine, order_id))

    def human() -> None:
        table = Table(title=f"postings of {order_id}")
        for col in ("kind", "state", "amount_cents", "odoo_move_id", "odoo_move_name", "cause"):
            table.add_column(col)
        for r in rows:
            table.add_row(
                *(
                    str(r[k])
                    for k in (
                        "kind",
                        "state",
                        "amount_cents",
                        "odoo_move_id",
                        "odoo_move_name",
                        "cause",
                    )
                )
            )
        console.print(table)

    _emit(rows, as_json, human)


def _mount_sandbox() -> None:
    from guardia.sandbox.conekta_cli import app as conekta_cli

    sandbox_app.add_typer(conekta_cli, name="conekta")
    from guardia.sandbox.odoo_cli import app as odoo_cli

    sandbox_app.add_typer(odoo_cli, name="odoo")


_mount_sandbox()


def main() -> None:
    """Console-script entry point."""
    app()
