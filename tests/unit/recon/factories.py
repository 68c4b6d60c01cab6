"""Small builders for hand-written statement and ledger frames."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl

from guardia.recon.model import LEDGER_SCHEMA, STATEMENT_SCHEMA

ACCOUNT = "012180001234567899"
DAY = date(2025, 4, 16)


def bank_line(
    line_id: str,
    abono: str | None = None,
    *,
    cargo: str | None = None,
    concept: str = "SPEI RECIBIDO",
    reference: str | None = None,
    day: date = DAY,
    account: str = ACCOUNT,
    row_no: int | None = None,
    balance: str | None = None,
) -> dict[str, object]:
    """One raw statement row."""
    return {
        "line_id": line_id,
        "account": account,
        "row_no": row_no
        if row_no is not None
        else int("".join(c for c in line_id if c.isdigit()) or 0),
        "operation_date": day,
        "concept": concept,
        "reference": reference,
        "cargo": cargo,
        "abono": abono,
        "balance": balance,
    }


def statement(*rows: dict[str, object]) -> pl.DataFrame:
    """A raw statement frame."""
    return pl.DataFrame(list(rows), schema=STATEMENT_SCHEMA)


def move(
    entry_id: str,
    amount_cents: int,
    *,
    day: date = DAY,
    reference: str | None = None,
    memo: str | None = None,
    account: str = ACCOUNT,
) -> dict[str, object]:
    """One Odoo move."""
    return {
        "entry_id": entry_id,
        "source": "odoo",
        "kind": "move",
        "account": account,
        "amount_cents": amount_cents,
        "fee_cents": None,
        "occurred_at": None,
        "booked_date": day,
        "reference": reference,
        "memo": memo,
        "channel": None,
    }


def charge(
    entry_id: str, amount_cents: int, fee_cents: int, at: datetime, *, account: str = ACCOUNT
) -> dict[str, object]:
    """One Conekta charge."""
    return {
        "entry_id": entry_id,
        "source": "conekta",
        "kind": "charge",
        "account": account,
        "amount_cents": amount_cents,
        "fee_cents": fee_cents,
        "occurred_at": at,
        "booked_date": None,
        "reference": None,
        "memo": None,
        "channel": "card",
    }


def transfer(
    entry_id: str, amount_cents: int, at: datetime, reference: str, *, account: str = ACCOUNT
) -> dict[str, object]:
    """One Conekta transfer (payout)."""
    return {
        "entry_id": entry_id,
        "source": "conekta",
        "kind": "transfer",
        "account": account,
        "amount_cents": amount_cents,
        "fee_cents": None,
        "occurred_at": at,
        "booked_date": None,
        "reference": reference,
        "memo": f"Conekta {reference}",
        "channel": None,
    }


def ledger(*rows: dict[str, object]) -> pl.DataFrame:
    """A raw ledger frame."""
    return pl.DataFrame(list(rows), schema=LEDGER_SCHEMA)


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """An aware UTC instant."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)
