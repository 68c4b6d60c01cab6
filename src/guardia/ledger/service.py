"""Posting journal entries to the ledger exactly once.

Guardia owns idempotency (docs/odoo.md §6): the posting row (unique per order and kind) is the
record, and its state says how far a posting got. Before any create, Odoo is searched by `ref`
and an existing move is adopted, so a worker killed after Odoo committed but before we recorded
the id cannot cause a second move. One posting runs at a time per order (a transaction advisory
lock held for the duration), across every worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import ColumnElement, func, select, text, true, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from guardia.adapters.postgres.tables import postings
from guardia.core.clock import Clock
from guardia.core.errors import (
    GuardiaError,
    NotFound,
    ProviderRejected,
    ProviderUnavailable,
    failure_cause,
    is_retryable,
)
from guardia.core.money import Money
from guardia.ledger.model import PostingKind, PostingState, two_line_entry
from guardia.ledger.ports import CustomerSource, Ledger, LedgerCatalog
from guardia.payments.model import PaymentStatus, status_rank
from guardia.payments.ports import OrderSource

log = structlog.get_logger(__name__)

TARGET_CAUSES = ("missing_account", "missing_journal", "missing_analytic")


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    """Which journal and accounts the entries use (all configurable; checked at start-up)."""

    journal_code: str
    credit_account_code: str
    debit_account_code: str | None
    analytic_account_id: int | None


@dataclass(frozen=True, slots=True)
class LedgerTargets:
    """The configuration resolved to ledger ids."""

    journal_id: int
    debit_account_id: int
    credit_account_id: int
    analytic_account_id: int | None


class TargetResolver:
    """Resolves (and briefly caches) journal and account ids by code."""

    def __init__(
        self, catalog: LedgerCatalog, config: LedgerConfig, clock: Clock, ttl: float = 30.0
    ) -> None:
        self._catalog = catalog
        self._config = config
        self._clock = clock
        self._ttl = timedelta(seconds=ttl)
        self._cached: tuple[datetime, LedgerTargets] | None = None

    def invalidate(self) -> None:
        """Forget the cached ids (after a catalogue error)."""
        self._cached = None

    async def resolve(self) -> LedgerTargets:
        """Journal, debit and credit account ids; ProviderRejected naming what is missing."""
        now = self._clock.now()
        if self._cached is not None and now - self._cached[0] < self._ttl:
            return self._cached[1]
        cfg = self._config
        journal = await self._catalog.find_journal(cfg.journal_code)
        if journal is None:
            raise ProviderRejected(f"journal {cfg.journal_code} not found", cause="missing_journal")
        if cfg.debit_account_code:
            debit = await self._catalog.find_account(cfg.debit_account_code)
            if debit is None or debit.deprecated:
                raise ProviderRejected(
                    f"debit account {cfg.debit_account_code} not found or deprecated",
                    cause="missing_account",
                )
            debit_id = debit.account_id
        elif journal.default_account_id is not None:
            debit_id = journal.default_account_id
        else:
            raise ProviderRejected(
                f"journal {cfg.journal_code} has no default account and no debit code is set",
                cause="missing_account",
            )
        credit = await self._catalog.find_account(cfg.credit_account_code)
        if credit is None or credit.deprecated:
            # A deprecated account is unusable: Odoo refuses it at create and at posting.
            raise ProviderRejected(
                f"credit account {cfg.credit_account_code} not found or deprecated",
                cause="missing_account",
            )
        if cfg.analytic_account_id is not None:
            analytic = await self._catalog.get_analytic(cfg.analytic_account_id)
            if analytic is None or not analytic.active:
                raise ProviderRejected(
                    f"analytic account {cfg.analytic_account_id} not found or archived",
                    cause="missing_analytic",
                )
        targets = LedgerTargets(
            journal.journal_id, debit_id, credit.account_id, cfg.analytic_account_id
        )
        self._cached = (now, targets)
        return targets


@dataclass(frozen=True, slots=True)
class PostingOutcome:
    """What one run of a posting did."""

    posting_id: int
    order_id: str
    kind: str
    move_id: int | None
    move_name: str | None
    state: str
    adopted: bool


@dataclass
class PostingDeps:
    """What running a posting needs."""

    engine: AsyncEngine
    ledger: Ledger
    resolver: TargetResolver
    orders: OrderSource
    customers: CustomerSource


async def _save(engine: AsyncEngine, posting_id: int, **values: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(postings)
            .where(postings.c.id == posting_id)
            .values(updated_at=func.now(), **values)
        )


async def _hold_order(guard: AsyncConnection, order_id: str) -> None:
    await guard.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"ledger:{order_id}"}
    )


async def run_posting(deps: PostingDeps, posting_id: int) -> PostingOutcome:
    """Create and post one posting's move in the ledger, exactly once."""
    async with deps.engine.connect() as guard, guard.begin():
        row = (await guard.execute(select(postings).where(postings.c.id == posting_id))).first()
        if row is None:
            raise NotFound(f"posting {posting_id} not found")
        await _hold_order(guard, row.order_id)
        row = (await guard.execute(select(postings).where(postings.c.id == posting_id))).one()
        if row.state == PostingState.POSTED.value:
            return PostingOutcome(
                row.id,
                row.order_id,
                row.kind,
                row.odoo_move_id,
                row.odoo_move_name,
                PostingState.POSTED.value,
                False,
            )
        await _save(deps.engine, posting_id, attempts=row.attempts + 1)
        try:
            outcome = await _post(deps, row)
        except GuardiaError as exc:
            if isinstance(exc, ProviderRejected) and exc.cause in TARGET_CAUSES:
                deps.resolver.invalidate()
            if is_retryable(exc):
                await _save(deps.engine, posting_id, last_error=exc.message[:2000])
            else:
                # Dead, so the relay stops picking it (an order Conekta does not know is
                # NotFound, as final as a rejection); only an operator's retry runs it again.
                await _save(
                    deps.engine,
                    posting_id,
                    state=PostingState.DEAD.value,
                    cause=failure_cause(exc),
                    last_error=exc.message[:2000],
                )
            raise
    log.info(
        "posting_posted",
        posting_id=posting_id,
        order_id=outcome.order_id,
        kind=outcome.kind,
        move_id=outcome.move_id,
        adopted=outcome.adopted,
        correlation_id=row.correlation_id,
    )
    return outcome


