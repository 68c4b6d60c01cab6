"""Statement import: every bank format from sample files written here, validation and balances."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from guardia.core.errors import InvalidInput
from guardia.recon.importers import (
    BANKS,
    ColumnMapping,
    ImportedStatement,
    import_statement,
)
from guardia.recon.model import STATEMENT_SCHEMA
from guardia.recon.normalize import normalize_statement

ACCOUNT = "012180001234567899"

BBVA_TXT = (
    "Día\tConcepto / Referencia\tcargo\tAbono\tSaldo\n"
    "02/04/2025\tSPEI RECIBIDO CONEKTA 4401234 / 0041782016 BNET\t\t1,800.00\t11,800.00\n"
    "02/04/2025\tCOMISIÓN POR SERVICIO / 0000001\t-2,500.00\t\t9,300.00\n"
    "03/04/2025\tDEPÓSITO EN EFECTIVO / 7788\t\t$700.50\t10,000.50\n"
)

SANTANDER_CSV = (
    "Cuenta,'65501234567\n"
    "Fecha,Descripcion,Concepto,Referencia,Importe,Saldo\n"
    "15/04/2025,ABONO SPEI,CONEKTA 4401234,'0000000,'1500.00,'11500.00\n"
    "15/04/2025,COMISION,COM MANEJO,'0000000,'-100.00,'11400.00\n"
    "16/04/2025,IVA,IVA COM MANEJO,'0000000,'-16.00,'11384.00\n"
)

BANORTE_CSV = (
    "FECHA,REFERENCIA,DESCRIPCIÓN,COD. TRANSAC,SUCURSAL,DEPÓSITOS,RETIROS,SALDO,MOVIMIENTO,"
    "DESCRIPCIÓN DETALLADA\n"
    '10-ABR-2025,0012345,SPEI RECIBIDO,1234,0001,"$2,000.00",-,"$5,000.00",1,'
    "RFC ABC010101XYZ CUENTA: 1234\n"
    '11/04/2025,0012346,PAGO PROVEEDOR,5678,0001,-,"$1,250.25","$3,749.75",2,PROVEEDOR SA\n'
)

BANAMEX_CSV = (
    "Citibanamex\n"
    "Cuenta,7001234567\n"
    "Periodo,01/04/2025 al 30/04/2025\n"
    'Saldo inicial,"$10,000.00"\n'
    'Saldo final,"$10,450.00"\n'
    "\n"
    "Detalle de Movimientos - Depósitos y Retiros\n"
    "Fecha,Descripción,Depósitos,Retiros,Saldo\n"
    '05/04/2025,SPEI Autorización: 99 Referencia Numérica: 4401234,"$1,000.00",,"$11,000.00"\n'
    '06/04/2025,PAGO TARJETA,,"$550.00","$10,450.00"\n'
)

CAMT_NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"


def camt(entries: str, *, opening: str = "1000.00", closing: str = "1250.00") -> str:
    """A camt.053 document with one statement, its balances and the given entries."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="{CAMT_NS}">
  <BkToCstmrStmt>
    <GrpHdr><MsgId>M1</MsgId><CreDtTm>2025-04-30T23:00:00-06:00</CreDtTm></GrpHdr>
    <Stmt>
      <Id>S1</Id>
      <Acct><Id><Othr><Id>{ACCOUNT}</Id></Othr></Id></Acct>
      <Bal>
        <Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp>
        <Amt Ccy="MXN">{opening}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2025-04-01</Dt></Dt>
      </Bal>
      <Bal>
        <Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp>
        <Amt Ccy="MXN">{closing}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2025-04-30</Dt></Dt>
      </Bal>
      {entries}
    </Stmt>
  </BkToCstmrStmt>
