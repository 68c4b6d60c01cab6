"""`guardia incidents …`: lifecycle, evidence, post-mortem, export, verify and MTTR."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from guardia.bootstrap import Container
from guardia.entrypoints.cli_support import operator_identity, with_container
from guardia.incidents import service
from guardia.incidents.evidence import verify_bundle
from guardia.incidents.model import (
    ExternalIds,
    IncidentStatus,
    Origin,
    Severity,
    runbook_from_label,
)

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


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{days}d" if days else "",
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
    ]
    return "".join(parts) + (f"{secs}s" if secs or not any(parts) else "")


def _window(text: str) -> timedelta:
    """`30d`, `12h` or `90m` as a period."""
    units = {"d": "days", "h": "hours", "m": "minutes"}
    number, unit = text[:-1], text[-1:].lower()
    if unit not in units or not number.isdigit() or int(number) <= 0:
        raise typer.BadParameter(f"{text!r}: give a period such as 30d, 12h or 90m")
    return timedelta(**{units[unit]: int(number)})


STATS_COLUMNS = (
    ("time_to_detect", "TTD"),
    ("time_to_acknowledge", "TTA"),
    ("time_to_mitigate", "TTM"),
    ("time_to_resolve", "TTR"),
)


def _cell(metric: dict[str, Any] | None) -> str:
    if not metric or not metric["count"]:
        return "-"
    return (
        f"{_duration(metric['median_seconds'])} / {_duration(metric['p90_seconds'])} "
        f"(n={metric['count']})"
    )


def stats_table(report: dict[str, Any], by: str, previous: dict[str, Any] | None = None) -> Table:
    """Median / p90 (count) of each metric per runbook or origin, and overall; with a previous
    period, each cell also shows what it was."""
    since, until = (datetime.fromisoformat(report[k]) for k in ("since", "until"))
    title = (
        f"median / p90 (count), origin {report['origin']}, "
        f"{since:%Y-%m-%d %H:%M} → {until:%Y-%m-%d %H:%M} UTC"
    )
    table = Table(title=title)
    table.add_column(by)
    table.add_column("incidents", justify="right")
    for _, label in STATS_COLUMNS:
        table.add_column(label)
    groups = report["per_" + by]
    before = (previous or {}).get("per_" + by, {})
    keys = [*groups, *(k for k in before if k not in groups)]
    rows = [(k, groups.get(k), before.get(k)) for k in keys]
    rows.append(("all", report["overall"], previous["overall"] if previous else None))
    for key, now, was in rows:
        cells = []
        for name, _ in STATS_COLUMNS:
            cell = _cell(now["metrics"][name] if now else None)
            if previous is not None:
                cell += f"\n[dim]was {_cell(was['metrics'][name] if was else None)}[/dim]"
            cells.append(cell)
        count = str(now["incidents"] if now else 0)
        if previous is not None:
            count += f"\n[dim]was {was['incidents'] if was else 0}[/dim]"
        table.add_row(key, count, *cells)
    return table


@app.command()
def stats(
    days: Annotated[int, typer.Option(help="Period, in days.")] = 30,
    origin: Annotated[
        str, typer.Option(help="live, drill, or all (drills stay separable).")
    ] = "all",
    by: Annotated[str, typer.Option(help="Group rows by runbook or origin.")] = "runbook",
    compare: Annotated[
        str | None,
        typer.Option(
            help="A period such as 30d: report it beside the equal period just before it."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """MTTD, MTTA, MTTM, MTTR: median and p90 per runbook (or origin) and overall."""
    if by not in ("runbook", "origin"):
        raise typer.BadParameter("--by takes runbook or origin")
    if origin not in ("all", *(o.value for o in Origin)):
        raise typer.BadParameter("--origin takes live, drill or all")
    chosen = None if origin == "all" else Origin(origin)
    window = _window(compare) if compare else timedelta(days=days)

    async def go(c: Container) -> dict[str, Any]:
        until = c.clock.now() + timedelta(seconds=1)
        if compare:
            return (await service.stats_compared(c.engine, until, window, origin=chosen)).as_dict()
        return (await service.stats(c.engine, until - window, until, origin=chosen)).as_dict()

    data = _run(go)
    if as_json:
        _print(data, True)
    elif compare:
        console.print(stats_table(data["current"], by, data["previous"]))
    else:
        console.print(stats_table(data, by))


@app.command("open")
def open_(
    title: str,
    runbook: Annotated[str, typer.Option(help="Runbook number (1-7) or other.")] = "other",
    severity: Annotated[str, typer.Option(help="sev1 … sev4.")] = "sev3",
    impact_started_at: Annotated[
        datetime | None,
        typer.Option(
            "--impact-started-at",
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"],
            help="When the impact began (ISO 8601 with offset), if known from evidence.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Open an incident by hand."""

    async def go(c: Container) -> dict[str, Any]:
        now = c.clock.now()
        if impact_started_at is not None and impact_started_at > now:
            raise typer.BadParameter("--impact-started-at is in the future")
        async with c.engine.begin() as conn:
            incident, _ = await service.open_or_attach(
                conn,
                fingerprint=f"manual:{operator_identity()}:{now.isoformat()}",
                title=title,
                severity=Severity(severity),
                runbook=runbook_from_label(runbook),
                at=now,
                source="manual",
                impact_started_at=impact_started_at,
            )
        return service.incident_json(incident)

    data = _run(go)
    if as_json:
        _print(data, True)
    else:
        console.print(f"incident {data['id']} opened (impact started {data['impact_started_at']})")