async def _verify_with_provider(deps: PostingDeps, row: Any) -> None:
    """Re-fetch the order before booking money (docs/reliability.md §2.2, T-15)."""
    snapshot = await deps.orders.get_order(row.order_id)
    if status_rank(snapshot.status) < status_rank(PaymentStatus.PAID):
        raise ProviderRejected(
            f"Conekta says {row.order_id} is {snapshot.status.value}, not paid",
            cause="provider_disagrees",
        )
    if snapshot.amount != Money(int(row.amount_cents), row.currency):
        raise ProviderRejected(
            f"Conekta amount {snapshot.amount} differs from {row.amount_cents} {row.currency}",
            cause="amount_mismatch",
        )


async def _post(deps: PostingDeps, row: Any) -> PostingOutcome:
    targets = await deps.resolver.resolve()
    if row.kind == PostingKind.REVERSAL.value:
        return await _post_reversal(deps, row)
    if row.kind == PostingKind.PAYMENT.value:
        await _verify_with_provider(deps, row)
    move_id: int | None = row.odoo_move_id
    adopted = False
    if move_id is None:
        found = await deps.ledger.find_moves(row.ref, targets.journal_id)
        if found:
            posted = [m for m in found if m.state == "posted"]
            move_id = (posted or found)[0].move_id
            adopted = True
            log.warning("posting_adopted_existing_move", posting_id=row.id, move_id=move_id)
        else:
            await _save(deps.engine, row.id, state=PostingState.CREATING.value)
            customer = await deps.customers.customer_of(row.order_id)
            partner_id = await deps.ledger.ensure_partner(
                customer.ref, customer.name, customer.email
            )
            amount = Money(int(row.amount_cents), row.currency).to_decimal()
            is_payment = row.kind == PostingKind.PAYMENT.value
            entry = two_line_entry(
                ref=row.ref,
                journal_id=targets.journal_id,
                entry_date=row.entry_date,
                amount=amount,
                debit_account_id=(
                    targets.debit_account_id if is_payment else targets.credit_account_id
                ),
                credit_account_id=(
                    targets.credit_account_id if is_payment else targets.debit_account_id
                ),
                label=f"{'Pago' if is_payment else 'Devolución'} Conekta {row.order_id}",
                partner_id=partner_id,
                analytic_account_id=targets.analytic_account_id,
            )
            move_id = await deps.ledger.create_move(entry)
        await _save(deps.engine, row.id, state=PostingState.CREATED.value, odoo_move_id=move_id)
    move = await deps.ledger.post_move(move_id)
    await _save(
        deps.engine,
        row.id,
        state=PostingState.POSTED.value,
        odoo_move_id=move.move_id,
        odoo_move_name=move.name,
        odoo_state=move.state,
        posted_at=func.now(),
        cause=None,
        last_error=None,
    )
    return PostingOutcome(
        row.id, row.order_id, row.kind, move.move_id, move.name, PostingState.POSTED.value, adopted
    )


