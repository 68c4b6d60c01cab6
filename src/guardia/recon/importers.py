"""Bank statement import: BBVA, Santander, Banorte, Banamex, a mapped generic CSV and camt.053.

``import_statement`` reads one export file and returns an ``ImportedStatement`` whose ``frame``
conforms to ``STATEMENT_SCHEMA`` plus an ``occurrence`` column. The whole file is validated
before anything is returned: a bad file raises ``InvalidInput`` naming the line (CSV/TXT: the
physical line of the file; camt.053: the entry number) and the reason. Nothing partial comes out.

What the frame holds:

- ``line_id`` = ``f"{file_sha256[:12]}:{row_no}"``; ``row_no`` is the 1-based position of the
  movement in the file (preamble, header, blank and footer rows are not counted);
- ``operation_date``: the local business date printed by the bank (America/Mexico_City; a
  camt.053 ``BookgDt/DtTm`` with an offset is converted to that zone);
- ``cargo``/``abono``/``balance``: canonical amount text (``"2500.00"``, no ``$`` or thousands
  separators), so ``normalize.amount_cents_expr`` reads them exactly; ``cargo`` is unsigned;
- ``occurrence``: identical movements in one file (same date, concept, reference, cargo and
  abono; the balance is left out on purpose) are numbered 1, 2, … in file order, so a genuine
  repeat payment keeps its own identity across re-imports of overlapping periods.

Amounts are parsed by ``normalize.parse_amount_cents`` (``$``, ``,`` thousands, apostrophes,
``-`` for empty). A zero in the unused cargo/abono column counts as empty; two non-zero cells
on one line are refused, as is a line with neither.

Running balance: where balances are present, each one must equal the previous balance plus the
movement (``saldo[i] = saldo[i-1] + abono - cargo``); a line without a balance carries the
running total forward. Breaks do not raise: they come back in ``balance_breaks`` as
``(row_no, expected_cents, found_cents)`` and the check resynchronises on the found balance, so
one missing line gives one break. A declared opening balance (Banamex header, camt.053 OPBD or
PRCD) seeds the check; a declared closing balance (Banamex, camt.053 CLBD) is compared with the
final running balance and a mismatch is reported with ``row_no = lines + 1``. A file whose
dates run newest first (first date after last date) is checked bottom-up.

Layouts (reconciliation.md §3). Headers are matched after folding case, accents, punctuation
and the UTF-8-read-as-latin-1 mojibake (``DÃ­a``). The delimiter is detected among tab, ``;``
and ``,`` by finding the header row; rows before it are a preamble, a blank row after data ends
the table, and a data-looking row after that end is refused. Assumptions where §3 is silent:

- **BBVA**: ``Día``, ``Concepto / Referencia``, ``cargo``, ``Abono``, ``Saldo`` (tab-separated
  ``.txt``) or the CSV variant ``FECHA``, ``DESCRIPCIÓN``, ``CARGO``, ``ABONO``, ``SALDO``. The
  reference is the first token after ``/`` in the concept; the concept keeps the full text.
- **Santander**: ``Fecha``, ``Descripcion``, ``Concepto``, ``Referencia``, ``Importe``,
  ``Saldo``; ``Importe`` is signed (negative = cargo); ``Descripcion`` and ``Concepto`` are
  joined into the concept. Separate ``Cargo``/``Abono`` columns are accepted instead.
- **Banorte**: a leading ``FECHA`` column before the documented ones; ``DEPÓSITOS`` = abono,
  ``RETIROS`` = cargo; ``DESCRIPCIÓN`` and ``DESCRIPCIÓN DETALLADA`` are joined into the concept.
- **Banamex**: a header block of ``key,value`` (or ``key: value``) rows: ``Cuenta``,
  ``Periodo`` (two dates), ``Saldo inicial``/``Saldo anterior``, optionally ``Saldo final``;
  then the row "Detalle de Movimientos - Depósitos y Retiros" and the table ``Fecha``,
  ``Descripción``, ``Depósitos``, ``Retiros``, ``Saldo``. ``Referencia Numérica: N`` in the
  description becomes the reference.
- **camt.053**: exactly one ``Stmt``; ``Ntry`` with status other than ``BOOK`` (pending,
  information) is skipped; ``CdtDbtInd`` is the booking direction; only MXN amounts; the
  reference is ``AcctSvcrRef`` (else ``NtryRef``); the concept is ``RmtInf/Ustrd`` (else
  ``AddtlNtryInf``). A DOCTYPE or ENTITY declaration is refused before parsing (XXE and entity
  expansion), since defusedxml is not available.

Encodings: bank exports are read as UTF-8 (with or without BOM), else cp1252, a superset of the
printable latin-1 that BBVA uses; undecodable bytes or NUL characters (a UTF-16 file) are
refused as a wrong encoding. The generic CSV decodes strictly with the mapping's encoding.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
import tomllib
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Final

import polars as pl

from guardia.core.errors import InvalidInput
from guardia.recon.model import STATEMENT_SCHEMA
from guardia.recon.normalize import business_date, parse_amount_cents, parse_instant

BANKS: Final = ("bbva", "santander", "banorte", "banamex", "generic", "camt053")

IMPORT_SCHEMA: Final = pl.Schema({**STATEMENT_SCHEMA, "occurrence": pl.Int64()})
MAX_FILE_BYTES: Final = 200 * 1024 * 1024
DELIMITERS: Final = ("\t", ";", ",")
BANK_ENCODINGS: Final = ("utf-8-sig", "cp1252")

_MONTHS: Final = {
    "ene": 1,
    "feb": 2,
    "mar": 3,
    "abr": 4,
    "may": 5,
    "jun": 6,
    "jul": 7,
    "ago": 8,
    "sep": 9,
    "set": 9,
    "oct": 10,
    "nov": 11,
    "dic": 12,
}
_ISO_DATE_RE: Final = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T].*)?$")
_DMY_RE: Final = re.compile(
    r"^(\d{1,2})[/\-. ]([0-9]{1,2}|[A-Za-z]{3,10})[/\-. ](\d{4}|\d{2})"
    r"(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?$"
)
_DATE_TOKEN_RE: Final = re.compile(
    r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[/\-.](?:\d{1,2}|[A-Za-z]{3,10})[/\-.](?:\d{4}|\d{2})"
)
_REF_NUMERICA_RE: Final = re.compile(r"(?i)referencia\s+num[eé]rica\s*:?\s*([0-9]+)")
_DOCTYPE_RE: Final = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_SPACES_RE: Final = re.compile(r"\s+")


# --------------------------------------------------------------------------------------------
# Public types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """Where a generic CSV keeps each field.

    Either ``amount`` (one signed column; positive = abono unless ``invert_sign``) or at least
    one of ``cargo``/``abono``. ``concept`` may name several columns, joined with a space.
    ``date_format`` is a ``strptime`` pattern; None reads day-first dates (``dd/mm/yyyy``,
    ``dd-MMM-yy``) and ISO ``yyyy-mm-dd``.
    """

    date: str
    concept: tuple[str, ...]
    reference: str | None = None
    cargo: str | None = None
    abono: str | None = None
    amount: str | None = None
    balance: str | None = None
    delimiter: str = ","
    encoding: str = "utf-8"
    date_format: str | None = None
    invert_sign: bool = False

    def __post_init__(self) -> None:
        if not self.concept:
            raise InvalidInput("column mapping: concept needs at least one column")
        if self.amount is not None and (self.cargo is not None or self.abono is not None):
            raise InvalidInput("column mapping: give either amount or cargo/abono, not both")
        if self.amount is None and self.cargo is None and self.abono is None:
            raise InvalidInput("column mapping: give amount, or cargo and/or abono")
        if len(self.delimiter) != 1:
            raise InvalidInput("column mapping: delimiter must be one character")
        try:
            codecs.lookup(self.encoding)
        except LookupError as exc:
            raise InvalidInput(f"column mapping: unknown encoding {self.encoding!r}") from exc

    @classmethod
    def from_file(cls, path: Path) -> ColumnMapping:
        """Read a mapping from a small ``.json`` or ``.toml`` file (keys = field names)."""
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise InvalidInput(f"column mapping {path.name}: cannot read: {exc}") from exc
        try:
            if path.suffix.lower() == ".toml":
                data: object = tomllib.loads(raw.decode("utf-8"))
            else:
                data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidInput(f"column mapping {path.name}: not valid: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidInput(f"column mapping {path.name}: expected a table of fields")
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ColumnMapping:
        """Build a mapping from parsed JSON/TOML, refusing unknown keys and wrong types."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(f"column mapping: unknown keys {unknown}")

        def text(key: str, *, required: bool = False) -> str | None:
            value = data.get(key)
            if value is None and not required:
                return None
            if not isinstance(value, str) or not value:
                raise InvalidInput(f"column mapping: {key} must be a non-empty string")
            return value

        concept = data.get("concept")
        if isinstance(concept, str):
            concepts: tuple[str, ...] = (concept,)
        elif isinstance(concept, list) and all(isinstance(c, str) and c for c in concept):
            concepts = tuple(str(c) for c in concept)
        else:
            raise InvalidInput("column mapping: concept must be a column name or a list of them")
        invert = data.get("invert_sign", False)
        if not isinstance(invert, bool):
            raise InvalidInput("column mapping: invert_sign must be true or false")
        date_column = text("date", required=True)
        assert date_column is not None  # noqa: S101 - narrowed by required=True
        return cls(
            date=date_column,
            concept=concepts,
            reference=text("reference"),
            cargo=text("cargo"),
            abono=text("abono"),
            amount=text("amount"),
            balance=text("balance"),
            delimiter=text("delimiter") or ",",
            encoding=text("encoding") or "utf-8",
            date_format=text("date_format"),
            invert_sign=invert,
        )


