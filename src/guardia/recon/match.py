"""The reconciliation pipeline: bank statement lines against ledger entries, on polars frames.

Entry points: ``reconcile(statement, ledger)`` on raw frames, or ``match(normalized_statement,
normalized_ledger)`` on frames from ``guardia.recon.normalize``. Both return a ``ReconResult``.

Inputs (schemas in ``guardia.recon.model``; money is ``Int64`` centavos):

``STATEMENT_SCHEMA`` — one row per bank statement line, as a dialect parser hands it over:
    line_id: str (unique; e.g. file + row), account: str (company account, CLABE or alias),
    row_no: i64 (position in the exported file, for balance and re-import checks),
    operation_date: date (local, as exported), concept: str, reference: str | null,
    cargo: str | null, abono: str | null, balance: str | null (saldo, raw text).
``LEDGER_SCHEMA`` — one row per ledger entry:
    entry_id: str (provider id), source: "conekta" | "odoo",
    kind: "charge" | "transfer" | "move", account: str (company account the money lands in),
    amount_cents: i64 (signed; gross for charges), fee_cents: i64 | null (charges: commission +
    IVA), occurred_at: datetime[us, UTC] | null (charge paid_at, transfer created_at),
    booked_date: date | null (Odoo journal date, local), reference: str | null (Odoo ref,
    transfer statement_reference, charge tracking code / cash reference), memo: str | null,
    channel: str | null.

Pipeline, in this order:

(a) **exact**: join on ``(account, amount_cents, key)`` over the normalised reference keys
    (short keys only where one side has no long reference, so no pair with contradicting long
    references is formed), keep pairs whose dates are within the window, and accept a pair only
    when it is the single candidate of its line *and* of its entry.
(b) **window + score**: candidates share ``(account, amount_cents)`` or a long key, within
    ``[-window_before_days, +window_after_days]``. Each pair gets a reference ``relation``:
    ``strong`` (a long key in common), ``prefix`` (one long key is a truncation of the other and
    no other reference on that side starts with it), ``weak`` (a short key in common),
    ``vague_prefix`` (a truncation several references share: consistent, not identifying),
    ``none`` (no reference on either side), or a refusal: ``conflict`` (different references of
    the same kind), ``one_sided``/``unrelated`` (one side's silence is not evidence),
    ``common_amount`` (``none``/``vague_prefix`` with a look-alike amount nearby, matched or
    not, on either side). Score =
    0.4·amount + 0.4·reference + 0.2·date proximity (+0.05 same counterparty CLABE). A pair is
    auto-matched only when its relation is not a refusal, its amount is exact (or within
    ``amount_tolerance_cents`` with a strong or prefix reference), it scores ≥ ``min_score``,
    and it beats the runner-up by ``margin`` for its line *and* for its entry. Repeated for
    ``max_rounds`` rounds on what is left.
(c) **payouts, two hops**: passes (a)/(b) pair a bank line with a Conekta transfer by
    statement_reference and amount (hop 1); ``guardia.recon.payouts`` then explains each
    transfer by its settlement entries (charges net of fees, refunds, chargebacks, Conekta
    fees) of exactly one settlement window per cut-off rule (hop 2; no subset search).
(c') **bank fees**: a ``COMISION …`` debit and its ``IVA …`` debit (rate x commission) of the
    same account and day, left by (a)/(b), match each other (rule ``bank_fee_pair``).
(d) **exceptions**: every line and ledger entry left over gets one row with a reason
    (``model.Reason``) and its candidates, scores and why each was refused. The most specific
    reason wins: unit_mismatch, amount_mismatch (a strong reference with another amount),
    ambiguous (acceptable candidates too close to call, or a common amount),
    no_acceptable_candidate (below ``min_score`` or claimed by another item), else
    missing_in_ledger / missing_in_bank with the refused candidates as evidence.

Before (a), each line gets a class from ``MatchConfig.line_rules`` (first fit, per account):
``conekta_deposit``, ``bank_fee``, ``out_of_scope`` (payroll, rent, suppliers: never matched,
listed as ``out_of_scope`` exceptions naming the rule) or ``unknown`` (matched as usual).

Only moves and transfers take part in (a)/(b): charges reach the bank only through a transfer.
Charges stay out of the 1:1 passes because a charge amount that equals a bank line is a
coincidence, not evidence.

Outputs:

``MATCH_SCHEMA`` — one row per auto-matched bank line:
    bank_line_id, ledger_ids: list[str] (sorted; a payout lists its transfer and charges),
    rule: ``model.Rule``, score: f64 in [0, 1] (1.0 for exact), account, local_date,
    amount_cents.
``EXCEPTION_SCHEMA`` — one row per orphan:
    side: "bank" | "ledger", bank_line_id: str | null, ledger_id: str | null, reason:
    ``model.Reason``, candidates: JSON text (list of candidates with score, relation and the
    reason each was refused; for payouts the residual and the closest subsets), account,
    local_date, amount_cents.
``KPI_SCHEMA`` — per (account, local_date) over in-scope statement lines (re-imports and
out-of-scope lines excluded):
    lines, matched_lines, amount_cents (Σ|amount|), matched_amount_cents, match_rate_count,
    match_rate_amount.

Determinism: every step orders by ids or sorts before anything order-dependent, so the same rows
in any order give the same result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import polars as pl

from guardia.recon.model import (
    EXCEPTION_SCHEMA,
    KPI_SCHEMA,
    MATCH_SCHEMA,
    NORMALIZED_LEDGER_SCHEMA,
    NORMALIZED_STATEMENT_SCHEMA,
    SETTLEMENT_KINDS,
    EntryKind,
    LineClass,
    MatchConfig,
    Reason,
    Rule,
)
from guardia.recon.normalize import (
    balance_breaks,
    conform,
    normalize_ledger,
    normalize_statement,
    unit_swap_expr,
)
from guardia.recon.payouts import (
    Calibration,
    Charge,
    PayoutReport,
    Transfer,
    calibrate,
    explain_payouts,
)

PREFIX_MIN: Final = 10
W_AMOUNT: Final = 0.4
W_REF: Final = 0.4
W_DATE: Final = 0.2
CLABE_BONUS: Final = 0.05
REF_FEATURE: Final = {
    "strong": 1.0,
    "prefix": 0.8,
    "weak": 0.6,
    "none": 0.3,
    "one_sided": 0.1,
    "unrelated": 0.1,
    "vague_prefix": 0.3,
    "common_amount": 0.3,
    "conflict": 0.0,
}
REFUSED_RELATIONS: Final = ("conflict", "one_sided", "unrelated", "common_amount")
KEY_COLUMNS: Final = ("ref_n", "ref_n2", "ref_l", "ref_l2")
SIDE_COLUMNS: Final = ("account", "local_date", "amount_cents", *KEY_COLUMNS, "clabe")


@dataclass(frozen=True, slots=True)
class ReconResult:
    """Matches, exceptions and KPI of one run (schemas in the module docstring)."""

    matches: pl.DataFrame
    exceptions: pl.DataFrame
    kpi: pl.DataFrame
    balance_breaks: pl.DataFrame

    def summary(self) -> dict[str, float]:
        """Return headline counts and the overall matched shares by count and by amount."""
        lines = int(self.kpi.get_column("lines").sum())
        matched = int(self.kpi.get_column("matched_lines").sum())
        amount = int(self.kpi.get_column("amount_cents").sum())
        matched_amount = int(self.kpi.get_column("matched_amount_cents").sum())
        out_of_scope = Reason.OUT_OF_SCOPE.value
        summary: dict[str, float] = {
            "lines": lines,
            "matched_lines": matched,
            "match_rate_count": matched / lines if lines else 0.0,
            "match_rate_amount": matched_amount / amount if amount else 0.0,
            "exceptions": int((self.exceptions.get_column("reason") != out_of_scope).sum()),
            "out_of_scope_lines": int((self.exceptions.get_column("reason") == out_of_scope).sum()),
            "balance_breaks": self.balance_breaks.height,
        }
        for rule, count in self.matches.group_by("rule").len().iter_rows():
            summary[f"rule.{rule}"] = count
        return summary


def reconcile(
    statement: pl.DataFrame, ledger: pl.DataFrame, config: MatchConfig | None = None
) -> ReconResult:
    """Normalise raw statement and ledger frames, then run the whole pipeline."""
    return match(normalize_statement(statement), normalize_ledger(ledger), config)


def match(
    statement: pl.DataFrame, ledger: pl.DataFrame, config: MatchConfig | None = None
) -> ReconResult:
    """Run passes (a)-(d) on normalised frames and return matches, exceptions and KPI."""
    cfg = config or MatchConfig()
    statement = conform(statement, NORMALIZED_STATEMENT_SCHEMA, "normalized statement")
    ledger = conform(ledger, NORMALIZED_LEDGER_SCHEMA, "normalized ledger")
    statement = statement.join(_classify(statement, cfg), on="line_id", how="left")
    usable = ~pl.col("is_reimport") & pl.col("amount_cents").is_not_null()
    in_scope = pl.col("line_class") != LineClass.OUT_OF_SCOPE.value
    lines = statement.filter(usable & in_scope).select("line_id", *SIDE_COLUMNS)
    targets = ledger.filter(
        pl.col("kind").is_in([EntryKind.MOVE.value, EntryKind.TRANSFER.value])
    ).select("entry_id", "kind", *SIDE_COLUMNS)

    exact = _exact_pass(lines, targets, cfg)
    rest_lines = lines.join(exact, on="line_id", how="anti")
    rest_targets = targets.join(exact, on="entry_id", how="anti")
    related = _relate(_candidates(rest_lines, rest_targets, cfg))
    related = _check_common_amounts(_check_prefixes(related, lines, targets), lines, targets, cfg)
    candidates = _weigh(related, cfg)
    windowed = _select(candidates, cfg)
    pairs = pl.concat(
        [
            exact.with_columns(rule=pl.lit(Rule.EXACT_REF.value), score=pl.lit(1.0)),
            windowed.with_columns(rule=pl.lit(Rule.WINDOW_SCORE.value)),
        ],
        how="diagonal",
    ).select("line_id", "entry_id", "rule", "score")
    report = _payouts(ledger, cfg)
    fee_lines = statement.filter(usable & (pl.col("line_class") == LineClass.BANK_FEE.value)).join(
        pairs, on="line_id", how="anti"
    )
    fee_pairs = _pair_bank_fees(fee_lines, cfg)
    matches = pl.concat([_assemble_matches(pairs, lines, report), fee_pairs]).sort("bank_line_id")
    exceptions = _exceptions(
        statement, lines, targets, ledger, pairs, candidates, report, fee_pairs, cfg
    )
    kpi = _kpi(statement, matches)
    return ReconResult(
        matches=matches,
        exceptions=exceptions,
        kpi=kpi,
        balance_breaks=balance_breaks(statement),
    )


# --------------------------------------------------------------------------------------------
# Line classes: what each statement line is, by the account's rules
# --------------------------------------------------------------------------------------------


def _classify(statement: pl.DataFrame, cfg: MatchConfig) -> pl.DataFrame:
    """(line_id, line_class, class_rule): the first of ``cfg.line_rules`` that fits each line."""
    line_class: pl.Expr = pl.lit(LineClass.UNKNOWN.value)
    class_rule: pl.Expr = pl.lit(None, dtype=pl.String)
    concept = pl.col("concept").fill_null("")
    for rule in reversed(cfg.line_rules):
        fits = concept.str.contains(f"(?i){rule.pattern}")
        if rule.account != "*":
            fits = fits & (pl.col("account") == rule.account)
        line_class = pl.when(fits).then(pl.lit(rule.line_class.value)).otherwise(line_class)
        class_rule = pl.when(fits).then(pl.lit(rule.name)).otherwise(class_rule)
    return statement.select("line_id", line_class=line_class, class_rule=class_rule)


def _pair_bank_fees(fee_lines: pl.DataFrame, cfg: MatchConfig) -> pl.DataFrame:
    """Match a bank commission with the IVA line charged on it, same account and day.

    Banks post a fee as two debits, ``COMISION …`` and ``IVA …`` = rate x commission rounded
    half up (docs/reconciliation.md §3). Identical commissions of one day are interchangeable,
    so they pair in file order.
    """
    is_iva = pl.col("concept").fill_null("").str.contains(r"(?i)^\s*IVA\b")
    size = pl.col("amount_cents").abs()
    base = fee_lines.filter(pl.col("amount_cents") < 0).with_columns(is_iva=is_iva, size=size)
    keys = ["account", "local_date", "iva_cents"]
    rank = pl.col("row_no").rank("ordinal").over(keys)
    rate = cfg.bank_fee_iva_rate_percent
    commissions = (
        base.filter(~pl.col("is_iva"))
        .with_columns(iva_cents=(pl.col("size") * rate + 50) // 100)
        .with_columns(nth=rank)
        .select("line_id", *keys, "nth", "amount_cents")
    )
    ivas = (
        base.filter(pl.col("is_iva"))
        .with_columns(iva_cents=pl.col("size"))
        .with_columns(nth=rank)
        .select(*keys, "nth", iva_line="line_id", iva_amount="amount_cents")
    )
    paired = commissions.join(ivas, on=[*keys, "nth"])
    rows = pl.concat(
        [
            paired.select(
                bank_line_id="line_id",
                ledger_ids=pl.concat_list("iva_line"),
                account="account",
                local_date="local_date",
                amount_cents="amount_cents",
            ),
            paired.select(
                bank_line_id="iva_line",
                ledger_ids=pl.concat_list("line_id"),
                account="account",
                local_date="local_date",
                amount_cents="iva_amount",
            ),
        ]
    ).with_columns(rule=pl.lit(Rule.BANK_FEE_PAIR.value), score=pl.lit(1.0))
    return rows.select(MATCH_SCHEMA.names()).cast(MATCH_SCHEMA)


# --------------------------------------------------------------------------------------------
# Pass (a): exact join on normalised keys, 1:1 only
# --------------------------------------------------------------------------------------------


def _window(delta: pl.Expr, cfg: MatchConfig) -> pl.Expr:
    return delta.is_between(-cfg.window_before_days, cfg.window_after_days)


def _same_or_prefix(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    shorter = pl.min_horizontal(a.str.len_bytes(), b.str.len_bytes())
    prefix = (shorter >= PREFIX_MIN) & (a.str.starts_with(b) | b.str.starts_with(a))
    return ((a == b) | prefix).fill_null(False)


def _explode_keys(
    frame: pl.LazyFrame, keep: Sequence[str | pl.Expr], columns: tuple[str, ...]
) -> pl.LazyFrame:
    """One row per (row, key) from fixed key columns; cheaper than a list column + explode."""
    parts = [frame.select(*keep, key=pl.col(column)) for column in columns]
    return pl.concat(parts).drop_nulls("key")


def _exact_pass(lines: pl.DataFrame, targets: pl.DataFrame, cfg: MatchConfig) -> pl.DataFrame:
    """Pairs sharing account, amount and a key, within the window, unique on both sides.

    Long keys join everything. Short keys (payer-chosen, often ``1``) join only where at least
    one side has no long reference: where both have one, the long keys decide (equal: found by
    the long join; different: a conflict that may never match). This keeps the join linear: a
    short key like ``1`` repeats all year, and joining its rows on both sides would be quadratic.
    """
    # Integer row ids instead of string ids in the big joins and group-bys.
    has_long = pl.col("ref_l").is_not_null()
    bank = lines.lazy().with_row_index("lid").with_columns(b_long=has_long, b_date="local_date")
    book = targets.lazy().with_row_index("eid").with_columns(l_long=has_long, l_date="local_date")
    bank_cols: list[str | pl.Expr] = ["lid", "account", "amount_cents", "b_date", "b_long"]
    book_cols: list[str | pl.Expr] = ["eid", "account", "amount_cents", "l_date", "l_long"]
    block = ["account", "amount_cents", "key"]
    long_keys, short_keys = ("ref_l", "ref_l2"), ("ref_n", "ref_n2")
    bank_short = _explode_keys(bank, bank_cols, short_keys)
    book_short = _explode_keys(book, book_cols, short_keys)
    joined = pl.concat(
        [
            _explode_keys(bank, bank_cols, long_keys).join(
                _explode_keys(book, book_cols, long_keys), on=block
            ),
            bank_short.filter(~pl.col("b_long")).join(book_short, on=block),
            bank_short.filter(pl.col("b_long")).join(
                book_short.filter(~pl.col("l_long")), on=block
            ),
        ]
    )
    pairs = (
        joined.filter(_window((pl.col("l_date") - pl.col("b_date")).dt.total_days(), cfg))
        .select("lid", "eid")
        .unique()
        .filter((pl.len().over("lid") == 1) & (pl.len().over("eid") == 1))
        .join(bank.select("lid", "line_id"), on="lid")
        .join(book.select("eid", "entry_id"), on="eid")
    )
    return pairs.select("line_id", "entry_id").sort("line_id").collect()


# --------------------------------------------------------------------------------------------
# Pass (b): windowed candidates, scoring, margin rule
# --------------------------------------------------------------------------------------------


def _candidates(lines: pl.DataFrame, targets: pl.DataFrame, cfg: MatchConfig) -> pl.DataFrame:
    days = pl.date_ranges(
        pl.col("local_date") - pl.duration(days=cfg.window_before_days),
        pl.col("local_date") + pl.duration(days=cfg.window_after_days),
    )
    bank = lines.lazy().with_columns(day=days)
    book = targets.lazy().with_columns(day=pl.col("local_date"))
    block = ["account", "amount_cents", "day"]
    by_amount = (
        bank.select("line_id", *block)
        .explode("day")
        .join(book.select("entry_id", *block), on=block)
        .select("line_id", "entry_id")
    )
    long_keys = ("ref_l", "ref_l2")
    by_reference = (
        _explode_keys(bank, ["line_id", "account", "day"], long_keys)
        .explode("day")
        .join(
            _explode_keys(book, ["entry_id", "account", "day"], long_keys),
            on=["account", "key", "day"],
        )
        .select("line_id", "entry_id")
    )
    pairs = pl.concat([by_amount, by_reference]).unique()
    bank_side = lines.lazy().select("line_id", *(pl.col(c).alias(f"b_{c}") for c in SIDE_COLUMNS))
    book_side = targets.lazy().select(
        "entry_id", "kind", *(pl.col(c).alias(f"l_{c}") for c in SIDE_COLUMNS)
    )
    return (
        pairs.join(bank_side, on="line_id")
        .join(book_side, on="entry_id")
        .sort("line_id", "entry_id")
        .collect()
    )


def _shares(kind: str) -> pl.Expr:
    """True where a key of one kind (``n`` short, ``l`` long) appears on both sides."""
    bank = [pl.col(f"b_ref_{kind}"), pl.col(f"b_ref_{kind}2")]
    book = [pl.col(f"l_ref_{kind}"), pl.col(f"l_ref_{kind}2")]
    return pl.any_horizontal((b == other).fill_null(False) for b in bank for other in book)


def _relate(candidates: pl.DataFrame) -> pl.DataFrame:
    """Add the comparison features of each candidate pair, and its reference ``relation``."""
    b_amount, l_amount = pl.col("b_amount_cents"), pl.col("l_amount_cents")
    frame = candidates.with_columns(
        amount_diff=l_amount - b_amount,
        gap=(pl.col("l_local_date") - pl.col("b_local_date")).dt.total_days(),
        shared_long=_shares("l"),
        shared_short=_shares("n"),
        prefix=_same_or_prefix(pl.col("b_ref_l"), pl.col("l_ref_l")),
        unit=unit_swap_expr(b_amount, l_amount),
        same_clabe=(pl.col("b_clabe") == pl.col("l_clabe")).fill_null(False),
    )
    has = {
        side: pl.any_horizontal(pl.col(f"{side}_{c}").is_not_null() for c in KEY_COLUMNS)
        for side in ("b", "l")
    }
    relation = (
        pl.when(pl.col("shared_long"))
        .then(pl.lit("strong"))
        .when(pl.col("prefix"))
        .then(pl.lit("prefix"))
        .when(pl.col("b_ref_l").is_not_null() & pl.col("l_ref_l").is_not_null())
        .then(pl.lit("conflict"))
        .when(pl.col("shared_short"))
        .then(pl.lit("weak"))
        .when(pl.col("b_ref_n").is_not_null() & pl.col("l_ref_n").is_not_null())
        .then(pl.lit("conflict"))
        .when(has["b"] & has["l"])
        .then(pl.lit("unrelated"))
        .when(has["b"] | has["l"])
        .then(pl.lit("one_sided"))
        .otherwise(pl.lit("none"))
    )
    return frame.with_columns(relation=relation)


def _weigh(frame: pl.DataFrame, cfg: MatchConfig) -> pl.DataFrame:
    """Score each candidate pair and say whether it may be auto-matched at all."""
    span = max(cfg.window_before_days, cfg.window_after_days) + 1
    exact = pl.col("amount_diff") == 0
    tolerated = pl.col("amount_diff").abs() <= cfg.amount_tolerance_cents
    strong = pl.col("relation").is_in(["strong", "prefix"])
    refused = ["conflict"] if cfg.accept_one_sided_reference else list(REFUSED_RELATIONS)
    amount_feature = pl.when(exact).then(1.0).when(tolerated).then(0.7).otherwise(0.0)
    date_feature = 1.0 - pl.col("gap").abs().cast(pl.Float64) / span
    score = (
        W_AMOUNT * amount_feature
        + W_REF * pl.col("relation").replace_strict(REF_FEATURE, return_dtype=pl.Float64)
        + W_DATE * date_feature
        + pl.when(pl.col("same_clabe")).then(CLABE_BONUS).otherwise(0.0)
    )
    return frame.with_columns(
        score=score.clip(0.0, 1.0).round(4),
        acceptable=~pl.col("relation").is_in(refused) & (exact | (tolerated & strong)),
        strong=strong,
    )


def _sharing(prefixes: pl.Series, pool: pl.DataFrame) -> pl.Series:
    """How many long references in ``pool`` (its ref_l and ref_l2) start with each prefix."""
    refs = pl.concat([pool.get_column("ref_l"), pool.get_column("ref_l2")]).drop_nulls()
    counts = pl.DataFrame({"prefix": prefixes}).with_columns(sharing=pl.lit(0, dtype=pl.UInt32))
    for size in prefixes.str.len_bytes().unique().sort().to_list():
        heads = refs.str.slice(0, size)
        found = (
            heads.filter(heads.is_in(prefixes.filter(prefixes.str.len_bytes() == size).implode()))
            .value_counts(name="n")
            .rename({heads.name: "prefix"})
        )
        counts = counts.join(found, on="prefix", how="left").with_columns(
            sharing=pl.col("sharing") + pl.col("n").fill_null(0)
        )
        counts = counts.drop("n")
    return counts.get_column("sharing")


def _check_prefixes(
    candidates: pl.DataFrame, lines: pl.DataFrame, targets: pl.DataFrame
) -> pl.DataFrame:
    """Demote a truncated reference that does not single out one reference on the other side.

    Banks cut references to 10 or 16 chars; the first 10 chars of a rastreo are often just the
    sender's prefix and the date, shared by hundreds of payments. A prefix counts as evidence
    only if exactly one reference on the other side (anywhere in the data) starts with it;
    otherwise the pair is ``weak`` if it shares a short key, else ``vague_prefix`` (and then
    stands on amount and date like a pair without references).
    """
    prefixed = candidates.filter(pl.col("relation") == "prefix")
    if prefixed.is_empty():
        return candidates
    bank_short = pl.col("b_ref_l").str.len_bytes() <= pl.col("l_ref_l").str.len_bytes()
    probe = prefixed.select(
        "line_id",
        "entry_id",
        bank_short=bank_short,
        short=pl.when(bank_short).then(pl.col("b_ref_l")).otherwise(pl.col("l_ref_l")),
    )
    vague: list[pl.DataFrame] = []
    for bank_side, pool in ((True, targets), (False, lines)):
        part = probe.filter(pl.col("bank_short") == bank_side)
        if not part.is_empty():
            sharing = _sharing(part.get_column("short"), pool)
            vague.append(part.filter(sharing != 1).select("line_id", "entry_id"))
    flagged = pl.concat(vague).with_columns(vague=pl.lit(True))
    frame = candidates.join(flagged, on=["line_id", "entry_id"], how="left")
    # A vague prefix does not contradict; a short key in common still counts as weak evidence.
    demoted = (
        pl.when(~pl.col("vague").fill_null(False))
        .then(pl.col("relation"))
        .when(pl.col("shared_short"))
        .then(pl.lit("weak"))
        .otherwise(pl.lit("vague_prefix"))
    )
    return frame.with_columns(relation=demoted).drop("vague")


def _check_common_amounts(
    candidates: pl.DataFrame, lines: pl.DataFrame, targets: pl.DataFrame, cfg: MatchConfig
) -> pl.DataFrame:
    """Refuse amount-and-date evidence unless the amount is distinctive on both sides.

    Pairs with no reference (``none``) or only a consistent but non-specific truncation
    (``vague_prefix``) rest on amount and date alone. The margin rule only sees competitors
    still unmatched; a look-alike already matched, or a partner missing from the other side,
    would leave a wrong pair looking unique. So such a pair stands only if no other row of the
    same account and amount that could be confused with it (reference-less rows for ``none``,
    any row for ``vague_prefix``) lies within ``window_before_days + window_after_days`` days,
    on either side.
    """
    weak = candidates.filter(pl.col("relation").is_in(["none", "vague_prefix"]))
    if weak.is_empty():
        return candidates
    reach = cfg.window_before_days + cfg.window_after_days
    crowded: list[pl.DataFrame] = []
    no_refs = pl.all_horizontal(pl.col(c).is_null() for c in KEY_COLUMNS)
    for own, pool, side in (("line_id", lines, "b_"), ("entry_id", targets, "l_")):
        rows = pool.select("account", "amount_cents", "local_date", bare=no_refs)
        probe = weak.select(
            own,
            "relation",
            account=pl.col(f"{side}account"),
            amount_cents=pl.col(f"{side}amount_cents"),
            day=pl.col(f"{side}local_date"),
        ).unique()
        confusable = (pl.col("relation") == "vague_prefix") | pl.col("bare")
        # Exploding the probe over the reach keeps the join linear: joining every row of a
        # common amount (500.00) across the whole period would be quadratic.
        near = (
            probe.with_columns(
                local_date=pl.date_ranges(
                    pl.col("day") - pl.duration(days=reach), pl.col("day") + pl.duration(days=reach)
                )
            )
            .explode("local_date")
            .join(rows, on=["account", "amount_cents", "local_date"])
            .filter(confusable)
            .group_by(own, "relation")
            .agg(alike=pl.len())
            .filter(pl.col("alike") > 1)
            .select(own, "relation")
        )
        crowded.append(weak.join(near, on=[own, "relation"], how="semi"))
    common = (
        pl.concat([c.select("line_id", "entry_id") for c in crowded])
        .unique()
        .with_columns(common=pl.lit(True))
    )
    frame = candidates.join(common, on=["line_id", "entry_id"], how="left")
    return frame.with_columns(
        relation=pl.when(pl.col("common"))
        .then(pl.lit("common_amount"))
        .otherwise(pl.col("relation"))
    ).drop("common")


def _select(candidates: pl.DataFrame, cfg: MatchConfig) -> pl.DataFrame:
    chosen: list[pl.DataFrame] = []
    live = candidates.select("line_id", "entry_id", "score", "acceptable")
    for _ in range(cfg.max_rounds):
        if live.is_empty():
            break
        second = pl.when(pl.len() > 1).then(pl.col("score").top_k(2).min()).otherwise(0.0)
        by_line = live.group_by("line_id").agg(line_top=pl.col("score").max(), line_second=second)
        by_entry = live.group_by("entry_id").agg(
            entry_top=pl.col("score").max(), entry_second=second
        )
        ranked = live.join(by_line, on="line_id").join(by_entry, on="entry_id")
        accepted = ranked.filter(
            pl.col("acceptable")
            & (pl.col("score") >= cfg.min_score)
            & (pl.col("score") == pl.col("line_top"))
            & (pl.col("score") == pl.col("entry_top"))
            & (pl.col("score") - pl.col("line_second") >= cfg.margin - 1e-9)
            & (pl.col("score") - pl.col("entry_second") >= cfg.margin - 1e-9)
        ).select("line_id", "entry_id", "score")
        if accepted.is_empty():
            break
        chosen.append(accepted)
        live = live.join(accepted, on="line_id", how="anti").join(
            accepted, on="entry_id", how="anti"
        )
    if not chosen:
        return pl.DataFrame(
            schema={"line_id": pl.String(), "entry_id": pl.String(), "score": pl.Float64()}
        )
    return pl.concat(chosen).sort("line_id")


# --------------------------------------------------------------------------------------------
# Pass (c): payouts, hop 2
# --------------------------------------------------------------------------------------------


def _payouts(ledger: pl.DataFrame, cfg: MatchConfig) -> PayoutReport:
    return explain_payouts(*_settlement_inputs(ledger), cfg.payout)


def calibrate_payouts(ledger: pl.DataFrame, config: MatchConfig | None = None) -> list[Calibration]:
    """Which cut-off rule explains an account's past payouts exactly (raw ledger frame)."""
    cfg = config or MatchConfig()
    return calibrate(*_settlement_inputs(normalize_ledger(ledger)), cfg.payout)


