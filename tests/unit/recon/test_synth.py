"""Synthetic data with ground truth, scored end to end: one noise label at a time."""

from __future__ import annotations

import dataclasses
from datetime import date

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from guardia.recon.match import reconcile
from guardia.recon.model import LEDGER_SCHEMA, STATEMENT_SCHEMA
from guardia.recon.normalize import is_valid_clabe, normalize_ledger, reference_key
from guardia.recon.score import ScoreReport, score
from guardia.recon.synth import TRUTH_SCHEMA, Noise, NoiseConfig, SyntheticSet, generate

LINES = 3_000
# Rates high enough for every label to occur many times in a small world.
RATES = {
    Noise.TZ_SHIFT: 0.5,
    Noise.CUTOFF_STRADDLE: 1.0,
    Noise.REFUND: 0.3,
    Noise.RETENTION: 0.5,
    Noise.GENUINE_REPEAT: 0.01,
}
EXCEPTION_LABELS = {
    Noise.UNIT_SWAP,
    Noise.DUPLICATE_REIMPORT,
    Noise.GENUINE_REPEAT,
    Noise.MISSING_IN_BANK,
    Noise.MISSING_IN_LEDGER,
    Noise.RETENTION,
    Noise.PARTIAL_PAYMENT,
    Noise.OUT_OF_SCOPE,
}


def test_the_generator_is_a_pure_function_of_its_arguments() -> None:
    first = generate(500, 42, NoiseConfig())
    again = generate(500, 42, NoiseConfig())
    other = generate(500, 43, NoiseConfig())
    assert_frame_equal(first.statement, again.statement)
    assert_frame_equal(first.ledger, again.ledger)
    assert_frame_equal(first.truth, again.truth)
    assert not first.statement.equals(other.statement)


def test_generated_frames_follow_the_declared_schemas() -> None:
    world = generate(500, 1, NoiseConfig())
    assert world.statement.schema == STATEMENT_SCHEMA
    assert world.ledger.schema == LEDGER_SCHEMA
    assert world.truth.schema == TRUTH_SCHEMA
    assert all(is_valid_clabe(account) for account in world.accounts)


def test_every_statement_line_has_exactly_one_truth_row() -> None:
    world = generate(2_000, 2, NoiseConfig())
    truth_lines = world.truth.get_column("bank_line_id").drop_nulls()
    assert truth_lines.is_unique().all()
    assert sorted(truth_lines.to_list()) == sorted(world.statement.get_column("line_id").to_list())


def test_money_is_integer_cents_and_charges_carry_fee_plus_iva() -> None:
    world = generate(2_000, 3, NoiseConfig())
    assert world.ledger.schema["amount_cents"] == pl.Int64
    charges = world.ledger.filter(pl.col("kind") == "charge")
    assert (charges.get_column("fee_cents") > 0).all()
    assert (charges.get_column("fee_cents") < charges.get_column("amount_cents")).all()


def test_only_switches_on_a_single_noise_operator() -> None:
    noise = NoiseConfig.only(Noise.MANGLED_REF, 0.2)
    active = {
        f.name for f in dataclasses.fields(noise) if f.name != "fees" and getattr(noise, f.name)
    }
    assert active == {"mangled_ref"}
    assert not noise.fees
    assert NoiseConfig.only(Noise.FEE).fees


@pytest.mark.parametrize("label", list(Noise), ids=lambda label: label.value)
def test_each_noise_label_alone_keeps_precision_at_100_and_reaches_its_expected_recall(
    label: Noise,
) -> None:
    world = generate(LINES, 3, NoiseConfig.only(label, RATES.get(label, 0.05)))
    report = score(reconcile(world.statement, world.ledger), world.truth)
    assert report.false_matches.is_empty()
    assert report.precision == 1.0
    rows = {row["label"]: row for row in report.per_label.iter_rows(named=True)}
    row = rows[label.value]
    assert row["truth_rows"] > 0
    assert row["right_exceptions"] == row["expected_exceptions"]
    if label in EXCEPTION_LABELS:
        assert row["expected_exceptions"] > 0
    else:
        assert row["true_pairs"] > 0
    if label is Noise.MANGLED_REF:
        _only_unspecific_truncations_are_missed(world, report)
    else:
        assert row["found_pairs"] == row["true_pairs"]


def _only_unspecific_truncations_are_missed(world: SyntheticSet, report: ScoreReport) -> None:
    """A reference cut so short that several ledger references start with it is no evidence.

    Every other damage (case, separators, zeros, OCR slips, moved into the concept) must be
    undone; a truncated reference is expected to match only while it still singles out one
    ledger reference.
    """
    missed = report.missed.filter(pl.col("labels").list.contains("mangled_ref"))
    assert all(
        any(label.startswith("mangled_ref:truncated") for label in labels)
        for labels in missed.get_column("labels").to_list()
    )
    book = normalize_ledger(world.ledger)
    refs = pl.concat([book.get_column("ref_l"), book.get_column("ref_l2")]).drop_nulls().to_list()
    cells = dict(world.statement.select("line_id", "reference").iter_rows())
    for line_id in missed.get_column("bank_line_id").to_list():
        key = reference_key(cells[line_id])
        assert key is not None
        assert sum(ref.startswith(key) for ref in refs) > 1, line_id


def test_the_default_noise_profile_meets_the_quality_targets_on_a_small_world() -> None:
    world = generate(5_000, 8, NoiseConfig())
    result = reconcile(world.statement, world.ledger)
    report = score(result, world.truth)
    assert report.false_matches.is_empty()
    assert report.recall >= 0.98
    hops = report.as_dict()
    assert hops["hop1_precision"] == hops["hop2_precision"] == 1.0
    assert hops["hop2_true_pairs"] > 0
    assert result.summary()["match_rate_count"] >= 0.95


def test_the_default_world_holds_every_settlement_trap() -> None:
    world = generate(5_000, 8, NoiseConfig(refund=0.1, retention=0.2, cutoff_straddle=0.5))
    book = world.ledger
    transfers = book.filter(pl.col("kind") == "transfer")
    local = pl.col("occurred_at").dt.convert_time_zone("America/Mexico_City")
    # Created the next business morning: never at the weekend or on Holy Thursday / Friday.
    assert transfers.select((local.dt.hour() >= 7) & (local.dt.hour() < 11)).to_series().all()
    days = set(transfers.select(local.dt.date()).to_series().to_list())
    assert days.isdisjoint({date(2025, 4, 17), date(2025, 4, 18), date(2025, 4, 19)})
    assert date(2025, 4, 21) in days  # Wednesday's charges, the holidays and the weekend
    assert {"charge", "refund", "chargeback"} <= set(book.get_column("kind").to_list())
    labels = set(world.truth.get_column("labels").explode().drop_nulls().to_list())
    traps = {"refund", "retention", "cutoff_straddle", "bank_fee", "out_of_scope", "batching"}
    assert traps <= labels
    concepts = world.statement.get_column("concept").to_list()
    assert any(c.startswith("IVA COMISION") for c in concepts)
    assert any("NOMINA" in c for c in concepts)