@dataclass(frozen=True, slots=True)
class ImportedStatement:
    """A validated bank statement file, ready to store and reconcile."""

    frame: pl.DataFrame
    file_sha256: str
    bank: str
    account: str
    lines: int
    opening_balance_cents: int | None = None
    closing_balance_cents: int | None = None
    balance_breaks: list[tuple[int, int, int]] = field(default_factory=list)
    declared_account: str | None = None
    period_start: date | None = None
    period_end: date | None = None


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def import_statement(
    path: Path, bank: str, *, account: str, mapping: ColumnMapping | None = None
) -> ImportedStatement:
    """Read, validate and convert one bank export; raise InvalidInput on any bad line."""
    if bank not in BANKS:
        raise InvalidInput(f"unknown bank {bank!r}; expected one of {', '.join(BANKS)}")
    if not account.strip():
        raise InvalidInput("an account is required")
    if bank == "generic" and mapping is None:
        raise InvalidInput("the generic format needs a column mapping")
    if bank != "generic" and mapping is not None:
        raise InvalidInput(f"a column mapping only applies to the generic format, not {bank}")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InvalidInput(f"{path.name}: {size} bytes is over the {MAX_FILE_BYTES} limit")
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path.name}: cannot read: {exc}") from exc
    if not data.strip():
        raise InvalidInput(f"{path.name}: the file is empty")
    digest = hashlib.sha256(data).hexdigest()

    if bank == "camt053":
        parsed = _parse_camt053(data)
    elif bank == "generic":
        assert mapping is not None  # noqa: S101 - checked above
        parsed = _parse_table(_decode(data, (mapping.encoding,)), _mapping_spec(mapping), bank)
    else:
        parsed = _parse_table(_decode(data, BANK_ENCODINGS), _BANK_SPECS[bank], bank)

    return _build(parsed, digest=digest, bank=bank, account=account.strip())