def _settlement_inputs(ledger: pl.DataFrame) -> tuple[list[Charge], list[Transfer]]:
    epoch_us = pl.col("occurred_at").dt.epoch("us")
    charges = ledger.filter(
        pl.col("kind").is_in(SETTLEMENT_KINDS) & pl.col("occurred_at").is_not_null()
    ).select("entry_id", "account", epoch_us.alias("at"), "net_cents", "channel")
    transfers = ledger.filter(
        (pl.col("kind") == EntryKind.TRANSFER.value) & pl.col("occurred_at").is_not_null()
    ).select("entry_id", "account", epoch_us.alias("at"), "amount_cents")
    return (
        [Charge(*row) for row in charges.iter_rows()],
        [Transfer(*row) for row in transfers.iter_rows()],
    )


def _outcomes_frame(report: PayoutReport) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "entry_id": [o.transfer_id for o in report.outcomes],
            "status": [o.status for o in report.outcomes],
            "members": [list(o.members) for o in report.outcomes],
            "ledger_ids": [sorted((o.transfer_id, *o.members)) for o in report.outcomes],
            "evidence": [o.evidence for o in report.outcomes],
        },
        schema={
            "entry_id": pl.String(),
            "status": pl.String(),
            "members": pl.List(pl.String()),
            "ledger_ids": pl.List(pl.String()),
            "evidence": pl.String(),
        },
    )


