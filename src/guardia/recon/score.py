"""Score a reconciliation run against synthetic ground truth (``synth.TRUTH_SCHEMA``).

Pair level: every (bank_line_id, ledger_id) a match row claims is one emitted pair; the truth's
pairs are those of rows whose ``expected`` is ``"match"``. Precision = correct / emitted, recall
= correct / true pairs. A *false auto-match* is a match row with at least one pair that is not
true. Line level counts a match row as right only when its ledger ids equal the truth exactly.
Rows whose expected outcome is an exception are scored by whether the item got an exception with
that reason (``exception_accuracy``). Everything is also broken down per noise label, and pairs
are split by hop (``hops``): hop 1 pairs a line with a move or a transfer, hop 2 a payout with
the settlement entries (charges, refunds, chargebacks, fees) it nets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from guardia.recon.match import ReconResult

MATCH = "match"


@dataclass(frozen=True, slots=True)
class ScoreReport:
    """Precision, recall and the evidence behind them."""

    precision: float
    recall: float
    line_precision: float
    line_recall: float
    exception_accuracy: float
    emitted_pairs: int
    true_pairs: int
    correct_pairs: int
    false_matches: pl.DataFrame
    missed: pl.DataFrame
    wrong_exceptions: pl.DataFrame
    per_label: pl.DataFrame
    hops: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        """Return the headline figures as plain numbers."""
        return {
            **self.hops,
            "precision": self.precision,
            "recall": self.recall,
            "line_precision": self.line_precision,
            "line_recall": self.line_recall,
            "exception_accuracy": self.exception_accuracy,
            "emitted_pairs": self.emitted_pairs,
            "true_pairs": self.true_pairs,
            "correct_pairs": self.correct_pairs,
            "false_auto_matches": self.false_matches.height,
        }


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 1.0


def score(result: ReconResult, truth: pl.DataFrame) -> ScoreReport:
    """Compare a run's matches and exceptions with the truth table."""
    matches = result.matches
    emitted = matches.select("bank_line_id", ledger_id="ledger_ids").explode("ledger_id")
    expected_match = truth.filter(pl.col("expected") == MATCH)
    true_pairs = expected_match.select("bank_line_id", ledger_id="ledger_ids").explode("ledger_id")
    pair_keys = ["bank_line_id", "ledger_id"]
    flagged = emitted.join(
        true_pairs.with_columns(ok=pl.lit(True)), on=pair_keys, how="left"
    ).with_columns(ok=pl.col("ok").fill_null(False))
    correct = int(flagged.get_column("ok").sum())

    bad_lines = flagged.filter(~pl.col("ok")).select("bank_line_id").unique()
    truth_by_line = truth.filter(pl.col("bank_line_id").is_not_null()).select(
        "bank_line_id", expected_ids="ledger_ids", expected="expected", labels="labels"
    )
    false_matches = (
        matches.join(bad_lines, on="bank_line_id", how="semi")
        .join(truth_by_line, on="bank_line_id", how="left")
        .sort("bank_line_id")
    )
    exact_rows = matches.join(
        expected_match.select("bank_line_id", "ledger_ids"), on=["bank_line_id", "ledger_ids"]
    )
    missed = expected_match.join(exact_rows, on=["bank_line_id", "ledger_ids"], how="anti").join(
        matches.select("bank_line_id", got_ids="ledger_ids", rule="rule"),
        on="bank_line_id",
        how="left",
    )

    hops = _hops(flagged, true_pairs, truth)
    outcome = _exception_outcomes(result.exceptions, truth)
    wrong = outcome.filter(~pl.col("ok"))
    per_label = _per_label(truth, flagged, outcome)
    return ScoreReport(
        precision=_ratio(correct, emitted.height),
        recall=_ratio(correct, true_pairs.height),
        line_precision=_ratio(exact_rows.height, matches.height),
        line_recall=_ratio(exact_rows.height, expected_match.height),
        exception_accuracy=_ratio(outcome.height - wrong.height, outcome.height),
        emitted_pairs=emitted.height,
        true_pairs=true_pairs.height,
        correct_pairs=correct,
        false_matches=false_matches,
        missed=missed,
        wrong_exceptions=wrong,
        per_label=per_label,
        hops=hops,
    )


