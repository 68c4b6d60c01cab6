"""The drills: one per encoded runbook, each injecting that runbook's fault into the local stack.

- conekta-webhook: the simulator drops every delivery about a paid order; the sweeper detects
  and pulls it (automatic fix); the verifier resolves the incident.
- odoo-posting: the credit account disappears from Odoo; DeadLettersGrowing detects it; the
  accountant re-creates the account as the runbook guides; the runbook retries the queue.
- backups: the local backup target stops being writable; the preflight (every minute) detects
  it; the on-call restores the target; the runbook backs up and verifies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from guardia.drills.harness import DrillEnv, DrillFailed, finish
from guardia.drills.model import DrillReport
from guardia.incidents.model import Incident
from guardia.jobs.tasks import record_backup_preflight
from guardia.ledger.check import check_ledger, store_report
from guardia.payments.service import get_order_view
from guardia.runbooks import runner
from guardia.runbooks.backups import make_target_unwritable
from guardia.runbooks.odoo import ACCOUNT_ROLES

OPERATOR = "drill:on-call"


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
    incident: Incident = await env.wait_for(
        "the lost webhook to be detected",
        lambda: env.incident_for(spec, report.injected_at, "conekta_order", order_id),
    )
    report.incident_id = incident.id
    report.step(f"incident {incident.id} opened by {incident.fingerprint}")


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
    incident: Incident = await env.wait_for(
        "the failed posting to be detected",
        lambda: env.incident_for(spec, report.injected_at, "conekta_order", order_id),
    )
    assert incident.id is not None  # noqa: S101 - stored
    report.incident_id = incident.id
    report.step(f"incident {incident.id} opened by {incident.fingerprint}")
    dry = await runner.run(
        env.container, spec.name, apply=False, actor=OPERATOR, incident_id=incident.id
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
    applied = await runner.run(
        env.container, spec.name, apply=True, actor=OPERATOR, incident_id=incident.id
    )
    report.step(
        "runbook --apply: "
        + "; ".join(f"{a.name}: {', '.join(a.changes) or '-'}" for a in applied.actions)
    )


async def backups(env: DrillEnv, report: DrillReport) -> None:
    """Make the backup target unwritable; the preflight must notice; the on-call restores the
    target and the runbook backs up and verifies."""
    spec = runner.get_runbook("backups")
    report.injected_at = env.now()
    undo = await asyncio.to_thread(make_target_unwritable, env.container.settings)
    try:
        report.step("replaced the local backup directory by a read-only file")
        incident: Incident = await env.wait_for(
            "the broken backup target to be detected",
            lambda: env.incident_for(spec, report.injected_at, None, None),
        )
        report.incident_id = incident.id
        report.step(f"incident {incident.id} opened by {incident.fingerprint}")
    finally:
        await asyncio.to_thread(undo)
    report.step("restored the backup directory")
    assert report.incident_id is not None  # noqa: S101 - set above
    applied = await runner.run(
        env.container, spec.name, apply=True, actor=OPERATOR, incident_id=report.incident_id
    )
    report.step(
        "runbook --apply: "
        + "; ".join(f"{a.name}: {', '.join(a.changes) or '-'}" for a in applied.actions)
    )
    # The preflight runs every minute; the on-call re-runs it now so the alert can clear.
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
