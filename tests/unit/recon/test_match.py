"""The matching pipeline on hand-written cases: exact, windowed, payouts, exceptions, KPI."""

from __future__ import annotations

import json
from datetime import date, time, timedelta
from functools import lru_cache
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from guardia.core.errors import InvalidInput
from guardia.recon.match import ReconResult, match, reconcile
from guardia.recon.model import CutoffRule, LineClass, LineRule, MatchConfig, PayoutConfig
from guardia.recon.synth import NoiseConfig, generate

from .factories import DAY, bank_line, charge, ledger, move, statement, transfer, utc

RASTREO = "MBAN01002504160012345678"
OTHER_RASTREO = "BNET01002504160087654321"


def run(lines: pl.DataFrame, book: pl.DataFrame, config: MatchConfig | None = None) -> ReconResult:
    return reconcile(lines, book, config)


def matched(result: ReconResult) -> dict[str, tuple[list[str], str]]:
    return {
        row["bank_line_id"]: (row["ledger_ids"], row["rule"])
        for row in result.matches.iter_rows(named=True)
    }


def exception_for(
    result: ReconResult, *, line: str | None = None, entry: str | None = None
) -> dict[str, Any]:
    rows = result.exceptions.filter(
        (pl.col("side") == "bank") & (pl.col("bank_line_id") == line)
        if line is not None
        else (pl.col("side") == "ledger") & (pl.col("ledger_id") == entry)
    )
    assert rows.height == 1, rows
    row = rows.row(0, named=True)
    row["candidates"] = json.loads(row["candidates"])
    return row


# ---------------------------------------------------------------------------- pass (a) / (b)


def test_a_line_and_an_entry_sharing_amount_and_rastreo_match_exactly() -> None:
    result = run(
        statement(bank_line("L1", "1,500.00", reference=RASTREO)),
        ledger(move("M1", 150_000, reference=RASTREO)),
    )
    assert matched(result) == {"L1": (["M1"], "exact_ref")}
    assert result.exceptions.is_empty()


def test_the_date_never_joins_but_bounds_the_window() -> None:
    far = DAY + timedelta(days=30)
    result = run(
        statement(bank_line("L1", "1,500.00", reference=RASTREO)),
        ledger(move("M1", 150_000, reference=RASTREO, day=far)),
    )
    assert result.matches.is_empty()
    assert exception_for(result, line="L1")["reason"] == "missing_in_ledger"


@pytest.mark.parametrize(
    ("concept", "reference"),
    [("DEPOSITO EN EFECTIVO", None), ("SPEI RECIBIDO REF 0000001", None)],
)
def test_two_identical_candidates_go_to_a_person_with_both_listed(
    concept: str, reference: str | None
) -> None:
    memo = "REF 1" if "REF" in concept else None
    result = run(
        statement(bank_line("L1", "500.00", concept=concept)),
        ledger(move("M1", 50_000, memo=memo), move("M2", 50_000, memo=memo)),
    )
    assert result.matches.is_empty()
    case = exception_for(result, line="L1")
    assert case["reason"] == "ambiguous"
    assert sorted(c["ledger_id"] for c in case["candidates"]) == ["M1", "M2"]
    assert {c["score"] for c in case["candidates"]} == {case["candidates"][0]["score"]}
    assert exception_for(result, entry="M1")["reason"] == "ambiguous"
    assert exception_for(result, entry="M2")["reason"] == "ambiguous"


def test_two_identical_lines_do_not_both_claim_one_entry() -> None:
    result = run(
        statement(
            bank_line("L1", "500.00", concept="DEPOSITO EN EFECTIVO"),
            bank_line("L2", "500.00", concept="DEPOSITO EN EFECTIVO"),
        ),
        ledger(move("M1", 50_000)),
    )
    assert result.matches.is_empty()
    assert exception_for(result, line="L1")["reason"] == "ambiguous"
    assert exception_for(result, line="L2")["reason"] == "ambiguous"