def _assemble_matches(
    pairs: pl.DataFrame, lines: pl.DataFrame, report: PayoutReport
) -> pl.DataFrame:
    payout_rule = (
        pl.when(pl.col("status") == "contiguous")
        .then(pl.lit(Rule.PAYOUT_CONTIGUOUS.value))
        .when(pl.col("status") == "window")
        .then(pl.lit(Rule.PAYOUT_WINDOW.value))
        .otherwise(pl.lit(Rule.PAYOUT_TRANSFER_ONLY.value))
    )
    # Every transfer with a timestamp has a hop-2 outcome; a matched transfer is a payout.
    frame = (
        pairs.lazy()
        .join(_outcomes_frame(report).lazy(), on="entry_id", how="left")
        .with_columns(
            rule=pl.when(pl.col("status").is_not_null())
            .then(payout_rule)
            .otherwise(pl.col("rule")),
            ledger_ids=pl.coalesce(pl.col("ledger_ids"), pl.concat_list(pl.col("entry_id"))),
        )
        .join(lines.lazy().select("line_id", "account", "local_date", "amount_cents"), on="line_id")
        .rename({"line_id": "bank_line_id"})
        .collect()
    )
    return frame.select(MATCH_SCHEMA.names()).sort("bank_line_id").cast(MATCH_SCHEMA)


