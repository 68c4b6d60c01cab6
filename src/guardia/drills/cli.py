"""`guardia drill NAME|all`: play drills against the running local stack and print the table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from guardia.bootstrap import Container
from guardia.drills.catalog import DRILLS, run_drill
from guardia.drills.harness import DrillEnv, await_stack, simulators
from guardia.drills.model import DrillReport
from guardia.entrypoints.cli_support import load_settings, with_container

console = Console()

DETECT_TARGET_S = 60.0
RECOVER_TARGET_S = 300.0
TABLE_WIDTH = 110


def _fmt(value: float | None, target: float | None = None) -> str:
    if value is None:
        return "-"
    return f"[red]{value:.1f}[/red]" if target is not None and value > target else f"{value:.1f}"


def report_table(reports: list[DrillReport]) -> Table:
    """The drill table: detect / mitigate / verified recovery seconds (red beyond the targets:
    detect ≤ 60 s, verified recovery ≤ 5 min), who fixed it, evidence."""
    table = Table(title="drills (seconds from injection)", box=box.SIMPLE_HEAD)
    table.add_column("drill", no_wrap=True, min_width=15)
    table.add_column("incident", justify="right", no_wrap=True)
    for col in ("detect", "mitigate", "recover"):
        table.add_column(col, justify="right", no_wrap=True, min_width=len(col))
    table.add_column("fix", no_wrap=True, min_width=7)
    table.add_column("evidence", min_width=8)
    table.add_column("result", min_width=8)
    for r in reports:
        table.add_row(
            r.name,
            str(r.incident_id or "-"),
            _fmt(r.time_to_detect, DETECT_TARGET_S),
            _fmt(r.time_to_mitigate),
            _fmt(r.time_to_recover, RECOVER_TARGET_S),
            "auto" if r.automatic_fix else "on-call",
            "complete" if r.evidence_complete else f"missing {', '.join(r.evidence_missing)}",
            "verified" if r.recovered else f"FAILED: {r.error or 'not verified'}",
        )
    return table


def save(reports: list[DrillReport], folder: Path) -> Path:
    """Write the drill reports as JSON; return the file."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = reports[0].injected_at.strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"drill-{stamp}.json"
    path.write_text(json.dumps([r.as_dict() for r in reports], indent=2))
    return path


def drill(
    name: Annotated[str, typer.Argument(help=f"all, or one of: {', '.join(DRILLS)}")],
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for each stage (detection, recovery).")
    ] = 300.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Inject a runbook's fault into the running local stack (`make up`), let Guardia detect
    and heal it, and report time to detect / mitigate / verified recovery and evidence."""
    names = list(DRILLS) if name == "all" else [name]
    unknown = [n for n in names if n not in DRILLS]
    if unknown:
        raise typer.BadParameter(f"unknown drill {unknown[0]!r}; known: all, {', '.join(DRILLS)}")

    async def go(c: Container) -> list[DrillReport]:
        env = DrillEnv(c, simulators(c), timeout=timeout)
        await await_stack(env)
        out = []
        for n in names:
            if not as_json:
                console.print(f"drill {n}: {DRILLS[n].fault} …")
            out.append(await run_drill(env, n))
        return out

    reports = with_container(go)
    path = save(reports, load_settings().data_dir / "drills")
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in reports], indent=2))
    else:
        # Wide enough for every column even when piped (Rich would squeeze it into 80).
        Console(width=max(console.width, TABLE_WIDTH)).print(report_table(reports))
        console.print(f"report: {path}")
        console.print(
            "MTTx with these drills (tagged origin=drill): "
            "guardia incidents stats --by runbook --compare 30d"
        )
    if not all(r.recovered and r.evidence_complete for r in reports):
        raise typer.Exit(code=1)
