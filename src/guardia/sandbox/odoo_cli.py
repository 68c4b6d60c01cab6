"""Command line for the Odoo simulator: serve it, and drive its fault knobs over HTTP.

Mounted by the lead as `guardia sandbox odoo ...`; also runnable as
`python -m guardia.sandbox.odoo_cli ...`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from guardia.sandbox.cli_support import call, emit_json, simulator_url
from guardia.settings import Settings

app = typer.Typer(
    help="Drive the local Odoo simulator: inject faults, restore removals, list journal entries.",
    no_args_is_help=True,
)
console = Console()

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="GUARDIA_ODOO_SIM_URL",
        show_default=False,
        help="Simulator base URL (default: 127.0.0.1 on GUARDIA_SANDBOX_ODOO_PORT, 8102).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the raw JSON response.")]


class FaultKind(StrEnum):
    """Fault kinds the simulator understands (odoo.md §10.4)."""

    down = "down"
    slow = "slow"
    error_5xx = "error_5xx"
    auth_revoked = "auth_revoked"
    account_removed = "account_removed"
    journal_removed = "journal_removed"
    permission_removed = "permission_removed"
    lock_error = "lock_error"
    timeout_after_commit = "timeout_after_commit"
    database_missing = "database_missing"


class Version(StrEnum):
    """Odoo versions the simulator reproduces."""

    v16 = "16.0"
    v17 = "17.0"
    v18 = "18.0"
    v19 = "19.0"


def _odoo_refusal(_response: httpx.Response, payload: Any) -> str:
    return str(payload.get("detail") if isinstance(payload, dict) else payload)


def _call(method: str, url: str | None, path: str, *, body: object = None) -> Any:
    url = url or simulator_url(Settings().sandbox_odoo_port)
    return call("Odoo simulator", method, url, path, body=body, refusal=_odoo_refusal)


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option("--port", show_default=False, help="Default: GUARDIA_SANDBOX_ODOO_PORT."),
    ] = None,
    version: Annotated[
        Version, typer.Option("--version", envvar="GUARDIA_ODOO_SIM_VERSION", help="Odoo version.")
    ] = Version.v16,
    database: Annotated[str, typer.Option("--database")] = "mxtest",
    login: Annotated[str, typer.Option("--login")] = "guardia-bot",
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            envvar="GUARDIA_ODOO_SIM_PASSWORD",
            show_default=False,
            help="Bot password (default: the simulator's built-in one).",
        ),
    ] = None,
    api_key: Annotated[
        list[str] | None,
        typer.Option(
            "--api-key",
            envvar="GUARDIA_ODOO_SIM_API_KEY",
            show_default=False,
            help="Bearer key (JSON-2) also accepted as password; repeatable.",
        ),
    ] = None,
    latency: Annotated[float, typer.Option("--latency", min=0, help="Seconds per call.")] = 0.0,
) -> None:
    """Run the simulator (JSON-RPC, XML-RPC, JSON-2 on 19+, and /_sandbox) with uvicorn."""
    import uvicorn

    from guardia.sandbox.odoo import OdooSimConfig, OdooSimulator, create_app

    defaults = OdooSimConfig()
    config = OdooSimConfig(
        version=version.value,
        database=database,
        login=login,
        password=password or defaults.password,
        api_keys=tuple(api_key) if api_key else defaults.api_keys,
        latency_seconds=latency,
    )
    uvicorn.run(
        create_app(OdooSimulator(config)),
        host=host,
        port=port or Settings().sandbox_odoo_port,
        ws="none",
        server_header=False,
    )


@app.command()
def fault(
    kind: Annotated[FaultKind, typer.Argument(help="Fault kind.")],
    count: Annotated[int | None, typer.Option("--count", min=1, help="Calls affected.")] = None,
    code: Annotated[
        str | None,
        typer.Option(
            "--code", help="Account or journal code; for permission_removed, the group taken."
        ),
    ] = None,
    seconds: Annotated[float | None, typer.Option("--seconds", min=0, help="Delay.")] = None,
    status: Annotated[
        int | None, typer.Option("--status", min=502, max=504, help="error_5xx status.")
    ] = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Install a fault (down, slow, error_5xx, auth_revoked, account_removed, ...)."""
    body: dict[str, object] = {"kind": kind.value}
    for key, value in (("count", count), ("code", code), ("seconds", seconds), ("status", status)):
        if value is not None:
            body[key] = value
    created = _call("POST", url, "/_sandbox/faults", body=body)
    if as_json:
        emit_json(created)
        return
    scope = f" {created['code']}" if created.get("code") else ""
    remaining = (
        "until cleared" if created["remaining"] is None else f"{created['remaining']} call(s)"
    )
    console.print(f"Fault [bold]{created['id']}[/bold] {created['kind']}{scope} ({remaining})")


@app.command()
def faults(url: UrlOption = None, as_json: JsonOption = False) -> None:
    """List the active faults."""
    rows = _call("GET", url, "/_sandbox/faults")["data"]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        console.print("No active faults.")
    for row in rows:
        left = "until cleared" if row["remaining"] is None else f"{row['remaining']} left"
        console.print(f"{row['id']} {row['kind']} {row.get('code') or ''} ({left})")


@app.command("clear-faults")
def clear_faults(url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Remove every fault (removals undone, stalled answers released)."""
    result = _call("DELETE", url, "/_sandbox/faults")
    if as_json:
        emit_json(result)
        return
    console.print(f"Cleared {result['cleared']} fault(s).")


@app.command()
def restore(url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Bring back removed accounts, journals and the bot's billing group."""
    result = _call("POST", url, "/_sandbox/restore")
    if as_json:
        emit_json(result)
        return
    console.print(f"Restored {len(result['restored'])} removal(s).")


@app.command("add-account")
def add_account(
    code: Annotated[str, typer.Argument(help="Account code, e.g. 401.01.01.")],
    name: Annotated[str, typer.Argument(help="Account name.")],
    account_type: Annotated[str, typer.Argument(metavar="TYPE", help="e.g. income, asset_cash.")],
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an account (a re-created account gets a new id, as in Odoo)."""
    body = {"code": code, "name": name, "account_type": account_type}
    created = _call("POST", url, "/_sandbox/accounts", body=body)
    if as_json:
        emit_json(created)
        return
    console.print(f"Account [bold]{created['id']}[/bold] {created['display_name']}")


@app.command()
def moves(url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Show every journal entry with its lines."""
    rows = _call("GET", url, "/_sandbox/moves")
    if as_json:
        emit_json(rows)
        return
    table = Table(title=f"Odoo simulator journal entries ({len(rows)})")
    for column in ("id", "name", "state", "date", "journal", "ref", "total", "lines"):
        table.add_column(column, overflow="fold")
    for row in rows:
        lines = "; ".join(
            f"{ln['account_code']} D{ln['debit']} C{ln['credit']}" for ln in row["lines"]
        )
        table.add_row(
            str(row["id"]),
            str(row["name"]),
            str(row["state"]),
            str(row["date"]),
            str(row["journal_code"]),
            str(row["ref"] or "-"),
            str(row["amount_total"]),
            lines,
        )
    console.print(table)


if __name__ == "__main__":
    app()
