"""`guardia recon …`: import bank statements, calibrate the payout cut-off, run the
reconciliation, read the KPI and the exceptions, score a run against a truth table;
`guardia sandbox recon-data` makes such data."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from guardia.adapters.postgres.database import Database
from guardia.bootstrap import Container
from guardia.core.errors import GuardiaError, InvalidInput
from guardia.core.logging import configure_logging
from guardia.entrypoints.cli_support import operator_identity, with_container
from guardia.recon import manual, store
from guardia.recon.importers import BANKS, ColumnMapping
from guardia.recon.ledger import build_ledger
from guardia.recon.match import calibrate_payouts
from guardia.recon.model import (
    LEDGER_SCHEMA,
    MatchConfig,
    PayoutConfig,
    parse_cutoff_rules,
    parse_dates,
)
from guardia.recon.normalize import conform
from guardia.recon.score import score
from guardia.recon.synth import NoiseConfig, generate
from guardia.settings import Settings

app = typer.Typer(help="Conciliación: bank statements against Conekta and Odoo.")
data_app = typer.Typer(help="Synthetic reconciliation data with ground truth.")
console = Console()
err = Console(stderr=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _match_config(settings: Settings | None = None) -> MatchConfig:
    """The matching configuration with the payout cut-off rules and extra bank holidays."""
    s = settings or Settings()
    payout = PayoutConfig(
        rules=parse_cutoff_rules(s.recon_cutoff_rules),
        extra_holidays=parse_dates(s.recon_extra_holidays),
    )
    return MatchConfig(payout=payout)


def _url() -> tuple[Database, str]:
    settings = Settings()
    configure_logging(json=settings.log_json, level=settings.log_level)
    database = Database.open(settings)
    return database, database.direct_url


def _fail(exc: GuardiaError) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc.message}")
    return typer.Exit(code=1)


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err
    )


def _json(data: Any) -> None:
    console.print_json(json.dumps(data, default=str))


@app.command("import")
def import_(
    file: Path,
    bank: Annotated[str, typer.Option(help=f"One of {', '.join(BANKS)}.")],
    account: Annotated[str, typer.Option(help="The bank account (CLABE) of the statement.")],
    mapping: Annotated[Path | None, typer.Option(help="Column mapping (generic CSV).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import a bank export (refused if imported before; nothing partial on a bad line)."""
    database, url = _url()
    try:
        with _progress() as progress:
            statement_id, imported = store.import_file(
                url,
                file,
                bank=bank,
                account=account,
                mapping=ColumnMapping.from_file(mapping) if mapping else None,
                actor=operator_identity(),
                now=datetime.now(UTC),
                step=lambda what: progress.add_task(what, total=None),
            )
    except GuardiaError as exc:
        raise _fail(exc) from exc
    finally:
        database.close()
    data = {
        "statement_id": statement_id,
        "lines": imported.lines,
        "balance_breaks": [list(b) for b in imported.balance_breaks],
    }
    if as_json:
        _json(data)
    else:
        console.print(f"statement {statement_id}: {imported.lines} lines imported")
        for row_no, expected, found in imported.balance_breaks:
            console.print(f"[yellow]balance break[/yellow] line {row_no}: {expected} ≠ {found}")


def _read_ledger(path: Path) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InvalidInput(f"ledger {path}: cannot read it: {exc}") from exc
    return conform(frame, LEDGER_SCHEMA, "ledger")