# --------------------------------------------------------------------------------------------
# Internal model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Line:
    where: str
    operation_date: date
    concept: str | None
    reference: str | None
    cargo: int | None
    abono: int | None
    balance: int | None

    @property
    def amount(self) -> int:
        return (self.abono or 0) - (self.cargo or 0)


@dataclass(slots=True)
class _Parsed:
    lines: list[_Line]
    opening: int | None = None
    closing: int | None = None
    declared_account: str | None = None
    period_start: date | None = None
    period_end: date | None = None


@dataclass(frozen=True, slots=True)
class _Spec:
    """How one table layout names its columns (aliases are folded header keys)."""

    date: tuple[str, ...]
    concept: tuple[tuple[str, ...], ...]
    reference: tuple[str, ...] = ()
    cargo: tuple[str, ...] = ()
    abono: tuple[str, ...] = ()
    amount: tuple[str, ...] = ()
    balance: tuple[str, ...] = ()
    delimiters: tuple[str, ...] = DELIMITERS
    date_format: str | None = None
    invert_sign: bool = False
    reference_after_slash: bool = False
    reference_in_concept: bool = False


_BANK_SPECS: Final[dict[str, _Spec]] = {
    "bbva": _Spec(
        date=("dia", "fecha", "fechaoperacion", "fechadeoperacion"),
        concept=(("conceptoreferencia", "descripcion", "concepto"),),
        cargo=("cargo", "cargos"),
        abono=("abono", "abonos"),
        balance=("saldo",),
        reference_after_slash=True,
    ),
    "santander": _Spec(
        date=("fecha", "fechaoperacion", "fechadeoperacion"),
        concept=(("descripcion",), ("concepto",)),
        reference=("referencia",),
        cargo=("cargo", "cargos"),
        abono=("abono", "abonos"),
        amount=("importe",),
        balance=("saldo",),
    ),
    "banorte": _Spec(
        date=("fecha", "fechadeoperacion", "fechaoperacion"),
        concept=(("descripcion",), ("descripciondetallada",)),
        reference=("referencia",),
        cargo=("retiros", "retiro", "cargos"),
        abono=("depositos", "deposito", "abonos"),
        balance=("saldo",),
    ),
    "banamex": _Spec(
        date=("fecha",),
        concept=(("descripcion",),),
        cargo=("retiros", "retiro"),
        abono=("depositos", "deposito"),
        balance=("saldo",),
        reference_in_concept=True,
    ),
}