WEAK = {"concept": "SPEI RECIBIDO REF 0000001"}


def test_a_nearer_date_alone_is_not_a_clear_enough_winner() -> None:
    result = run(
        statement(bank_line("L1", "500.00", **WEAK)),  # type: ignore[arg-type]
        ledger(
            move("M1", 50_000, memo="REF 1"),
            move("M2", 50_000, memo="REF 1", day=DAY + timedelta(days=1)),
        ),
    )
    assert result.matches.is_empty()
    assert exception_for(result, line="L1")["reason"] == "ambiguous"


def test_an_exception_lists_its_candidates_best_first_with_scores() -> None:
    result = run(
        statement(bank_line("L1", "500.00", **WEAK)),  # type: ignore[arg-type]
        ledger(
            move("M1", 50_000, memo="REF 1", day=DAY + timedelta(days=4)),
            move("M2", 50_000, memo="REF 1", day=DAY + timedelta(days=2)),
            move("M3", 50_000, memo="REF 1"),
        ),
    )
    case = exception_for(result, line="L1")
    assert case["reason"] == "ambiguous"
    assert [(c["ledger_id"], c["score"], c["relation"]) for c in case["candidates"]] == [
        ("M3", 0.84, "weak"),
        ("M2", 0.76, "weak"),
        ("M1", 0.68, "weak"),
    ]


def test_a_candidate_far_better_on_date_wins_by_the_margin() -> None:
    result = run(
        statement(bank_line("L1", "500.00", **WEAK)),  # type: ignore[arg-type]
        ledger(
            move("M1", 50_000, memo="REF 1"),
            move("M2", 50_000, memo="REF 1", day=DAY + timedelta(days=4)),
        ),
    )
    assert matched(result) == {"L1": (["M1"], "window_score")}


def test_the_margin_is_configurable() -> None:
    lines = statement(bank_line("L1", "500.00", **WEAK))  # type: ignore[arg-type]
    book = ledger(
        move("M1", 50_000, memo="REF 1"),
        move("M2", 50_000, memo="REF 1", day=DAY + timedelta(days=1)),
    )
    assert run(lines, book).matches.is_empty()
    assert matched(run(lines, book, MatchConfig(margin=0.03))) == {"L1": (["M1"], "window_score")}


def test_a_distinctive_amount_matches_without_any_reference() -> None:
    result = run(
        statement(bank_line("L1", "1,234.56", concept="DEPOSITO EN EFECTIVO")),
        ledger(move("M1", 123_456, day=DAY + timedelta(days=1))),
    )
    assert matched(result) == {"L1": (["M1"], "window_score")}


def test_without_references_a_look_alike_nearby_sends_the_line_to_a_person() -> None:
    # M2 was already explained by L2; it still shows that 1,234.56 is not a rare amount here.
    result = run(
        statement(
            bank_line("L1", "1,234.56", concept="DEPOSITO EN EFECTIVO"),
            bank_line(
                "L2", "1,234.56", concept="DEPOSITO EN EFECTIVO", day=DAY + timedelta(days=6)
            ),
        ),
        ledger(move("M1", 123_456), move("M2", 123_456, day=DAY + timedelta(days=6))),
    )
    assert result.matches.is_empty()
    case = exception_for(result, line="L1")
    assert case["reason"] == "ambiguous"
    assert case["candidates"][0]["why"] == "amount_not_distinctive"


def test_a_conflicting_rastreo_is_never_matched_on_amount_and_date() -> None:
    result = run(
        statement(bank_line("L1", "1,500.00", reference=RASTREO)),
        ledger(move("M1", 150_000, reference=OTHER_RASTREO)),
    )
    assert result.matches.is_empty()
    case = exception_for(result, line="L1")
    assert case["reason"] == "missing_in_ledger"
    assert [(c["ledger_id"], c["why"]) for c in case["candidates"]] == [
        ("M1", "reference_conflict")
    ]


