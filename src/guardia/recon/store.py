"""Reconciliation storage: statements and lines in, runs (KPI, matches, exceptions) out.

Bulk rows go through PostgreSQL COPY on the direct URL (a run can hold a million lines); small
reads use plain queries. A file is imported once (unique SHA-256), and a whole import or run is
one transaction: nothing partial is stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
from psycopg.rows import dict_row

from guardia.core.errors import InvalidInput, NotFound
from guardia.recon.importers import ColumnMapping, ImportedStatement, import_statement
from guardia.recon.match import ReconResult, reconcile
from guardia.recon.model import (
    BALANCE_BREAK_SCHEMA,
    EXCEPTION_SCHEMA,
    KPI_SCHEMA,
    MATCH_SCHEMA,
    STATEMENT_SCHEMA,
    MatchConfig,
)

LINE_COLUMNS = list(STATEMENT_SCHEMA)


def store_statement(
    url: str,
    frame: pl.DataFrame,
    *,
    file_sha256: str,
    file_name: str,
    bank: str,
    account: str,
    balance_breaks: Sequence[tuple[int, int, int]],
    actor: str,
    now: datetime,
) -> int:
    """Store an imported statement and its lines; refuse a file imported before."""
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT id FROM recon_statements WHERE file_sha256 = %s", (file_sha256,)
        ).fetchone()
        if found is not None:
            raise InvalidInput(f"this file was already imported as statement {found[0]}")
        row = conn.execute(
            "INSERT INTO recon_statements (file_sha256, file_name, bank, account, lines, "
            "balance_breaks, imported_by, imported_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "RETURNING id",
            (
                file_sha256,
                file_name,
                bank,
                account,
                frame.height,
                json.dumps([list(b) for b in balance_breaks]),
                actor,
                now,
            ),
        ).fetchone()
        assert row is not None  # noqa: S101 - INSERT … RETURNING always returns the row
        statement_id = int(row[0])
        with conn.cursor().copy(
            f"COPY recon_lines (statement_id, {', '.join(LINE_COLUMNS)}) FROM STDIN"
        ) as copy:
            for values in frame.select(LINE_COLUMNS).iter_rows():
                copy.write_row((statement_id, *values))
    return statement_id


def import_file(
    url: str,
    path: Path,
    *,
    bank: str,
    account: str,
    mapping: ColumnMapping | None = None,
    actor: str,
    now: datetime,
    step: Callable[[str], object] = lambda _: None,
) -> tuple[int, ImportedStatement]:
    """Read a bank export (`guardia.recon.importers`) and store it; (statement id, what was
    read). Nothing is stored when the file is bad or was imported before. `step` hears what
    is being done (a progress display)."""
    step(f"parsing {path.name}")
    imported = import_statement(path, bank, account=account, mapping=mapping)
    step(f"storing {imported.lines} lines")
    statement_id = store_statement(
        url,
        imported.frame,
        file_sha256=imported.file_sha256,
        file_name=path.name,
        bank=bank,
        account=account,
        balance_breaks=imported.balance_breaks,
        actor=actor,
        now=now,
    )
    return statement_id, imported


def run_and_store(
    url: str,
    ledger: pl.DataFrame,
    *,
    statement_ids: Sequence[int] = (),
    ledger_source: str,
    actor: str,
    clock: Callable[[], datetime],
    step: Callable[[str], object] = lambda _: None,
    config: MatchConfig | None = None,
) -> tuple[int, ReconResult]:
    """Reconcile the stored lines of `statement_ids` (default: every statement) against
    `ledger` and store the run; (run id, result). `step` hears what is being done."""
    started = clock()
    step("loading statement lines")
    lines, ids = load_lines(url, statement_ids)
    if lines.is_empty():
        raise InvalidInput("no statement lines: run `guardia recon import` first")
    step(f"matching {lines.height} lines x {ledger.height} entries")
    result = reconcile(lines, ledger, config)
    step("storing the run")
    run_id = store_run(
        url,
        result,
        statement_ids=ids,
        ledger_source=ledger_source,
        actor=actor,
        started_at=started,
        finished_at=clock(),
    )
    return run_id, result


def load_lines(url: str, statement_ids: Sequence[int] = ()) -> tuple[pl.DataFrame, list[int]]:
    """Statement lines (of the given statements, or of every statement) in STATEMENT_SCHEMA."""
    with psycopg.connect(url) as conn:
        ids = list(statement_ids) or [
            int(r[0]) for r in conn.execute("SELECT id FROM recon_statements ORDER BY id")
        ]
        rows = conn.execute(
            f"SELECT {', '.join(LINE_COLUMNS)} FROM recon_lines "  # noqa: S608 - fixed columns
            "WHERE statement_id = ANY(%s) ORDER BY statement_id, row_no",
            (ids,),
        ).fetchall()
    return pl.DataFrame(rows, schema=STATEMENT_SCHEMA, orient="row"), ids


def store_run(
    url: str,
    result: ReconResult,
    *,
    statement_ids: Sequence[int],
    ledger_source: str,
    actor: str,
    started_at: datetime,
    finished_at: datetime,
) -> int:
    """Store a run: headline KPI, KPI per account and day, matches and exceptions."""
    summary = result.summary()
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "INSERT INTO recon_runs (started_at, finished_at, actor, statement_ids, ledger_source,"
            " lines, matched_lines, amount_cents, matched_amount_cents, match_rate_count,"
            " match_rate_amount, exceptions, summary) VALUES (%s, %s, %s, %s, %s, %s, %s, %s,"
            " %s, %s, %s, %s, %s) RETURNING id",
            (
                started_at,
                finished_at,
                actor,
                json.dumps(list(statement_ids)),
                ledger_source,
                int(summary["lines"]),
                int(summary["matched_lines"]),
                int(result.kpi.get_column("amount_cents").sum()),
                int(result.kpi.get_column("matched_amount_cents").sum()),
                float(summary["match_rate_count"]),
                float(summary["match_rate_amount"]),
                int(summary["exceptions"]),
                json.dumps(summary),
            ),
        ).fetchone()
        assert row is not None  # noqa: S101 - INSERT … RETURNING always returns the row
        run_id = int(row[0])
        cur = conn.cursor()
        with cur.copy(
            "COPY recon_kpi (run_id, account, local_date, lines, matched_lines, amount_cents, "
            "matched_amount_cents, match_rate_count, match_rate_amount) FROM STDIN"
        ) as copy:
            for values in result.kpi.select(list(KPI_SCHEMA)).iter_rows():
                copy.write_row((run_id, *values))
        with cur.copy(
            "COPY recon_matches (run_id, bank_line_id, ledger_ids, rule, score) FROM STDIN"
        ) as copy:
            for line_id, ledger_ids, rule, score in result.matches.select(
                "bank_line_id", "ledger_ids", "rule", "score"
            ).iter_rows():
                copy.write_row((run_id, line_id, json.dumps(ledger_ids), rule, score))
        with cur.copy(
            "COPY recon_exceptions (run_id, side, bank_line_id, ledger_id, reason, candidates, "
            "account, local_date, amount_cents) FROM STDIN"
        ) as copy:
            for values in result.exceptions.select(list(EXCEPTION_SCHEMA)).iter_rows():
                copy.write_row((run_id, *values))
    return run_id


def load_result(url: str, run_id: int) -> ReconResult:
    """A stored run as a ReconResult (for scoring against a truth table)."""
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT 1 FROM recon_runs WHERE id = %s", (run_id,)).fetchone() is None:
            raise NotFound(f"reconciliation run {run_id} not found")
        matches = conn.execute(
            "SELECT m.bank_line_id, m.ledger_ids, m.rule, m.score, l.account, "
            "l.operation_date, 0::bigint FROM recon_matches m "
            "LEFT JOIN recon_lines l ON l.line_id = m.bank_line_id WHERE m.run_id = %s",
            (run_id,),
        ).fetchall()
        exceptions = conn.execute(
            "SELECT side, bank_line_id, ledger_id, reason, candidates::text, account, "
            "local_date, amount_cents FROM recon_exceptions WHERE run_id = %s",
            (run_id,),
        ).fetchall()
        kpi = conn.execute(
            "SELECT account, local_date, lines, matched_lines, amount_cents, "
            "matched_amount_cents, match_rate_count, match_rate_amount FROM recon_kpi "
            "WHERE run_id = %s",
            (run_id,),
        ).fetchall()
    return ReconResult(
        matches=pl.DataFrame(matches, schema=MATCH_SCHEMA, orient="row"),
        exceptions=pl.DataFrame(exceptions, schema=EXCEPTION_SCHEMA, orient="row"),
        kpi=pl.DataFrame(kpi, schema=KPI_SCHEMA, orient="row"),
        balance_breaks=pl.DataFrame(schema=BALANCE_BREAK_SCHEMA),
    )


@dataclass(frozen=True, slots=True)
class KpiReport:
    """A run's headline figures and its KPI per account and day."""

    run: dict[str, Any]
    rows: list[dict[str, Any]]


