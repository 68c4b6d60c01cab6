"""The ledger side of the conciliación, from the providers: Conekta charges (amount, fee, net),
Conekta transfers (payouts), and the Odoo moves Guardia posted — as a LEDGER_SCHEMA frame."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from guardia.adapters.postgres.tables import payments, postings
from guardia.core.clock import local_date
from guardia.recon.model import LEDGER_SCHEMA, EntryKind
from guardia.recon.ports import SettlementSource, SettlementTransaction

# Conekta transaction types (docs/providers.md §1.6) → what they do to a payout. Captures add;
# refunds, capture reversals and chargebacks take money back out of the same settlement window;
# a won chargeback gives it back; commissions and adjustments are Conekta's own fees. Payout,
# liquidation and transferred rows are the payout itself, not something it nets.
SETTLING_TYPES: dict[str, tuple[EntryKind, int]] = {
    "capture": (EntryKind.CHARGE, 1),
    "refund": (EntryKind.REFUND, -1),
    "capture_reversal": (EntryKind.REFUND, -1),
    "chargeback": (EntryKind.CHARGEBACK, -1),
    "won_chargeback": (EntryKind.CHARGEBACK, 1),
    "fee": (EntryKind.FEE, 1),
    "adjustment": (EntryKind.FEE, 1),
}


def settlement_entry(
    t: SettlementTransaction,
    *,
    account: str,
    reference: str | None,
    memo: str | None,
    channel: str | None,
) -> dict[str, object] | None:
    """One LEDGER_SCHEMA row for a Conekta transaction a payout nets, or None.

    The sign is set by the type, not trusted from the payload: a refund's ``amount`` is negative
    on the charge (docs/providers.md §1.5) but the /transactions sign is not documented. Fees
    stay positive (deducted: net = amount - fee). Voided transactions never settle.
    """
    settles = SETTLING_TYPES.get(t.kind)
    if settles is None or t.status == "voided":
        return None
    kind, sign = settles
    amount = abs(t.amount_cents) * sign if kind is not EntryKind.FEE else t.amount_cents
    return {
        "entry_id": f"conekta:{t.transaction_id}",
        "source": "conekta",
        "kind": kind.value,
        "account": account,
        "amount_cents": amount,
        "fee_cents": abs(t.fee_cents),
        "occurred_at": t.created_at.astimezone(UTC),
        "booked_date": local_date(t.created_at),
        "reference": reference,
        "memo": memo,
        "channel": channel,
    }


async def build_ledger(
    engine: AsyncEngine, settlement: SettlementSource, *, account: str | None = None
) -> pl.DataFrame:
    """Settlement entries and transfers from Conekta, moves from Guardia's postings, one frame.

    Settlement entries are captures, refunds, chargebacks and fees (``settlement_entry``): a
    payout nets all of them, so dropping refunds left every payout with a refund unexplained.

    Charge references come from the payment Guardia stored for the charge (clave de rastreo,
    referencia numérica, OXXO reference); charges and moves are booked to `account`, or to the
    account the transfers pay into.
    """
    transactions = await settlement.list_transactions()
    transfers = await settlement.list_transfers()
    bank_account = account or next(
        (t.destination_account for t in transfers if t.destination_account), ""
    )
    async with engine.connect() as conn:
        by_charge = {
            r.charge_id: r
            for r in await conn.execute(
                select(
                    payments.c.charge_id,
                    payments.c.order_id,
                    payments.c.method_kind,
                    payments.c.method_reference,
                    payments.c.tracking_code,
                    payments.c.reference_number,
                ).where(payments.c.charge_id.is_not(None))
            )
        }
        moves = list(
            await conn.execute(
                select(postings).where(postings.c.state == "posted").order_by(postings.c.id)
            )
        )
    rows: list[dict[str, object]] = []
    for t in transactions:
        paid = by_charge.get(t.charge_id)
        reference = None
        if paid is not None:
            reference = paid.tracking_code or paid.reference_number or paid.method_reference
        row = settlement_entry(
            t,
            account=bank_account,
            reference=reference,
            memo=paid.order_id if paid is not None else t.charge_id,
            channel=paid.method_kind if paid is not None else None,
        )
        if row is not None:
            rows.append(row)
    for tr in transfers:
        rows.append(
            {
                "entry_id": f"conekta:{tr.transfer_id}",
                "source": "conekta",
                "kind": EntryKind.TRANSFER.value,
                "account": tr.destination_account or bank_account,
                "amount_cents": tr.amount_cents,
                "fee_cents": 0,
                "occurred_at": tr.created_at.astimezone(UTC),
                "booked_date": local_date(tr.created_at),
                "reference": tr.statement_reference,
                "memo": tr.statement_description,
                "channel": "payout",
            }
        )
    for m in moves:
        sign = 1 if m.kind == "payment" else -1
        moment = m.posted_at or datetime.now(UTC)
        rows.append(
            {
                "entry_id": f"odoo:{m.odoo_move_id}",
                "source": "odoo",
                "kind": EntryKind.MOVE.value,
                "account": bank_account,
                "amount_cents": sign * int(m.amount_cents),
                "fee_cents": 0,
                "occurred_at": moment.astimezone(UTC),
                "booked_date": m.entry_date,
                "reference": m.ref,
                "memo": m.odoo_move_name,
                "channel": "odoo",
            }
        )
    return (
        pl.DataFrame(rows, schema=LEDGER_SCHEMA, orient="row")
        if rows
        else pl.DataFrame(schema=LEDGER_SCHEMA)
    )