def _mapping_spec(mapping: ColumnMapping) -> _Spec:
    def one(name: str | None) -> tuple[str, ...]:
        return () if name is None else (_key(name),)

    return _Spec(
        date=one(mapping.date),
        concept=tuple(one(c) for c in mapping.concept),
        reference=one(mapping.reference),
        cargo=one(mapping.cargo),
        abono=one(mapping.abono),
        amount=one(mapping.amount),
        balance=one(mapping.balance),
        delimiters=(mapping.delimiter,),
        date_format=mapping.date_format,
        invert_sign=mapping.invert_sign,
    )


# --------------------------------------------------------------------------------------------
# Text helpers
# --------------------------------------------------------------------------------------------


def _decode(data: bytes, encodings: Sequence[str]) -> str:
    """Decode with the first encoding that fits; name the line of the first bad byte."""
    first_error: UnicodeDecodeError | None = None
    for encoding in encodings:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            first_error = first_error or exc
            continue
        if "\x00" in text:
            line = text[: text.index("\x00")].count("\n") + 1
            raise InvalidInput(f"line {line}: wrong encoding (NUL characters; UTF-16?)")
        return text.removeprefix("\ufeff")
    assert first_error is not None  # noqa: S101 - at least one encoding was tried
    line = data[: first_error.start].count(b"\n") + 1
    tried = " or ".join(encodings)
    raise InvalidInput(f"line {line}: wrong encoding: the file is not {tried}")


def _unmojibake(text: str) -> str:
    if "Ã" in text or "Â" in text:
        try:
            return text.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return text
    return text