def kpi_report(url: str, run_id: int | None = None) -> KpiReport:
    """The KPI of a run (default: the latest)."""
    with psycopg.connect(url, row_factory=dict_row) as conn:
        if run_id is None:
            run = conn.execute("SELECT * FROM recon_runs ORDER BY id DESC LIMIT 1").fetchone()
        else:
            run = conn.execute("SELECT * FROM recon_runs WHERE id = %s", (run_id,)).fetchone()
        if run is None:
            raise NotFound("no reconciliation run yet" if run_id is None else f"run {run_id}")
        rows = conn.execute(
            "SELECT account, local_date, lines, matched_lines, amount_cents, "
            "matched_amount_cents, match_rate_count, match_rate_amount FROM recon_kpi "
            "WHERE run_id = %s ORDER BY account, local_date",
            (run["id"],),
        ).fetchall()
    return KpiReport(dict(run), [dict(r) for r in rows])


def exceptions_of(url: str, run_id: int, *, limit: int = 100) -> list[dict[str, Any]]:
    """A run's exceptions with their evidence (candidates and why none was accepted)."""
    with psycopg.connect(url, row_factory=dict_row) as conn:
        rows = conn.execute(
            "SELECT id, side, bank_line_id, ledger_id, reason, candidates, account, local_date, "
            "amount_cents, status FROM recon_exceptions WHERE run_id = %s ORDER BY id LIMIT %s",
            (run_id, limit),
        ).fetchall()
    return [dict(r) for r in rows]


def line_ids_by_position(url: str, run_id: int) -> pl.DataFrame:
    """(account, row_no, imported_line_id) of the statements a run reconciled."""
    with psycopg.connect(url) as conn:
        found = conn.execute("SELECT statement_ids FROM recon_runs WHERE id = %s", (run_id,))
        row = found.fetchone()
        if row is None:
            raise NotFound(f"reconciliation run {run_id} not found")
        rows = conn.execute(
            "SELECT account, row_no, line_id FROM recon_lines WHERE statement_id = ANY(%s)",
            (list(row[0]),),
        ).fetchall()
    return pl.DataFrame(
        rows,
        schema={"account": pl.String(), "row_no": pl.Int64(), "imported_line_id": pl.String()},
        orient="row",
    )
