"""Canonical keys for reconciliation: CLABE, SPEI references, OXXO/cash references, amounts, dates.

Two layers share one set of rules:

- scalar helpers (``is_valid_clabe``, ``parse_amount_cents``, ``reference_key`` …) for single
  values, e.g. when an operator types a reference;
- vectorised polars expressions and ``normalize_statement`` / ``normalize_ledger`` for the hot
  path, which turn raw frames (``STATEMENT_SCHEMA``, ``LEDGER_SCHEMA``) into the normalised
  frames the matcher reads.

Reference keys are comparison tokens, not display values: upper-cased, stripped of everything but
``A-Z0-9``, with the OCR confusions ``O→0`` and ``I→1`` folded on both sides, and leading zeros
dropped from all-digit keys (banks pad the referencia numérica to 7 digits; Excel strips zeros).
Two kinds of key come out of a row:

- ``ref_n``: a short numeric reference (1-7 digits): SPEI referencia numérica or a Conekta
  ``statement_reference``; payer-chosen, so weak on its own;
- ``ref_l``: a long reference (8-30 chars): clave de rastreo or a 14/20-digit cash reference;
  close to unique, so strong.

A row keeps up to two of each (``ref_n``/``ref_n2``, ``ref_l``/``ref_l2``). A valid CLABE found
in the text is kept apart (``clabe``): it names a counterparty, not a payment.

Normalised frames (``NORMALIZED_STATEMENT_SCHEMA``, ``NORMALIZED_LEDGER_SCHEMA``) add to the raw
ones: ``local_date`` (statement: the operation date; ledger: the journal date, else the
America/Mexico_City date of ``occurred_at``), ``amount_cents`` (statement: abono - |cargo|, null
when a cell does not parse), ``balance_cents``, the key columns above, ``is_reimport`` and
``duplicate_of`` (statement) and ``net_cents`` = amount - fee (ledger).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final, Literal

import polars as pl

from guardia.core.clock import MEXICO_CITY, local_date
from guardia.core.errors import InvalidInput
from guardia.recon.model import (
    LEDGER_SCHEMA,
    NORMALIZED_LEDGER_SCHEMA,
    NORMALIZED_STATEMENT_SCHEMA,
    STATEMENT_SCHEMA,
)

CLABE_WEIGHTS: Final = (3, 7, 1) * 6
ZONE: Final = MEXICO_CITY.key

# ABM bank code → (name, SPEI participant code); from the bank tables in cuenca-mx/clabe-python.
BANKS: Final[dict[str, tuple[str, str]]] = {
    "002": ("BANAMEX", "40002"),
    "012": ("BBVA MEXICO", "40012"),
    "014": ("SANTANDER", "40014"),
    "021": ("HSBC", "40021"),
    "036": ("INBURSA", "40036"),
    "044": ("SCOTIABANK", "40044"),
    "072": ("BANORTE", "40072"),
    "127": ("AZTECA", "40127"),
    "137": ("BANCOPPEL", "40137"),
    "638": ("NU MEXICO", "90638"),
    "646": ("STP", "90646"),
}

# Shared by the scalar helpers (Python re) and the polars expressions (Rust regex): keep both
# dialects happy, so no look-around.
_NUMBER: Final = r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]{1,2})?"
AMOUNT_PATTERN: Final = rf"^(?:\({_NUMBER}\)|[+-]?{_NUMBER})$"
CONEKTA_PATTERN: Final = r"(?i)CONEKTA[\s:#.\-]*([0-9OI](?:[\s\-]?[0-9OI]){6})(?:[^0-9A-Z]|$)"
REF_NUM_PATTERN: Final = (
    r"(?i)\bREF(?:ERENCIA)?\.?(?:\s*(?:NUM(?:[EÉ]RICA)?|NO)\b\.?)?"
    r"[\s:#.]*([0-9OI]{1,7})(?:[^0-9A-Z]|$)"
)
WORD_PATTERN: Final = r"(?i)\b[A-Z0-9]*[0-9][A-Z0-9]*\b"

_AMOUNT_RE: Final = re.compile(AMOUNT_PATTERN)
_CONEKTA_RE: Final = re.compile(CONEKTA_PATTERN)
_REF_NUM_RE: Final = re.compile(REF_NUM_PATTERN)
_NON_ALNUM_RE: Final = re.compile(r"[^A-Z0-9]")
_OCR_FOLD: Final = str.maketrans({"O": "0", "I": "1"})

LONG_KEY_MIN: Final = 8
TOKEN_MIN: Final = 10
TOKEN_MAX: Final = 30
RASTREO_MAX: Final = 30
REF_NUM_MAX: Final = 9_999_999

UnitSwap = Literal["x100", "div100"]


# --------------------------------------------------------------------------------------------
# CLABE
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Clabe:
    """An 18-digit CLABE split into its parts."""

    value: str
    bank_code: str
    plaza: str
    account: str
    check_digit: int

    @property
    def bank_name(self) -> str | None:
        """Return the bank's name, if the ABM code is known."""
        known = BANKS.get(self.bank_code)
        return known[0] if known else None

    @property
    def spei_participant(self) -> str | None:
        """Return the 5-digit SPEI participant code, if the ABM code is known."""
        known = BANKS.get(self.bank_code)
        return known[1] if known else None