def test_a_reference_on_one_side_only_is_refused_unless_configured() -> None:
    lines = statement(bank_line("L1", "1,500.00", reference=RASTREO))
    book = ledger(move("M1", 150_000))
    assert run(lines, book).matches.is_empty()
    relaxed = run(lines, book, MatchConfig(accept_one_sided_reference=True))
    assert matched(relaxed) == {"L1": (["M1"], "window_score")}


def test_a_truncated_reference_posted_next_day_matches_in_the_window() -> None:
    result = run(
        statement(bank_line("L1", "1,500.00", reference=RASTREO[:16].lower())),
        ledger(move("M1", 150_000, reference=RASTREO, day=DAY + timedelta(days=1))),
    )
    assert matched(result) == {"L1": (["M1"], "window_score")}


def _cut_to_ten(*extra: dict[str, object]) -> ReconResult:
    sibling = RASTREO[:10] + "9999999999"
    return run(
        statement(bank_line("L1", "1,500.00", reference=RASTREO[:10])),
        ledger(
            move("M1", 150_000, reference=RASTREO),
            move("M2", 70_000, reference=sibling, day=DAY - timedelta(days=40)),
            *extra,
        ),
    )


def test_a_prefix_many_references_share_stands_only_on_a_distinctive_amount() -> None:
    assert matched(_cut_to_ten()) == {"L1": (["M1"], "window_score")}


def test_a_prefix_many_references_share_is_no_evidence_next_to_a_look_alike_amount() -> None:
    result = _cut_to_ten(move("M3", 150_000, reference=OTHER_RASTREO, day=DAY - timedelta(days=6)))
    assert result.matches.is_empty()
    case = exception_for(result, line="L1")
    assert case["reason"] == "ambiguous"
    assert [(c["ledger_id"], c["why"]) for c in case["candidates"]] == [
        ("M1", "amount_not_distinctive")
    ]


def test_one_cent_of_rounding_is_tolerated_only_with_a_strong_reference() -> None:
    result = run(
        statement(
            bank_line("L1", "1,500.01", reference=RASTREO),
            bank_line("L2", "700.01", concept="DEPOSITO EN EFECTIVO"),
        ),
        ledger(move("M1", 150_000, reference=RASTREO), move("M2", 70_000)),
    )
    assert matched(result) == {"L1": (["M1"], "window_score")}
    assert exception_for(result, line="L2")["reason"] == "missing_in_ledger"


def test_a_cents_versus_pesos_slip_becomes_a_unit_mismatch_case() -> None:
    result = run(
        statement(bank_line("L1", "1,500.00", reference=RASTREO)),
        ledger(move("M1", 1_500, reference=RASTREO)),
    )
    assert result.matches.is_empty()
    case = exception_for(result, line="L1")
    assert case["reason"] == "unit_mismatch"
    assert case["candidates"][0]["ledger_id"] == "M1"
    assert exception_for(result, entry="M1")["reason"] == "unit_mismatch"


def test_a_partial_payment_becomes_an_amount_mismatch_case() -> None:
    result = run(
        statement(bank_line("L1", "1,400.00", reference=RASTREO)),
        ledger(move("M1", 150_000, reference=RASTREO)),
    )
    assert exception_for(result, line="L1")["reason"] == "amount_mismatch"


def test_a_reimported_line_is_an_exception_pointing_at_the_original() -> None:
    result = run(
        statement(
            bank_line("L1", "1,500.00", reference=RASTREO, row_no=1, balance="9,000.00"),
            bank_line("L2", "1,500.00", reference=RASTREO, row_no=2, balance="9,000.00"),
        ),
        ledger(move("M1", 150_000, reference=RASTREO)),
    )
    assert matched(result) == {"L1": (["M1"], "exact_ref")}
    case = exception_for(result, line="L2")
    assert case["reason"] == "duplicate_line"
    assert case["candidates"] == [{"duplicate_of": "L1"}]