def _hops(flagged: pl.DataFrame, true_pairs: pl.DataFrame, truth: pl.DataFrame) -> dict[str, float]:
    """Precision and recall of hop 1 (line to transfer or move) and hop 2 (payout to its
    settlement entries), apart: a payout can be right at the bank and wrong in its charges.

    A ledger id is a hop-2 id when the truth names it a settlement entry: a member of a payout
    (``hop2_ids``) or an entry with its own exception row of kind ``charge``.
    """
    members = truth.select(ledger_id="hop2_ids").explode("ledger_id")
    own_rows = truth.filter(pl.col("kind") == "charge").select(ledger_id="ledger_ids")
    settlement = (
        pl.concat([members, own_rows.explode("ledger_id")]).drop_nulls().unique().to_series()
    )
    out: dict[str, float] = {}
    for hop, in_hop in (("hop1", False), ("hop2", True)):
        emitted = flagged.filter(pl.col("ledger_id").is_in(settlement.implode()) == in_hop)
        wanted = true_pairs.filter(pl.col("ledger_id").is_in(settlement.implode()) == in_hop)
        correct = int(emitted.get_column("ok").sum())
        out[f"{hop}_precision"] = _ratio(correct, emitted.height)
        out[f"{hop}_recall"] = _ratio(correct, wanted.height)
        out[f"{hop}_emitted_pairs"] = emitted.height
        out[f"{hop}_true_pairs"] = wanted.height
        out[f"{hop}_false_pairs"] = emitted.height - correct
    return out


def _exception_outcomes(exceptions: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """One row per truth item expected to be an exception, with the reason it actually got."""
    wanted = truth.filter(pl.col("expected") != MATCH).with_row_index("truth_row")
    bank_reasons = (
        exceptions.filter(pl.col("side") == "bank")
        .group_by("bank_line_id")
        .agg(got=pl.col("reason").sort())
    )
    ledger_reasons = (
        exceptions.filter(pl.col("side") == "ledger")
        .group_by("ledger_id")
        .agg(got=pl.col("reason").sort())
    )
    bank_rows = wanted.filter(pl.col("bank_line_id").is_not_null()).join(
        bank_reasons, on="bank_line_id", how="left"
    )
    ledger_rows = (
        wanted.filter(pl.col("bank_line_id").is_null())
        .with_columns(ledger_id=pl.col("ledger_ids").list.first())
        .join(ledger_reasons, on="ledger_id", how="left")
        .drop("ledger_id")
    )
    both = pl.concat([bank_rows, ledger_rows]).sort("truth_row")
    return both.with_columns(
        ok=pl.col("got").list.contains(pl.col("expected")).fill_null(False)
    ).drop("truth_row")


def _per_label(truth: pl.DataFrame, flagged: pl.DataFrame, outcome: pl.DataFrame) -> pl.DataFrame:
    labelled = truth.select("bank_line_id", "ledger_ids", "expected", "labels").explode("labels")
    labelled = labelled.rename({"labels": "label"}).drop_nulls("label")
    true_pairs = (
        labelled.filter(pl.col("expected") == MATCH)
        .explode("ledger_ids")
        .rename({"ledger_ids": "ledger_id"})
        .join(flagged, on=["bank_line_id", "ledger_id"], how="left")
        .group_by("label")
        .agg(true_pairs=pl.len(), found_pairs=pl.col("ok").fill_null(False).sum())
    )
    line_labels = labelled.filter(pl.col("bank_line_id").is_not_null()).select(
        "bank_line_id", "label"
    )
    emitted = (
        flagged.join(line_labels.unique(), on="bank_line_id")
        .group_by("label")
        .agg(emitted_pairs=pl.len(), correct_pairs=pl.col("ok").sum())
    )
    exceptions = (
        outcome.explode("labels")
        .rename({"labels": "label"})
        .drop_nulls("label")
        .group_by("label")
        .agg(expected_exceptions=pl.len(), right_exceptions=pl.col("ok").sum())
    )
    rows = labelled.group_by("label").agg(truth_rows=pl.len())
    return (
        rows.join(true_pairs, on="label", how="left")
        .join(emitted, on="label", how="left")
        .join(exceptions, on="label", how="left")
        .fill_null(0)
        .with_columns(
            recall=pl.when(pl.col("true_pairs") > 0)
            .then(pl.col("found_pairs") / pl.col("true_pairs"))
            .otherwise(1.0),
            precision=pl.when(pl.col("emitted_pairs") > 0)
            .then(pl.col("correct_pairs") / pl.col("emitted_pairs"))
            .otherwise(1.0),
            exception_accuracy=pl.when(pl.col("expected_exceptions") > 0)
            .then(pl.col("right_exceptions") / pl.col("expected_exceptions"))
            .otherwise(1.0),
        )
        .sort("label")
    )
