"""`guardia incidents …`: lifecycle, evidence, post-mortem, export, verify and MTTR."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from guardia.bootstrap import Container
from guardia.entrypoints.cli_support import operator_identity, with_container
from guardia.incidents import service
from guardia.incidents.evidence import verify_bundle
from guardia.incidents.model import ExternalIds, IncidentStatus

T = TypeVar("T")
app = typer.Typer(help="Incidents: lifecycle, timeline, post-mortem, evidence, MTTR.")
console = Console()
err = Console(stderr=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")]


_run = with_container


def _print(data: Any, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(data, default=str))
    else:
        console.print_json(json.dumps(data, default=str, ensure_ascii=False))


@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option()] = None,
    runbook: Annotated[str | None, typer.Option()] = None,
    severity: Annotated[str | None, typer.Option()] = None,
    as_json: JsonOpt = False,
) -> None:
    """Incidents, newest first."""
    found = _run(
        lambda c: service.list_incidents(
            c.engine, status=status, runbook=runbook, severity=severity
        )
    )
    rows = [service.incident_json(i) for i in found]
    if as_json:
        _print(rows, True)
        return
    table = Table(title="incidents")
    for col in ("id", "status", "severity", "runbook", "title", "detected_at"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            *(str(r[k]) for k in ("id", "status", "severity", "runbook", "title", "detected_at"))
        )
    console.print(table)


@app.command()
def show(incident_id: int, as_json: JsonOpt = False) -> None:
    """One incident and its timeline."""

    async def go(c: Container) -> dict[str, Any]:
        async with c.engine.connect() as conn:
            incident = await service.get(conn, incident_id)
        entries, _ = await service.timeline(c.engine, incident)
        return {
            **service.incident_json(incident),
            "timeline": [
                {
                    "at": e.at.isoformat(),
                    "kind": e.kind.value,
                    "source": f"{e.source_table}/{e.source_id}",
                    "summary": e.summary,
                }
                for e in entries
            ],
        }

    data = _run(go)
    if as_json:
        _print(data, True)
        return
    console.print(
        f"[bold]#{data['id']} {data['title']}[/bold] — {data['status']}, {data['severity']}"
    )
    table = Table(title="timeline")
    for col in ("at", "kind", "source", "summary"):
        table.add_column(col)
    for e in data["timeline"]:
        table.add_row(e["at"], e["kind"], e["source"], e["summary"])
    console.print(table)


def _step(incident_id: int, to: IncidentStatus, reason: str, as_json: bool) -> None:
    async def go(c: Container) -> dict[str, Any]:
        async with c.engine.begin() as conn:
            moved = await service.move(
                conn, incident_id, to, at=c.clock.now(), actor=operator_identity(), reason=reason
            )
        return service.incident_json(moved)

    data = _run(go)
    if as_json:
        _print(data, True)
    else:
        console.print(f"incident {incident_id}: {data['status']}")


@app.command()
def ack(incident_id: int, reason: ReasonOpt = "", as_json: JsonOpt = False) -> None:
    """Acknowledge."""
    _step(incident_id, IncidentStatus.ACKNOWLEDGED, reason, as_json)


@app.command()
def mitigate(incident_id: int, reason: ReasonOpt = "", as_json: JsonOpt = False) -> None:
    """Mark mitigated."""
    _step(incident_id, IncidentStatus.MITIGATED, reason, as_json)


@app.command()
def resolve(incident_id: int, reason: ReasonOpt = "", as_json: JsonOpt = False) -> None:
    """Resolve by hand (recorded as unverified)."""
    _step(incident_id, IncidentStatus.RESOLVED, reason, as_json)


@app.command()
def close(incident_id: int, reason: ReasonOpt = "", as_json: JsonOpt = False) -> None:
    """Close (refused until the runbook's five mandatory fields are filled)."""
    _step(incident_id, IncidentStatus.CLOSED, reason, as_json)


@app.command()
def note(incident_id: int, text: str) -> None:
    """Add a note to the timeline."""

    async def go(c: Container) -> int:
        async with c.engine.begin() as conn:
            return await service.add_note(
                conn, incident_id, at=c.clock.now(), actor=operator_identity(), note=text
            )

    console.print(f"note {_run(go)} added")


@app.command()
def evidence(
    incident_id: int,
    correlation_id: Annotated[list[str] | None, typer.Option("--correlation-id")] = None,
    conekta_order: Annotated[list[str] | None, typer.Option("--conekta-order")] = None,
    odoo_move: Annotated[list[str] | None, typer.Option("--odoo-move")] = None,
    action: Annotated[str | None, typer.Option("--action", help="Corrective action taken.")] = None,
    reason: ReasonOpt = "",
) -> None:
    """Add correlation ids, provider ids or a corrective action."""
    ids = ExternalIds.from_dict(
        {"conekta_order": conekta_order or [], "odoo_move": odoo_move or []}
    )

    async def go(c: Container) -> None:
        async with c.engine.begin() as conn:
            await service.amend(
                conn,
                incident_id,
                at=c.clock.now(),
                actor=operator_identity(),
                correlation_ids=correlation_id or [],
                external_ids=ids,
                corrective_action=action,
                reason=reason,
            )

    _run(go)
    console.print(f"incident {incident_id} updated")


@app.command()
def postmortem(incident_id: int, document: Path) -> None:
    """Write the post-mortem from a JSON document (operations.md §2 sections)."""
    pm = service.postmortem_from_json(json.loads(document.read_text()))

    async def go(c: Container) -> None:
        async with c.engine.begin() as conn:
            await service.amend(
                conn, incident_id, at=c.clock.now(), actor=operator_identity(), postmortem=pm
            )

    _run(go)
    console.print(f"post-mortem of incident {incident_id} saved")


@app.command()
def export(
    incident_id: int,
    out: Annotated[Path | None, typer.Option("--out", help="Bundle directory.")] = None,
) -> None:
    """Write the evidence bundle (JSON + Markdown, hash-chained); its head is audited."""

    async def go(c: Container) -> tuple[Path, str]:
        now = c.clock.now()
        target = out or c.settings.incidents_dir / f"incident-{incident_id}-{now:%Y%m%dT%H%M%SZ}"
        return await service.export(
            c.engine, incident_id, target, actor=operator_identity(), at=now
        )

    path, head = _run(go)
    console.print(f"bundle written to {path} (head {head})")


@app.command()
def verify(bundle: Path, as_json: JsonOpt = False) -> None:
    """Verify a bundle: exit 1 and name every edited, deleted or reordered entry."""
    result = verify_bundle(bundle)
    if as_json:
        _print({"ok": result.ok, "head": result.head, "problems": result.problems}, True)
    elif result.ok:
        console.print(f"bundle intact (head {result.head})")
    else:
        for problem in result.problems:
            console.print(f"[red]✘[/red] {problem}")
    if not result.ok:
        raise typer.Exit(code=1)


@app.command()
def stats(
    days: Annotated[int, typer.Option(help="Period, in days.")] = 30, as_json: JsonOpt = False
) -> None:
    """MTTR and friends: median and p90 per runbook and overall."""

    async def go(c: Container) -> dict[str, Any]:
        until = c.clock.now() + timedelta(seconds=1)
        return (await service.stats(c.engine, until - timedelta(days=days), until)).as_dict()

    _print(_run(go), as_json)