# --------------------------------------------------------------------------------------------
# Pass (d): exceptions with evidence
# --------------------------------------------------------------------------------------------


def _json_list(column: str) -> pl.Expr:
    encoded = pl.col(column).list.eval(pl.element().struct.json_encode()).list.join(",")
    return pl.concat_str(pl.lit("["), encoded.fill_null(""), pl.lit("]"))


def _why(candidates: pl.DataFrame, pairs: pl.DataFrame, cfg: MatchConfig) -> pl.DataFrame:
    matched_lines = pairs.select("line_id", taken_line=pl.lit(True))
    matched_entries = pairs.select("entry_id", taken_entry=pl.lit(True))
    frame = candidates.join(matched_lines, on="line_id", how="left").join(
        matched_entries, on="entry_id", how="left"
    )
    exact = pl.col("amount_diff") == 0
    tolerated = pl.col("amount_diff").abs() <= cfg.amount_tolerance_cents
    why = (
        pl.when(pl.col("relation") == "conflict")
        .then(pl.lit("reference_conflict"))
        .when(pl.col("relation") == "common_amount")
        .then(pl.lit("amount_not_distinctive"))
        .when(pl.col("relation").is_in(["one_sided", "unrelated"]) & ~pl.col("acceptable"))
        .then(pl.lit("reference_missing"))
        .when(pl.col("unit") & pl.col("strong"))
        .then(pl.lit("unit_mismatch"))
        .when(~exact & ~(tolerated & pl.col("strong")))
        .then(pl.lit("amount_differs"))
        .when(pl.col("score") < cfg.min_score)
        .then(pl.lit("below_min_score"))
        .otherwise(pl.lit("not_clearly_best"))
    )
    return frame.with_columns(
        why=why,
        taken_line=pl.col("taken_line").fill_null(False),
        taken_entry=pl.col("taken_entry").fill_null(False),
    )


