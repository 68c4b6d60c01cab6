"""Accounting entries Guardia posts to the ledger (Odoo), as pure values.

Money leaves Guardia here as exact decimal pesos (`Money.to_decimal`); the adapter turns the
Decimal into the JSON number Odoo expects at the very edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from guardia.core.errors import InvalidInput

CENT = Decimal("0.01")


class PostingKind(StrEnum):
    """Why an entry is posted."""

    PAYMENT = "payment"  # Dr cash/bank, Cr income
    REVERSAL = "reversal"  # Odoo's reversal of the payment entry (full refund, chargeback)
    REFUND = "refund"  # Dr income, Cr cash/bank for a partial refund (delta)


class PostingState(StrEnum):
    """Where a posting stands (the local idempotency record, odoo.md §6)."""

    PENDING = "pending"
    CREATING = "creating"  # the create call may have reached Odoo: search by ref before retrying
    CREATED = "created"
    POSTED = "posted"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class EntryLine:
    """One journal item."""

    account_id: int
    debit: Decimal
    credit: Decimal
    label: str
    partner_id: int | None
    analytic_account_id: int | None


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A balanced journal entry (`account.move`, move_type entry)."""

    ref: str
    journal_id: int
    entry_date: date
    lines: tuple[EntryLine, ...]
    partner_id: int | None = None

    def __post_init__(self) -> None:
        if len(self.lines) < 2:
            raise InvalidInput("a journal entry needs at least two lines")
        debit = sum((line.debit for line in self.lines), Decimal(0))
        credit = sum((line.credit for line in self.lines), Decimal(0))
        if debit != credit:
            raise InvalidInput(f"unbalanced entry {self.ref}: debit {debit} != credit {credit}")
        for line in self.lines:
            if line.debit < 0 or line.credit < 0 or (line.debit and line.credit):
                raise InvalidInput(f"entry {self.ref}: a line is both or negatively signed")
            for value in (line.debit, line.credit):
                if value != value.quantize(CENT):
                    raise InvalidInput(f"entry {self.ref}: {value} has more than two decimals")

    @property
    def total(self) -> Decimal:
        """The entry's amount (sum of debits)."""
        return sum((line.debit for line in self.lines), Decimal(0))


def two_line_entry(
    *,
    ref: str,
    journal_id: int,
    entry_date: date,
    amount: Decimal,
    debit_account_id: int,
    credit_account_id: int,
    label: str,
    partner_id: int | None,
    analytic_account_id: int | None,
) -> JournalEntry:
    """Build Dr debit_account / Cr credit_account for one amount."""
    if amount <= 0:
        raise InvalidInput(f"entry {ref}: amount must be positive, got {amount}")
    zero = Decimal("0.00")
    return JournalEntry(
        ref=ref,
        journal_id=journal_id,
        entry_date=entry_date,
        partner_id=partner_id,
        lines=(
            EntryLine(debit_account_id, amount, zero, label, partner_id, analytic_account_id),
            EntryLine(credit_account_id, zero, amount, label, partner_id, analytic_account_id),
        ),
    )


@dataclass(frozen=True, slots=True)
class MoveInfo:
    """What the ledger says of a move."""

    move_id: int
    name: str
    state: str  # draft | posted | cancel
    ref: str | None
    journal_id: int | None


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """An account of the chart."""

    account_id: int
    code: str
    name: str
    account_type: str
    deprecated: bool


@dataclass(frozen=True, slots=True)
class JournalInfo:
    """A journal."""

    journal_id: int
    code: str
    name: str
    journal_type: str
    default_account_id: int | None


@dataclass(frozen=True, slots=True)
class AnalyticInfo:
    """An analytic account."""

    analytic_id: int
    name: str
    active: bool
    company_id: int | None


@dataclass(frozen=True, slots=True)
class RequiredRight:
    """A right Guardia uses on the ledger, and the Odoo group that grants it."""

    purpose: str  # what Guardia does with it, for the check's report
    model: str
    operation: str  # read | write | create | unlink
    group: str  # the group's external id
    group_label: str  # the group as Odoo's settings show it


_BILLING = ("account.group_account_invoice", "Invoicing / Billing")
# Every write Guardia makes (odoo.md §8.1; Contact Creation from the res.partner ACL). Posting
# is a write on account.move and `_post` also asks for Billing itself; reversing creates the
# account.move.reversal wizard.
REQUIRED_RIGHTS: tuple[RequiredRight, ...] = (
    RequiredRight(
        "create customers as partners",
        "res.partner",
        "create",
        *("base.group_partner_manager", "Contact Creation"),
    ),
    RequiredRight("create journal entries", "account.move", "create", *_BILLING),
    RequiredRight("post journal entries", "account.move", "write", *_BILLING),
    RequiredRight("reverse journal entries", "account.move.reversal", "create", *_BILLING),
)


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """The ledger server's version and the transport chosen for it."""

    version: str
    major: int
    transport: str  # jsonrpc | json2


@dataclass(frozen=True, slots=True)
class WantedPosting:
    """A posting the payment's state calls for."""

    kind: str  # "payment", "reversal", or "refund:<cumulative refunded cents>"
    amount_cents: int


def wanted_postings(
    *,
    status_rank: int,
    paid_rank: int,
    fully_returned: bool,
    amount_cents: int,
    refunded_cents: int,
    existing: frozenset[str],
) -> list[WantedPosting]:
    """Postings implied by a payment's state that do not exist yet.

    State-based, not transition-based, so a payment first seen already refunded still gets its
    payment entry and its reversal, and re-applying any state adds nothing. A full refund or a
    chargeback with no partial refund before it reverses the payment entry in Odoo; partial
    refunds post the refunded delta (Dr income, Cr cash), and the last of them closes the rest.
    """
    out: list[WantedPosting] = []
    if status_rank < paid_rank:
        return out
    if "payment" not in existing:
        out.append(WantedPosting("payment", amount_cents))
    if "reversal" in existing:
        return out
    partials = sorted(int(k.split(":")[1]) for k in existing if k.startswith("refund:"))
    already = partials[-1] if partials else 0
    if fully_returned and not partials:
        out.append(WantedPosting("reversal", amount_cents))
        return out
    target = amount_cents if fully_returned else refunded_cents
    if target > already:
        out.append(WantedPosting(f"refund:{target}", target - already))
    return out
