"""The data of a fresh Odoo database with `account` + `l10n_mx`, as odoo.md §7.2 and §10.3 saw it.

Ids that odoo.md quotes are kept (accounts 50, 51, 36; journals 3, 7, 8; analytic account 1;
company 1; bot uid 2; the next partner is 7); the other ids are plausible, not observed.
"""

from __future__ import annotations

from typing import Any, Final

from guardia.sandbox.odoo.domain import Row
from guardia.sandbox.odoo.orm import MXN_ID, Database

BOT_UID: Final = 2
COMPANY_ID: Final = 1
STAMP: Final = "2026-01-01 00:00:00"

# (id, code, name, account_type, reconcile, since_major)
ACCOUNTS: Final[tuple[tuple[int, str, str, str, bool, int], ...]] = (
    (3, "105.01.01", "Clientes nacionales", "asset_receivable", True, 16),
    (14, "118.01.01", "IVA acreditable pagado", "asset_current", False, 16),
    (17, "201.01.01", "Proveedores nacionales", "liability_payable", True, 16),
    (22, "208.01.01", "IVA trasladado cobrado", "liability_current", False, 16),
    (23, "209.01.01", "IVA trasladado no cobrado", "liability_current", False, 16),
    (28, "301.01.01", "Capital social", "equity", False, 16),
    (36, "401.01.01", "Ventas y/o servicios gravados a la tasa general", "income", False, 16),
    (40, "501.01.01", "Costo de venta", "expense_direct_cost", False, 16),
    (41, "601.84.01", "Otros gastos generales", "expense", False, 16),
    (44, "701.01.01", "Pérdida cambiaria", "expense", False, 16),
    (45, "702.01.01", "Utilidad cambiaria", "income_other", False, 16),
    (46, "999999", "Undistributed Profits/Losses", "equity_unaffected", False, 16),
    (47, "102.01.01", "Bank Suspense Account", "asset_current", False, 16),
    (48, "102.01.02", "Outstanding Receipts", "asset_current", True, 16),
    (49, "102.01.03", "Outstanding Payments", "asset_current", True, 16),
    (50, "101.01.01", "Cash", "asset_cash", False, 16),
    (51, "102.01.04", "Bank", "asset_cash", False, 16),
    (52, "102.01.011", "Liquidity Transfer", "asset_current", True, 16),
    # odoo.md §7.2: the 17+ template adds 403.01.01 "Other Income" as the cash-difference
    # income account (its type income_other is [inf]); a 16 database's only 4xx is 401.01.01.
    (53, "403.01.01", "Other Income", "income_other", False, 17),
)

# (id, code, name, type, default_account_id, sequence)
JOURNALS: Final[tuple[tuple[int, str, str, str, int | None, int], ...]] = (
    (1, "INV", "Customer Invoices", "sale", 36, 5),
    (2, "BILL", "Vendor Bills", "purchase", 41, 6),
    (3, "MISC", "Miscellaneous Operations", "general", None, 9),
    (4, "EXCH", "Exchange Difference", "general", None, 9),
    (5, "CABA", "Cash Basis Taxes", "general", None, 10),
    (6, "CBMX", "Effectively Paid", "general", None, 10),
    (7, "CSH1", "Cash", "cash", 50, 10),
    (8, "BNK1", "Bank", "bank", 51, 10),
)


def account_row(
    major: int, rid: int, code: str, name: str, account_type: str, reconcile: bool = False
) -> Row:
    """Return a stored account row (both company forms kept; the schema picks one)."""
    row: Row = {
        "id": rid,
        "code": code,
        "name": name,
        "account_type": account_type,
        "reconcile": reconcile,
        "currency_id": None,
        "note": None,
        "company_id": COMPANY_ID,
        "company_ids": [COMPANY_ID],
        "create_date": STAMP,
        "write_date": STAMP,
    }
    if major <= 18:
        row["deprecated"] = False
    else:
        row["active"] = True
    return row


def seed(major: int, bot_login: str) -> Database:
    """Return the database of a fresh `account` + `l10n_mx` install for Odoo `major`."""

    def stamped(**values: Any) -> Row:
        return {**values, "create_date": STAMP, "write_date": STAMP}

    tables: dict[str, dict[int, Row]] = {
        "res.currency": {
            MXN_ID: stamped(
                id=MXN_ID, name="MXN", symbol="$", rounding=0.01, position="before", active=True
            )
        },
        "res.company": {
            COMPANY_ID: stamped(
                id=COMPANY_ID,
                name="My Company",
                partner_id=1,
                currency_id=MXN_ID,
                vat=None,
                fiscalyear_lock_date=None,
                tax_lock_date=None,
                period_lock_date=None,
                sale_lock_date=None,
                purchase_lock_date=None,
                hard_lock_date=None,
            )
        },
        "res.partner": {
            1: stamped(id=1, name="My Company", is_company=True, type="contact", active=True),
            2: stamped(id=2, name="OdooBot", is_company=False, type="contact", active=False),
            3: stamped(
                id=3,
                name="Guardia Bot",
                is_company=False,
                type="contact",
                active=True,
                company_id=COMPANY_ID,
            ),
        },
        "res.users": {
            1: stamped(
                id=1,
                login="__system__",
                partner_id=2,
                company_id=COMPANY_ID,
                company_ids=[COMPANY_ID],
                lang="en_US",
                tz=None,
                active=False,
            ),
            BOT_UID: stamped(
                id=BOT_UID,
                login=bot_login,
                partner_id=3,
                company_id=COMPANY_ID,
                company_ids=[COMPANY_ID],
                lang="en_US",
                tz=None,
                active=True,
            ),
        },
        "account.account": {
            rid: account_row(major, rid, code, name, kind, reconcile)
            for rid, code, name, kind, reconcile, since in ACCOUNTS
            if major >= since
        },
        "account.journal": {
            rid: stamped(
                id=rid,
                code=code,
                name=name,
                type=kind,
                default_account_id=default,
                company_id=COMPANY_ID,
                currency_id=None,
                sequence=sequence,
                active=True,
            )
            for rid, code, name, kind, default, sequence in JOURNALS
        },
        "account.analytic.plan": {1: stamped(id=1, name="Pilot", sequence=10, parent_id=None)},
        "account.analytic.account": {
            1: stamped(
                id=1,
                name="Conekta pilot",
                code=None,
                plan_id=1,
                company_id=COMPANY_ID,
                partner_id=None,
                active=True,
            ),
            2: stamped(
                id=2,
                name="Piloto 2025 (archivado)",
                code=None,
                plan_id=1,
                company_id=COMPANY_ID,
                partner_id=None,
                active=False,
            ),
        },
        "account.move": {},
        "account.move.line": {},
        "account.move.reversal": {},
    }
    sequences = {
        "res.partner": 7,  # odoo.md §10.3: the first partner created over RPC is 7
        "res.users": 6,
        "account.account": 60,
        "account.journal": 9,
        "account.analytic.account": 3,
        "account.analytic.plan": 2,
        "account.move": 1,
        "account.move.line": 1,
        "account.move.reversal": 1,
        "res.company": 2,
        "res.currency": 200,
    }
    return Database(tables=tables, sequences=sequences)