def _reason_from(candidates: pl.Expr, missing: Reason) -> pl.Expr:
    """Pick one reason from the ``why`` of an item's candidates (most specific first).

    Candidates refused for their reference or amount are evidence, not near-misses: the item is
    reported as missing on the other side, with them listed.
    """
    why = candidates.list.eval(pl.element().struct.field("why"))
    near_miss = why.list.eval(
        pl.element().is_in(["below_min_score", "claimed_by_other"])
    ).list.any()
    return (
        pl.when(why.list.contains("unit_mismatch"))
        .then(pl.lit(Reason.UNIT_MISMATCH.value))
        .when(why.list.contains("amount_differs_strong"))
        .then(pl.lit(Reason.AMOUNT_MISMATCH.value))
        .when(why.list.contains("not_clearly_best") | why.list.contains("amount_not_distinctive"))
        .then(pl.lit(Reason.AMBIGUOUS.value))
        .when(near_miss.fill_null(False))
        .then(pl.lit(Reason.NO_ACCEPTABLE_CANDIDATE.value))
        .otherwise(pl.lit(missing.value))
    )


def _side_exceptions(
    why: pl.DataFrame,
    items: pl.DataFrame,
    *,
    side: str,
    own: str,
    other: str,
    other_taken: str,
    missing: Reason,
    cfg: MatchConfig,
) -> pl.DataFrame:
    prefix = "l_" if side == "bank" else "b_"
    candidate = pl.struct(
        pl.col(other).alias("bank_line_id" if other == "line_id" else "ledger_id"),
        "score",
        "relation",
        "why",
        pl.col(f"{prefix}amount_cents").alias("amount_cents"),
        pl.col(f"{prefix}local_date").cast(pl.String).alias("local_date"),
    )
    near_miss = pl.col("why").is_in(["below_min_score", "not_clearly_best"])
    grouped = (
        why.join(items.select(own), on=own, how="semi")
        .with_columns(
            why=pl.when(pl.col(other_taken) & near_miss)
            .then(pl.lit("claimed_by_other"))
            .when((pl.col("why") == "amount_differs") & pl.col("strong"))
            .then(pl.lit("amount_differs_strong"))
            .otherwise(pl.col("why"))
        )
        .sort(own, pl.col("score"), other, descending=[False, True, False])
        .group_by(own, maintain_order=True)
        .agg(cands=candidate.head(cfg.evidence_candidates), all_cands=candidate)
    )
    frame = items.join(grouped, on=own, how="left").with_columns(
        reason=_reason_from(pl.col("all_cands"), missing),
        candidates=_json_list("cands"),
    )
    return frame


