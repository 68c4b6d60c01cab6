"""`guardia runbook list|run|docs`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from guardia.bootstrap import Container
from guardia.entrypoints.cli_support import operator_identity, with_container
from guardia.runbooks import docs, runner
from guardia.runbooks.catalog import RUNBOOKS

app = typer.Typer(help="Runbooks as code: checks with evidence, actions with a dry run.")
console = Console()


@app.command("list")
def list_() -> None:
    """The encoded runbooks."""
    table = Table(title="runbooks")
    for col in ("name", "runbook", "title", "needs", "checks", "actions"):
        table.add_column(col)
    for spec in RUNBOOKS.values():
        table.add_row(
            spec.name,
            spec.runbook.value,
            spec.title,
            f"--{spec.needs}-id" if spec.needs else "-",
            str(len(spec.checks)),
            ", ".join(a.name for a in spec.actions),
        )
    console.print(table)


@app.command()
def run(
    name: str,
    order_id: Annotated[str | None, typer.Option("--order-id", help="Runbook 1.")] = None,
    line_id: Annotated[
        str | None, typer.Option("--line-id", help="Runbook 3: the orphan statement line.")
    ] = None,
    ledger_id: Annotated[
        str | None,
        typer.Option("--ledger-id", help="Runbook 3: the ledger entry to match the line to."),
    ] = None,
    incident: Annotated[
        int | None, typer.Option("--incident", help="Write to this incident.")
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Make the changes (default: dry run).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run the checks, then the actions (dry run unless --apply), then verify, on an incident."""
    actor = operator_identity()

    async def go(c: Container) -> runner.RunReport:
        return await runner.run(
            c,
            name,
            order_id=order_id,
            line_id=line_id,
            incident_id=incident,
            apply=apply,
            actor=actor,
            options={"ledger_id": ledger_id} if ledger_id else None,
        )

    report = with_container(go)
    if as_json:
        console.print_json(json.dumps(report.as_dict(), default=str))
        return
    on = (
        f"incident {report.incident_id}"
        if report.incident_id is not None
        else "no incident (a dry run only reports)"
        if not report.applied
        else "no incident (no check failed)"
    )
    table = Table(title=f"{name} — {on}")
    for col in ("step", "result", "detail"):
        table.add_column(col)
    for c in report.checks:
        table.add_row(c.name, c.status.value, c.summary)
    for a in report.actions:
        detail = "; ".join(a.changes) or "; ".join(a.evidence.get("guide", [])) or "-"
        verb = "failed" if a.failed else "applied" if a.applied else "dry run"
        table.add_row(a.name, verb, detail)
    console.print(table)
    console.print(f"verified: {report.verified} — next: {report.next_step}")


@app.command("docs")
def docs_() -> None:
    """Print the runbooks document generated from the code."""
    typer.echo(docs.render())
