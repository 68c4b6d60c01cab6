"""Runbook 2, "Asiento contable falla en Odoo", as code."""

from __future__ import annotations

from sqlalchemy import text

from guardia.incidents.model import Runbook as RunbookId
from guardia.jobs import deadletters
from guardia.ledger.check import check_ledger
from guardia.runbooks.model import (
    Action,
    ActionResult,
    Check,
    CheckResult,
    RunbookSpec,
    RunContext,
    Status,
)


async def odoo_configuration(ctx: RunContext) -> CheckResult:
    """Credentials, catalogue (accounts), journal, analytic account and the bot's rights."""
    report = await check_ledger(ctx.container.odoo, ctx.container.ledger_config)
    failures = [f"{i.name}: {i.detail} → {i.fix}" for i in report.failures()]
    status = Status.PASS if report.ok else Status.FAIL
    summary = "Odoo configuration is complete" if report.ok else "; ".join(failures)
    return CheckResult("odoo_configuration", status, summary, report.to_json())


async def failed_postings(ctx: RunContext) -> CheckResult:
    """Open dead letters of postings by cause, and postings not yet posted."""
    letters = await deadletters.list_dead_letters(
        ctx.container.engine, deadletters.DeadLetterFilter(task_name="guardia:post_entry")
    )
    causes: dict[str, int] = {}
    for d in letters:
        causes[d.cause] = causes.get(d.cause, 0) + 1
    async with ctx.container.engine.connect() as conn:
        states = {
            r.state: int(r.n)
            for r in await conn.execute(
                text(
                    "SELECT state, count(*) AS n FROM postings "
                    "WHERE state <> 'posted' GROUP BY state"
                )
            )
        }
    evidence = {"dead_letters": causes, "postings": states}
    if letters or states.get("dead"):
        return CheckResult(
            "failed_postings", Status.FAIL, f"dead letters {causes}, postings {states}", evidence
        )
    if states:
        return CheckResult(
            "failed_postings", Status.UNKNOWN, f"postings still in flight: {states}", evidence
        )
    return CheckResult("failed_postings", Status.PASS, "every posting is posted", evidence)


async def retry_postings(ctx: RunContext, apply: bool) -> ActionResult:
    """Retry the dead-lettered postings from the queue (dry run: which)."""
    flt = deadletters.DeadLetterFilter(task_name="guardia:post_entry")
    letters = await deadletters.list_dead_letters(ctx.container.engine, flt)
    if letters and not (await check_ledger(ctx.container.odoo, ctx.container.ledger_config)).ok:
        # Retrying into a broken configuration only dead-letters the postings again.
        return ActionResult(
            "retry_postings",
            False,
            [],
            {"waiting_for": "odoo_configuration", "dead_letters": [d.id for d in letters]},
        )
    changes = [f"retry dead letter {d.id} ({d.cause}) of {d.order_id}" for d in letters]
    if not apply or not letters:
        return ActionResult("retry_postings", False, changes)
    done = await deadletters.retry(
        ctx.container.engine, ctx.container.defer_retry, flt, actor=ctx.actor, reason="runbook 2"
    )
    return ActionResult("retry_postings", True, changes, {"jobs": [j for _, j in done]})


MANAGER_GROUP = "account.group_account_manager"
# What each configured account must be (the config check's expectations).
ACCOUNT_ROLES = {
    "credit_account": ("income", "Ingresos por ventas (Conekta)"),
    "debit_account": ("asset_cash", "Bancos (Conekta)"),
}


async def create_missing_account(ctx: RunContext, apply: bool) -> ActionResult:
    """Guided creation of a configured account Odoo lacks: created (with --apply) when allowed,
    else the exact account for the accountant to create."""
    name = "create_missing_account"
    odoo, config = ctx.container.odoo, ctx.container.ledger_config
    wanted = {
        "credit_account": config.credit_account_code,
        "debit_account": config.debit_account_code,
    }
    missing = []
    for role, code in wanted.items():
        if code is not None and await odoo.find_account(code) is None:
            kind, label = ACCOUNT_ROLES[role]
            missing.append((role, code, kind, label))
    if not missing:
        return ActionResult(name, False, [], {"missing": []})
    changes = [
        f"create account {code} {label!r} of type {kind}" for _, code, kind, label in missing
    ]
    allowed = ctx.container.settings.runbook_create_accounts and await odoo.has_group(MANAGER_GROUP)
    if not allowed:
        guide = [
            f"ask the accountant to create account {code} {label!r} (type {kind}) for {role}"
            for role, code, kind, label in missing
        ] + ["then run this runbook again with --apply to retry the dead letters"]
        why = (
            "GUARDIA_RUNBOOK_CREATE_ACCOUNTS is off"
            if not ctx.container.settings.runbook_create_accounts
            else f"the Odoo bot lacks {MANAGER_GROUP}"
        )
        return ActionResult(name, False, [], {"not_allowed": why, "guide": guide})
    if not apply:
        return ActionResult(name, False, changes, {"missing": [m[1] for m in missing]})
    created = {}
    for _, code, kind, label in missing:
        created[code] = await odoo.create_account(code, label, kind)
    ctx.container.resolver.invalidate()
    return ActionResult(name, True, changes, {"created": created})


SPEC = RunbookSpec(
    name="odoo-posting",
    runbook=RunbookId.ODOO_POSTING_FAILS,
    title="Asiento contable falla en Odoo",
    checks=(
        Check("odoo_configuration", "credentials, catalogue, permissions", odoo_configuration),
        Check("failed_postings", "payload completeness of the failed postings", failed_postings),
    ),
    actions=(
        Action(
            "create_missing_account",
            "guided creation of a missing account (created when allowed, else the exact account "
            "for the accountant)",
            True,
            create_missing_account,
        ),
        Action("retry_postings", "retry from the queue", True, retry_postings),
    ),
    verification=("odoo_configuration", "failed_postings"),
    prevention=(
        "Config check at start-up and every minute: accounts, journal, analytic, rights",
        "Daily posting test against staging Odoo",
    ),
    symptoms="The webhook arrived but no `account.move` exists; dead letters grow.",
    commands=(
        "guardia check odoo",
        "guardia dlq list --cause missing_account",
        "guardia dlq retry --cause missing_account",
        "guardia ledger postings ORDER_ID",
    ),
)