def _exceptions(
    statement: pl.DataFrame,
    lines: pl.DataFrame,
    targets: pl.DataFrame,
    ledger: pl.DataFrame,
    pairs: pl.DataFrame,
    candidates: pl.DataFrame,
    report: PayoutReport,
    fee_pairs: pl.DataFrame,
    cfg: MatchConfig,
) -> pl.DataFrame:
    why = _why(candidates, pairs, cfg)
    open_lines = (
        lines.join(pairs, on="line_id", how="anti")
        .join(fee_pairs.select(line_id="bank_line_id"), on="line_id", how="anti")
        .select("line_id", "account", "local_date", "amount_cents")
    )
    fee_lines = statement.filter(pl.col("line_class") == LineClass.BANK_FEE.value).select(
        "line_id", is_fee=pl.lit(True)
    )
    bank = (
        _side_exceptions(
            why,
            open_lines,
            side="bank",
            own="line_id",
            other="entry_id",
            other_taken="taken_entry",
            missing=Reason.MISSING_IN_LEDGER,
            cfg=cfg,
        )
        .join(fee_lines, on="line_id", how="left")
        .select(
            side=pl.lit("bank"),
            bank_line_id="line_id",
            ledger_id=pl.lit(None, dtype=pl.String),
            reason=pl.when(pl.col("is_fee").fill_null(False) & (pl.col("reason") != "ambiguous"))
            .then(pl.lit(Reason.UNPAIRED_BANK_FEE.value))
            .otherwise(pl.col("reason")),
            candidates="candidates",
            account="account",
            local_date="local_date",
            amount_cents="amount_cents",
        )
    )
    # Listed with the rule that took them out, so nothing leaves the KPI unseen.
    out_of_scope = statement.filter(
        ~pl.col("is_reimport")
        & pl.col("amount_cents").is_not_null()
        & (pl.col("line_class") == LineClass.OUT_OF_SCOPE.value)
    ).select(
        side=pl.lit("bank"),
        bank_line_id="line_id",
        ledger_id=pl.lit(None, dtype=pl.String),
        reason=pl.lit(Reason.OUT_OF_SCOPE.value),
        candidates=pl.concat_str(
            pl.lit('[{"line_class":"out_of_scope","rule":"'), pl.col("class_rule"), pl.lit('"}]')
        ),
        account="account",
        local_date="local_date",
        amount_cents="amount_cents",
    )
    refused = statement.filter(pl.col("is_reimport") | pl.col("amount_cents").is_null()).select(
        side=pl.lit("bank"),
        bank_line_id="line_id",
        ledger_id=pl.lit(None, dtype=pl.String),
        reason=pl.when(pl.col("is_reimport"))
        .then(pl.lit(Reason.DUPLICATE_LINE.value))
        .otherwise(pl.lit(Reason.UNPARSEABLE_AMOUNT.value)),
        candidates=pl.when(pl.col("is_reimport"))
        .then(pl.concat_str(pl.lit('[{"duplicate_of":"'), pl.col("duplicate_of"), pl.lit('"}]')))
        .otherwise(pl.lit("[]")),
        account="account",
        local_date="local_date",
        amount_cents="amount_cents",
    )
    open_targets = targets.join(pairs, on="entry_id", how="anti").select(
        "entry_id", "account", "local_date", "amount_cents"
    )
    book = _side_exceptions(
        why,
        open_targets,
        side="ledger",
        own="entry_id",
        other="line_id",
        other_taken="taken_line",
        missing=Reason.MISSING_IN_BANK,
        cfg=cfg,
    ).select(
        side=pl.lit("ledger"),
        bank_line_id=pl.lit(None, dtype=pl.String),
        ledger_id="entry_id",
        reason="reason",
        candidates="candidates",
        account="account",
        local_date="local_date",
        amount_cents="amount_cents",
    )
    payouts = _payout_exceptions(ledger, pairs, report)
    frames = [f.cast(EXCEPTION_SCHEMA) for f in (bank, out_of_scope, refused, book, payouts)]
    return pl.concat(frames).sort("side", "bank_line_id", "ledger_id", nulls_last=True)


