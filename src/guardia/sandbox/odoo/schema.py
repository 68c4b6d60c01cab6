"""Models and fields the simulator serves, per Odoo major version (pure data, no behaviour).

Field sets follow `fields_get` on a 16.0 `account` + `l10n_mx` database (odoo.md §5.1, §10.3) and
the version changes odoo.md §7.3 and §8.2 list: 18 replaces `account.account.company_id` with
`company_ids`; 19 drops `deprecated` in favour of `active` [inf, odoo.md §11 asks to verify it].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

SELECTION_ACCOUNT_TYPES: Final = (
    ("asset_receivable", "Receivable"),
    ("asset_cash", "Bank and Cash"),
    ("asset_current", "Current Assets"),
    ("asset_non_current", "Non-current Assets"),
    ("asset_prepayments", "Prepayments"),
    ("asset_fixed", "Fixed Assets"),
    ("liability_payable", "Payable"),
    ("liability_credit_card", "Credit Card"),
    ("liability_current", "Current Liabilities"),
    ("liability_non_current", "Non-current Liabilities"),
    ("equity", "Equity"),
    ("equity_unaffected", "Current Year Earnings"),
    ("income", "Income"),
    ("income_other", "Other Income"),
    ("expense", "Expenses"),
    ("expense_depreciation", "Depreciation"),
    ("expense_direct_cost", "Cost of Revenue"),
    ("off_balance", "Off-Balance Sheet"),
)
SELECTION_MOVE_TYPES: Final = (
    ("entry", "Journal Entry"),
    ("out_invoice", "Customer Invoice"),
    ("out_refund", "Customer Credit Note"),
    ("in_invoice", "Vendor Bill"),
    ("in_refund", "Vendor Credit Note"),
    ("out_receipt", "Sales Receipt"),
    ("in_receipt", "Purchase Receipt"),
)
SELECTION_STATES: Final = (("draft", "Draft"), ("posted", "Posted"), ("cancel", "Cancelled"))
SELECTION_PAYMENT_STATES: Final = (
    ("not_paid", "Not Paid"),
    ("in_payment", "In Payment"),
    ("paid", "Paid"),
    ("partial", "Partially Paid"),
    ("reversed", "Reversed"),
    ("invoicing_legacy", "Invoicing App Legacy"),
)
SELECTION_JOURNAL_TYPES: Final = (
    ("sale", "Sales"),
    ("purchase", "Purchase"),
    ("cash", "Cash"),
    ("bank", "Bank"),
    ("general", "Miscellaneous"),
)


@dataclass(frozen=True)
class Field:
    """One field as `fields_get` describes it."""

    name: str
    type: str
    string: str
    relation: str | None = None
    required: bool = False
    readonly: bool = False
    store: bool = True
    selection: tuple[tuple[str, str], ...] | None = None
    # A computed field without inverse: ignored when written, like the ORM does.
    computed: bool = False

    def describe(self) -> dict[str, Any]:
        """Return the `fields_get` entry."""
        out: dict[str, Any] = {
            "type": self.type,
            "string": self.string,
            "required": self.required,
            "readonly": self.readonly or self.computed,
            "store": self.store,
            "searchable": self.store or self.name in ("display_name", "id"),
            "sortable": self.store,
        }
        if self.relation:
            out["relation"] = self.relation
        if self.selection is not None:
            out["selection"] = [list(pair) for pair in self.selection]
        return out

    @property
    def relational(self) -> bool:
        """Return whether the field points at other records."""
        return self.type in ("many2one", "one2many", "many2many")


@dataclass(frozen=True)
class ModelSchema:
    """A model: its technical name, its description (used in error texts), fields and order."""

    name: str
    description: str
    order: str
    fields: dict[str, Field] = field(default_factory=dict)

    @property
    def table(self) -> str:
        """Return the PostgreSQL table name (used in constraint names)."""
        return self.name.replace(".", "_")


def _f(name: str, type_: str, string: str, **kw: Any) -> Field:
    return Field(name, type_, string, **kw)


def _common(description_field: str = "Display Name") -> list[Field]:
    return [
        _f("id", "integer", "ID", readonly=True),
        _f("display_name", "char", description_field, store=False, computed=True),
        _f("create_date", "datetime", "Created on", readonly=True),
        _f("write_date", "datetime", "Last Updated on", readonly=True),
    ]


def build_schema(major: int) -> dict[str, ModelSchema]:
    """Return every model the simulator serves for Odoo `major` (16..19)."""
    models: list[tuple[str, str, str, list[Field]]] = []

    account_fields = [
        *_common(),
        _f("code", "char", "Code", required=True),
        _f("name", "char", "Account Name", required=True),
        _f(
            "account_type",
            "selection",
            "Type",
            required=True,
            selection=SELECTION_ACCOUNT_TYPES,
        ),
        _f("reconcile", "boolean", "Allow Reconciliation"),
        _f("currency_id", "many2one", "Account Currency", relation="res.currency"),
        _f("note", "text", "Internal Notes"),
    ]
    if major <= 18:
        account_fields.append(_f("deprecated", "boolean", "Deprecated"))
    else:
        account_fields.append(_f("active", "boolean", "Active"))
    if major <= 17:
        account_fields.append(
            _f("company_id", "many2one", "Company", relation="res.company", required=True)
        )
    else:
        account_fields.append(_f("company_ids", "many2many", "Companies", relation="res.company"))
    models.append(("account.account", "Account", "code", account_fields))

    models.append(
        (
            "account.journal",
            "Journal",
            "sequence, type, code",
            [
                *_common(),
                _f("name", "char", "Journal Name", required=True),
                _f("code", "char", "Short Code", required=True),
                _f("type", "selection", "Type", required=True, selection=SELECTION_JOURNAL_TYPES),
                _f(
                    "default_account_id",
                    "many2one",
                    "Default Account",
                    relation="account.account",
                ),
                _f("company_id", "many2one", "Company", relation="res.company", required=True),
                _f("currency_id", "many2one", "Currency", relation="res.currency"),
                _f("sequence", "integer", "Sequence"),
                _f("active", "boolean", "Active"),
            ],
        )
    )

    analytic_fields = [
        *_common(),
        _f("name", "char", "Analytic Account", required=True),
        _f("code", "char", "Reference"),
        _f("plan_id", "many2one", "Plan", relation="account.analytic.plan", required=True),
        _f("company_id", "many2one", "Company", relation="res.company"),
        _f("partner_id", "many2one", "Customer", relation="res.partner"),
        _f("active", "boolean", "Active"),
    ]
    if major >= 17:
        analytic_fields.append(
            _f(
                "root_plan_id",
                "many2one",
                "Root Plan",
                relation="account.analytic.plan",
                computed=True,
            )
        )
    models.append(
        ("account.analytic.account", "Analytic Account", "plan_id, name", analytic_fields)
    )
    models.append(
        (
            "account.analytic.plan",
            "Analytic Plans",
            "sequence asc, id",
            [
                *_common(),
                _f("name", "char", "Name", required=True),
                _f("sequence", "integer", "Sequence"),
                _f("parent_id", "many2one", "Parent", relation="account.analytic.plan"),
            ],
        )
    )

    models.append(
        (
            "res.partner",
            "Contact",
            "complete_name ASC, id DESC",
            [
                *_common(),
                _f("name", "char", "Name"),
                _f("complete_name", "char", "Complete Name", computed=True),
                _f("ref", "char", "Reference"),
                _f("vat", "char", "Tax ID"),
                _f("email", "char", "Email"),
                _f("phone", "char", "Phone"),
                _f("is_company", "boolean", "Is a Company"),
                _f("type", "selection", "Address Type", selection=(("contact", "Contact"),)),
                _f("parent_id", "many2one", "Related Company", relation="res.partner"),
                _f("company_id", "many2one", "Company", relation="res.company"),
                _f("active", "boolean", "Active"),
            ],
        )
    )

    company_fields = [
        *_common(),
        _f("name", "char", "Company Name", required=True),
        _f("partner_id", "many2one", "Partner", relation="res.partner", required=True),
        _f("currency_id", "many2one", "Currency", relation="res.currency", required=True),
        _f("vat", "char", "Tax ID"),
        _f("fiscalyear_lock_date", "date", "Lock Everything"),
        _f("tax_lock_date", "date", "Tax Return Lock Date"),
    ]
    if major <= 17:
        company_fields.append(_f("period_lock_date", "date", "Journal Entries Lock Date"))
    else:
        # odoo.md §8.3: lock dates were renamed in later versions.
        company_fields += [
            _f("sale_lock_date", "date", "Sales Lock Date"),
            _f("purchase_lock_date", "date", "Purchase Lock date"),
            _f("hard_lock_date", "date", "Hard Lock Date"),
        ]
    models.append(("res.company", "Companies", "name", company_fields))

    models.append(
        (
            "res.currency",
            "Currency",
            "active desc, name",
            [
                *_common(),
                _f("name", "char", "Currency", required=True),
                _f("symbol", "char", "Symbol", required=True),
                _f("decimal_places", "integer", "Decimal Places", computed=True),
                _f("rounding", "float", "Rounding Factor"),
                _f(
                    "position",
                    "selection",
                    "Symbol Position",
                    selection=(("after", "After Amount"), ("before", "Before Amount")),
                ),
                _f("active", "boolean", "Active"),
            ],
        )
    )

    models.append(
        (
            "res.users",
            "User",
            "name, login",
            [
                *_common(),
                _f("name", "char", "Name", computed=True),
                _f("login", "char", "Login", required=True),
                _f("partner_id", "many2one", "Related Partner", relation="res.partner"),
                _f("company_id", "many2one", "Company", relation="res.company", required=True),
                _f("company_ids", "many2many", "Companies", relation="res.company"),
                _f("lang", "char", "Language"),
                _f("tz", "char", "Timezone"),
                _f("share", "boolean", "Share User", computed=True),
                _f("active", "boolean", "Active"),
            ],
        )
    )

    models.append(
        (
            "account.move",
            "Journal Entry",
            "date desc, name desc, id desc",
            [
                *_common(),
                _f("name", "char", "Number"),
                _f("ref", "char", "Reference"),
                _f("date", "date", "Date", required=True),
                _f(
                    "move_type",
                    "selection",
                    "Type",
                    required=True,
                    selection=SELECTION_MOVE_TYPES,
                ),
                _f("state", "selection", "Status", required=True, selection=SELECTION_STATES),
                _f("journal_id", "many2one", "Journal", relation="account.journal", required=True),
                _f("company_id", "many2one", "Company", relation="res.company", readonly=True),
                _f("currency_id", "many2one", "Currency", relation="res.currency", required=True),
                _f("partner_id", "many2one", "Partner", relation="res.partner"),
                _f("line_ids", "one2many", "Journal Items", relation="account.move.line"),
                _f("amount_total", "monetary", "Total", computed=True),
                _f("amount_untaxed", "monetary", "Untaxed Amount", computed=True),
                _f("amount_total_signed", "monetary", "Total Signed", computed=True),
                _f(
                    "payment_state",
                    "selection",
                    "Payment Status",
                    selection=SELECTION_PAYMENT_STATES,
                    computed=True,
                ),
                _f(
                    "auto_post",
                    "selection",
                    "Auto-post",
                    selection=(
                        ("no", "No"),
                        ("at_date", "At Date"),
                        ("monthly", "Monthly"),
                        ("quarterly", "Quarterly"),
                        ("yearly", "Yearly"),
                    ),
                ),
                _f("posted_before", "boolean", "Posted Before", readonly=True),
                _f(
                    "reversed_entry_id",
                    "many2one",
                    "Reversal of",
                    relation="account.move",
                    readonly=True,
                ),
                _f("narration", "html", "Terms and Conditions"),
            ],
        )
    )

    models.append(
        (
            "account.move.line",
            "Journal Item",
            "date desc, move_name desc, id",
            [
                *_common(),
                _f("move_id", "many2one", "Journal Entry", relation="account.move", required=True),
                _f("move_name", "char", "Number", computed=True),
                _f("date", "date", "Date", computed=True),
                _f("ref", "char", "Reference", computed=True),
                _f("parent_state", "char", "Status", computed=True),
                _f("journal_id", "many2one", "Journal", relation="account.journal", computed=True),
                _f("company_id", "many2one", "Company", relation="res.company", computed=True),
                _f("account_id", "many2one", "Account", relation="account.account"),
                _f("partner_id", "many2one", "Partner", relation="res.partner"),
                _f("name", "char", "Label"),
                _f("debit", "monetary", "Debit"),
                _f("credit", "monetary", "Credit"),
                _f("balance", "monetary", "Balance"),
                _f("amount_currency", "monetary", "Amount in Currency"),
                _f("currency_id", "many2one", "Currency", relation="res.currency", required=True),
                _f("analytic_distribution", "json", "Analytic"),
                _f(
                    "display_type",
                    "selection",
                    "Display Type",
                    required=True,
                    selection=(
                        ("product", "Product"),
                        ("cogs", "Cost of Goods Sold"),
                        ("tax", "Tax"),
                        ("rounding", "Rounding"),
                        ("payment_term", "Payment Term"),
                        ("line_section", "Section"),
                        ("line_note", "Note"),
                        ("epd", "Early Payment Discount"),
                    ),
                ),
                _f("reconciled", "boolean", "Reconciled", computed=True),
            ],
        )
    )

    reversal_fields = [
        *_common(),
        _f("move_ids", "many2many", "Move", relation="account.move"),
        _f("new_move_ids", "many2many", "New Move", relation="account.move"),
        _f("date", "date", "Reversal date"),
        _f("reason", "char", "Reason"),
        _f("journal_id", "many2one", "Use Specific Journal", relation="account.journal"),
        _f("company_id", "many2one", "Company", relation="res.company", required=True),
        _f("move_type", "char", "Move Type", computed=True),
    ]
    if major == 16:
        # addons/account/wizard/account_move_reversal.py (16.0); 17.0 replaced the selection by
        # two buttons (reverse_moves / modify_moves) and dropped both fields.
        reversal_fields += [
            _f(
                "refund_method",
                "selection",
                "Credit Method",
                required=True,
                selection=(
                    ("refund", "Partial Refund"),
                    ("cancel", "Full Refund"),
                    ("modify", "Full refund and new draft invoice"),
                ),
            ),
            _f(
                "date_mode",
                "selection",
                "Date Mode",
                required=True,
                selection=(("custom", "Specific"), ("entry", "Journal Entry Date")),
            ),
        ]
    models.append(
        ("account.move.reversal", "Account Move Reversal", "id", reversal_fields),
    )

    return {
        name: ModelSchema(name, description, order, {f.name: f for f in fields})
        for name, description, order, fields in models
    }