def test_an_orphan_ledger_entry_is_missing_in_bank() -> None:
    result = run(
        statement(bank_line("L1", "1,500.00", reference=RASTREO)),
        ledger(move("M1", 150_000, reference=RASTREO), move("M2", 99_00, reference=OTHER_RASTREO)),
    )
    assert exception_for(result, entry="M2")["reason"] == "missing_in_bank"


def test_an_unparseable_amount_is_an_exception_not_a_crash() -> None:
    result = run(statement(bank_line("L1", "1.500,00")), ledger(move("M1", 150_000)))
    assert exception_for(result, line="L1")["reason"] == "unparseable_amount"


# -------------------------------------------------------------------------------- payouts


# Wednesday 16 April 2025; Holy Thursday and Good Friday close the banks, so Wednesday's
# charges are paid out with the weekend's on Monday 21 April, created that morning.
PAYOUT_AT = utc(2025, 4, 21, 15)  # 09:00 local
MONDAY = date(2025, 4, 21)


def _payout_line(line_id: str, amount: int, reference: str, day: date = MONDAY) -> dict[str, Any]:
    pesos = f"{amount // 100:,}.{amount % 100:02d}"
    return bank_line(line_id, pesos, concept=f"SPEI RECIBIDO STP CONEKTA {reference}", day=day)


def _payout_day(*, amount: int, reference: str = "4401234", line: bool = True) -> ReconResult:
    book = ledger(
        charge("C1", 100_000, 4_000, utc(2025, 4, 16, 16)),
        charge("C2", 50_000, 2_000, utc(2025, 4, 18, 18)),
        charge("C3", 20_000, 1_000, utc(2025, 4, 21, 2)),  # Sunday 20:00 local
        transfer("T1", amount, PAYOUT_AT, reference),
        charge("C4", 10_000, 500, utc(2025, 4, 21, 14)),  # Monday 08:00: Tuesday's payout
    )
    rows = [_payout_line("L1", amount, reference)]
    return run(statement(*rows[: int(line)]), book)


def test_a_payout_is_explained_by_the_local_days_before_it_rolled_over_holidays() -> None:
    result = _payout_day(amount=163_000)
    assert matched(result) == {"L1": (["C1", "C2", "C3", "T1"], "payout_contiguous")}
    assert exception_for(result, entry="C4")["reason"] == "unsettled_charge"


def test_a_payout_short_of_its_window_is_matched_to_the_transfer_only_with_evidence() -> None:
    result = _payout_day(amount=163_000 - 1_234)
    assert matched(result) == {"L1": (["T1"], "payout_transfer_only")}
    case = exception_for(result, entry="T1")
    assert case["reason"] == "unexplained_payout_residual"
    assert case["candidates"]["residual_cents"] == -1_234
    assert case["candidates"]["predicted"]["windows"][0]["entries"] == 3
    assert exception_for(result, entry="C2")["reason"] == "unexplained_payout_residual"


def test_charges_of_a_payout_that_never_reached_the_bank_are_flagged() -> None:
    result = _payout_day(amount=163_000, line=False)
    assert result.matches.is_empty()
    assert exception_for(result, entry="T1")["reason"] == "missing_in_bank"
    case = exception_for(result, entry="C1")
    assert case["reason"] == "payout_unmatched"
    assert case["candidates"] == [{"transfer_id": "T1", "bank_line_id": None}]


def test_a_payout_nets_the_refunds_chargebacks_and_fees_of_its_window() -> None:
    book = ledger(
        charge("C1", 100_000, 4_000, utc(2025, 4, 16, 16)),
        {**charge("R1", -30_000, 0, utc(2025, 4, 16, 20)), "kind": "refund"},
        {**charge("B1", -10_000, 500, utc(2025, 4, 19, 20)), "kind": "chargeback"},
        {**charge("F1", 0, 1_160, utc(2025, 4, 20, 20)), "kind": "fee"},
        transfer("T1", 54_340, PAYOUT_AT, "4401234"),
    )
    result = run(statement(_payout_line("L1", 54_340, "4401234")), book)
    assert matched(result) == {"L1": (["B1", "C1", "F1", "R1", "T1"], "payout_contiguous")}