def _payout_exceptions(
    ledger: pl.DataFrame, pairs: pl.DataFrame, report: PayoutReport
) -> pl.DataFrame:
    outcomes = _outcomes_frame(report).join(
        pairs.select("entry_id", bank_line_id="line_id"), on="entry_id", how="left"
    )
    failed_reason = (
        pl.when(pl.col("status") == "ambiguous")
        .then(pl.lit(Reason.AMBIGUOUS_PAYOUT.value))
        .otherwise(pl.lit(Reason.UNEXPLAINED_PAYOUT_RESIDUAL.value))
    )
    entries = ledger.select("entry_id", "account", "local_date", "amount_cents")
    failed_transfers = (
        outcomes.filter(
            pl.col("status").is_in(["unexplained", "ambiguous"])
            & pl.col("bank_line_id").is_not_null()
        )
        .join(entries, on="entry_id")
        .select(
            side=pl.lit("ledger"),
            bank_line_id="bank_line_id",
            ledger_id="entry_id",
            reason=failed_reason,
            candidates="evidence",
            account="account",
            local_date="local_date",
            amount_cents="amount_cents",
        )
    )
    member_rows = outcomes.select(
        "entry_id", "status", "bank_line_id", charge_id="members"
    ).explode("charge_id")
    attributed = pl.DataFrame(
        {"charge_id": list(report.attributed), "entry_id": list(report.attributed.values())},
        schema={"charge_id": pl.String(), "entry_id": pl.String()},
    ).join(outcomes.select("entry_id", "status", "bank_line_id"), on="entry_id", how="left")
    charge_reason = (
        pl.when(pl.col("bank_line_id").is_null())
        .then(pl.lit(Reason.PAYOUT_UNMATCHED.value))
        .otherwise(failed_reason)
    )
    evidence = pl.concat_str(
        pl.lit('[{"transfer_id":"'),
        pl.col("entry_id"),
        pl.lit('","bank_line_id":'),
        pl.when(pl.col("bank_line_id").is_null())
        .then(pl.lit("null"))
        .otherwise(pl.concat_str(pl.lit('"'), pl.col("bank_line_id"), pl.lit('"'))),
        pl.lit("}]"),
    )
    orphan_members = member_rows.filter(
        pl.col("charge_id").is_not_null() & pl.col("bank_line_id").is_null()
    )
    charges = pl.concat(
        [
            orphan_members.select("charge_id", "entry_id", "status", "bank_line_id"),
            attributed.select("charge_id", "entry_id", "status", "bank_line_id"),
        ]
    ).with_columns(reason=charge_reason, candidates=evidence)
    unsettled = pl.DataFrame(
        {"charge_id": list(report.unsettled)}, schema={"charge_id": pl.String()}
    ).with_columns(
        bank_line_id=pl.lit(None, dtype=pl.String),
        reason=pl.lit(Reason.UNSETTLED_CHARGE.value),
        candidates=pl.lit("[]"),
    )
    rows = pl.concat(
        [
            charges.select("charge_id", "bank_line_id", "reason", "candidates"),
            unsettled.select("charge_id", "bank_line_id", "reason", "candidates"),
        ]
    ).join(entries.rename({"entry_id": "charge_id"}), on="charge_id")
    charge_rows = rows.select(
        side=pl.lit("ledger"),
        bank_line_id="bank_line_id",
        ledger_id="charge_id",
        reason="reason",
        candidates="candidates",
        account="account",
        local_date="local_date",
        amount_cents="amount_cents",
    )
    return pl.concat([failed_transfers, charge_rows])


