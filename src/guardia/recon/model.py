"""Column schemas and configuration of the reconciliation core (pure: polars types only).

Every frame the core accepts or returns has a fixed schema declared here; `guardia.recon.match`
documents each column. Money columns are ``Int64`` centavos, never floats; instants are
``Datetime("us", "UTC")``; business dates are ``Date`` in America/Mexico_City.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, time
from enum import StrEnum

import polars as pl

from guardia.core.errors import InvalidInput

UTC_INSTANT = pl.Datetime("us", "UTC")

STATEMENT_SCHEMA = pl.Schema(
    {
        "line_id": pl.String(),
        "account": pl.String(),
        "row_no": pl.Int64(),
        "operation_date": pl.Date(),
        "concept": pl.String(),
        "reference": pl.String(),
        "cargo": pl.String(),
        "abono": pl.String(),
        "balance": pl.String(),
    }
)

LEDGER_SCHEMA = pl.Schema(
    {
        "entry_id": pl.String(),
        "source": pl.String(),
        "kind": pl.String(),
        "account": pl.String(),
        "amount_cents": pl.Int64(),
        "fee_cents": pl.Int64(),
        "occurred_at": UTC_INSTANT,
        "booked_date": pl.Date(),
        "reference": pl.String(),
        "memo": pl.String(),
        "channel": pl.String(),
    }
)

NORMALIZED_STATEMENT_SCHEMA = pl.Schema(
    {
        "line_id": pl.String(),
        "account": pl.String(),
        "row_no": pl.Int64(),
        "local_date": pl.Date(),
        "amount_cents": pl.Int64(),
        "balance_cents": pl.Int64(),
        "ref_n": pl.String(),
        "ref_n2": pl.String(),
        "ref_l": pl.String(),
        "ref_l2": pl.String(),
        "clabe": pl.String(),
        "concept": pl.String(),
        "is_reimport": pl.Boolean(),
        "duplicate_of": pl.String(),
    }
)

NORMALIZED_LEDGER_SCHEMA = pl.Schema(
    {
        "entry_id": pl.String(),
        "kind": pl.String(),
        "account": pl.String(),
        "local_date": pl.Date(),
        "occurred_at": UTC_INSTANT,
        "amount_cents": pl.Int64(),
        "net_cents": pl.Int64(),
        "ref_n": pl.String(),
        "ref_n2": pl.String(),
        "ref_l": pl.String(),
        "ref_l2": pl.String(),
        "clabe": pl.String(),
        "channel": pl.String(),
    }
)

MATCH_SCHEMA = pl.Schema(
    {
        "bank_line_id": pl.String(),
        "ledger_ids": pl.List(pl.String()),
        "rule": pl.String(),
        "score": pl.Float64(),
        "account": pl.String(),
        "local_date": pl.Date(),
        "amount_cents": pl.Int64(),
    }
)

EXCEPTION_SCHEMA = pl.Schema(
    {
        "side": pl.String(),
        "bank_line_id": pl.String(),
        "ledger_id": pl.String(),
        "reason": pl.String(),
        "candidates": pl.String(),
        "account": pl.String(),
        "local_date": pl.Date(),
        "amount_cents": pl.Int64(),
    }
)

KPI_SCHEMA = pl.Schema(
    {
        "account": pl.String(),
        "local_date": pl.Date(),
        "lines": pl.UInt32(),
        "matched_lines": pl.UInt32(),
        "amount_cents": pl.Int64(),
        "matched_amount_cents": pl.Int64(),
        "match_rate_count": pl.Float64(),
        "match_rate_amount": pl.Float64(),
    }
)

BALANCE_BREAK_SCHEMA = pl.Schema(
    {
        "account": pl.String(),
        "line_id": pl.String(),
        "row_no": pl.Int64(),
        "expected_balance_cents": pl.Int64(),
        "balance_cents": pl.Int64(),
        "difference_cents": pl.Int64(),
    }
)


class EntryKind(StrEnum):
    """What a ledger row is."""

    CHARGE = "charge"
    TRANSFER = "transfer"
    MOVE = "move"
    REFUND = "refund"
    CHARGEBACK = "chargeback"
    FEE = "fee"


# What a payout nets (docs/providers.md §1.6): captures, less refunds, chargebacks and Conekta's
# own fees (commission + IVA) of the same settlement window.
SETTLEMENT_KINDS: tuple[str, ...] = (
    EntryKind.CHARGE.value,
    EntryKind.REFUND.value,
    EntryKind.CHARGEBACK.value,
    EntryKind.FEE.value,
)


class Rule(StrEnum):
    """The rule that produced an auto-match."""

    EXACT_REF = "exact_ref"
    WINDOW_SCORE = "window_score"
    PAYOUT_CONTIGUOUS = "payout_contiguous"
    PAYOUT_WINDOW = "payout_window"
    PAYOUT_TRANSFER_ONLY = "payout_transfer_only"
    BANK_FEE_PAIR = "bank_fee_pair"


class Reason(StrEnum):
    """Why an item went to a person instead of being auto-matched."""

    DUPLICATE_LINE = "duplicate_line"
    UNPARSEABLE_AMOUNT = "unparseable_amount"
    UNIT_MISMATCH = "unit_mismatch"
    AMOUNT_MISMATCH = "amount_mismatch"
    AMBIGUOUS = "ambiguous"
    NO_ACCEPTABLE_CANDIDATE = "no_acceptable_candidate"
    MISSING_IN_LEDGER = "missing_in_ledger"
    MISSING_IN_BANK = "missing_in_bank"
    UNEXPLAINED_PAYOUT_RESIDUAL = "unexplained_payout_residual"
    AMBIGUOUS_PAYOUT = "ambiguous_payout"
    PAYOUT_UNMATCHED = "payout_unmatched"
    UNSETTLED_CHARGE = "unsettled_charge"
    UNPAIRED_BANK_FEE = "unpaired_bank_fee"
    OUT_OF_SCOPE = "out_of_scope"


class LineClass(StrEnum):
    """What a statement line is, by the account's classification rules."""

    CONEKTA_DEPOSIT = "conekta_deposit"
    BANK_FEE = "bank_fee"
    OUT_OF_SCOPE = "out_of_scope"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class LineRule:
    """Classify the lines of ``account`` (``*``: any) whose concept matches ``pattern``.

    ``pattern`` is a case-insensitive regular expression searched in the concept; the first rule
    that matches wins, and a line no rule matches is ``unknown`` (in scope: it may still match an
    Odoo move). Only out-of-scope lines leave the KPI, and they are listed with their rule.
    """

    name: str
    line_class: LineClass
    pattern: str
    account: str = "*"


