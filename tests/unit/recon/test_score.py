"""Scoring a run against ground truth: the scorer must catch what the matcher gets wrong."""

from __future__ import annotations

import dataclasses

import polars as pl

from guardia.recon.match import reconcile
from guardia.recon.score import score
from guardia.recon.synth import NoiseConfig, generate


def test_a_perfect_run_scores_full_precision_and_the_true_recall() -> None:
    world = generate(1_000, 4, NoiseConfig.only("mangled_ref", 0.1))
    report = score(reconcile(world.statement, world.ledger), world.truth)
    assert report.precision == 1.0
    assert report.false_matches.is_empty()
    assert report.correct_pairs == report.emitted_pairs
    assert 0.95 <= report.recall <= 1.0


def test_a_wrong_match_is_counted_and_listed_as_a_false_auto_match() -> None:
    world = generate(1_000, 4, NoiseConfig.none())
    result = reconcile(world.statement, world.ledger)
    first, second = (
        result.matches.filter(pl.col("rule") == "exact_ref").head(2).iter_rows(named=True)
    )
    swapped = result.matches.with_columns(
        ledger_ids=pl.when(pl.col("bank_line_id") == first["bank_line_id"])
        .then(pl.lit(second["ledger_ids"]))
        .otherwise(pl.col("ledger_ids"))
    )
    report = score(dataclasses.replace(result, matches=swapped), world.truth)
    assert report.precision < 1.0
    assert report.false_matches.get_column("bank_line_id").to_list() == [first["bank_line_id"]]
    assert report.as_dict()["false_auto_matches"] == 1


def test_a_dropped_match_lowers_recall_and_shows_as_missed() -> None:
    world = generate(1_000, 4, NoiseConfig.none())
    result = reconcile(world.statement, world.ledger)
    dropped = result.matches.head(1).get_column("bank_line_id").item()
    report = score(
        dataclasses.replace(
            result, matches=result.matches.filter(pl.col("bank_line_id") != dropped)
        ),
        world.truth,
    )
    assert report.precision == 1.0
    assert report.recall < 1.0
    assert dropped in report.missed.get_column("bank_line_id").to_list()


def test_an_exception_with_the_wrong_reason_is_reported() -> None:
    world = generate(1_000, 4, NoiseConfig.only("missing_in_ledger", 0.05))
    result = reconcile(world.statement, world.ledger)
    relabelled = result.exceptions.with_columns(reason=pl.lit("ambiguous"))
    report = score(dataclasses.replace(result, exceptions=relabelled), world.truth)
    assert report.exception_accuracy < 1.0
    assert report.wrong_exceptions.height > 0