async def _post_reversal(deps: PostingDeps, row: Any) -> PostingOutcome:
    async with deps.engine.connect() as conn:
        payment = (
            await conn.execute(
                select(postings).where(
                    postings.c.order_id == row.order_id, postings.c.kind == "payment"
                )
            )
        ).first()
    if (
        payment is None
        or payment.state != PostingState.POSTED.value
        or payment.odoo_move_id is None
    ):
        raise ProviderUnavailable(f"payment entry of {row.order_id} not posted yet")
    existing = await deps.ledger.find_reversal(int(payment.odoo_move_id))
    adopted = existing is not None
    if existing is None:
        await _save(deps.engine, row.id, state=PostingState.CREATING.value)
        move = await deps.ledger.reverse_move(
            int(payment.odoo_move_id), row.entry_date, f"Conekta {row.order_id} returned"
        )
    elif existing.state != "posted":
        move = await deps.ledger.post_move(existing.move_id)
    else:
        move = existing
    await _save(
        deps.engine,
        row.id,
        state=PostingState.POSTED.value,
        odoo_move_id=move.move_id,
        odoo_move_name=move.name,
        odoo_state=move.state,
        posted_at=func.now(),
        cause=None,
        last_error=None,
    )
    return PostingOutcome(
        row.id, row.order_id, row.kind, move.move_id, move.name, PostingState.POSTED.value, adopted
    )


async def pending_postings(
    engine: AsyncEngine, *, older_than: datetime, unless: ColumnElement[bool] | None = None
) -> list[tuple[int, str, str]]:
    """Postings not posted nor dead, untouched since a moment, leaving out those for which
    `unless` holds: (id, order_id, correlation_id)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(postings.c.id, postings.c.order_id, postings.c.correlation_id)
            .where(
                postings.c.state.in_(
                    (
                        PostingState.PENDING.value,
                        PostingState.CREATING.value,
                        PostingState.CREATED.value,
                    )
                )
            )
            .where(postings.c.updated_at < older_than)
            .where(~unless if unless is not None else true())
            .order_by(postings.c.id)
            .limit(1000)
        )
        return [(r.id, r.order_id, r.correlation_id) for r in rows]


async def postings_of(engine: AsyncEngine, order_id: str) -> list[dict[str, Any]]:
    """An order's postings, for the API."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(postings).where(postings.c.order_id == order_id).order_by(postings.c.id)
        )
        return [
            {
                "kind": r.kind,
                "state": r.state,
                "amount_cents": int(r.amount_cents),
                "entry_date": r.entry_date.isoformat(),
                "ref": r.ref,
                "odoo_move_id": r.odoo_move_id,
                "odoo_move_name": r.odoo_move_name,
                "odoo_state": r.odoo_state,
                "cause": r.cause,
                "attempts": r.attempts,
            }
            for r in rows
        ]