def test_a_payout_after_one_that_never_came_is_explained_by_the_longer_window() -> None:
    book = ledger(
        charge("C1", 100_000, 4_000, utc(2025, 4, 14, 16)),  # Monday: paid (never) on Tuesday
        charge("C2", 50_000, 2_000, utc(2025, 4, 15, 16)),  # Tuesday: paid on Wednesday
        transfer("T2", 144_000, utc(2025, 4, 16, 15), "4405678"),
    )
    result = run(statement(_payout_line("L2", 144_000, "4405678", date(2025, 4, 16))), book)
    assert matched(result) == {"L2": (["C1", "C2", "T2"], "payout_window")}


def test_two_windows_explaining_the_amount_make_the_payout_ambiguous() -> None:
    book = ledger(
        charge("C1", 50_000, 2_000, utc(2025, 4, 14, 16)),  # Monday's payout never came
        charge("C2", 50_000, 2_000, utc(2025, 4, 15, 16)),
        transfer("T2", 48_000, utc(2025, 4, 16, 15), "4405678"),
    )
    result = run(statement(_payout_line("L2", 48_000, "4405678", date(2025, 4, 16))), book)
    assert matched(result) == {"L2": (["T2"], "payout_transfer_only")}
    case = exception_for(result, entry="T2")
    assert case["reason"] == "ambiguous_payout"
    firsts = sorted(s["windows"][0]["first"] for s in case["candidates"]["solutions"])
    assert firsts == ["C1", "C2"]


def test_each_payment_method_settles_by_its_own_cut_off_rule() -> None:
    cash_t_plus_2 = CutoffRule(cutoff=time(0, 0), lag=2, channel="cash")
    config = MatchConfig(payout=PayoutConfig(rules=(cash_t_plus_2, CutoffRule())))
    book = ledger(
        charge("K1", 100_000, 4_000, utc(2025, 4, 9, 16)),  # Wednesday card: Thursday
        {**charge("X1", 30_000, 1_000, utc(2025, 4, 8, 16)), "channel": "cash"},  # Tue: Thu
        {**charge("X2", 20_000, 1_000, utc(2025, 4, 9, 16)), "channel": "cash"},  # Wed: Fri
        transfer("T1", 125_000, utc(2025, 4, 10, 15), "4401234"),
    )
    lines = statement(_payout_line("L1", 125_000, "4401234", date(2025, 4, 10)))
    assert matched(run(lines, book, config)) == {"L1": (["K1", "T1", "X1"], "payout_contiguous")}
    assert matched(run(lines, book)) == {"L1": (["T1"], "payout_transfer_only")}


# ------------------------------------------------------------------------------------- KPI


def test_kpi_counts_matched_share_by_count_and_by_amount_per_day_and_account() -> None:
    result = run(
        statement(
            bank_line("L1", "300.00", reference=RASTREO),
            bank_line("L2", cargo="-100.00", reference=OTHER_RASTREO),
            bank_line("L3", "50.00", reference=RASTREO, day=DAY + timedelta(days=1), account="X"),
        ),
        ledger(move("M1", 30_000, reference=RASTREO)),
    )
    rows = result.kpi.select(
        "account", "local_date", "lines", "matched_lines", "match_rate_count", "match_rate_amount"
    ).rows()
    assert rows == [
        ("012180001234567899", DAY, 2, 1, 0.5, 0.75),
        ("X", DAY + timedelta(days=1), 1, 0, 0.0, 0.0),
    ]
    assert result.summary()["match_rate_count"] == pytest.approx(1 / 3)