@app.command()
def run(
    ledger: Annotated[Path, typer.Option(help="Ledger entries (Parquet or CSV, LEDGER_SCHEMA).")],
    statement: Annotated[
        list[int] | None, typer.Option(help="Statement ids (default: all).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Reconcile the imported statements against the ledger; store KPI, matches, exceptions."""
    database, url = _url()
    try:
        entries = _read_ledger(ledger)
        config = _match_config()
        with _progress() as progress:
            run_id, result = store.run_and_store(
                url,
                entries,
                statement_ids=statement or (),
                ledger_source=ledger.name,
                actor=operator_identity(),
                clock=lambda: datetime.now(UTC),
                step=lambda what: progress.add_task(what, total=None),
                config=config,
            )
    except GuardiaError as exc:
        raise _fail(exc) from exc
    finally:
        database.close()
    summary = {"run_id": run_id, **result.summary()}
    if as_json:
        _json(summary)
    else:
        console.print(
            f"run {run_id}: {summary['matched_lines']}/{summary['lines']} lines matched "
            f"({summary['match_rate_count']:.2%} by count, {summary['match_rate_amount']:.2%} "
            f"by amount); {summary['exceptions']} exceptions"
        )


@app.command()
def calibrate(
    ledger: Annotated[Path, typer.Option(help="Ledger entries (Parquet or CSV, LEDGER_SCHEMA).")],
    top: Annotated[int, typer.Option(help="Rules to show per account.")] = 5,
    as_json: JsonOpt = False,
) -> None:
    """Which payout cut-off rule explains past Conekta payouts exactly, and how many."""
    try:
        config = _match_config()
        rows = calibrate_payouts(_read_ledger(ledger), config)
    except GuardiaError as exc:
        raise _fail(exc) from exc
    configured = {rule.spec for rule in config.payout.rules}
    shown: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        picked = shown.setdefault(row.account, [])
        if len(picked) < top or row.rule.spec in configured:
            picked.append(
                {
                    "rule": row.rule.spec,
                    "explained": row.explained,
                    "transfers": row.transfers,
                    "exact": row.explained == row.transfers > 0,
                    "configured": row.rule.spec in configured,
                }
            )
    if as_json:
        _json(shown)
        return
    for account, picked in shown.items():
        table = Table(title=f"payouts of {account} explained by one cut-off rule")
        for col in ("rule", "explained", "of", "configured"):
            table.add_column(col)
        for r in picked:
            table.add_row(
                r["rule"],
                str(r["explained"]),
                str(r["transfers"]),
                "yes" if r["configured"] else "",
            )
        console.print(table)


@app.command()
def ledger(
    out: Annotated[Path, typer.Option(help="Where to write the ledger (Parquet).")] = Path(
        "ledger.parquet"
    ),
    account: Annotated[
        str | None, typer.Option(help="Bank account of charges (default: the payouts' one).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Pull the ledger side: Conekta charges and transfers, and the Odoo moves Guardia posted."""

    async def go(container: Container) -> pl.DataFrame:
        return await build_ledger(container.engine, container.conekta, account=account)

    with _progress() as progress:
        progress.add_task("pulling /transactions, /transfers and postings", total=None)
        frame = with_container(go)
    frame.write_parquet(out)
    counts = dict(frame.group_by("kind").len().sort("kind").iter_rows())
    if as_json:
        _json({"path": str(out), "entries": frame.height, "by_kind": counts})
    else:
        console.print(f"wrote {frame.height} ledger entries to {out}: {counts}")


@app.command()
def report(
    run_id: Annotated[int | None, typer.Option("--run", help="Default: the latest run.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The KPI: matched share by count and by amount, per account and day."""
    database, url = _url()
    try:
        kpi = store.kpi_report(url, run_id)
    except GuardiaError as exc:
        raise _fail(exc) from exc
    finally:
        database.close()
    if as_json:
        _json({"run": kpi.run, "kpi": kpi.rows})
        return
    run_row = kpi.run
    console.print(
        f"run {run_row['id']}: {run_row['match_rate_count']:.2%} by count, "
        f"{run_row['match_rate_amount']:.2%} by amount, {run_row['exceptions']} exceptions"
    )
    table = Table(title="KPI per account and day")
    for col in ("account", "date", "lines", "matched", "by count", "by amount"):
        table.add_column(col)
    for r in kpi.rows:
        table.add_row(
            r["account"],
            str(r["local_date"]),
            str(r["lines"]),
            str(r["matched_lines"]),
            f"{r['match_rate_count']:.2%}",
            f"{r['match_rate_amount']:.2%}",
        )
    console.print(table)


@app.command()
def exceptions(
    run_id: Annotated[int, typer.Option("--run")],
    limit: Annotated[int, typer.Option()] = 50,
    as_json: JsonOpt = False,
) -> None:
    """A run's exceptions with their evidence: candidates, scores, why none was accepted."""
    database, url = _url()
    try:
        rows = store.exceptions_of(url, run_id, limit=limit)
    finally:
        database.close()
    if as_json:
        _json(rows)
        return
    table = Table(title=f"exceptions of run {run_id}")
    for col in ("id", "side", "line / entry", "reason", "amount", "candidates"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["side"],
            str(r["bank_line_id"] or r["ledger_id"]),
            r["reason"],
            str(r["amount_cents"]),
            str(r["candidates"])[:80],
        )
    console.print(table)


@app.command("score")
def score_(
    run_id: Annotated[int, typer.Option("--run")],
    truth: Annotated[Path, typer.Option(help="truth.parquet written by `sandbox recon-data`.")],
    as_json: JsonOpt = False,
) -> None:
    """Compare a run with the ground truth: precision, recall, per noise label."""
    database, url = _url()
    try:
        result = store.load_result(url, run_id)
        imported = store.line_ids_by_position(url, run_id)
    except GuardiaError as exc:
        raise _fail(exc) from exc
    finally:
        database.close()
    # The generator names lines its own way; imported lines are named by file hash and row:
    # translate the truth through (account, row_no).
    line_map = pl.read_parquet(truth.parent / "line_map.parquet").join(
        imported, on=["account", "row_no"], how="inner"
    )
    translation = dict(line_map.select("line_id", "imported_line_id").iter_rows())
    # A bank fee pair names its partner line among its ledger ids: translate those too.
    table = pl.read_parquet(truth).with_columns(
        pl.col("bank_line_id").replace_strict(translation, default=None),
        pl.col("ledger_ids").list.eval(pl.element().replace(translation)),
    )
    scored = score(result, table.filter(pl.col("bank_line_id").is_not_null()))
    report_: dict[str, Any] = {
        **scored.as_dict(),
        "per_label": scored.per_label.to_dicts(),
    }
    if as_json:
        _json(report_)
    else:
        console.print_json(json.dumps(report_, default=str))


def _manual_step(
    fn: Callable[[Container, AsyncConnection], Awaitable[manual.ManualAction]],
) -> dict[str, Any]:
    async def go(container: Container) -> dict[str, Any]:
        async with container.engine.begin() as conn:
            return manual.as_json(await fn(container, conn))

    result: dict[str, Any] = with_container(go)
    return result


ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (required; audited).")]


@app.command("match")
def match_(
    run_id: Annotated[int, typer.Option("--run")],
    line: Annotated[str, typer.Option("--line", help="Statement line id.")],
    ledger: Annotated[list[str], typer.Option("--ledger", help="Ledger entry id (repeat).")],
    reason: ReasonOpt,
    as_json: JsonOpt = False,
) -> None:
    """Match a line by hand; above the threshold it waits for a second operator."""
    actor = operator_identity()
    data = _manual_step(
        lambda c, conn: manual.request(
            conn,
            run_id=run_id,
            action="match",
            bank_line_id=line,
            ledger_ids=ledger,
            reason=reason,
            actor=actor,
            at=c.clock.now(),
            approval_threshold_cents=c.settings.recon_approval_threshold_cents,
        )
    )
    _json(data) if as_json else console.print(f"manual action {data['id']}: {data['status']}")


@app.command("unmatch")
def unmatch_(
    run_id: Annotated[int, typer.Option("--run")],
    line: Annotated[str, typer.Option("--line")],
    reason: ReasonOpt,
    as_json: JsonOpt = False,
) -> None:
    """Undo a match; the line is an open exception again."""
    actor = operator_identity()
    data = _manual_step(
        lambda c, conn: manual.request(
            conn,
            run_id=run_id,
            action="unmatch",
            bank_line_id=line,
            ledger_ids=[],
            reason=reason,
            actor=actor,
            at=c.clock.now(),
            approval_threshold_cents=c.settings.recon_approval_threshold_cents,
        )
    )
    _json(data) if as_json else console.print(f"manual action {data['id']}: {data['status']}")


@app.command("approve")
def approve_(
    manual_id: int,
    reason: ReasonOpt,
    as_json: JsonOpt = False,
) -> None:
    """Approve a held manual match as a second operator (the OS account running the CLI)."""
    who = operator_identity()
    data = _manual_step(
        lambda c, conn: manual.approve(
            conn, manual_id, approver=who, reason=reason, at=c.clock.now()
        )
    )
    _json(data) if as_json else console.print(f"manual action {data['id']}: {data['status']}")


@data_app.callback(invoke_without_command=True)
def recon_data(
    out: Annotated[Path, typer.Option(help="Directory to write into.")] = Path("recon-data"),
    lines: Annotated[int, typer.Option(help="About this many statement lines.")] = 10_000,
    seed: Annotated[int, typer.Option()] = 20250416,
    as_json: JsonOpt = False,
) -> None:
    """Write per-account statement CSVs + mapping.json, ledger.parquet and truth.parquet."""
    out.mkdir(parents=True, exist_ok=True)
    with _progress() as progress:
        progress.add_task(f"generating {lines} lines (seed {seed})", total=None)
        data = generate(lines, seed, NoiseConfig())
    write_generic_statement(data.statement, out)
    data.ledger.write_parquet(out / "ledger.parquet")
    data.truth.write_parquet(out / "truth.parquet")
    accounts = sorted(set(data.statement.get_column("account").to_list()))
    if as_json:
        _json(
            {
                "out": str(out),
                "statement_lines": data.statement.height,
                "ledger_entries": data.ledger.height,
                "accounts": accounts,
            }
        )
        return
    console.print(
        f"wrote {data.statement.height} statement lines, {data.ledger.height} ledger entries "
        f"and the truth table to {out}; accounts: {', '.join(accounts)}"
    )


GENERIC_MAPPING = {
    "date": "operation_date",
    "concept": ["concept"],
    "reference": "reference",
    "cargo": "cargo",
    "abono": "abono",
    "balance": "balance",
    "delimiter": ",",
    "encoding": "utf-8",
    "date_format": "%Y-%m-%d",
}


def write_generic_statement(statement: pl.DataFrame, out: Path) -> None:
    """One generic CSV per account (in row order), its mapping, and the line-id map for scoring."""
    (out / "mapping.json").write_text(json.dumps(GENERIC_MAPPING, indent=2))
    for (account,), rows in statement.sort("account", "row_no").group_by(
        "account", maintain_order=True
    ):
        rows.select(
            "operation_date", "concept", "reference", "cargo", "abono", "balance"
        ).write_csv(out / f"statement-{account}.csv")
    statement.select("line_id", "account", "row_no").write_parquet(out / "line_map.parquet")