def _key(text: str) -> str:
    """Fold a header or label to lowercase ASCII letters and digits."""
    folded = unicodedata.normalize("NFKD", _unmojibake(text).strip().lstrip("'"))
    ascii_text = "".join(c for c in folded if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]", "", ascii_text.lower())


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    value = _SPACES_RE.sub(" ", text.strip().lstrip("'")).strip()
    return value or None


def _parse_date(text: str, date_format: str | None, where: str) -> date:
    value = text.strip().lstrip("'")
    if not value:
        raise InvalidInput(f"{where}: bad date: empty")
    if date_format is not None:
        try:
            return datetime.strptime(value, date_format).date()  # noqa: DTZ007 - a local date
        except ValueError as exc:
            raise InvalidInput(f"{where}: bad date {value!r} (expected {date_format})") from exc
    try:
        if (iso := _ISO_DATE_RE.match(value)) is not None:
            return date(int(iso[1]), int(iso[2]), int(iso[3]))
        if (dmy := _DMY_RE.match(value)) is not None:
            month_text = dmy[2].lower()
            month = int(month_text) if month_text.isdigit() else _MONTHS.get(month_text[:3], 0)
            year = int(dmy[3]) + (2000 if len(dmy[3]) == 2 else 0)
            return date(year, month, int(dmy[1]))
    except ValueError as exc:
        raise InvalidInput(f"{where}: bad date {value!r}: {exc}") from exc
    raise InvalidInput(f"{where}: bad date {value!r} (expected dd/mm/yyyy)")


def _amount(text: str | None, column: str, where: str) -> int | None:
    try:
        return parse_amount_cents(text)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: unparseable amount in {column}: {text!r}") from exc


def _cents_text(cents: int | None) -> str | None:
    if cents is None:
        return None
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole}.{frac:02d}"


# --------------------------------------------------------------------------------------------
# Delimited tables (BBVA, Santander, Banorte, Banamex, generic)
# --------------------------------------------------------------------------------------------


