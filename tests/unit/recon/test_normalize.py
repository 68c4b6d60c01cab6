"""Normalisers: CLABE, SPEI and cash references, amounts, dates, statement and ledger frames."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardia.core.errors import InvalidInput
from guardia.recon import normalize as norm

from .factories import bank_line, ledger, move, statement, utc

FIXTURE_CLABES = ["646180157200198457", "012180001234567899"]
DOC_CLABES = ["032180000118359719", "002010077777777771", "646180111805034237"]


# -------------------------------------------------------------------------------------- CLABE


@pytest.mark.parametrize("clabe", FIXTURE_CLABES + DOC_CLABES)
def test_real_format_clabes_pass_the_check_digit(clabe: str) -> None:
    assert norm.is_valid_clabe(clabe)


@pytest.mark.parametrize("position", range(18))
def test_changing_any_single_digit_of_a_clabe_makes_it_invalid(position: int) -> None:
    for clabe in FIXTURE_CLABES:
        digit = (int(clabe[position]) + 1) % 10
        flipped = clabe[:position] + str(digit) + clabe[position + 1 :]
        assert not norm.is_valid_clabe(flipped)


@pytest.mark.parametrize(
    "text", ["64618015720019845", "6461801572001984570", "64618015720019845X", ""]
)
def test_a_clabe_needs_exactly_eighteen_digits(text: str) -> None:
    assert not norm.is_valid_clabe(text)


def test_a_clabe_splits_into_bank_plaza_account_and_check_digit() -> None:
    clabe = norm.parse_clabe("646 180 15720019845 7")
    assert (clabe.bank_code, clabe.plaza, clabe.account, clabe.check_digit) == (
        "646",
        "180",
        "15720019845",
        7,
    )
    assert clabe.bank_name == "STP"
    assert clabe.spei_participant == "90646"


def test_parsing_an_invalid_clabe_raises_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        norm.parse_clabe("646180157200198458")


@given(st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_the_vectorised_clabe_check_agrees_with_the_scalar_one(first17: str) -> None:
    good = first17 + str(norm.clabe_check_digit(first17))
    bad = first17 + str((norm.clabe_check_digit(first17) + 1) % 10)
    frame = pl.DataFrame({"clabe": [good, bad]})
    assert frame.select(norm.clabe_valid_expr(pl.col("clabe"))).to_series().to_list() == [
        True,
        False,
    ]


# -------------------------------------------------------------------------------- references


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("MBAN01002504160012345678", "MBAN01002504160012345678"),
        ("mban-0100 2504160012345678", "MBAN01002504160012345678"),
        ("CR1744823415", "CR1744823415"),
        ("X" * 31, None),
        ("--", None),
    ],
)
def test_a_clave_de_rastreo_is_upper_alphanumeric_and_at_most_30_chars(
    raw: str, expected: str | None
) -> None:
    assert norm.normalize_rastreo(raw) == expected
    frame = pl.DataFrame({"r": [raw]})
    assert frame.select(norm.rastreo_expr(pl.col("r"))).item() == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1234567", "1234567"), ("0001234", "1234"), (42, "42"), ("12O4567", "1204567")],
)
def test_a_referencia_numerica_drops_leading_zeros_and_folds_ocr_letters(
    raw: str | int, expected: str
) -> None:
    assert norm.normalize_ref_num(raw) == expected


@pytest.mark.parametrize("raw", ["0", "0000000", "12345678", "12A4567", "-5"])
def test_a_referencia_numerica_outside_one_to_9999999_is_refused(raw: str) -> None:
    assert norm.normalize_ref_num(raw) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("93000262276908", "93000262276908"),
        ("10001140326893401915", "10001140326893401915"),
        ("1000 1140 3268 9340 1915", "10001140326893401915"),
        ("930002622769081", None),
        ("9300026227690", None),
    ],
)
def test_cash_references_are_14_digit_oxxo_or_20_digit_cash_in(
    raw: str, expected: str | None
) -> None:
    assert norm.normalize_cash_reference(raw) == expected
    frame = pl.DataFrame({"r": [raw]})
    assert frame.select(norm.cash_reference_expr(pl.col("r"))).item() == expected


@pytest.mark.parametrize(
    "text",
    [
        "SPEI RECIBIDO STP CONEKTA 4401234",
        "spei recibido conekta4401234",
        "Conekta:  4401234 liquidacion",
        "CONEKTA 440-1234",
        "PAGO Conekta 44O1234",
    ],
)
def test_the_conekta_transfer_label_is_found_whatever_the_case_and_spacing(text: str) -> None:
    assert norm.extract_conekta_reference(text) == "4401234"
    frame = pl.DataFrame({"concept": [text]})
    assert frame.select(norm.conekta_reference_expr(pl.col("concept"))).item() == "4401234"


@pytest.mark.parametrize("text", ["CONEKTA 44012345", "CONEKTA 440123", "SPEI 4401234"])
def test_a_conekta_label_needs_exactly_seven_digits(text: str) -> None:
    assert norm.extract_conekta_reference(text) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" mban-0100 2504 ", "MBAN01002504"),
        ("0004401234", "4401234"),
        ("44O1234", "4401234"),
        ("0000000", None),
        ("", None),
        (None, None),
    ],
)
def test_reference_keys_compare_regardless_of_case_separators_zeros_and_ocr_slips(
    raw: str | None, expected: str | None
) -> None:
    assert norm.reference_key(raw) == expected
    frame = pl.DataFrame({"r": [raw]}, schema={"r": pl.String()})
    assert frame.select(norm.reference_key_expr(pl.col("r"))).item() == expected


def test_a_referencia_numerica_is_read_from_a_ref_label_in_free_text() -> None:
    assert norm.extract_ref_num("SPEI RECIBIDO BANORTE REF 0012345 ANA LOPEZ") == "12345"
    assert norm.extract_ref_num("Referencia Numérica: 7654321") == "7654321"
    assert norm.extract_ref_num("REFERENCIA INTERNA") is None


# ----------------------------------------------------------------------------------- amounts


@pytest.mark.parametrize(
    ("raw", "cents"),
    [
        ("1,234.56", 123_456),
        ("$1,234.56", 123_456),
        ("-2,500.00", -250_000),
        ("'1500", 150_000),
        ("(1,000.00)", -100_000),
        ("0.5", 50),
        (" $ 12,345,678.90 ", 1_234_567_890),
        ("+7.05", 705),
    ],
)
def test_bank_amounts_parse_to_integer_cents(raw: str, cents: int) -> None:
    assert norm.parse_amount_cents(raw) == cents
    frame = pl.DataFrame({"a": [raw]})
    assert frame.select(norm.amount_cents_expr(pl.col("a"))).item() == cents


@pytest.mark.parametrize("raw", ["", "-", "  ", None])
def test_an_empty_amount_cell_is_none_not_zero(raw: str | None) -> None:
    assert norm.parse_amount_cents(raw) is None


@pytest.mark.parametrize(
    "raw", ["1,5", "12.345", "1.234,56", "12,34.00", "abc", "(5.00", "(-5.00)", "--5"]
)
def test_something_that_is_not_an_amount_is_refused(raw: str) -> None:
    with pytest.raises(InvalidInput):
        norm.parse_amount_cents(raw)
    frame = pl.DataFrame({"a": [raw]})
    assert frame.select(norm.amount_cents_expr(pl.col("a"))).item() is None


@given(st.integers(min_value=-(10**12), max_value=10**12), st.booleans())
def test_any_formatted_amount_round_trips_through_both_parsers(cents: int, dollar: bool) -> None:
    sign, symbol = ("-" if cents < 0 else ""), ("$" if dollar else "")
    text = f"{sign}{symbol}{abs(cents) // 100:,}.{abs(cents) % 100:02d}"
    assert norm.parse_amount_cents(text) == cents
    assert pl.DataFrame({"a": [text]}).select(norm.amount_cents_expr(pl.col("a"))).item() == cents


@pytest.mark.parametrize(
    ("cargo", "abono", "cents"),
    [
        ("-2,500.00", "", -250_000),
        ("2,500.00", None, -250_000),
        ("", "1,800.00", 180_000),
        ("-", "$1,800.00", 180_000),
        ("$10.00", "-", -1_000),
    ],
)
def test_cargo_is_a_debit_and_abono_a_credit_whatever_the_sign_convention(
    cargo: str | None, abono: str | None, cents: int
) -> None:
    assert norm.signed_amount_cents(cargo, abono) == cents
    frame = pl.DataFrame({"c": [cargo], "a": [abono]}, schema={"c": pl.String, "a": pl.String})
    assert frame.select(norm.signed_amount_expr(pl.col("c"), pl.col("a"))).item() == cents


def test_a_line_with_neither_cargo_nor_abono_is_refused() -> None:
    with pytest.raises(InvalidInput):
        norm.signed_amount_cents("", "-")


@pytest.mark.parametrize(
    ("bank", "book", "swap"),
    [
        (150_000, 1_500, "x100"),
        (1_500, 150_000, "div100"),
        (150_000, 150_000, None),
        (-150_000, 1_500, None),
    ],
)
def test_a_cents_versus_pesos_slip_is_detected(bank: int, book: int, swap: str | None) -> None:
    assert norm.unit_swap(bank, book) == swap
    frame = pl.DataFrame({"b": [bank], "l": [book]})
    assert frame.select(norm.unit_swap_expr(pl.col("b"), pl.col("l"))).item() is (swap is not None)


# --------------------------------------------------------------------------------------- time


@pytest.mark.parametrize(
    ("instant", "local"),
    [
        (utc(2025, 4, 16, 23, 30), date(2025, 4, 16)),
        (utc(2025, 4, 17, 5, 59), date(2025, 4, 16)),
        (utc(2025, 4, 17, 6, 0), date(2025, 4, 17)),
        (utc(2025, 1, 1, 5, 0), date(2024, 12, 31)),
    ],
)
def test_business_dates_are_mexico_city_dates_at_utc_minus_six(
    instant: datetime, local: date
) -> None:
    assert norm.business_date(instant) == local
    frame = pl.DataFrame({"at": [instant]})
    assert frame.select(norm.local_date_expr(pl.col("at"))).item() == local


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(InvalidInput):
        norm.business_date(datetime(2025, 4, 16, 12, 0))  # noqa: DTZ001 - the point of the test


def test_instants_parse_from_iso_strings_and_unix_seconds() -> None:
    assert norm.parse_instant("2025-04-16T17:10:14Z") == utc(2025, 4, 16, 17, 10).replace(second=14)
    assert norm.parse_instant(1744823415) == norm.parse_instant("2025-04-16T17:10:15+00:00")
    with pytest.raises(InvalidInput):
        norm.parse_instant("2025-04-16T17:10:14")


# ------------------------------------------------------------------------------------- frames


def test_a_statement_line_yields_its_references_and_the_counterparty_clabe() -> None:
    frame = statement(
        bank_line(
            "L1",
            "1,500.00",
            concept="SPEI RECIBIDO BANORTE 012180001234567899 REF 0012345 ANA",
            reference="mban-0100 2504160012345678",
        )
    )
    row = norm.normalize_statement(frame).row(0, named=True)
    assert row["amount_cents"] == 150_000
    assert row["ref_n"] == "12345"
    assert row["ref_l"] == "MBAN01002504160012345678"
    assert row["clabe"] == "012180001234567899"
    assert row["ref_l2"] is None


def test_a_reference_moved_into_the_concept_is_still_found() -> None:
    frame = statement(
        bank_line("L1", "10.00", concept="DEPOSITO CIE 2409992 10001140326893401915"),
        bank_line("L2", "10.00", concept="SPEI RECIBIDO HSBC mban0100250416OO12345678"),
    )
    rows = norm.normalize_statement(frame).sort("line_id").get_column("ref_l").to_list()
    assert rows == ["10001140326893401915", "MBAN01002504160012345678"]


def test_a_reimported_line_is_flagged_but_a_genuine_repeat_is_kept() -> None:
    same = {"concept": "DEPOSITO EN EFECTIVO", "abono": "500.00"}
    frame = statement(
        bank_line("L1", row_no=1, balance="1,500.00", **same),  # type: ignore[arg-type]
        bank_line("L2", row_no=2, balance="2,000.00", **same),  # type: ignore[arg-type]
        bank_line("L3", row_no=3, balance="2,000.00", **same),  # type: ignore[arg-type]
    )
    flags = norm.normalize_statement(frame).sort("line_id").select("is_reimport", "duplicate_of")
    assert flags.rows() == [(False, None), (False, None), (True, "L2")]


def test_a_missing_statement_line_shows_as_a_balance_break() -> None:
    frame = statement(
        bank_line("L1", "100.00", row_no=1, balance="1,100.00"),
        bank_line("L2", "50.00", row_no=2, balance="1,150.00"),
        bank_line("L4", cargo="-20.00", row_no=3, balance="1,100.00"),
    )
    breaks = norm.balance_breaks(norm.normalize_statement(frame))
    assert breaks.select("line_id", "difference_cents").rows() == [("L4", -3_000)]


def test_an_unparseable_amount_becomes_null_instead_of_failing_the_batch() -> None:
    frame = statement(bank_line("L1", "1.234,56"), bank_line("L2", "10.00"))
    amounts = norm.normalize_statement(frame).sort("line_id").get_column("amount_cents")
    assert amounts.to_list() == [None, 1_000]


def test_a_statement_without_a_required_column_is_refused() -> None:
    with pytest.raises(InvalidInput, match="missing columns"):
        norm.normalize_statement(statement(bank_line("L1", "1.00")).drop("concept"))


def test_repeated_line_ids_are_refused() -> None:
    with pytest.raises(InvalidInput, match="unique"):
        norm.normalize_statement(statement(bank_line("L1", "1.00"), bank_line("L1", "2.00")))


def test_ledger_dates_come_from_the_journal_or_from_mexico_city_time() -> None:
    raw = ledger(move("M1", 100, day=date(2025, 4, 20))).vstack(
        ledger(move("M2", 100)).with_columns(
            booked_date=pl.lit(None, dtype=pl.Date),
            occurred_at=pl.lit(utc(2025, 4, 17, 5, 0)),
        )
    )
    dates = norm.normalize_ledger(raw).sort("entry_id").get_column("local_date").to_list()
    assert dates == [date(2025, 4, 20), date(2025, 4, 16)]


def test_a_ledger_with_naive_timestamps_is_refused() -> None:
    raw = ledger(move("M1", 100)).with_columns(
        occurred_at=pl.lit(datetime(2025, 4, 17, 5, 0))  # noqa: DTZ001 - the point of the test
    )
    with pytest.raises(InvalidInput, match="naive"):
        norm.normalize_ledger(raw)


def test_one_ledger_id_with_two_contents_is_refused_but_an_exact_repeat_is_dropped() -> None:
    repeated = ledger(move("M1", 100), move("M1", 100))
    assert norm.normalize_ledger(repeated).height == 1
    with pytest.raises(InvalidInput, match="two different contents"):
        norm.normalize_ledger(ledger(move("M1", 100), move("M1", 101)))


@settings(max_examples=25)
@given(st.text(max_size=60))
def test_key_extraction_never_fails_on_arbitrary_text(text: str) -> None:
    frame = statement(bank_line("L1", "1.00", concept=text, reference=text))
    assert norm.normalize_statement(frame).height == 1
