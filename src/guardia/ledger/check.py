"""The ledger configuration check (runbook 2's "config check al arrancar") and the daily posting
test. Results are stored in `config_checks`; readiness and alerts read the latest."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from guardia.adapters.postgres.tables import config_checks
from guardia.core.clock import Clock, local_date
from guardia.core.errors import GuardiaError
from guardia.core.ids import new_correlation_id
from guardia.ledger.model import REQUIRED_RIGHTS, two_line_entry
from guardia.ledger.ports import Ledger, LedgerCatalog
from guardia.ledger.service import LedgerConfig, TargetResolver

log = structlog.get_logger(__name__)

BILLING_GROUP = "account.group_account_invoice"
JOURNAL_TYPES = ("general", "bank", "cash")


@dataclass(frozen=True, slots=True)
class CheckItem:
    """One verified fact, and what to do when it is false."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass
class CheckReport:
    """All items of one check run."""

    target: str
    items: list[CheckItem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every item passed."""
        return bool(self.items) and all(i.ok for i in self.items)

    def add(self, name: str, ok: bool, detail: str, fix: str = "") -> bool:
        """Record an item; return ok."""
        self.items.append(CheckItem(name, ok, detail, "" if ok else fix))
        return ok

    def failures(self) -> list[CheckItem]:
        """Failed items."""
        return [i for i in self.items if not i.ok]

    def to_json(self) -> dict[str, Any]:
        """Serialisable form."""
        return {"target": self.target, "ok": self.ok, "items": [asdict(i) for i in self.items]}


async def check_ledger(
    catalog: LedgerCatalog, config: LedgerConfig, target: str = "odoo"
) -> CheckReport:
    """Verify version, credentials, rights, journal, accounts and analytic account."""
    report = CheckReport(target)
    try:
        server = await catalog.server()
    except GuardiaError as exc:
        report.add("reachable", False, exc.message, "check GUARDIA_ODOO_URL and that Odoo is up")
        return report
    report.add("version", True, f"Odoo {server.version} over {server.transport}")
    try:
        uid = await catalog.authenticate()
    except GuardiaError as exc:
        report.add(
            "credentials",
            False,
            exc.message,
            "check GUARDIA_ODOO_DATABASE, GUARDIA_ODOO_LOGIN and GUARDIA_ODOO_API_KEY "
            f"(API keys expire after at most three months), {_retry('auth')}",
        )
        return report
    report.add("credentials", True, f"logged in as uid {uid}")
    try:
        await _check_catalog(catalog, config, report)
    except GuardiaError as exc:
        report.add("catalog", False, exc.message, "Odoo failed while reading the chart: retry")
    return report


def _retry(cause: str) -> str:
    """The command that re-runs the postings a failure dead-lettered, once it is fixed."""
    return f"then `guardia dlq retry --cause {cause}`"


async def _check_catalog(catalog: LedgerCatalog, config: LedgerConfig, report: CheckReport) -> None:
    report.add(
        "permissions",
        await catalog.has_group(BILLING_GROUP),
        f"bot user in {BILLING_GROUP}",
        f"add the bot user to Invoicing / Billing ({BILLING_GROUP}), {_retry('permission')}",
    )
    # Odoo's answers to "may the bot do X", asked without writing: a bot without Contact
    # Creation passes the group test above yet dead-letters every posting at partner create.
    missing = await catalog.missing_rights(REQUIRED_RIGHTS)
    groups = dict.fromkeys(f"{r.group_label} ({r.group})" for r in missing)
    report.add(
        "rights",
        not missing,
        "bot may "
        + ", ".join(r.purpose for r in REQUIRED_RIGHTS)
        + ("" if not missing else "; it may not " + ", ".join(r.purpose for r in missing)),
        f"add the bot user to {' and '.join(groups)}, {_retry('permission')}",
    )
    journal = await catalog.find_journal(config.journal_code)
    journal_ok = journal is not None and journal.journal_type in JOURNAL_TYPES
    report.add(
        "journal",
        journal_ok,
        f"journal {config.journal_code}: "
        + (f"type {journal.journal_type}" if journal else "not found"),
        f"create journal {config.journal_code} (type cash, bank or general) "
        f"or set GUARDIA_ODOO_JOURNAL_CODE, {_retry('missing_journal')}",
    )
    if journal is not None and journal_ok and config.debit_account_code is None:
        report.add(
            "debit_account",
            journal.default_account_id is not None,
            f"journal {journal.code} default account id {journal.default_account_id}",
            f"give journal {journal.code} a default account, or set "
            f"GUARDIA_ODOO_DEBIT_ACCOUNT_CODE (e.g. 101.01.01), {_retry('missing_account')}",
        )
    if config.debit_account_code is not None:
        debit = await catalog.find_account(config.debit_account_code)
        report.add(
            "debit_account",
            debit is not None and debit.account_type == "asset_cash" and not debit.deprecated,
            f"account {config.debit_account_code}: "
            + (f"{debit.account_type}, deprecated={debit.deprecated}" if debit else "not found"),
            f"create (or un-deprecate) account {config.debit_account_code} of type Bank and "
            f"Cash, or fix GUARDIA_ODOO_DEBIT_ACCOUNT_CODE, {_retry('missing_account')}",
        )
    credit = await catalog.find_account(config.credit_account_code)
    report.add(
        "credit_account",
        credit is not None and credit.account_type == "income" and not credit.deprecated,
        f"account {config.credit_account_code}: "
        + (f"{credit.account_type}, deprecated={credit.deprecated}" if credit else "not found"),
        f"create (or un-deprecate) income account {config.credit_account_code} (SAT 401.x; 405 "
        f"does not exist) or fix GUARDIA_ODOO_CREDIT_ACCOUNT_CODE, {_retry('missing_account')}",
    )
    if config.analytic_account_id is not None:
        analytic = await catalog.get_analytic(config.analytic_account_id)
        report.add(
            "analytic_account",
            analytic is not None and analytic.active,
            f"analytic account {config.analytic_account_id}: "
            + (f"{analytic.name}, active={analytic.active}" if analytic else "not found"),
            "Odoo accepts unknown analytic ids silently: create/unarchive it or fix "
            "GUARDIA_ODOO_ANALYTIC_ACCOUNT_ID (empty: no analytic account), "
            f"{_retry('missing_analytic')}",
        )


async def posting_test(
    ledger: Ledger, catalog: LedgerCatalog, config: LedgerConfig, clock: Clock
) -> CheckReport:
    """Post and reverse a minimal entry (1.00 MXN) against a staging ledger."""
    report = CheckReport("odoo_posting_test")
    now = clock.now()
    try:
        targets = await TargetResolver(catalog, config, clock, ttl=0).resolve()
        report.add("configuration", True, f"journal {targets.journal_id}")
        entry = two_line_entry(
            ref=f"guardia-posting-test:{now.strftime('%Y%m%dT%H%M%SZ')}",
            journal_id=targets.journal_id,
            entry_date=local_date(now),
            amount=Decimal("1.00"),
            debit_account_id=targets.debit_account_id,
            credit_account_id=targets.credit_account_id,
            label="Guardia daily posting test",
            partner_id=None,
            analytic_account_id=targets.analytic_account_id,
        )
        move_id = await ledger.create_move(entry)
        report.add("create", True, f"move {move_id}")
        move = await ledger.post_move(move_id)
        report.add("post", move.state == "posted", f"{move.name} {move.state}")
        reversal = await ledger.reverse_move(move_id, local_date(now), "Guardia posting test")
        report.add("reverse", reversal.state == "posted", f"{reversal.name} {reversal.state}")
    except GuardiaError as exc:
        cause = getattr(exc, "cause", type(exc).__name__)
        report.add("posting", False, f"{cause}: {exc.message}", "run `guardia check odoo`")
    return report


async def store_report(engine: AsyncEngine, report: CheckReport) -> None:
    """Keep a check run (every run is kept: the history is evidence)."""
    async with engine.begin() as conn:
        await conn.execute(
            insert(config_checks).values(
                target=report.target,
                ok=report.ok,
                results=json.loads(json.dumps(report.to_json())),
                correlation_id=new_correlation_id(),
            )
        )
    if report.ok:
        log.info("config_check_passed", target=report.target)
    else:
        log.error(
            "config_check_failed",
            target=report.target,
            failures=[f"{i.name}: {i.detail}" for i in report.failures()],
        )


async def latest_report(
    engine: AsyncEngine, target: str
) -> tuple[bool, datetime, dict[str, Any]] | None:
    """The newest stored run for a target: (ok, checked_at, results)."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(config_checks)
                .where(config_checks.c.target == target)
                .order_by(config_checks.c.checked_at.desc(), config_checks.c.id.desc())
                .limit(1)
            )
        ).first()
    return None if row is None else (bool(row.ok), row.checked_at, dict(row.results))