def _rows(text: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (first physical line, cells) for each CSV record."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 1
    try:
        for cells in reader:
            yield start, cells
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InvalidInput(f"line {reader.line_num}: malformed row: {exc}") from exc


def _find(header: list[str], aliases: tuple[str, ...]) -> int | None:
    for alias in aliases:
        if alias in header:
            return header.index(alias)
    return None


@dataclass(frozen=True, slots=True)
class _Columns:
    date: int
    concept: tuple[int, ...]
    reference: int | None
    cargo: int | None
    abono: int | None
    amount: int | None
    balance: int | None


def _resolve(header: list[str], spec: _Spec) -> _Columns | None:
    """Map a header row to column indexes, or None if it is not this layout's header."""
    date_col = _find(header, spec.date)
    if date_col is None:
        return None
    cargo, abono = _find(header, spec.cargo), _find(header, spec.abono)
    amount = _find(header, spec.amount)
    if amount is not None and (cargo is not None or abono is not None):
        amount = None
    if amount is None and cargo is None and abono is None:
        return None
    concept = tuple(i for aliases in spec.concept if (i := _find(header, aliases)) is not None)
    if not concept:
        return None
    return _Columns(
        date=date_col,
        concept=concept,
        reference=_find(header, spec.reference),
        cargo=cargo,
        abono=abono,
        amount=amount,
        balance=_find(header, spec.balance),
    )


def _locate_header(
    text: str, spec: _Spec
) -> tuple[list[tuple[int, list[str]]], int, _Columns] | None:
    for delimiter in spec.delimiters:
        rows = list(_rows(text, delimiter))
        for index, (_line, cells) in enumerate(rows):
            columns = _resolve([_key(c) for c in cells], spec)
            if columns is not None:
                return rows, index, columns
    return None


def _missing_columns(text: str, spec: _Spec) -> str:
    wanted = {"date": spec.date, "amount": spec.cargo + spec.abono + spec.amount}
    wanted["concept"] = tuple(a for aliases in spec.concept for a in aliases)
    seen = {_key(c) for _line, cells in _rows(text, spec.delimiters[0]) for c in cells}
    missing = [role for role, aliases in wanted.items() if not seen.intersection(aliases)]
    return ", ".join(missing) or "a header row with them all"


def _is_blank(cells: list[str]) -> bool:
    return not any(c.strip() for c in cells)


def _parse_table(text: str, spec: _Spec, bank: str) -> _Parsed:
    located = _locate_header(text, spec)
    if located is None:
        raise InvalidInput(f"line 1: missing column(s) for {bank}: {_missing_columns(text, spec)}")
    rows, header_index, columns = located
    width = len(rows[header_index][1])
    parsed = _Parsed(lines=[])
    _read_labels(rows[:header_index], parsed)

    ended_at: int | None = None
    for line_no, cells in rows[header_index + 1 :]:
        where = f"line {line_no}"
        if _is_blank(cells):
            if parsed.lines:
                ended_at = ended_at or line_no
            continue
        if ended_at is not None:
            if _looks_like_data(cells, columns, spec):
                raise InvalidInput(f"{where}: movement after the end of the table")
            _read_labels([(line_no, cells)], parsed)
            continue
        if len(cells) < width and len(cells) <= max(_indexes(columns)):
            raise InvalidInput(f"{where}: missing column: {len(cells)} cells, header has {width}")
        parsed.lines.append(_table_line(cells, columns, spec, where))
    return parsed


def _indexes(columns: _Columns) -> list[int]:
    candidates = [columns.date, *columns.concept, columns.reference, columns.cargo]
    candidates += [columns.abono, columns.amount, columns.balance]
    return [i for i in candidates if i is not None]


def _looks_like_data(cells: list[str], columns: _Columns, spec: _Spec) -> bool:
    if len(cells) <= columns.date:
        return False
    try:
        _parse_date(cells[columns.date], spec.date_format, "")
    except InvalidInput:
        return False
    return True


def _cell(cells: list[str], index: int | None) -> str | None:
    if index is None or index >= len(cells):
        return None
    return cells[index]


def _table_line(cells: list[str], columns: _Columns, spec: _Spec, where: str) -> _Line:
    operation_date = _parse_date(cells[columns.date], spec.date_format, where)
    concept = _clean(" ".join(filter(None, (_clean(_cell(cells, i)) for i in columns.concept))))
    reference = _clean(_cell(cells, columns.reference))
    if spec.reference_after_slash and reference is None and concept and "/" in concept:
        after = concept.split("/", 1)[1].split()
        reference = after[0] if after else None
    if spec.reference_in_concept and reference is None and concept:
        found = _REF_NUMERICA_RE.search(concept)
        reference = found[1] if found else None

    if columns.amount is not None:
        signed = _amount(_cell(cells, columns.amount), "amount", where)
        if signed is None or signed == 0:
            raise InvalidInput(f"{where}: no amount")
        if spec.invert_sign:
            signed = -signed
        cargo, abono = (-signed, None) if signed < 0 else (None, signed)
    else:
        cargo = _amount(_cell(cells, columns.cargo), "cargo", where) or None
        abono = _amount(_cell(cells, columns.abono), "abono", where) or None
        if cargo is not None and abono is not None:
            raise InvalidInput(f"{where}: both cargo and abono are filled")
        if cargo is None and abono is None:
            raise InvalidInput(f"{where}: no amount: cargo and abono are both empty")
        if abono is not None and abono < 0:
            raise InvalidInput(f"{where}: negative abono {abono / 100:.2f}")
        cargo = abs(cargo) if cargo is not None else None
    balance = _amount(_cell(cells, columns.balance), "balance", where)
    return _Line(where, operation_date, concept, reference, cargo, abono, balance)


def _read_labels(rows: Sequence[tuple[int, list[str]]], parsed: _Parsed) -> None:
    """Read ``key,value`` / ``key: value`` rows of a preamble or footer (Banamex header block)."""
    for line_no, cells in rows:
        values = [c.strip() for c in cells if c.strip()]
        if len(values) == 1 and ":" in values[0]:
            values = [part.strip() for part in values[0].split(":", 1)]
        if len(values) < 2:
            continue
        label, value = _key(values[0]), values[1]
        where = f"line {line_no}"
        if label.startswith(("saldoinicial", "saldoanterior")):
            parsed.opening = _amount(value, values[0], where)
        elif label.startswith(("saldofinal", "saldoactual")):
            parsed.closing = _amount(value, values[0], where)
        elif label.startswith("periodo"):
            found = _DATE_TOKEN_RE.findall(value)
            if len(found) == 2:
                parsed.period_start = _parse_date(found[0], None, where)
                parsed.period_end = _parse_date(found[1], None, where)
        elif "cuenta" in label and parsed.declared_account is None:
            parsed.declared_account = value


# --------------------------------------------------------------------------------------------
# ISO 20022 camt.053
# --------------------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: ET.Element | None, *path: str) -> ET.Element | None:
    for name in path:
        if element is None:
            return None
        element = next((c for c in element if _local(c.tag) == name), None)
    return element


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in element if _local(c.tag) == name]