def _a_day_of_the_statement() -> pl.DataFrame:
    return statement(
        bank_line("L1", "300.00", reference=RASTREO),
        bank_line("L2", cargo="-250,000.00", concept="PAGO NOMINA QUINCENAL"),
        bank_line("L3", cargo="-40,000.00", concept="RENTA OFICINA 04/2025"),
        bank_line("L4", cargo="-8.00", concept="COMISION SPEI"),
        bank_line("L5", cargo="-1.28", concept="IVA COMISION SPEI"),
        bank_line("L6", cargo="-6.50", concept="COMISION MANEJO DE CUENTA"),
    )


def test_out_of_scope_lines_leave_the_kpi_but_are_listed_with_their_rule() -> None:
    result = run(_a_day_of_the_statement(), ledger(move("M1", 30_000, reference=RASTREO)))
    assert exception_for(result, line="L2")["candidates"] == [
        {"line_class": "out_of_scope", "rule": "payroll"}
    ]
    assert exception_for(result, line="L3")["reason"] == "out_of_scope"
    summary = result.summary()
    assert (summary["lines"], summary["matched_lines"], summary["out_of_scope_lines"]) == (4, 3, 2)
    assert summary["match_rate_amount"] == pytest.approx(30_928 / 31_578)


def test_a_bank_commission_and_its_iva_match_each_other_as_a_fee() -> None:
    result = run(_a_day_of_the_statement(), ledger())
    assert matched(result) == {
        "L4": (["L5"], "bank_fee_pair"),
        "L5": (["L4"], "bank_fee_pair"),
    }
    assert exception_for(result, line="L6")["reason"] == "unpaired_bank_fee"


def test_line_rules_are_per_account() -> None:
    rules = (LineRule("loans", LineClass.OUT_OF_SCOPE, "SPEI ENVIADO", account="OTHER"),)
    lines = statement(bank_line("L1", cargo="-100.00", concept="SPEI ENVIADO BBVA"))
    assert run(lines, ledger(), MatchConfig(line_rules=rules)).summary()["lines"] == 1
    other = statement(bank_line("L1", cargo="-100.00", concept="SPEI ENVIADO", account="OTHER"))
    assert run(other, ledger(), MatchConfig(line_rules=rules)).summary()["lines"] == 0


# ------------------------------------------------------------------------------ determinism


@lru_cache(maxsize=1)
def _small_world() -> tuple[pl.DataFrame, pl.DataFrame]:
    noise = NoiseConfig(
        mangled_ref=0.1, duplicate_reimport=0.02, genuine_repeat=0.01, unit_swap=0.01,
        partial_payment=0.01, missing_in_bank=0.02, missing_in_ledger=0.02, refund=0.2,
        cutoff_straddle=0.5,
    )  # fmt: skip
    world = generate(1_500, 5, noise)
    return world.statement, world.ledger


def _same(left: ReconResult, right: ReconResult) -> None:
    assert_frame_equal(left.matches, right.matches)
    assert_frame_equal(left.exceptions, right.exceptions)
    assert_frame_equal(left.kpi, right.kpi)
    assert_frame_equal(left.balance_breaks, right.balance_breaks)


@settings(max_examples=6, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1), st.integers(min_value=0, max_value=2**32 - 1))
def test_a_shuffled_input_gives_the_same_result(statement_seed: int, ledger_seed: int) -> None:
    lines, book = _small_world()
    expected = reconcile(lines, book)
    shuffled = reconcile(
        lines.sample(fraction=1.0, shuffle=True, seed=statement_seed),
        book.sample(fraction=1.0, shuffle=True, seed=ledger_seed),
    )
    _same(expected, shuffled)


def test_match_refuses_raw_frames_that_were_not_normalised() -> None:
    raw_lines = statement(bank_line("L1", "1,500.00", reference=RASTREO))
    raw_book = ledger(move("M1", 150_000, reference=RASTREO))
    with pytest.raises(InvalidInput, match="missing columns"):
        match(raw_lines, raw_book)