DEFAULT_LINE_RULES: tuple[LineRule, ...] = (
    LineRule("conekta", LineClass.CONEKTA_DEPOSIT, r"CONEKTA"),
    LineRule("bank_fee", LineClass.BANK_FEE, r"^\s*(COMISION|COM\.?\s|IVA\b)"),
    LineRule("payroll", LineClass.OUT_OF_SCOPE, r"\bN[OÓ]MINA\b"),
    LineRule("rent", LineClass.OUT_OF_SCOPE, r"\bRENTA\b|\bARRENDAMIENTO\b"),
    LineRule("suppliers", LineClass.OUT_OF_SCOPE, r"\bPROVEEDOR(ES)?\b"),
)


@dataclass(frozen=True, slots=True)
class CutoffRule:
    """When Conekta pays out what it captured: a settlement day and a payout day.

    An entry belongs to settlement day ``d`` when it falls in ``[cut-off of d-1, cut-off of d)``
    local America/Mexico_City time; ``cutoff`` ``00:00`` means midnight (the local day itself).
    Its payout day is ``lag`` bank business days after ``d`` (lag 0: ``d`` rolled forward to a
    business day). ``account`` and ``channel`` (card, spei, cash; ``*``: any) select the entries
    the rule governs. Cadence is contractual and undocumented (docs/providers.md §1.6): the
    default is what the pilot's history showed, each payout created the next business morning
    for the previous local days; ``guardia recon calibrate`` checks it against past payouts.
    """

    cutoff: time = time(0, 0)
    lag: int = 1
    account: str = "*"
    channel: str = "*"

    @property
    def name(self) -> str:
        """Short label, e.g. ``00:00+1bd``."""
        return f"{self.cutoff:%H:%M}+{self.lag}bd"

    @property
    def spec(self) -> str:
        """The rule as ``parse_cutoff_rules`` reads it, e.g. ``<CLABE>/cash=00:00+2bd``."""
        where = "" if self.account == "*" else f"{self.account}/"
        method = "" if self.channel == "*" else f"{self.channel}="
        return f"{where}{method}{self.name}"