def _text(element: ET.Element | None, *path: str) -> str | None:
    found = _child(element, *path)
    return _clean(found.text) if found is not None and found.text else None


def _camt_amount(parent: ET.Element, where: str) -> int:
    amount = _child(parent, "Amt")
    if amount is None or not amount.text:
        raise InvalidInput(f"{where}: missing Amt")
    currency = amount.get("Ccy", "MXN")
    if currency != "MXN":
        raise InvalidInput(f"{where}: currency {currency} is not supported (MXN only)")
    value = amount.text.strip()
    if value.startswith(("-", "+", "(")):
        raise InvalidInput(f"{where}: unparseable amount {value!r}: Amt must be unsigned")
    cents = _amount(value, "Amt", where)
    if cents is None:
        raise InvalidInput(f"{where}: unparseable amount {value!r}")
    indicator = _text(parent, "CdtDbtInd")
    if indicator == "CRDT":
        return cents
    if indicator == "DBIT":
        return -cents
    raise InvalidInput(f"{where}: CdtDbtInd must be CRDT or DBIT, got {indicator!r}")


def _camt_date(holder: ET.Element | None, where: str) -> date:
    day = _text(holder, "Dt")
    if day is not None:
        return _parse_date(day, "%Y-%m-%d", where)
    moment = _text(holder, "DtTm")
    if moment is not None:
        try:
            return business_date(parse_instant(moment))
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: bad date {moment!r}") from exc
    raise InvalidInput(f"{where}: bad date: missing BookgDt/Dt")


