"""Runbook 3 (recon-orphan) on a real database: a statement imported and reconciled against the
ledger the providers give (Conekta transfers and the charges they pay out), healthy and faulty;
dry runs that change nothing, --apply that changes what the dry run showed, verified recovery."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import text

from guardia.alerts.rules import evaluate_all
from guardia.bootstrap import Container
from guardia.entrypoints.recon_cli import write_generic_statement
from guardia.incidents import service as incidents
from guardia.incidents.model import IncidentStatus, Runbook, Severity
from guardia.payments.fakes import InMemoryOrders
from guardia.recon import manual, store
from guardia.recon.ledger import build_ledger
from guardia.recon.model import STATEMENT_SCHEMA
from guardia.recon.ports import SettlementTransaction, SettlementTransfer
from guardia.runbooks import runner
from guardia.runbooks.model import CheckResult
from tests.integration.test_recon_store import import_all

pytestmark = pytest.mark.integration

ACCOUNT = "012180001234567899"
DAY = date(2025, 4, 16)
RUNBOOK = "recon-orphan"
ALL_PASS = dict.fromkeys(
    (
        "currency_and_decimals",
        "reference_format",
        "timezone_shift",
        "duplicates",
        "line_matched",
        "recon_kpi",
    ),
    "pass",
)


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 4, 16, hour, minute, tzinfo=UTC)


# (bank concept, bank cents, transfer id, statement_reference, transfer cents, created at): a
# row without a concept has no bank line, one without a transfer id no transfer.
Row = tuple[str | None, int, str | None, str | None, int, datetime]

HEALTHY: list[Row] = [
    ("SPEI RECIBIDO CONEKTA 5510021", 148666, "tr_1", "5510021", 148666, at(17, 0)),
    ("SPEI RECIBIDO CONEKTA 6620032", 230050, "tr_2", "6620032", 230050, at(17, 20)),
    ("SPEI RECIBIDO CONEKTA 7730043", 81240, "tr_3", "7730043", 81240, at(17, 40)),
]
# The bank cut the concept: "4401234" lost its last digit. Conekta created the transfer at
# 01:30 UTC, still 2025-04-15 (19:30) in Mexico City; the bank line is dated 2025-04-16.
ORPHAN: Row = ("SPEI RECIBIDO CONEKTA 440123", 200000, "tr_4", "4401234", 200000, at(1, 30))


def pesos(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


async def reconciled(
    container: Container,
    db_url: str,
    tmp_path: Path,
    orders: InMemoryOrders,
    rows: list[Row],
    net_off: dict[str, int] | None = None,
) -> tuple[int, dict[int, str]]:
    """Import the statement, set the providers' settlement, run and store the reconciliation.

    A transfer's charge nets its amount, plus `net_off[transfer id]` cents. Returns the run id
    and the stored line id of each bank line (1-based, in file order).
    """
    balance, lines = 1_000_000, list[tuple[Any, ...]]()
    for concept, cents, *_rest in rows:
        if concept is not None:
            balance += cents
            n = len(lines) + 1
            lines.append(
                (f"l{n}", ACCOUNT, n, DAY, concept, None, None, pesos(cents), pesos(balance))
            )
    write_generic_statement(pl.DataFrame(lines, schema=STATEMENT_SCHEMA, orient="row"), tmp_path)
    import_all(db_url, tmp_path)
    paid = sorted((r for r in rows if r[2] is not None), key=lambda r: r[5])
    for n, (_c, _b, transfer_id, reference, cents, moment) in enumerate(paid):
        assert transfer_id is not None
        fee, net = 1000 + n, cents + (net_off or {}).get(transfer_id, 0)
        orders.transactions.append(
            SettlementTransaction(
                f"txn_{transfer_id}",
                f"chg_{transfer_id}",
                "capture",
                "paid_out",
                net + fee,
                fee,
                net,
                # Paid out the next business morning: the charge is of the day before.
                moment - timedelta(days=1, minutes=5),
            )
        )
        orders.transfers.append(
            SettlementTransfer(
                transfer_id, "paid_out", cents, reference, f"Conekta {reference}", ACCOUNT, moment
            )
        )
    ledger = await build_ledger(container.engine, orders, account=ACCOUNT)
    run_id, _ = store.run_and_store(
        db_url, ledger, ledger_source="providers", actor="test", clock=lambda: datetime.now(UTC)
    )
    frame, _ = store.load_lines(db_url)
    return run_id, dict(zip(frame.get_column("row_no"), frame.get_column("line_id"), strict=True))


async def recon_state(container: Container) -> dict[str, list[tuple[Any, ...]]]:
    """What the actions may change: matches, exceptions, manual actions, their audit, cases,
    and the stored KPI."""
    queries = {
        "matches": "SELECT run_id, bank_line_id, ledger_ids, rule FROM recon_matches ORDER BY id",
        "exceptions": "SELECT id, status, resolved_by_manual_id FROM recon_exceptions ORDER BY id",
        "manual": "SELECT id, bank_line_id, ledger_ids, status FROM recon_manual ORDER BY id",
        "audit": "SELECT seq, action, target FROM audit_log "
        "WHERE starts_with(action, 'recon') ORDER BY seq",
        "cases": "SELECT incident_id, text FROM incident_notes "
        "WHERE starts_with(text, 'case:') ORDER BY id",
        "kpi": "SELECT run_id, account, local_date, matched_lines, matched_amount_cents "
        "FROM recon_kpi ORDER BY run_id, account, local_date",
    }
    async with container.engine.connect() as conn:
        return {
            name: [tuple(r) for r in (await conn.execute(text(sql))).all()]
            for name, sql in queries.items()
        }


def by_name(report: runner.RunReport) -> dict[str, str]:
    return {c.name: c.status.value for c in report.checks if not c.name.startswith("verify:")}


def check(report: runner.RunReport, name: str) -> CheckResult:
    return next(c for c in report.checks if c.name == name)


async def test_a_matched_line_passes_every_check_and_leaves_the_actions_nothing_to_do(
    container: Container, db_url: str, tmp_path: Path, orders: InMemoryOrders
) -> None:
    _run, ids = await reconciled(container, db_url, tmp_path, orders, HEALTHY)
    assert re.fullmatch(r"[0-9a-f]{12}:1", ids[1])
    before = await recon_state(container)

    report = await runner.run(container, RUNBOOK, line_id=ids[1], apply=True, actor="ana")

    assert by_name(report) == ALL_PASS
    assert "conekta:tr_1" in check(report, "line_matched").summary
    assert check(report, "recon_kpi").evidence["now"]["match_rate_count"] == 1.0
    assert [a.changes for a in report.actions] == [[], []]
    assert report.verified is True
    assert await recon_state(container) == before


async def test_an_orphan_cut_and_shifted_by_a_time_zone_is_diagnosed_matched_and_verified(
    container: Container, db_url: str, tmp_path: Path, orders: InMemoryOrders
) -> None:
    run_id, ids = await reconciled(container, db_url, tmp_path, orders, [*HEALTHY, ORPHAN])
    orphan = ids[4]
    before = await recon_state(container)

    dry = await runner.run(container, RUNBOOK, line_id=orphan, apply=False, actor="ana")

    assert by_name(dry) == {
        **ALL_PASS,
        "reference_format": "fail",
        "timezone_shift": "fail",
        "line_matched": "fail",
        "recon_kpi": "fail",
    }
    reference = check(dry, "reference_format").summary
    assert "the line's 440123 is conekta:tr_4's 4401234 cut to 6 characters" in reference
    shifted = check(dry, "timezone_shift").summary
    assert shifted.startswith("conekta:tr_4 happened 2025-04-16 01:30 UTC, 2025-04-15 in")
    assert check(dry, "line_matched").evidence["exceptions"] == ["missing_in_ledger"]
    assert check(dry, "recon_kpi").evidence["now"]["match_rate_count"] == 0.75
    case, match = dry.actions
    assert (case.applied, match.applied) == (False, False)
    assert len(case.changes) == 1
    assert case.changes[0].startswith("record exception ")
    assert (
        f"line {orphan}: missing_in_ledger, 2,000.00 MXN; candidates: conekta:tr_4"
        in (case.changes[0])
    )
    assert match.changes == [
        f"match line {orphan} to ledger entry conekta:tr_4 (2,000.00 MXN) in run {run_id}, "
        "with the charge(s) it paid out: conekta:txn_tr_4"
    ]
    assert await recon_state(container) == before

    applied = await runner.run(container, RUNBOOK, line_id=orphan, apply=True, actor="ana")

    assert dry.incident_id is None  # a dry run reports; the failing apply opens the incident
    assert applied.incident_id is not None
    assert [(a.applied, a.changes) for a in applied.actions] == [
        (True, case.changes),
        (True, match.changes),
    ]
    after = await recon_state(container)
    assert after["matches"][: len(before["matches"])] == before["matches"]
    assert after["matches"][len(before["matches"]) :] == [
        (run_id, orphan, ["conekta:tr_4", "conekta:txn_tr_4"], "manual")
    ]
    ((manual_id, line, ledger_ids, status),) = after["manual"]
    assert (line, ledger_ids, status) == (orphan, match.evidence["ledger_ids"], "applied")
    settled = {row for row in after["exceptions"] if row not in before["exceptions"]}
    async with container.engine.connect() as conn:
        expected = {
            r.id
            for r in await conn.execute(
                text(
                    "SELECT id FROM recon_exceptions WHERE run_id = :run AND "
                    "(bank_line_id = :line OR ledger_id IN ('conekta:tr_4', 'conekta:txn_tr_4'))"
                ),
                {"run": run_id, "line": orphan},
            )
        }
    assert settled == {(i, "matched_manually", manual_id) for i in expected}
    assert len(expected) == 3
    assert [a[1] for a in after["audit"]] == ["recon_match"]
    ((incident_id, note),) = after["cases"]
    assert incident_id == applied.incident_id
    assert f"run {run_id}, line {orphan}): missing_in_ledger" in note

    assert {c.name: c.status.value for c in applied.checks if c.name.startswith("verify:")} == {
        "verify:line_matched": "pass",
        "verify:recon_kpi": "pass",
    }
    assert check(applied, "verify:recon_kpi").evidence["now"]["match_rate_count"] == 1.0
    assert applied.verified is True
    async with container.engine.connect() as conn:
        incident = await incidents.get(conn, applied.incident_id)
    assert incident.status is IncidentStatus.RESOLVED
    assert incident.lifecycle.resolved_verified is True
    assert incident.external_ids.neon_statement_line == (orphan,)
    # The test's charges have no payment in Guardia: no order, so no correlation id, said why.
    assert incident.correlation_ids == ()
    assert f"bank line {orphan} matched conekta:tr_4, conekta:txn_tr_4: no order" in (
        incident.no_correlation_id_reason or ""
    )

    again = await runner.run(container, RUNBOOK, line_id=orphan, apply=True, actor="ana")
    assert [a.changes for a in again.actions] == [[], []]
    assert (await recon_state(container))["matches"] == after["matches"]


async def test_charges_that_do_not_add_up_to_the_payout_are_left_out_of_the_manual_match(
    container: Container, db_url: str, tmp_path: Path, orders: InMemoryOrders
) -> None:
    # The run places txn_tr_4 in the orphan's transfer, but it nets 10.00 MXN less than it.
    run_id, ids = await reconciled(
        container, db_url, tmp_path, orders, [*HEALTHY, ORPHAN], net_off={"tr_4": -1000}
    )
    orphan = ids[4]
    async with container.engine.connect() as conn:
        placed = await conn.scalar(
            text(
                "SELECT count(*) FROM recon_exceptions WHERE run_id = :run "
                "AND ledger_id = 'conekta:txn_tr_4' AND reason = 'payout_unmatched'"
            ),
            {"run": run_id},
        )
    assert placed == 1

    applied = await runner.run(container, RUNBOOK, line_id=orphan, apply=True, actor="ana")

    match = applied.actions[1]
    assert match.changes == [
        f"match line {orphan} to ledger entry conekta:tr_4 (2,000.00 MXN) in run {run_id}"
    ]
    assert match.evidence["ledger_ids"] == ["conekta:tr_4"]
    assert (
        "the charges the run placed in conekta:tr_4 (conekta:txn_tr_4) net 1,990.00 MXN, not "
        "its 2,000.00 MXN: left open for the next run" in match.evidence["reason"]
    )
    async with container.engine.connect() as conn:
        charge = await conn.scalar(
            text(
                "SELECT status FROM recon_exceptions WHERE run_id = :run "
                "AND ledger_id = 'conekta:txn_tr_4'"
            ),
            {"run": run_id},
        )
    assert charge == "open"
    assert applied.verified is True


async def test_a_match_above_the_threshold_waits_for_a_second_operator_then_the_verifier_resolves(
    container: Container, db_url: str, tmp_path: Path, orders: InMemoryOrders
) -> None:
    _run, ids = await reconciled(container, db_url, tmp_path, orders, [*HEALTHY, ORPHAN])
    orphan = ids[4]
    container.settings.recon_approval_threshold_cents = 150_000

    dry = await runner.run(container, RUNBOOK, line_id=orphan, apply=False, actor="ana")
    assert "it waits for a second operator" in dry.actions[1].changes[0]

    applied = await runner.run(container, RUNBOOK, line_id=orphan, apply=True, actor="ana")
    assert applied.actions[1].changes == dry.actions[1].changes
    held = applied.actions[1].evidence["manual"]
    assert held["status"] == "pending_approval"
    assert applied.verified is False
    assert "waits for a second operator" in check(applied, "verify:line_matched").summary

    again = await runner.run(container, RUNBOOK, line_id=orphan, apply=True, actor="ana")
    assert again.incident_id == applied.incident_id
    assert [a.changes for a in again.actions] == [[], []]
    assert "waits for a second operator" in again.actions[1].evidence["skipped"]
    assert len((await recon_state(container))["manual"]) == 1

    async with container.engine.begin() as conn:
        await manual.approve(
            conn, held["id"], approver="luis", reason="CEP checked", at=datetime.now(UTC)
        )
        incident = await incidents.get(conn, applied.incident_id)
    assert incident.status is not IncidentStatus.RESOLVED
    assert await runner.verify_incident(container, incident) is True
    async with container.engine.connect() as conn:
        resolved = await incidents.get(conn, applied.incident_id)
    assert resolved.status is IncidentStatus.RESOLVED
    assert resolved.lifecycle.resolved_verified is True


async def test_cents_for_pesos_and_duplicates_are_named_and_no_match_is_guessed(
    container: Container, db_url: str, tmp_path: Path, orders: InMemoryOrders
) -> None:
    rows: list[Row] = [
        *HEALTHY,
        # Conekta's amount read as pesos: 4,125.50 in the bank, 412,550.00 in the ledger.
        ("SPEI RECIBIDO CONEKTA 3300111", 412550, "tr_5", "3300111", 41255000, at(18, 0)),
        # The same credit twice in the statement, one transfer.
        ("SPEI RECIBIDO CONEKTA 9900222", 61500, "tr_6", "9900222", 61500, at(18, 20)),
        ("SPEI RECIBIDO CONEKTA 9900222", 61500, None, None, 0, at(18, 20)),
        # One credit, the same transfer twice in the ledger.
        ("SPEI RECIBIDO CONEKTA 7700333", 95000, "tr_7a", "7700333", 95000, at(18, 40)),
        (None, 0, "tr_7b", "7700333", 95000, at(18, 50)),
    ]
    run_id, ids = await reconciled(container, db_url, tmp_path, orders, rows)
    before = await recon_state(container)

    unit = await runner.run(container, RUNBOOK, line_id=ids[4], apply=False, actor="ana")
    assert by_name(unit)["currency_and_decimals"] == "fail"
    assert check(unit, "currency_and_decimals").summary == (
        "conekta:tr_5's 412,550.00 MXN is 100 times the line's 4,125.50 MXN: cents read as pesos"
    )
    assert unit.actions[1].changes == []
    assert unit.actions[1].evidence["skipped"].startswith("no unmatched candidate")

    twin = await runner.run(container, RUNBOOK, line_id=ids[5], apply=False, actor="ana")
    assert by_name(twin)["duplicates"] == "fail"
    assert f"line {ids[6]} (balance differs" in check(twin, "duplicates").summary
    assert twin.actions[1].changes == []
    assert ids[6] in twin.actions[1].evidence["skipped"]
    chosen = await runner.run(
        container,
        RUNBOOK,
        line_id=ids[5],
        apply=False,
        actor="ana",
        options={"ledger_id": "conekta:tr_6"},
    )
    assert (
        chosen.actions[1]
        .changes[0]
        .startswith(
            f"match line {ids[5]} to ledger entry conekta:tr_6 (615.00 MXN) in run {run_id}"
        )
    )

    doubled = await runner.run(container, RUNBOOK, line_id=ids[7], apply=False, actor="ana")
    assert by_name(doubled)["duplicates"] == "fail"
    assert "ledger entries conekta:tr_7a, conekta:tr_7b repeat each other" in (
        check(doubled, "duplicates").summary
    )
    assert doubled.actions[1].changes == []
    assert "2 candidates fit" in doubled.actions[1].evidence["skipped"]
    assert await recon_state(container) == before
    assert json.loads(json.dumps(doubled.as_dict()))["checks"][3]["name"] == "duplicates"


async def test_recon_kpi_low_carries_the_orphans_and_resolves_only_verified_once_it_clears(
    container: Container, db_url: str, tmp_path: Path, orders: InMemoryOrders
) -> None:
    _run, ids = await reconciled(container, db_url, tmp_path, orders, [*HEALTHY, ORPHAN])
    orphan = ids[4]

    async def kpi_alert() -> tuple[str, int | None]:
        (t,) = [
            t
            for t in await evaluate_all(container.engine, container.settings, datetime.now(UTC))
            if t.rule == "ReconKpiLow"
        ]
        return t.change, t.incident_id

    change, incident_id = await kpi_alert()
    assert change == "fired"
    assert incident_id is not None
    async with container.engine.connect() as conn:
        opened = await incidents.get(conn, incident_id)
    assert opened.external_ids.neon_statement_line == (orphan,)
    assert await runner.verify_incident(container, opened) is False

    applied = await runner.run(
        container, RUNBOOK, line_id=orphan, apply=True, actor="ana", incident_id=incident_id
    )
    # The checks pass, but the alert still fires until the next evaluation reads the KPI.
    assert applied.verified is True
    async with container.engine.connect() as conn:
        mitigated = await incidents.get(conn, incident_id)
    assert mitigated.status is IncidentStatus.MITIGATED

    assert (await kpi_alert())[0] == "clearing"
    assert await runner.verify_open_incidents(container) == [incident_id]
    async with container.engine.begin() as conn:
        resolved = await incidents.get(conn, incident_id)
        assert resolved.lifecycle.resolved_verified is True
        await conn.execute(text("UPDATE recon_runs SET match_rate_count = 0.5"))
    # Firing again while the old alert is still clearing: a new incident, and the alert says so.
    change, again = await kpi_alert()
    assert change == "still_firing"
    assert again is not None
    assert again != incident_id
    async with container.engine.connect() as conn:
        linked = await conn.scalar(
            text("SELECT incident_id FROM alerts WHERE rule = 'ReconKpiLow' AND status = 'firing'")
        )
    assert linked == again


async def test_an_incident_about_several_lines_is_verified_on_every_one_of_them(
    container: Container, db_url: str, tmp_path: Path, orders: InMemoryOrders
) -> None:
    _run, ids = await reconciled(container, db_url, tmp_path, orders, [*HEALTHY, ORPHAN])
    async with container.engine.begin() as conn:
        opened, _ = await incidents.open_or_attach(
            conn,
            fingerprint="manual:ana",
            title="two statement lines",
            severity=Severity.SEV3,
            runbook=Runbook.RECONCILIATION_NO_MATCH,
            at=datetime.now(UTC),
            source="manual",
        )
    first = await runner.run(
        container, RUNBOOK, line_id=ids[1], apply=False, actor="ana", incident_id=opened.id
    )
    await runner.run(
        container, RUNBOOK, line_id=ids[4], apply=False, actor="ana", incident_id=first.incident_id
    )
    async with container.engine.connect() as conn:
        incident = await incidents.get(conn, first.incident_id)
    # The first line is matched; the orphan is not: the incident is not recovered.
    assert incident.external_ids.neon_statement_line == (ids[1], ids[4])
    assert await runner.verify_incident(container, incident) is False

    await runner.run(
        container, RUNBOOK, line_id=ids[4], apply=True, actor="ana", incident_id=first.incident_id
    )
    async with container.engine.connect() as conn:
        resolved = await incidents.get(conn, first.incident_id)
    assert resolved.status is IncidentStatus.RESOLVED
    assert resolved.lifecycle.resolved_verified is True