</Document>
"""


def entry(amount: str, indicator: str, day: str, ref: str, text: str) -> str:
    """One booked camt.053 entry."""
    return f"""<Ntry>
        <Amt Ccy="MXN">{amount}</Amt><CdtDbtInd>{indicator}</CdtDbtInd><Sts>BOOK</Sts>
        <BookgDt><Dt>{day}</Dt></BookgDt><ValDt><Dt>{day}</Dt></ValDt>
        <AcctSvcrRef>{ref}</AcctSvcrRef>
        <NtryDtls><TxDtls><RmtInf><Ustrd>{text}</Ustrd></RmtInf></TxDtls></NtryDtls>
      </Ntry>"""


CAMT_TWO_ENTRIES = camt(
    entry("300.00", "CRDT", "2025-04-02", "REF0001", "CONEKTA 4401234")
    + entry("50.00", "DBIT", "2025-04-03", "REF0002", "COMISION")
)


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    """Write a sample export and return its path."""
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def rows(imported: ImportedStatement) -> list[dict[str, object]]:
    """The imported lines as dicts, without line_id/account."""
    return imported.frame.drop("line_id", "account").to_dicts()


# ----------------------------------------------------------------------------------- formats


def test_the_supported_banks_are_listed_in_a_fixed_order() -> None:
    assert BANKS == ("bbva", "santander", "banorte", "banamex", "generic", "camt053")


def test_a_bbva_latin1_tab_export_keeps_accents_and_takes_the_reference_after_the_slash(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "bbva.txt", BBVA_TXT, "latin-1")
    imported = import_statement(path, "bbva", account=ACCOUNT)

    assert imported.lines == 3
    assert imported.balance_breaks == []
    first, second, third = rows(imported)
    assert first["operation_date"] == date(2025, 4, 2)
    assert first["reference"] == "0041782016"
    assert first["abono"] == "1800.00"
    assert first["cargo"] is None
    assert second["concept"] == "COMISIÓN POR SERVICIO / 0000001"
    assert second["cargo"] == "2500.00"
    assert third["concept"] == "DEPÓSITO EN EFECTIVO / 7788"
    assert third["abono"] == "700.50"
    assert third["balance"] == "10000.50"


def test_a_bbva_export_with_a_mojibake_header_is_still_recognised(tmp_path: Path) -> None:
    text = BBVA_TXT.replace("Día", "DÃ\xada", 1)
    imported = import_statement(write(tmp_path, "bbva.txt", text, "latin-1"), "bbva", account="a")
    assert imported.lines == 3


def test_the_frame_conforms_to_the_statement_schema_with_stable_line_ids(tmp_path: Path) -> None:
    path = write(tmp_path, "bbva.txt", BBVA_TXT, "latin-1")
    imported = import_statement(path, "bbva", account=ACCOUNT)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    assert imported.file_sha256 == digest
    assert imported.bank == "bbva"
    assert imported.account == ACCOUNT
    for column, dtype in STATEMENT_SCHEMA.items():
        assert imported.frame.schema[column] == dtype
    assert imported.frame.schema["occurrence"] == pl.Int64()
    assert imported.frame["line_id"].to_list() == [f"{digest[:12]}:{n}" for n in (1, 2, 3)]
    assert import_statement(path, "bbva", account=ACCOUNT).frame.equals(imported.frame)


def test_imported_lines_normalise_to_exact_signed_cents(tmp_path: Path) -> None:
    path = write(tmp_path, "bbva.txt", BBVA_TXT, "latin-1")
    normalised = normalize_statement(import_statement(path, "bbva", account=ACCOUNT).frame)
    assert normalised["amount_cents"].to_list() == [180_000, -250_000, 70_050]
    assert normalised["balance_cents"].to_list() == [1_180_000, 930_000, 1_000_050]


def test_a_santander_export_reads_signed_importe_and_strips_apostrophes(tmp_path: Path) -> None:
    imported = import_statement(
        write(tmp_path, "santander.csv", SANTANDER_CSV), "santander", account=ACCOUNT
    )
    first, second, third = rows(imported)
    assert first["concept"] == "ABONO SPEI CONEKTA 4401234"
    assert first["reference"] == "0000000"
    assert (first["abono"], first["cargo"]) == ("1500.00", None)
    assert (second["abono"], second["cargo"]) == (None, "100.00")
    assert third["balance"] == "11384.00"
    assert imported.balance_breaks == []


def test_a_banorte_export_reads_depositos_retiros_dashes_and_spanish_months(
    tmp_path: Path,
) -> None:
    imported = import_statement(
        write(tmp_path, "banorte.csv", BANORTE_CSV, "cp1252"), "banorte", account=ACCOUNT
    )
    first, second = rows(imported)
    assert first["operation_date"] == date(2025, 4, 10)
    assert first["reference"] == "0012345"
    assert first["concept"] == "SPEI RECIBIDO RFC ABC010101XYZ CUENTA: 1234"
    assert (first["abono"], first["cargo"]) == ("2000.00", None)
    assert (second["abono"], second["cargo"]) == (None, "1250.25")
    assert imported.balance_breaks == []


def test_a_banamex_header_block_gives_account_period_and_balances(tmp_path: Path) -> None:
    imported = import_statement(
        write(tmp_path, "banamex.csv", BANAMEX_CSV), "banamex", account=ACCOUNT
    )
    assert imported.declared_account == "7001234567"
    assert (imported.period_start, imported.period_end) == (date(2025, 4, 1), date(2025, 4, 30))
    assert imported.opening_balance_cents == 1_000_000
    assert imported.closing_balance_cents == 1_045_000
    assert imported.lines == 2
    first, second = rows(imported)
    assert first["reference"] == "4401234"
    assert second["cargo"] == "550.00"
    assert imported.balance_breaks == []


def test_a_banamex_opening_balance_that_does_not_lead_to_the_first_line_is_a_break(
    tmp_path: Path,
) -> None:
    text = BANAMEX_CSV.replace('"$10,000.00"', '"$9,000.00"', 1)
    imported = import_statement(write(tmp_path, "banamex.csv", text), "banamex", account="a")
    assert imported.balance_breaks == [(1, 1_000_000, 1_100_000)]


def test_a_camt053_with_two_entries_and_balances_is_read(tmp_path: Path) -> None:
    imported = import_statement(
        write(tmp_path, "stmt.xml", CAMT_TWO_ENTRIES), "camt053", account=ACCOUNT
    )
    assert imported.lines == 2
    assert imported.opening_balance_cents == 100_000
    assert imported.closing_balance_cents == 125_000
    assert imported.declared_account == ACCOUNT
    assert imported.balance_breaks == []
    first, second = rows(imported)
    assert first["operation_date"] == date(2025, 4, 2)
    assert (first["abono"], first["reference"], first["concept"]) == (
        "300.00",
        "REF0001",
        "CONEKTA 4401234",
    )
    assert (second["cargo"], second["abono"]) == ("50.00", None)


def test_a_camt053_whose_closing_balance_does_not_add_up_reports_a_break(tmp_path: Path) -> None:
    text = camt(
        entry("300.00", "CRDT", "2025-04-02", "R1", "A")
        + entry("50.00", "DBIT", "2025-04-03", "R2", "B"),
        closing="1300.00",
    )
    imported = import_statement(write(tmp_path, "stmt.xml", text), "camt053", account="a")
    assert imported.balance_breaks == [(3, 125_000, 130_000)]


def test_a_doctype_in_camt053_is_refused(tmp_path: Path) -> None:
    bomb = CAMT_TWO_ENTRIES.replace(
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">]>',
    )
    with pytest.raises(InvalidInput, match="DOCTYPE"):
        import_statement(write(tmp_path, "bomb.xml", bomb), "camt053", account="a")


def test_a_camt053_entry_in_another_currency_is_refused(tmp_path: Path) -> None:
    text = CAMT_TWO_ENTRIES.replace('<Amt Ccy="MXN">300.00', '<Amt Ccy="USD">300.00')
    with pytest.raises(InvalidInput, match="entry 1: currency USD"):
        import_statement(write(tmp_path, "stmt.xml", text), "camt053", account="a")


def test_the_generic_csv_is_read_through_a_json_mapping_file(tmp_path: Path) -> None:
    mapping_path = tmp_path / "mapping.json"
    mapping_path.write_text(
        json.dumps(
            {
                "date": "Booking Date",
                "concept": ["Memo", "Payee"],
                "reference": "Ref",
                "amount": "Amount",
                "balance": "Running",
                "delimiter": ";",
                "encoding": "utf-8",
                "date_format": "%Y/%m/%d",
            }
        ),
        encoding="utf-8",
    )
    text = (
        "Booking Date;Memo;Payee;Ref;Amount;Running\n"
        "2025/04/20;SPEI;ACME SA;RA123;$1,000.00;1,000.00\n"
        "2025/04/21;RETIRO;;RA124;-250.10;749.90\n"
    )
    mapping = ColumnMapping.from_file(mapping_path)
    imported = import_statement(
        write(tmp_path, "generic.csv", text), "generic", account="a", mapping=mapping
    )
    first, second = rows(imported)
    assert first["operation_date"] == date(2025, 4, 20)
    assert first["concept"] == "SPEI ACME SA"
    assert (first["abono"], second["cargo"]) == ("1000.00", "250.10")
    assert imported.balance_breaks == []


def test_a_toml_mapping_with_cargo_and_abono_columns_is_read(tmp_path: Path) -> None:
    mapping_path = tmp_path / "mapping.toml"
    mapping_path.write_text(
        'date = "Fecha"\nconcept = "Texto"\ncargo = "Debe"\nabono = "Haber"\n', encoding="utf-8"
    )
    mapping = ColumnMapping.from_file(mapping_path)
    assert mapping == ColumnMapping(date="Fecha", concept=("Texto",), cargo="Debe", abono="Haber")


def test_a_mapping_with_both_a_signed_amount_and_cargo_is_refused() -> None:
    with pytest.raises(InvalidInput, match="either amount or cargo/abono"):
        ColumnMapping(date="d", concept=("c",), amount="a", cargo="b")


def test_a_mapping_with_an_unknown_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mapping.json"
    path.write_text('{"date": "d", "concept": "c", "amount": "a", "colour": "x"}', "utf-8")
    with pytest.raises(InvalidInput, match="unknown keys"):
        ColumnMapping.from_file(path)


# --------------------------------------------------------------------------------- occurrence


def test_repeated_identical_lines_get_occurrence_one_and_two(tmp_path: Path) -> None:
    text = (
        "Fecha,Descripción,Depósitos,Retiros,Saldo\n"
        "05/04/2025,PAGO OXXO,100.00,,1100.00\n"
        "05/04/2025,PAGO OXXO,100.00,,1200.00\n"
        "05/04/2025,PAGO SPEI,100.00,,1300.00\n"
    )
    imported = import_statement(write(tmp_path, "b.csv", text), "banamex", account="a")
    assert imported.frame["occurrence"].to_list() == [1, 2, 1]
    assert imported.frame["line_id"].n_unique() == 3


# --------------------------------------------------------------------------------- rejection


def test_an_unparseable_amount_is_rejected_naming_the_line(tmp_path: Path) -> None:
    text = BBVA_TXT.replace("$700.50", "700,50")
    with pytest.raises(InvalidInput, match=r"line 4: unparseable amount in abono"):
        import_statement(write(tmp_path, "bbva.txt", text, "latin-1"), "bbva", account="a")


def test_a_bad_date_is_rejected_naming_the_line(tmp_path: Path) -> None:
    text = SANTANDER_CSV.replace("16/04/2025", "31/02/2025")
    with pytest.raises(InvalidInput, match=r"line 5: bad date '31/02/2025'"):
        import_statement(write(tmp_path, "s.csv", text), "santander", account="a")


def test_a_line_with_both_cargo_and_abono_is_rejected(tmp_path: Path) -> None:
    text = BANAMEX_CSV.replace(',,"$11,000.00"', ',"$5.00","$11,000.00"')
    with pytest.raises(InvalidInput, match=r"line 9: both cargo and abono"):
        import_statement(write(tmp_path, "b.csv", text), "banamex", account="a")


def test_a_file_without_the_expected_columns_is_rejected(tmp_path: Path) -> None:
    text = "Fecha,Texto\n01/04/2025,HOLA\n"
    with pytest.raises(InvalidInput, match="missing column"):
        import_statement(write(tmp_path, "x.csv", text), "banorte", account="a")


def test_a_file_in_the_wrong_encoding_is_rejected_naming_the_line(tmp_path: Path) -> None:
    mapping = ColumnMapping(date="Fecha", concept=("Texto",), amount="Importe")
    text = "Fecha,Texto,Importe\n01/04/2025,PAGO,1.00\n02/04/2025,DEPÓSITO,2.00\n"
    with pytest.raises(InvalidInput, match="line 3: wrong encoding"):
        import_statement(
            write(tmp_path, "g.csv", text, "latin-1"), "generic", account="a", mapping=mapping
        )


def test_a_utf16_file_given_as_a_bank_export_is_rejected_as_wrong_encoding(
    tmp_path: Path,
) -> None:
    with pytest.raises(InvalidInput, match="wrong encoding"):
        import_statement(
            write(tmp_path, "s.csv", SANTANDER_CSV, "utf-16"), "santander", account="a"
        )


def test_a_movement_after_the_end_of_the_table_is_rejected(tmp_path: Path) -> None:
    text = BANAMEX_CSV + "\nTotal,2\n07/04/2025,OTRO,,1.00,10449.00\n"
    with pytest.raises(InvalidInput, match="line 13: movement after the end of the table"):
        import_statement(write(tmp_path, "b.csv", text), "banamex", account="a")


def test_an_unknown_bank_or_a_generic_import_without_mapping_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", SANTANDER_CSV)
    with pytest.raises(InvalidInput, match="unknown bank"):
        import_statement(path, "hsbc", account="a")
    with pytest.raises(InvalidInput, match="needs a column mapping"):
        import_statement(path, "generic", account="a")


# ---------------------------------------------------------------------------------- balances


def test_a_missing_line_shows_as_one_balance_break(tmp_path: Path) -> None:
    lines = BBVA_TXT.splitlines(keepends=True)
    text = "".join([lines[0], lines[1], lines[3]])
    imported = import_statement(write(tmp_path, "bbva.txt", text, "latin-1"), "bbva", account="a")
    assert imported.lines == 2
    assert imported.balance_breaks == [(2, 1_250_050, 1_000_050)]


def test_a_newest_first_export_is_checked_bottom_up(tmp_path: Path) -> None:
    lines = BBVA_TXT.splitlines(keepends=True)
    text = "".join([lines[0], *reversed(lines[1:])])
    imported = import_statement(write(tmp_path, "bbva.txt", text, "latin-1"), "bbva", account="a")
    assert imported.balance_breaks == []
    assert imported.frame["row_no"].to_list() == [1, 2, 3]