def _parse_camt053(data: bytes) -> _Parsed:
    encoding = "utf-16" if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8"
    if _DOCTYPE_RE.search(data.decode(encoding, errors="replace")):
        raise InvalidInput("camt.053: DOCTYPE/ENTITY declarations are refused")
    try:
        root = ET.fromstring(data)  # noqa: S314 - no DOCTYPE, so no entity expansion
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else 0
        raise InvalidInput(f"line {line}: not well-formed XML: {exc}") from exc
    if _local(root.tag) != "Document":
        raise InvalidInput("camt.053: the root element must be Document")
    report = _child(root, "BkToCstmrStmt")
    statements = _children(report, "Stmt") if report is not None else []
    if len(statements) != 1:
        raise InvalidInput(f"camt.053: expected one Stmt, found {len(statements)}")
    stmt = statements[0]

    parsed = _Parsed(lines=[])
    parsed.declared_account = _text(stmt, "Acct", "Id", "IBAN") or _text(
        stmt, "Acct", "Id", "Othr", "Id"
    )
    for index, balance in enumerate(_children(stmt, "Bal"), start=1):
        kind = _text(balance, "Tp", "CdOrPrtry", "Cd")
        where = f"balance {index} ({kind})"
        if kind in ("OPBD", "PRCD") and (parsed.opening is None or kind == "OPBD"):
            parsed.opening = _camt_amount(balance, where)
        elif kind == "CLBD":
            parsed.closing = _camt_amount(balance, where)
    period = _child(stmt, "FrToDt")
    if period is not None:
        start, end = _text(period, "FrDtTm"), _text(period, "ToDtTm")
        if start and end:
            parsed.period_start = _camt_date_text(start, "FrToDt")
            parsed.period_end = _camt_date_text(end, "FrToDt")

    for number, entry in enumerate(_children(stmt, "Ntry"), start=1):
        where = f"entry {number}"
        status = _text(entry, "Sts", "Cd") or _text(entry, "Sts")
        if status is not None and status != "BOOK":
            continue
        amount = _camt_amount(entry, where)
        operation_date = _camt_date(_child(entry, "BookgDt"), where)
        details = _child(entry, "NtryDtls", "TxDtls")
        ustrd = []
        if details is not None:
            info = _child(details, "RmtInf")
            if info is not None:
                ustrd = [u.text.strip() for u in _children(info, "Ustrd") if u.text]
        concept = _clean(" ".join(ustrd)) or _text(entry, "AddtlNtryInf")
        reference = _text(entry, "AcctSvcrRef") or _text(entry, "NtryRef")
        cargo, abono = (-amount, None) if amount < 0 else (None, amount)
        parsed.lines.append(_Line(where, operation_date, concept, reference, cargo, abono, None))
    return parsed


def _camt_date_text(value: str, where: str) -> date:
    if "T" in value:
        try:
            return business_date(parse_instant(value))
        except InvalidInput:
            return _parse_date(value[:10], "%Y-%m-%d", where)
    return _parse_date(value, "%Y-%m-%d", where)


# --------------------------------------------------------------------------------------------
# Assembly and checks
# --------------------------------------------------------------------------------------------


def _check_balances(parsed: _Parsed) -> list[tuple[int, int, int]]:
    lines = parsed.lines
    numbered = list(enumerate(lines, start=1))
    descending = len(lines) > 1 and lines[0].operation_date > lines[-1].operation_date
    # Newest first: walk bottom-up, since the balance printed on a line is the one after it.
    ordered = reversed(numbered) if descending else iter(numbered)
    breaks: list[tuple[int, int, int]] = []
    running = parsed.opening
    for row_no, line in ordered:
        if line.balance is None:
            running = None if running is None else running + line.amount
            continue
        if running is not None and running + line.amount != line.balance:
            breaks.append((row_no, running + line.amount, line.balance))
        running = line.balance
    if parsed.closing is not None and running is not None and running != parsed.closing:
        breaks.append((len(lines) + 1, running, parsed.closing))
    return sorted(breaks)


def _build(parsed: _Parsed, *, digest: str, bank: str, account: str) -> ImportedStatement:
    prefix = digest[:12]
    seen: dict[tuple[object, ...], int] = {}
    records: list[dict[str, object]] = []
    for row_no, line in enumerate(parsed.lines, start=1):
        key = (line.operation_date, line.concept, line.reference, line.cargo, line.abono)
        seen[key] = seen.get(key, 0) + 1
        records.append(
            {
                "line_id": f"{prefix}:{row_no}",
                "account": account,
                "row_no": row_no,
                "operation_date": line.operation_date,
                "concept": line.concept,
                "reference": line.reference,
                "cargo": _cents_text(line.cargo),
                "abono": _cents_text(line.abono),
                "balance": _cents_text(line.balance),
                "occurrence": seen[key],
            }
        )
    frame = pl.DataFrame(records, schema=IMPORT_SCHEMA)
    return ImportedStatement(
        frame=frame,
        file_sha256=digest,
        bank=bank,
        account=account,
        lines=len(records),
        opening_balance_cents=parsed.opening,
        closing_balance_cents=parsed.closing,
        balance_breaks=_check_balances(parsed),
        declared_account=parsed.declared_account,
        period_start=parsed.period_start,
        period_end=parsed.period_end,
    )