# --------------------------------------------------------------------------------------------
# KPI
# --------------------------------------------------------------------------------------------


def _kpi(statement: pl.DataFrame, matches: pl.DataFrame) -> pl.DataFrame:
    matched = matches.select(line_id="bank_line_id", matched=pl.lit(True))
    frame = (
        statement.filter(
            ~pl.col("is_reimport") & (pl.col("line_class") != LineClass.OUT_OF_SCOPE.value)
        )
        .join(matched, on="line_id", how="left")
        .with_columns(matched=pl.col("matched").fill_null(False), size=pl.col("amount_cents").abs())
        .group_by("account", "local_date")
        .agg(
            lines=pl.len(),
            matched_lines=pl.col("matched").sum().cast(pl.UInt32),
            amount_cents=pl.col("size").sum(),
            matched_amount_cents=pl.col("size").filter(pl.col("matched")).sum(),
        )
        .with_columns(
            match_rate_count=pl.col("matched_lines") / pl.col("lines"),
            match_rate_amount=pl.when(pl.col("amount_cents") > 0)
            .then(pl.col("matched_amount_cents") / pl.col("amount_cents"))
            .otherwise(1.0),
        )
        .sort("account", "local_date")
    )
    return frame.select(KPI_SCHEMA.names()).cast(KPI_SCHEMA)
