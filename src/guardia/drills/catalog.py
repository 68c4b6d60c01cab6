"""The drills: one per encoded runbook, each injecting that runbook's fault into the local stack.

- conekta-webhook: the simulator drops every delivery about a paid order; the sweeper detects
  and pulls it (automatic fix); the verifier resolves the incident.
- odoo-posting: the credit account disappears from Odoo; DeadLettersGrowing detects it; the
  accountant re-creates the account as the runbook guides; the runbook retries the queue.
- recon-orphan: a NEON statement arrives whose credit for one Conekta payout carries its
  reference cut by the bank; the reconciliation leaves it orphan; ReconKpiLow detects it; the
  on-call follows the runbook (its checks name the payout) and matches the line by hand.
- backups: the local backup target stops being writable; the preflight (every 30 s) detects
  it; the on-call restores the target; the runbook backs up and verifies.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from guardia.core.clock import local_date
from guardia.drills.harness import OPERATOR, DrillEnv, DrillFailed, finish
from guardia.drills.model import DrillReport
from guardia.jobs.tasks import record_backup_preflight
from guardia.ledger.check import check_ledger, store_report
from guardia.payments.service import get_order_view
from guardia.recon import store
from guardia.recon.ledger import build_ledger
from guardia.runbooks import runner
from guardia.runbooks.backups import make_target_unwritable
from guardia.runbooks.model import Status
from guardia.runbooks.odoo import ACCOUNT_ROLES


@dataclass(frozen=True, slots=True)
class Drill:
    """A drill: the runbook it exercises, its fault, and the steps that play it."""

    name: str
    fault: str
    automatic_fix: bool
    play: Callable[[DrillEnv, DrillReport], Awaitable[None]]


async def _paid_order(env: DrillEnv, report: DrillReport) -> str:
    order_id = await env.sims.create_order()
    report.step(f"created order {order_id} in the Conekta simulator")

    async def known() -> bool:
        try:
            await get_order_view(env.container.engine, order_id)
        except Exception:
            return False
        return True

    await env.wait_for(f"order {order_id} to reach Guardia", known, timeout=60)
    return order_id


async def conekta_webhook(env: DrillEnv, report: DrillReport) -> None:
    """Drop every delivery about a paid order; the sweeper must find, pull and record it."""
    spec = runner.get_runbook("conekta-webhook")
    order_id = await _paid_order(env, report)
    report.injected_at = env.now()
    await env.sims.conekta_fault({"kind": "drop", "order_id": order_id})
    await env.sims.pay(order_id)
    report.step(f"dropped every delivery for {order_id}, then paid it")
    await env.detected(spec, report, "the lost webhook to be detected", "conekta_order", order_id)


async def odoo_posting(env: DrillEnv, report: DrillReport) -> None:
    """Remove the credit account; postings dead-letter; the accountant re-creates it, the
    runbook retries the queue."""
    spec = runner.get_runbook("odoo-posting")
    settings = env.container.settings
    code = settings.odoo_credit_account_code
    report.injected_at = env.now()
    await env.sims.odoo_fault({"kind": "account_removed", "code": code})
    report.step(f"removed account {code} from the Odoo simulator")
    order_id = await env.sims.create_order()
    await env.sims.pay(order_id)
    report.step(f"paid order {order_id}: its posting needs {code}")
    incident_id = await env.detected(
        spec, report, "the failed posting to be detected", "conekta_order", order_id
    )
    dry = await runner.run(
        env.container, spec.name, apply=False, actor=OPERATOR, incident_id=incident_id
    )
    guide = next(a for a in dry.actions if a.name == "create_missing_account").evidence
    report.step(f"runbook dry run: {guide.get('guide') or guide}")
    kind, label = ACCOUNT_ROLES["credit_account"]
    await env.sims.odoo_account(code, label, kind)
    report.step(f"accountant re-created {code} ({kind}) as the runbook guided")
    # The worker checks the configuration every minute; the on-call does not wait for it.
    await store_report(
        env.container.engine,
        await check_ledger(env.container.odoo, env.container.ledger_config),
    )
    await env.apply(spec, report)


def _bbva_amount(cents: int) -> str:
    return f"{Decimal(cents) / 100:,.2f}"


def _bbva_statement(path: Path, account_day: date, credits: list[tuple[str, int]]) -> None:
    """A BBVA México export (tab-separated, latin-1; reconciliation.md §3) with one SPEI credit
    per (concept, cents), the running balance from an opening of 100,000.00 MXN."""
    balance = 10_000_000
    rows = ["Día\tConcepto / Referencia\tcargo\tAbono\tSaldo"]
    for concept, cents in credits:
        balance += cents
        cargo, abono = ("", _bbva_amount(cents)) if cents > 0 else (_bbva_amount(-cents), "")
        rows.append(f"{account_day:%d/%m/%Y}\t{concept}\t{cargo}\t{abono}\t{_bbva_amount(balance)}")
    path.write_bytes(("\r\n".join(rows) + "\r\n").encode("latin-1"))


async def _payouts(env: DrillEnv, report: DrillReport, count: int) -> list[dict[str, Any]]:
    """`count` paid orders, each paid out by Conekta in a transfer of its own (the first one
    also takes whatever earlier activity left available)."""
    transfers = []
    for n in range(count):
        if n:
            # Conekta's timestamps are seconds: a payout's charges must be paid after the
            # previous payout's second for the payout search to place them (as daily payouts
            # would be).
            await asyncio.sleep(1.1)
        # Amounts differ from run to run so earlier drills' payouts are not look-alikes.
        order_id = await env.sims.create_order(amount_cents=100_000 + secrets.randbelow(400_000))
        await env.sims.pay(order_id)
        transfers.append(await env.sims.payout())
    report.step(
        f"paid {count} orders; Conekta paid them out in "
        + ", ".join(f"{t['id']} (ref {t['statement_reference']})" for t in transfers)
    )
    return transfers


async def recon_orphan(env: DrillEnv, report: DrillReport) -> None:
    """A statement whose credit for the last payout carries its reference cut by the bank
    (6 of 7 digits): the run leaves it orphan; the on-call matches it following the runbook."""
    spec = runner.get_runbook("recon-orphan")
    container = env.container
    transfers = await _payouts(env, report, 3)
    account = str(transfers[-1]["destination"]["account_number"])
    day = local_date(datetime.fromtimestamp(int(transfers[-1]["created_at"]), UTC))
    credits = [
        (f"SPEI RECIBIDO CONEKTA / {t['statement_reference']}", int(t["amount"])) for t in transfers
    ]
    cut = credits[-1][0][:-1]
    credits[-1] = (cut, credits[-1][1])
    folder = container.settings.data_dir / "drills"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"recon-orphan-{env.now():%Y%m%dT%H%M%S}-{account[-4:]}.txt"
    await asyncio.to_thread(_bbva_statement, path, day, credits)
    url = container.database.direct_url
    report.injected_at = env.now()
    statement_id, imported = await asyncio.to_thread(
        lambda: store.import_file(
            url, path, bank="bbva", account=account, actor=OPERATOR, now=env.now()
        )
    )
    orphan = str(imported.frame.get_column("line_id")[-1])
    report.step(
        f"imported NEON statement {statement_id} ({path.name}, BBVA layout, {len(credits)} "
        f"lines); line {orphan} reads {cut!r}: the bank cut "
        f"{transfers[-1]['statement_reference']} to 6 digits"
    )
    ledger = await build_ledger(container.engine, container.conekta, account=account)
    run_id, result = await asyncio.to_thread(
        lambda: store.run_and_store(
            url,
            ledger,
            statement_ids=[statement_id],
            ledger_source="providers (drill)",
            actor=OPERATOR,
            clock=env.now,
        )
    )
    summary = result.summary()
    report.step(
        f"reconciliation run {run_id}: {summary['matched_lines']}/{summary['lines']} lines matched"
    )
    if orphan in set(result.matches.get_column("bank_line_id")):
        raise DrillFailed(f"the matcher matched the seeded orphan {orphan}: nothing to drill")
    incident_id = await env.detected(
        spec, report, "the orphan line to be detected", "neon_statement_line", orphan
    )
    dry = await runner.run(
        container, spec.name, line_id=orphan, apply=False, actor=OPERATOR, incident_id=incident_id
    )
    failing = [f"{c.name}: {c.summary}" for c in dry.checks if c.status is not Status.PASS]
    report.step("runbook dry run: " + " | ".join(failing))
    await env.apply(spec, report, line_id=orphan)


async def backups(env: DrillEnv, report: DrillReport) -> None:
    """Make the backup target unwritable; the preflight must notice; the on-call restores the
    target and the runbook backs up and verifies."""
    spec = runner.get_runbook("backups")
    report.injected_at = env.now()
    undo = await asyncio.to_thread(make_target_unwritable, env.container.settings)
    try:
        report.step("replaced the local backup directory by a read-only file")
        await env.detected(spec, report, "the broken backup target to be detected")
    finally:
        await asyncio.to_thread(undo)
    report.step("restored the backup directory")
    await env.apply(spec, report)
    # The preflight runs every 30 s; the on-call re-runs it now so the alert can clear.
    await record_backup_preflight(env.container)


DRILLS: dict[str, Drill] = {
    d.name: d
    for d in (
        Drill(
            "conekta-webhook",
            "Conekta drops every delivery about a paid order",
            True,
            conekta_webhook,
        ),
        Drill(
            "odoo-posting",
            "the Odoo credit account is removed",
            False,
            odoo_posting,
        ),
        Drill(
            "recon-orphan",
            "a statement line whose payout reference the bank cut",
            False,
            recon_orphan,
        ),
        Drill(
            "backups",
            "the backup target is not writable",
            False,
            backups,
        ),
    )
}


async def run_drill(env: DrillEnv, name: str) -> DrillReport:
    """Play one drill to its verified recovery; failures end up in the report, not raised."""
    drill = DRILLS[name]
    spec = runner.get_runbook(name)
    report = DrillReport(
        name, spec.runbook.slug, drill.fault, env.now(), automatic_fix=drill.automatic_fix
    )
    try:
        await drill.play(env, report)
        await finish(env, spec, report)
    except DrillFailed as exc:
        report.error = exc.message
    finally:
        await _cleanup(env)
    return report


async def _cleanup(env: DrillEnv) -> None:
    """Leave the simulators without faults (a drill that failed half-way included)."""
    await env.sims.clear_conekta_faults()
    await env.sims.restore_odoo()
