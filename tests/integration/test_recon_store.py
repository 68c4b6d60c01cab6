"""Reconciliation on a real database: import once, run, KPI, exceptions, the KPI alert."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from guardia.alerts.rules import evaluate_all
from guardia.bootstrap import Container
from guardia.core.errors import InvalidInput
from guardia.entrypoints.recon_cli import write_generic_statement
from guardia.recon import store
from guardia.recon.importers import ColumnMapping
from guardia.recon.match import reconcile
from guardia.recon.synth import NoiseConfig, generate

pytestmark = pytest.mark.integration


def import_all(url: str, out: Path) -> list[int]:
    mapping = ColumnMapping.from_file(out / "mapping.json")
    ids = []
    for path in sorted(out.glob("statement-*.csv")):
        account = path.stem.removeprefix("statement-")
        statement_id, _ = store.import_file(
            url,
            path,
            bank="generic",
            account=account,
            mapping=mapping,
            actor="test",
            now=datetime.now(UTC),
        )
        ids.append(statement_id)
    return ids


async def test_a_statement_is_imported_once_reconciled_and_its_kpi_alerts_below_threshold(
    container: Container, db_url: str, tmp_path: Path
) -> None:
    data = generate(400, 7, NoiseConfig())
    write_generic_statement(data.statement, tmp_path)
    ids = import_all(db_url, tmp_path)
    with pytest.raises(InvalidInput, match="already imported"):
        import_all(db_url, tmp_path)
    lines, loaded = store.load_lines(db_url)
    assert loaded == ids
    assert lines.height == data.statement.height

    result = reconcile(lines, data.ledger)
    now = datetime.now(UTC)
    run_id = store.store_run(
        db_url,
        result,
        statement_ids=ids,
        ledger_source="ledger.parquet",
        actor="test",
        started_at=now,
        finished_at=now,
    )
    report = store.kpi_report(db_url)
    assert report.run["id"] == run_id
    # Re-imported duplicate lines are flagged and left out of the KPI denominator, and so are
    # out-of-scope lines (payroll, rent, suppliers), which are stored as exceptions with their rule.
    summary = result.summary()
    assert summary["out_of_scope_lines"] > 0
    assert 0 < report.run["lines"] <= lines.height - summary["out_of_scope_lines"]
    assert sum(r["lines"] for r in report.rows) == report.run["lines"]
    assert report.run["exceptions"] == summary["exceptions"]
    assert report.run["summary"]["out_of_scope_lines"] == summary["out_of_scope_lines"]
    stored = store.load_result(db_url, run_id)
    assert stored.matches.height == result.matches.height
    cases = store.exceptions_of(db_url, run_id, limit=10_000)
    assert len(cases) == result.exceptions.height
    out_of_scope = [c for c in cases if c["reason"] == "out_of_scope"]
    assert len(out_of_scope) == summary["out_of_scope_lines"]
    assert {c["candidates"][0]["rule"] for c in out_of_scope} <= {"payroll", "rent", "suppliers"}

    container.settings.recon_kpi_threshold = 1.01
    fired = await evaluate_all(container.engine, container.settings, datetime.now(UTC))
    (kpi,) = [t for t in fired if t.rule == "ReconKpiLow"]
    assert kpi.change == "fired"
    assert kpi.value == pytest.approx(
        min(report.run["match_rate_count"], report.run["match_rate_amount"])
    )
    assert pl.DataFrame(report.rows).height > 0


async def test_manual_matches_need_a_reason_a_second_operator_above_the_threshold_and_are_audited(
    container: Container, db_url: str, tmp_path: Path
) -> None:
    from guardia.audit import log as audit
    from guardia.core.errors import Conflict
    from guardia.recon import manual

    data = generate(300, 11, NoiseConfig())
    write_generic_statement(data.statement, tmp_path)
    ids = import_all(db_url, tmp_path)
    lines, _ = store.load_lines(db_url)
    now = datetime.now(UTC)
    run_id = store.store_run(
        db_url,
        reconcile(lines, data.ledger),
        statement_ids=ids,
        ledger_source="ledger.parquet",
        actor="test",
        started_at=now,
        finished_at=now,
    )
    orphans = [
        e
        for e in store.exceptions_of(db_url, run_id, limit=10_000)
        if e["side"] == "bank" and e["amount_cents"]
    ]
    assert len(orphans) >= 2
    by_size = sorted(orphans, key=lambda e: abs(e["amount_cents"]))
    small, big = by_size[0], by_size[-1]
    assert abs(small["amount_cents"]) < abs(big["amount_cents"])
    threshold = abs(small["amount_cents"])
    entry = data.ledger.get_column("entry_id")[0]

    async with container.engine.begin() as conn:
        with pytest.raises(InvalidInput, match="reason"):
            await manual.request(
                conn,
                run_id=run_id,
                action="match",
                bank_line_id=small["bank_line_id"],
                ledger_ids=[entry],
                reason=" ",
                actor="ana",
                at=now,
                approval_threshold_cents=threshold,
            )
    async with container.engine.begin() as conn:
        applied = await manual.request(
            conn,
            run_id=run_id,
            action="match",
            bank_line_id=small["bank_line_id"],
            ledger_ids=[entry],
            reason="CEP shows this transfer",
            actor="ana",
            at=now,
            approval_threshold_cents=threshold,
        )
        held = await manual.request(
            conn,
            run_id=run_id,
            action="match",
            bank_line_id=big["bank_line_id"],
            ledger_ids=[entry],
            reason="large transfer, CEP attached",
            actor="ana",
            at=now,
            approval_threshold_cents=threshold,
        )
    assert (applied.status, held.status) == ("applied", "pending_approval")
    async with container.engine.begin() as conn:
        with pytest.raises(Conflict, match="second"):
            await manual.approve(conn, held.id, approver="ana", reason="self", at=now)
    async with container.engine.begin() as conn:
        approved = await manual.approve(conn, held.id, approver="luis", reason="checked", at=now)
    assert approved.status == "applied"
    statuses = {
        e["bank_line_id"]: e["status"] for e in store.exceptions_of(db_url, run_id, limit=10_000)
    }
    assert statuses[small["bank_line_id"]] == "matched_manually"
    assert statuses[big["bank_line_id"]] == "matched_manually"
    async with container.engine.begin() as conn:
        await manual.request(
            conn,
            run_id=run_id,
            action="unmatch",
            bank_line_id=small["bank_line_id"],
            ledger_ids=[],
            reason="wrong entry",
            actor="luis",
            at=now,
            approval_threshold_cents=threshold,
        )
    reopened = [
        e
        for e in store.exceptions_of(db_url, run_id, limit=10_000)
        if e["bank_line_id"] == small["bank_line_id"] and e["status"] == "open"
    ]
    assert [e["reason"] for e in reopened] == ["unmatched_manually"]
    report = await audit.verify(container.engine)
    assert report.ok
    assert report.entries == 4


def test_the_cli_imports_a_file_once_runs_it_and_names_an_unreadable_ledger(
    db_url: str, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from guardia.entrypoints.recon_cli import app

    data = generate(120, 5, NoiseConfig())
    write_generic_statement(data.statement, tmp_path)
    data.ledger.write_parquet(tmp_path / "ledger.parquet")
    path = sorted(tmp_path.glob("statement-*.csv"))[0]
    account = path.stem.removeprefix("statement-")
    env = {"GUARDIA_DATABASE_URL": db_url, "GUARDIA_DATA_DIR": str(tmp_path / "guardia")}
    runner = CliRunner()
    args = ["import", str(path), "--bank", "generic", "--account", account]
    args += ["--mapping", str(tmp_path / "mapping.json"), "--json"]

    first = runner.invoke(app, args, env=env)
    assert first.exit_code == 0, first.output
    imported = json.loads(first.stdout)
    rows = data.statement.filter(pl.col("account") == account).height
    assert imported["lines"] == rows
    again = runner.invoke(app, args, env=env)
    assert again.exit_code == 1
    assert f"already imported as statement {imported['statement_id']}" in again.output

    ran = runner.invoke(
        app, ["run", "--ledger", str(tmp_path / "ledger.parquet"), "--json"], env=env
    )
    assert ran.exit_code == 0, ran.output
    summary = json.loads(ran.stdout)
    assert summary["lines"] <= rows
    assert store.kpi_report(db_url).run["id"] == summary["run_id"]

    missing = runner.invoke(app, ["run", "--ledger", str(tmp_path / "nope.parquet")], env=env)
    assert missing.exit_code == 1
    assert "cannot read it" in missing.output
    assert "Traceback" not in missing.output