def clabe_check_digit(first17: str) -> int:
    """Compute the CLABE check digit of 17 digits with weights 3,7,1."""
    if len(first17) != 17 or not first17.isdigit() or not first17.isascii():
        raise InvalidInput("a CLABE check digit needs exactly 17 digits")
    total = sum((int(d) * w) % 10 for d, w in zip(first17, CLABE_WEIGHTS, strict=False))
    return (10 - total % 10) % 10


def is_valid_clabe(text: str) -> bool:
    """Tell whether a string is an 18-digit CLABE with a correct check digit."""
    value = text.strip()
    if len(value) != 18 or not value.isdigit() or not value.isascii():
        return False
    return clabe_check_digit(value[:17]) == int(value[17])


def parse_clabe(text: str) -> Clabe:
    """Split a valid CLABE into bank, plaza, account and check digit, or raise InvalidInput."""
    value = re.sub(r"[\s\-]", "", text)
    if not is_valid_clabe(value):
        raise InvalidInput(f"not a valid CLABE: {text!r}")
    return Clabe(value, value[:3], value[3:6], value[6:17], int(value[17]))


def clabe_valid_expr(expr: pl.Expr) -> pl.Expr:
    """Vectorised CLABE check: true where the value is 18 digits with a correct check digit."""
    # Integer arithmetic on the 18-digit number (< 2**63) instead of 18 string slices.
    number = pl.when(expr.str.contains(r"^[0-9]{18}$")).then(expr).cast(pl.Int64, strict=False)
    digit = pl.field("n")
    total = pl.sum_horizontal(
        ((digit // 10 ** (17 - i)) % 10 * w) % 10 for i, w in enumerate(CLABE_WEIGHTS[:17])
    )
    checked = pl.struct(n=number).struct.with_fields(_ok=(10 - total % 10) % 10 == digit % 10)
    return checked.struct.field("_ok").fill_null(False)


# --------------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------------


def reference_key(text: str | None) -> str | None:
    """Turn any reference into its comparison key (upper, alnum, O→0/I→1, no leading zeros)."""
    if text is None:
        return None
    key = _NON_ALNUM_RE.sub("", text.upper()).translate(_OCR_FOLD)
    if key.isdigit():
        key = key.lstrip("0")
    return key or None


def normalize_rastreo(text: str) -> str | None:
    """Normalise a SPEI clave de rastreo (upper, alphanumeric, at most 30 chars) or return None."""
    value = _NON_ALNUM_RE.sub("", text.upper())
    if not value or len(value) > RASTREO_MAX:
        return None
    return value


def normalize_ref_num(text: str | int) -> str | None:
    """Normalise a SPEI referencia numérica (1-9 999 999, leading zeros dropped) or return None."""
    raw = str(text).strip().upper().translate(_OCR_FOLD)
    if not raw.isdigit() or not raw.isascii():
        return None
    value = int(raw)
    if not 0 < value <= REF_NUM_MAX:
        return None
    return str(value)


def normalize_cash_reference(text: str) -> str | None:
    """Normalise an OXXO (14 digits) or cash_in (20 digits) reference, or return None."""
    value = re.sub(r"[\s\-]", "", text)
    if value.isdigit() and value.isascii() and len(value) in (14, 20):
        return value
    return None


def extract_conekta_reference(text: str) -> str | None:
    """Find the 7-digit reference of a "Conekta NNNNNNN" transfer label in free text."""
    found = _CONEKTA_RE.search(text)
    if found is None:
        return None
    return re.sub(r"[\s\-]", "", found.group(1)).upper().translate(_OCR_FOLD)


def extract_ref_num(text: str) -> str | None:
    """Find a referencia numérica labelled ``REF``/``REFERENCIA`` in free text."""
    found = _REF_NUM_RE.search(text)
    if found is None:
        return None
    return normalize_ref_num(found.group(1))


def reference_key_expr(expr: pl.Expr) -> pl.Expr:
    """Vectorised ``reference_key``."""
    key = (
        expr.str.to_uppercase()
        .str.replace_all(r"[^A-Z0-9]", "")
        .str.replace_many(["O", "I"], ["0", "1"])
    )
    return _strip_numeric_zeros(key)


def _strip_numeric_zeros(key: pl.Expr) -> pl.Expr:
    # Written as a chain (no when/then on ``key``) so the key is computed once.
    stripped = key.str.replace(r"^0+([1-9][0-9]*)$", "${1}").str.replace(r"^0*$", "")
    return stripped.replace("", None)


def _fold_digits(expr: pl.Expr) -> pl.Expr:
    folded = expr.str.to_uppercase().str.replace_all(r"[\s\-]", "")
    return folded.str.replace_many(["O", "I"], ["0", "1"])


def conekta_reference_expr(text: pl.Expr) -> pl.Expr:
    """Vectorised ``extract_conekta_reference`` (returns the key, leading zeros dropped)."""
    return _strip_numeric_zeros(_fold_digits(text.str.extract(CONEKTA_PATTERN, 1)))


def ref_num_expr(text: pl.Expr) -> pl.Expr:
    """Vectorised ``extract_ref_num`` (returns the key, leading zeros dropped)."""
    return _strip_numeric_zeros(_fold_digits(text.str.extract(REF_NUM_PATTERN, 1)))


def rastreo_expr(expr: pl.Expr) -> pl.Expr:
    """Vectorised ``normalize_rastreo``."""
    value = expr.str.to_uppercase().str.replace_all(r"[^A-Z0-9]", "")
    return value.str.extract(r"^([A-Z0-9]{1,30})$", 1)


def cash_reference_expr(expr: pl.Expr) -> pl.Expr:
    """Vectorised ``normalize_cash_reference``."""
    return expr.str.replace_all(r"[\s\-]", "").str.extract(r"^([0-9]{14}|[0-9]{20})$", 1)


def _is_short_numeric(key: pl.Expr) -> pl.Expr:
    return key.str.contains(r"^[0-9]{1,7}$").fill_null(False)


# --------------------------------------------------------------------------------------------
# Amounts
# --------------------------------------------------------------------------------------------


def parse_amount_cents(text: str | None) -> int | None:
    """Parse a bank amount (``$``, ``,`` thousands, 2 decimals, sign, parentheses) to cents.

    Returns None for an empty cell (``""``, ``"-"``) and raises InvalidInput for anything else
    that is not an amount, e.g. a decimal comma or more than two decimals.
    """
    if text is None:
        return None
    value = re.sub(r"[\s$']", "", text)
    if value in ("", "-"):
        return None
    if _AMOUNT_RE.match(value) is None:
        raise InvalidInput(f"not an amount: {text!r}")
    whole, _, frac = value.strip("()+-").replace(",", "").partition(".")
    cents = int(whole) * 100 + int(frac.ljust(2, "0"))
    return -cents if value[0] in "-(" else cents


def signed_amount_cents(cargo: str | None, abono: str | None) -> int:
    """Combine cargo/abono cells into one signed amount: credits positive, debits negative."""
    debit = parse_amount_cents(cargo)
    credit = parse_amount_cents(abono)
    if debit is None and credit is None:
        raise InvalidInput("a statement line needs a cargo or an abono")
    return (credit or 0) - abs(debit or 0)


def amount_cents_expr(expr: pl.Expr) -> pl.Expr:
    """Vectorised ``parse_amount_cents``: null for empty or unparseable cells."""
    # One struct so the cleaned text is computed once; the pattern guarantees at most two
    # decimals, so the decimal x 100 is an exact integer.
    cell = pl.field("cell")
    steps = pl.struct(cell=expr.str.replace_all(r"[\s$']", "")).struct.with_fields(
        _ok=cell.str.contains(AMOUNT_PATTERN),
        _value=cell.str.replace_all(r"[,()]", "").str.to_decimal(scale=2),
        _negative=cell.str.starts_with("("),
    )
    cents = (pl.field("_value") * 100).cast(pl.Int64)
    signed = pl.when(pl.field("_negative")).then(-cents).otherwise(cents)
    return steps.struct.with_fields(_cents=pl.when(pl.field("_ok")).then(signed)).struct.field(
        "_cents"
    )


def _is_blank(expr: pl.Expr) -> pl.Expr:
    return expr.is_null() | expr.str.replace_all(r"[\s$'\-]", "").eq("")


def signed_amount_expr(cargo: pl.Expr, abono: pl.Expr) -> pl.Expr:
    """Vectorised ``signed_amount_cents``: null when a cell is unparseable or both are empty."""
    cells = pl.struct(
        _debit=amount_cents_expr(cargo),
        _credit=amount_cents_expr(abono),
        _cargo_blank=_is_blank(cargo),
        _abono_blank=_is_blank(abono),
    )
    debit, credit = pl.field("_debit"), pl.field("_credit")
    cargo_blank, abono_blank = pl.field("_cargo_blank"), pl.field("_abono_blank")
    bad = (~cargo_blank & debit.is_null()) | (~abono_blank & credit.is_null())
    value = credit.fill_null(0) - debit.fill_null(0).abs()
    steps = cells.struct.with_fields(
        _value=pl.when(~bad & ~(cargo_blank & abono_blank)).then(value)
    )
    return steps.struct.field("_value")


def unit_swap(bank_cents: int, ledger_cents: int) -> UnitSwap | None:
    """Tell whether two amounts differ by a cents-vs-pesos slip (x100 or ÷100, to the peso)."""
    if bank_cents == 0 or ledger_cents == 0 or (bank_cents > 0) != (ledger_cents > 0):
        return None
    if abs(bank_cents - ledger_cents * 100) < 100:
        return "x100"
    if abs(bank_cents * 100 - ledger_cents) < 100:
        return "div100"
    return None


def unit_swap_expr(bank_cents: pl.Expr, ledger_cents: pl.Expr) -> pl.Expr:
    """Vectorised ``unit_swap``: true where the two amounts differ by a factor of 100."""
    same_sign = (bank_cents > 0) == (ledger_cents > 0)
    near = ((bank_cents - ledger_cents * 100).abs() < 100) | (
        (bank_cents * 100 - ledger_cents).abs() < 100
    )
    return (same_sign & near & (bank_cents != 0) & (ledger_cents != 0)).fill_null(False)


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------


def business_date(moment: datetime) -> date:
    """Return the America/Mexico_City business date of an aware instant."""
    if moment.tzinfo is None:
        raise InvalidInput("naive datetime: store UTC instants")
    return local_date(moment)


def parse_instant(value: str | int) -> datetime:
    """Parse an ISO-8601 string with offset, or Unix seconds, into an aware UTC datetime."""
    if isinstance(value, int):
        return datetime.fromtimestamp(value, UTC)
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(f"not an ISO-8601 instant: {value!r}") from exc
    if moment.tzinfo is None:
        raise InvalidInput(f"instant without offset: {value!r}")
    return moment.astimezone(UTC)


def local_date_expr(instant: pl.Expr, zone: str = ZONE) -> pl.Expr:
    """Vectorised business date of a tz-aware Datetime column in ``zone``."""
    return instant.dt.convert_time_zone(zone).dt.date()


# --------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------


def conform(frame: pl.DataFrame, schema: pl.Schema, name: str) -> pl.DataFrame:
    """Check and cast a frame to a declared schema, refusing missing columns and naive instants."""
    missing = [column for column in schema if column not in frame.columns]
    if missing:
        raise InvalidInput(f"{name}: missing columns {missing}")
    for column, dtype in schema.items():
        actual = frame.schema[column]
        if isinstance(dtype, pl.Datetime) and isinstance(actual, pl.Datetime):
            if actual.time_zone is None:
                raise InvalidInput(f"{name}.{column}: naive datetimes are refused; use UTC")
        elif actual != dtype and actual != pl.Null:
            raise InvalidInput(f"{name}.{column}: expected {dtype}, got {actual}")
    try:
        return frame.select(pl.col(c).cast(t) for c, t in schema.items())
    except pl.exceptions.PolarsError as exc:
        raise InvalidInput(f"{name}: {exc}") from exc


def _fold(token: pl.Expr) -> pl.Expr:
    return token.str.to_uppercase().str.replace_many(["O", "I"], ["0", "1"])


def _unless_same(candidate: str, primary: str) -> pl.Expr:
    return pl.when(pl.col(candidate) != pl.col(primary)).then(pl.col(candidate))


def _with_reference_keys(frame: pl.LazyFrame, reference: str, text: str) -> pl.LazyFrame:
    """Add ``ref_n``/``ref_n2``, ``ref_l``/``ref_l2`` and ``clabe`` from a reference and text.

    Keys are fixed columns rather than a list: per-row list operations cost ~10x more in polars,
    and a statement line carries at most two references of each kind in practice (the first two
    long tokens of the text are read; a third is ignored).
    """
    token = pl.element()
    tokens = (
        pl.col(text)
        .str.extract_all(WORD_PATTERN)
        .list.eval(token.filter(token.str.len_bytes().is_between(TOKEN_MIN, TOKEN_MAX)))
    )
    # The CLABE check runs before leading zeros are dropped: most bank codes start with 0.
    frame = (
        frame.with_columns(
            _rk=pl.col(reference).str.to_uppercase().str.replace_all(r"[^A-Z0-9]", ""),
            _ck=conekta_reference_expr(pl.col(text)),
            _nk=ref_num_expr(pl.col(text)),
            _tok=tokens,
        )
        .with_columns(
            _rk=pl.col("_rk").str.replace_many(["O", "I"], ["0", "1"]),
            _t1=_fold(pl.col("_tok").list.get(0, null_on_oob=True)),
            _t2=_fold(pl.col("_tok").list.get(1, null_on_oob=True)),
        )
        .with_columns(
            _rk_clabe=clabe_valid_expr(pl.col("_rk")),
            _t1_clabe=clabe_valid_expr(pl.col("_t1")),
            _t2_clabe=clabe_valid_expr(pl.col("_t2")),
        )
        .with_columns(
            clabe=pl.coalesce(
                pl.when(pl.col("_t1_clabe")).then(pl.col("_t1")),
                pl.when(pl.col("_t2_clabe")).then(pl.col("_t2")),
                pl.when(pl.col("_rk_clabe")).then(pl.col("_rk")),
            ),
            _rk=_strip_numeric_zeros(pl.col("_rk")),
            _t1=_strip_numeric_zeros(pl.col("_t1")),
            _t2=_strip_numeric_zeros(pl.col("_t2")),
        )
    )
    rk_long = (pl.col("_rk").str.len_bytes() >= LONG_KEY_MIN) & ~pl.col("_rk_clabe")
    frame = frame.with_columns(
        # A CLABE names a counterparty, not a payment: it is never a key.
        _l0=pl.when(rk_long).then(pl.col("_rk")),
        _l1=pl.when(~pl.col("_t1_clabe")).then(pl.col("_t1")),
        _l2=pl.when(~pl.col("_t2_clabe")).then(pl.col("_t2")),
        _rs=pl.when(_is_short_numeric(pl.col("_rk"))).then(pl.col("_rk")),
    ).with_columns(
        ref_n=pl.coalesce("_ck", "_rs", "_nk"),
        ref_l=pl.coalesce("_l0", "_l1", "_l2"),
    )
    return frame.with_columns(
        ref_n2=pl.coalesce(_unless_same("_rs", "ref_n"), _unless_same("_nk", "ref_n")),
        ref_l2=pl.coalesce(_unless_same("_l1", "ref_l"), _unless_same("_l2", "ref_l")),
    ).drop(
        "_rk",
        "_ck",
        "_nk",
        "_tok",
        "_t1",
        "_t2",
        "_rk_clabe",
        "_t1_clabe",
        "_t2_clabe",
        "_l0",
        "_l1",
        "_l2",
        "_rs",
    )


def normalize_statement(statement: pl.DataFrame) -> pl.DataFrame:
    """Turn raw statement lines (``STATEMENT_SCHEMA``) into ``NORMALIZED_STATEMENT_SCHEMA``."""
    raw = conform(statement, STATEMENT_SCHEMA, "statement")
    if raw.get_column("line_id").is_duplicated().any():
        raise InvalidInput("statement: line_id must be unique")
    lazy = raw.lazy().with_columns(
        amount_cents=signed_amount_expr(pl.col("cargo"), pl.col("abono")),
        balance_cents=amount_cents_expr(pl.col("balance")),
        local_date=pl.col("operation_date"),
    )
    lazy = _with_reference_keys(lazy, "reference", "concept")
    # A re-import repeats the whole row including the running balance; a genuine repeat payment
    # (same amount, same day, same text) moves the balance, so it is kept. A 64-bit row hash
    # narrows the search; the few rows sharing a hash are then compared column by column.
    same_row = ["account", "operation_date", "concept", "reference", "cargo", "abono", "balance"]
    frame = lazy.with_columns(_hash=pl.struct(same_row).hash()).collect()
    suspects = (
        frame.filter(pl.col("_hash").is_duplicated() & pl.col("balance").is_not_null())
        .select("line_id", "row_no", *same_row)
        .sort("row_no", "line_id")
        .with_columns(duplicate_of=pl.col("line_id").first().over(same_row))
        .filter(pl.col("duplicate_of") != pl.col("line_id"))
        .select("line_id", "duplicate_of")
    )
    frame = frame.join(suspects, on="line_id", how="left").with_columns(
        is_reimport=pl.col("duplicate_of").is_not_null()
    )
    return frame.select(NORMALIZED_STATEMENT_SCHEMA.names()).cast(NORMALIZED_STATEMENT_SCHEMA)


def normalize_ledger(ledger: pl.DataFrame, zone: str = ZONE) -> pl.DataFrame:
    """Turn raw ledger entries (``LEDGER_SCHEMA``) into ``NORMALIZED_LEDGER_SCHEMA``."""
    raw = conform(ledger, LEDGER_SCHEMA, "ledger")
    if raw.get_column("entry_id").is_duplicated().any():
        # Provider ids are stable: an exact repeat is a re-sync, anything else is corrupt input.
        raw = raw.unique()
        if raw.get_column("entry_id").is_duplicated().any():
            raise InvalidInput("ledger: one entry_id with two different contents")
    text = pl.concat_str(
        pl.col("reference").fill_null(""), pl.col("memo").fill_null(""), separator=" "
    )
    lazy = raw.lazy().with_columns(
        local_date=pl.coalesce(pl.col("booked_date"), local_date_expr(pl.col("occurred_at"), zone)),
        net_cents=pl.col("amount_cents") - pl.col("fee_cents").fill_null(0),
        _text=text,
    )
    lazy = _with_reference_keys(lazy, "reference", "_text")
    frame = lazy.select(NORMALIZED_LEDGER_SCHEMA.names()).collect()
    return frame.cast(NORMALIZED_LEDGER_SCHEMA)


def balance_breaks(normalized: pl.DataFrame) -> pl.DataFrame:
    """List lines where ``saldo[i] != saldo[i-1] + amount[i]`` in file order, per account."""
    ordered = normalized.sort("account", "row_no", "line_id")
    expected = pl.col("balance_cents").shift(1).over("account") + pl.col("amount_cents")
    return (
        ordered.with_columns(expected_balance_cents=expected)
        .filter(
            pl.col("expected_balance_cents").is_not_null()
            & pl.col("balance_cents").is_not_null()
            & (pl.col("expected_balance_cents") != pl.col("balance_cents"))
        )
        .select(
            "account",
            "line_id",
            "row_no",
            "expected_balance_cents",
            "balance_cents",
            difference_cents=pl.col("balance_cents") - pl.col("expected_balance_cents"),
        )
    )
