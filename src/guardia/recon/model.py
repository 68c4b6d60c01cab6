"""Column schemas and configuration of the reconciliation core (pure: polars types only).

Every frame the core accepts or returns has a fixed schema declared here; `guardia.recon.match`
documents each column. Money columns are ``Int64`` centavos, never floats; instants are
``Datetime("us", "UTC")``; business dates are ``Date`` in America/Mexico_City.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

import polars as pl

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


class Rule(StrEnum):
    """The rule that produced an auto-match."""

    EXACT_REF = "exact_ref"
    WINDOW_SCORE = "window_score"
    PAYOUT_CONTIGUOUS = "payout_contiguous"
    PAYOUT_SUBSET = "payout_subset"
    PAYOUT_TRANSFER_ONLY = "payout_transfer_only"


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


@dataclass(frozen=True, slots=True)
class PayoutConfig:
    """Limits of the payout (transfer to charges) search; larger problems become exceptions."""

    straddle_window: timedelta = timedelta(minutes=30)
    lookback: timedelta = timedelta(days=10)
    max_candidates: int = 24
    max_members: int = 8
    max_work: int = 100_000
    evidence_subsets: int = 3


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
