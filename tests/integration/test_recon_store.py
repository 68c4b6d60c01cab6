"""Reconciliation on a real database: import once, run, KPI, exceptions, the KPI alert."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from guardia.alerts.rules import evaluate_all
from guardia.bootstrap import Container
from guardia.core.errors import InvalidInput
from guardia.entrypoints.recon_cli import write_generic_statement
from guardia.recon import store
from guardia.recon.importers import ColumnMapping, import_statement
from guardia.recon.match import reconcile
from guardia.recon.synth import NoiseConfig, generate

pytestmark = pytest.mark.integration


def import_all(url: str, out: Path) -> list[int]:
    mapping = ColumnMapping.from_file(out / "mapping.json")
    ids = []
    for path in sorted(out.glob("statement-*.csv")):
        account = path.stem.removeprefix("statement-")
        imported = import_statement(path, "generic", account=account, mapping=mapping)
        ids.append(
            store.store_statement(
                url,
                imported.frame,
                file_sha256=imported.file_sha256,
                file_name=path.name,
                bank="generic",
                account=account,
                balance_breaks=imported.balance_breaks,
                actor="test",
                now=datetime.now(UTC),
            )
        )
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
    # Re-imported duplicate lines are flagged and left out of the KPI denominator.
    assert 0 < report.run["lines"] <= lines.height
    assert sum(r["lines"] for r in report.rows) == report.run["lines"]
    stored = store.load_result(db_url, run_id)
    assert stored.matches.height == result.matches.height
    assert len(store.exceptions_of(db_url, run_id, limit=10_000)) == result.exceptions.height

    container.settings.recon_kpi_threshold = 1.01
    fired = await evaluate_all(container.engine, container.settings, datetime.now(UTC))
    (kpi,) = [t for t in fired if t.rule == "ReconKpiLow"]
    assert kpi.change == "fired"
    assert kpi.value == pytest.approx(
        min(report.run["match_rate_count"], report.run["match_rate_amount"])
    )
    assert pl.DataFrame(report.rows).height > 0