_RULE = re.compile(
    r"^(?:(?P<account>[^/=\s]+)/)?(?:(?P<channel>[a-z_*]+)=)?"
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2})\+(?P<lag>\d)bd$"
)


def parse_cutoff_rules(text: str) -> tuple[CutoffRule, ...]:
    """Read ``[ACCOUNT/][METHOD=]HH:MM+Nbd`` items separated by commas (first fit wins).

    ``cash=00:00+2bd,00:00+1bd``: cash settles by local day two business days later, every
    other method the next business day.
    """
    rules = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        found = _RULE.match(item)
        if found is None or int(found["hour"]) > 23 or int(found["minute"]) > 59:
            raise InvalidInput(f"cut-off rule {item!r}: expected [ACCOUNT/][METHOD=]HH:MM+Nbd")
        rules.append(
            CutoffRule(
                cutoff=time(int(found["hour"]), int(found["minute"])),
                lag=int(found["lag"]),
                account=found["account"] or "*",
                channel=found["channel"] or "*",
            )
        )
    return tuple(rules) or (CutoffRule(),)


def parse_dates(text: str) -> tuple[date, ...]:
    """Read ISO dates separated by commas (extra bank holidays)."""
    try:
        return tuple(date.fromisoformat(p.strip()) for p in text.split(",") if p.strip())
    except ValueError as exc:
        raise InvalidInput(
            f"holidays {text!r}: expected YYYY-MM-DD dates, comma-separated"
        ) from exc


@dataclass(frozen=True, slots=True)
class PayoutConfig:
    """Hop 2 (transfer to charges): settlement rules and limits of the window search.

    ``rules``: the first rule whose account and channel fit an entry decides its windows;
    ``extra_holidays``: closures the computed CNBV calendar lacks; ``lookback_days``: how far
    before a payout day window boundaries are searched; ``max_work``: window combinations per
    transfer (more than one payment-method rule multiplies them) before it becomes an exception.
    """

    rules: tuple[CutoffRule, ...] = (CutoffRule(),)
    extra_holidays: tuple[date, ...] = ()
    lookback_days: int = 10
    max_work: int = 200_000
    evidence_windows: int = 3


@dataclass(frozen=True, slots=True)
class MatchConfig:
    """Tunable thresholds of the matching pipeline.

    ``window_before_days``/``window_after_days`` bound ``ledger_date - bank_date`` in calendar
    days. ``min_score`` is the floor for an auto-match and ``margin`` how far the best candidate
    must beat the runner-up, on both sides, for the match to be taken without a person.
    """

    window_before_days: int = 4
    window_after_days: int = 4
    min_score: float = 0.6
    margin: float = 0.1
    amount_tolerance_cents: int = 1
    accept_one_sided_reference: bool = False
    max_rounds: int = 2
    evidence_candidates: int = 5
    payout: PayoutConfig = field(default_factory=PayoutConfig)
    line_rules: tuple[LineRule, ...] = DEFAULT_LINE_RULES
    bank_fee_iva_rate_percent: int = 16
