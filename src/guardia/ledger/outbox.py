"""The ledger outbox: posting rows written in the same transaction that changes a payment.

One row per (order, kind) under a unique key, so duplicate webhooks, replays and concurrent
workers can only ever want the same postings (docs/odoo.md §6: Odoo does not deduplicate refs).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from guardia.adapters.postgres.tables import postings
from guardia.core.clock import local_date
from guardia.ledger.model import PostingState, wanted_postings
from guardia.payments.model import PaymentState, PaymentStatus, status_rank

RETURNED = (PaymentStatus.REFUNDED, PaymentStatus.CHARGED_BACK)


def posting_ref(order_id: str, kind: str) -> str:
    """The `ref` the entry carries in Odoo: the Conekta order id (plus the refund level)."""
    return order_id if kind == "payment" else f"{order_id}:{kind}"


async def record_postings(
    conn: AsyncConnection, state: PaymentState, *, correlation_id: str, now: datetime
) -> list[int]:
    """Insert the postings the state calls for; return the ids of the new ones."""
    existing = frozenset(
        (
            await conn.execute(select(postings.c.kind).where(postings.c.order_id == state.order_id))
        ).scalars()
    )
    wanted = wanted_postings(
        status_rank=status_rank(state.status),
        paid_rank=status_rank(PaymentStatus.PAID),
        fully_returned=state.status in RETURNED,
        amount_cents=state.amount.cents,
        refunded_cents=state.amount_refunded_cents,
        existing=existing,
    )
    created: list[int] = []
    for w in wanted:
        moment = state.paid_at if w.kind == "payment" and state.paid_at else now
        new_id = await conn.scalar(
            pg_insert(postings)
            .values(
                order_id=state.order_id,
                kind=w.kind,
                state=PostingState.PENDING.value,
                amount_cents=w.amount_cents,
                currency=state.amount.currency,
                entry_date=local_date(moment),
                ref=posting_ref(state.order_id, w.kind),
                correlation_id=correlation_id,
            )
            .on_conflict_do_nothing(constraint="uq_postings_order_kind")
            .returning(postings.c.id)
        )
        if new_id is not None:
            created.append(int(new_id))
    return created
