"""Payment use cases: apply an order snapshot, process a stored event, pull, replay, sweep.

Every path that changes a payment goes through `apply_snapshot`, which serialises on the order
with a transaction-scoped advisory lock (safe through Neon's transaction pooler) and folds the
snapshot in with `model.merge`, a join: late, duplicated or reordered inputs never move a payment
backwards, and applying the same input twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import ColumnElement, func, insert, select, text, true, update
from sqlalchemy.exc import DataError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from guardia.adapters.postgres.tables import (
    kv_state,
    payment_transitions,
    payments,
    recovery_actions,
    webhook_events,
)
from guardia.audit import log as audit
from guardia.core.clock import Clock
from guardia.core.errors import GuardiaError, InvalidInput, NotFound, is_retryable
from guardia.core.ids import new_correlation_id
from guardia.core.money import Money
from guardia.ledger.outbox import record_postings
from guardia.payments.model import (
    OrderSnapshot,
    PaymentMethod,
    PaymentState,
    PaymentStatus,
    Provenance,
    Stamp,
    diff,
    merge,
    snapshot_from_order,
)
from guardia.payments.ports import OrderSource

log = structlog.get_logger(__name__)

#: Event types whose `data.object` is an order and drives the payment state.
ORDER_EVENT_TYPES = frozenset(
    {
        "order.created",
        "order.pending_payment",
        "order.paid",
        "order.expired",
        "order.canceled",
        "order.declined",
        "order.refunded",
        "order.partially_refunded",
        "order.charged_back",
        "order.updated",
        "order.voided",
        "order.pre_authorized",
    }
)
#: Known types recorded against their order without moving its state (order.* is authoritative).
INFORMATIONAL_PREFIXES = ("charge.",)


def classify(event_type: str) -> str:
    """Return how an event type is handled: 'order', 'informational' or 'unknown'."""
    if event_type in ORDER_EVENT_TYPES:
        return "order"
    if event_type.startswith(INFORMATIONAL_PREFIXES):
        return "informational"
    return "unknown"


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying one snapshot did."""

    order_id: str
    before: PaymentState | None
    after: PaymentState
    correlation_id: str
    postings: tuple[int, ...] = ()

    @property
    def changed(self) -> bool:
        """Tell whether the stored payment changed."""
        return self.before != self.after

    def changes(self) -> dict[str, tuple[object, object]]:
        """Field-by-field changes."""
        return diff(self.before, self.after)


_STAMP_FIELDS = (
    "amount",
    "fee",
    "customer_id",
    "method",
    "clabe",
    "tracking_code",
    "reference_number",
)


def provenance_to_json(p: Provenance) -> dict[str, Any]:
    """Serialise the merge stamps so a reloaded state merges exactly as the in-memory one."""
    out: dict[str, Any] = {"raw_status": p.raw_status.value}
    for name in _STAMP_FIELDS:
        stamp: Stamp | None = getattr(p, name)
        out[name] = None if stamp is None else [stamp.updated_at.isoformat(), stamp.position]
    return out


def provenance_from_json(data: dict[str, Any]) -> Provenance:
    """Read merge stamps back."""

    def stamp(value: Any) -> Stamp | None:
        return None if value is None else Stamp(datetime.fromisoformat(value[0]), int(value[1]))

    amount = stamp(data["amount"])
    if amount is None:
        raise InvalidInput("stored provenance has no amount stamp")
    return Provenance(
        raw_status=PaymentStatus(data["raw_status"]),
        amount=amount,
        fee=stamp(data.get("fee")),
        customer_id=stamp(data.get("customer_id")),
        method=stamp(data.get("method")),
        clabe=stamp(data.get("clabe")),
        tracking_code=stamp(data.get("tracking_code")),
        reference_number=stamp(data.get("reference_number")),
    )


def _state_from_row(row: Any) -> PaymentState:
    method = None
    if row.method_kind is not None:
        method = PaymentMethod(
            kind=row.method_kind,
            reference=row.method_reference,
            clabe=row.clabe,
            tracking_code=row.tracking_code,
            reference_number=row.reference_number,
            charge_id=row.charge_id,
        )
    return PaymentState(
        order_id=row.order_id,
        status=PaymentStatus(row.status),
        amount=Money(int(row.amount_cents), row.currency),
        amount_refunded_cents=int(row.amount_refunded_cents),
        method=method,
        paid_at=row.paid_at,
        customer_id=row.customer_id,
        fee_cents=None if row.fee_cents is None else int(row.fee_cents),
        source_updated_at=row.source_updated_at,
        provenance=provenance_from_json(row.provenance),
    )


def _columns(state: PaymentState) -> dict[str, Any]:
    m = state.method
    return {
        "status": state.status.value,
        "amount_cents": state.amount.cents,
        "currency": state.amount.currency,
        "amount_refunded_cents": state.amount_refunded_cents,
        "fee_cents": state.fee_cents,
        "method_kind": m.kind if m else None,
        "method_reference": m.reference if m else None,
        "clabe": m.clabe if m else None,
        "tracking_code": m.tracking_code if m else None,
        "reference_number": m.reference_number if m else None,
        "charge_id": m.charge_id if m else None,
        "customer_id": state.customer_id,
        "paid_at": state.paid_at,
        "source_updated_at": state.source_updated_at,
        "provenance": provenance_to_json(state.provenance),
    }


async def lock_order(conn: AsyncConnection, order_id: str) -> None:
    """Serialise work on one order until the transaction ends."""
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"order:{order_id}"},
    )


async def load_state(conn: AsyncConnection, order_id: str) -> tuple[PaymentState | None, Any]:
    """Read the stored payment (state and raw row), or (None, None)."""
    row = (await conn.execute(select(payments).where(payments.c.order_id == order_id))).first()
    return (_state_from_row(row), row) if row is not None else (None, None)


async def apply_snapshot(
    conn: AsyncConnection,
    snapshot: OrderSnapshot,
    *,
    source: str,
    correlation_id: str | None = None,
    event_id: str | None = None,
    event_type: str | None = None,
    event_at: datetime | None = None,
) -> Applied:
    """Fold an order snapshot into the stored payment, inside the caller's transaction."""
    await lock_order(conn, snapshot.order_id)
    before, row = await load_state(conn, snapshot.order_id)
    after = merge(before, snapshot)
    corr = row.correlation_id if row is not None else (correlation_id or new_correlation_id())
    if row is None:
        await conn.execute(
            insert(payments).values(
                order_id=snapshot.order_id, correlation_id=corr, **_columns(after)
            )
        )
    elif after != before:
        await conn.execute(
            update(payments)
            .where(payments.c.order_id == snapshot.order_id)
            .values(updated_at=func.now(), **_columns(after))
        )
    if event_id is not None and (
        row is None or row.last_event_at is None or (event_at and event_at >= row.last_event_at)
    ):
        await conn.execute(
            update(payments)
            .where(payments.c.order_id == snapshot.order_id)
            .values(last_event_id=event_id, last_event_type=event_type, last_event_at=event_at)
        )
    if before is None or before.status != after.status:
        await conn.execute(
            insert(payment_transitions).values(
                order_id=snapshot.order_id,
                from_status=before.status.value if before else None,
                to_status=after.status.value,
                source=source,
                event_id=event_id,
                correlation_id=corr,
            )
        )
        log.info(
            "payment_transition",
            order_id=snapshot.order_id,
            from_status=before.status.value if before else None,
            to_status=after.status.value,
            source=source,
            event_id=event_id,
            correlation_id=corr,
        )
    new_postings: list[int] = []
    if after != before:
        new_postings = await record_postings(
            conn, after, correlation_id=corr, now=after.source_updated_at
        )
    return Applied(snapshot.order_id, before, after, corr, tuple(new_postings))


@dataclass(frozen=True, slots=True)
class Processed:
    """Outcome of processing one stored event."""

    event_pk: int
    outcome: str  # processed | already_processed | ignored
    applied: Applied | None
    received_at: datetime | None


def _order_snapshot_of(body: dict[str, Any], event_type: str) -> OrderSnapshot:
    obj = (body.get("data") or {}).get("object")
    if not isinstance(obj, dict):
        raise InvalidInput(f"event {body.get('id')} has no data.object")
    return snapshot_from_order(obj, event_type=event_type)


async def process_event(engine: AsyncEngine, event_pk: int) -> Processed:
    """Process one stored webhook event exactly once (the status flip commits with the effect).

    An event that can never be processed (an amount "abc", -500 or 1e30, `data: null`) is
    marked `failed` with its error and the failure raised: the inbox relay only picks
    `received` events, so it becomes one dead letter instead of one every relay cycle.
    """
    try:
        return await _process_event(engine, event_pk)
    except DataError as exc:
        # Values the database refuses are in the event and will be refused again.
        refused = InvalidInput(f"stored event {event_pk}: the database refuses it: {exc.orig}")
        await _mark_failed(engine, event_pk, refused)
        raise refused from exc
    except GuardiaError as exc:
        if not is_retryable(exc):
            await _mark_failed(engine, event_pk, exc)
        raise


async def _mark_failed(engine: AsyncEngine, event_pk: int, exc: GuardiaError) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(webhook_events)
            .where(
                webhook_events.c.id == event_pk, webhook_events.c.status.in_(("received", "failed"))
            )
            .values(
                status="failed",
                attempts=webhook_events.c.attempts + 1,
                last_error=exc.message[:2000],
            )
        )
    log.error("event_failed", event_pk=event_pk, error=exc.message[:500])


async def _process_event(engine: AsyncEngine, event_pk: int) -> Processed:
    async with engine.begin() as conn:
        ev = (
            await conn.execute(
                select(webhook_events).where(webhook_events.c.id == event_pk).with_for_update()
            )
        ).first()
        if ev is None:
            raise NotFound(f"stored event {event_pk} not found")
        if ev.status in ("processed", "ignored"):
            return Processed(event_pk, "already_processed", None, ev.received_at)
        kind = classify(ev.event_type)
        applied = None
        if kind == "order":
            applied = await apply_snapshot(
                conn,
                _order_snapshot_of(ev.body, ev.event_type),
                source="webhook",
                correlation_id=ev.correlation_id,
                event_id=ev.event_id,
                event_type=ev.event_type,
                event_at=ev.provider_created_at,
            )
        status = "ignored" if kind == "unknown" else "processed"
        await conn.execute(
            update(webhook_events)
            .where(webhook_events.c.id == event_pk)
            .values(
                status=status,
                processed_at=func.now(),
                attempts=webhook_events.c.attempts + 1,
                last_error=None,
            )
        )
    return Processed(event_pk, status, applied, ev.received_at)


async def record_action(
    conn: AsyncConnection,
    *,
    kind: str,
    actor: str,
    target: dict[str, Any],
    correlation_id: str,
    dry_run: bool,
    result: dict[str, Any],
) -> int:
    """Keep a row for an operator or automatic recovery action."""
    new_id = await conn.scalar(
        insert(recovery_actions)
        .values(
            kind=kind,
            actor=actor,
            target=target,
            correlation_id=correlation_id,
            dry_run=dry_run,
            result=result,
        )
        .returning(recovery_actions.c.id)
    )
    return int(new_id or 0)


def _jsonable_changes(changes: dict[str, tuple[object, object]]) -> dict[str, list[str | None]]:
    return {
        k: [None if a is None else str(a), None if b is None else str(b)]
        for k, (a, b) in changes.items()
    }


@dataclass(frozen=True, slots=True)
class PullResult:
    """A pull by order id: what Conekta says, and what it changed (or would change)."""

    order_id: str
    dry_run: bool
    before: PaymentState | None
    after: PaymentState
    changes: dict[str, tuple[object, object]]
    correlation_id: str
    action_id: int
    postings: tuple[int, ...] = ()


async def pull_order(
    engine: AsyncEngine,
    source: OrderSource,
    order_id: str,
    *,
    actor: str,
    dry_run: bool = False,
    kind: str = "pull",
    reason: str = "",
) -> PullResult:
    """Fetch an order from Conekta and apply it (or, dry run, show the diff and change nothing)."""
    snapshot = await source.get_order(order_id)
    new_postings: tuple[int, ...] = ()
    async with engine.begin() as conn:
        if dry_run:
            before, row = await load_state(conn, order_id)
            after = merge(before, snapshot)
            corr = row.correlation_id if row is not None else new_correlation_id()
        else:
            applied = await apply_snapshot(conn, snapshot, source=kind)
            before, after, corr = applied.before, applied.after, applied.correlation_id
            new_postings = applied.postings
        changes = diff(before, after)
        action_id = await record_action(
            conn,
            kind=kind,
            actor=actor,
            target={"order_id": order_id},
            correlation_id=corr,
            dry_run=dry_run,
            result={"status": after.status.value, "changes": _jsonable_changes(changes)},
        )
        if kind == "pull" and not dry_run:
            await audit.record(
                conn,
                actor=actor,
                action="pull",
                target={"order_id": order_id, "changes": _jsonable_changes(changes)},
                reason=reason,
                correlation_id=corr,
            )
    log.info(
        "order_pulled",
        order_id=order_id,
        dry_run=dry_run,
        status=after.status.value,
        changed=bool(changes),
        correlation_id=corr,
        actor=actor,
    )
    return PullResult(order_id, dry_run, before, after, changes, corr, action_id, new_postings)


@dataclass(frozen=True, slots=True)
class ReplaySelector:
    """Which stored events to replay: by ids, by order, or by a received-at window."""

    event_ids: tuple[str, ...] = ()
    order_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def validate(self) -> None:
        """Refuse an empty selector (it would replay everything)."""
        if not (self.event_ids or self.order_id or self.since or self.until):
            raise InvalidInput("replay needs event ids, an order id, or a time window")
        if self.since and self.until and self.since > self.until:
            raise InvalidInput("replay window: since is after until")


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay did to each order."""

    events: list[str]
    orders: dict[str, str]
    changed_orders: list[str]
    action_id: int
    correlation_ids: list[str] = field(default_factory=list)


async def replay(
    engine: AsyncEngine, selector: ReplaySelector, *, actor: str, reason: str = ""
) -> ReplayResult:
    """Re-apply stored events (idempotent: the join makes a second application a no-op)."""
    selector.validate()
    where: list[Any] = [webhook_events.c.provider == "conekta"]
    if selector.event_ids:
        where.append(webhook_events.c.event_id.in_(selector.event_ids))
    if selector.order_id:
        where.append(webhook_events.c.order_id == selector.order_id)
    if selector.since:
        where.append(webhook_events.c.received_at >= selector.since)
    if selector.until:
        where.append(webhook_events.c.received_at <= selector.until)
    events: list[str] = []
    orders: dict[str, str] = {}
    changed: list[str] = []
    corrs: list[str] = []
    async with engine.begin() as conn:
        rows = (
            await conn.execute(
                select(webhook_events)
                .where(*where)
                .order_by(webhook_events.c.provider_created_at, webhook_events.c.id)
            )
        ).all()
        if selector.event_ids and not rows:
            raise NotFound(f"no stored events with ids {', '.join(selector.event_ids)}")
        for ev in rows:
            events.append(ev.event_id)
            if classify(ev.event_type) != "order":
                continue
            applied = await apply_snapshot(
                conn,
                _order_snapshot_of(ev.body, ev.event_type),
                source="replay",
                correlation_id=ev.correlation_id,
                event_id=ev.event_id,
                event_type=ev.event_type,
                event_at=ev.provider_created_at,
            )
            orders[applied.order_id] = applied.after.status.value
            if applied.changed:
                changed.append(applied.order_id)
            if applied.correlation_id not in corrs:
                corrs.append(applied.correlation_id)
            await conn.execute(
                update(webhook_events)
                .where(webhook_events.c.id == ev.id, webhook_events.c.status != "processed")
                .values(status="processed", processed_at=func.now())
            )
        action_id = await record_action(
            conn,
            kind="replay",
            actor=actor,
            target={
                "event_ids": list(selector.event_ids),
                "order_id": selector.order_id,
                "since": selector.since.isoformat() if selector.since else None,
                "until": selector.until.isoformat() if selector.until else None,
            },
            correlation_id=corrs[0] if len(corrs) == 1 else new_correlation_id(),
            dry_run=False,
            result={"events": events, "orders": orders, "changed": changed},
        )
        await audit.record(
            conn,
            actor=actor,
            action="replay",
            target={"events": events, "orders": orders, "changed": changed},
            reason=reason,
            correlation_id=corrs[0] if len(corrs) == 1 else None,
        )
    log.info("events_replayed", events=len(events), changed=changed, actor=actor)
    return ReplayResult(events, orders, changed, action_id, corrs)


SWEEP_CURSOR_KEY = "conekta.sweep.updated_at_cursor"
SWEEP_OVERLAP = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one sweep pass looked at and healed."""

    pulled: int
    discovered: int
    healed: list[str]
    postings: list[tuple[str, str, tuple[int, ...]]] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


async def pending_orders(
    engine: AsyncEngine,
    *,
    older_than: datetime,
    newer_than: datetime,
    unless: ColumnElement[bool] | None = None,
) -> list[str]:
    """Orders still pending payment that were created inside the sweep window, leaving out
    those for which `unless` holds."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(payments.c.order_id)
            .where(
                payments.c.status == PaymentStatus.PENDING_PAYMENT.value,
                payments.c.created_at < older_than,
                payments.c.created_at > newer_than,
                ~unless if unless is not None else true(),
            )
            .order_by(payments.c.created_at)
            .limit(500)
        )
        return [r.order_id for r in rows]


async def sweep(
    engine: AsyncEngine,
    source: OrderSource,
    clock: Clock,
    *,
    pending_age: timedelta,
    lookback: timedelta,
    grace: timedelta = timedelta(0),
    skip: ColumnElement[bool] | None = None,
) -> SweepResult:
    """Heal lost webhooks: pull stale pending orders, then list orders Conekta updated lately.

    Orders Conekta changed less than `grace` ago are left to their webhook (and listed again
    next pass): what the sweeper heals is then a webhook that did not come in time. Stale
    orders for which `skip` holds are not pulled; one Conekta does not know is reported in
    `unknown` and the pass goes on (it used to stop every pass at that order).
    """
    now = clock.now()
    healed: list[str] = []
    unknown: list[str] = []
    new_postings: list[tuple[str, str, tuple[int, ...]]] = []
    stale = await pending_orders(
        engine, older_than=now - pending_age, newer_than=now - lookback, unless=skip
    )
    for order_id in stale:
        try:
            result = await pull_order(engine, source, order_id, actor="sweeper", kind="sweep")
        except NotFound:
            unknown.append(order_id)
            continue
        if result.changes:
            healed.append(order_id)
        if result.postings:
            new_postings.append((order_id, result.correlation_id, result.postings))
    async with engine.connect() as conn:
        cursor_value = await conn.scalar(
            select(kv_state.c.value).where(kv_state.c.key == SWEEP_CURSOR_KEY)
        )
    cursor = (
        datetime.fromisoformat(str(cursor_value)) if cursor_value else now - lookback
    ) - SWEEP_OVERLAP
    discovered = 0
    newest = cursor
    horizon = now - grace
    async for snapshot in source.iter_orders(updated_at_gte=cursor):
        if snapshot.updated_at > horizon:
            continue
        discovered += 1
        newest = max(newest, snapshot.updated_at)
        async with engine.begin() as conn:
            applied = await apply_snapshot(conn, snapshot, source="sweep")
            if applied.postings:
                new_postings.append((applied.order_id, applied.correlation_id, applied.postings))
            if applied.changed:
                healed.append(snapshot.order_id)
                await record_action(
                    conn,
                    kind="sweep",
                    actor="sweeper",
                    target={"order_id": snapshot.order_id},
                    correlation_id=applied.correlation_id,
                    dry_run=False,
                    result={
                        "status": applied.after.status.value,
                        "changes": _jsonable_changes(applied.changes()),
                    },
                )
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO kv_state (key, value, updated_at) "
                "VALUES (:k, to_jsonb(CAST(:v AS text)), now()) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()"
            ),
            {"k": SWEEP_CURSOR_KEY, "v": min(newest, horizon).isoformat()},
        )
    if healed:
        log.warning("sweep_healed_orders", orders=healed)
    if unknown:
        log.error("sweep_orders_unknown_to_conekta", orders=unknown)
    return SweepResult(len(stale), discovered, healed, new_postings, unknown)


@dataclass(frozen=True, slots=True)
class OrderView:
    """What the PWA and operators see of one payment."""

    order_id: str
    status: str
    amount_cents: int
    currency: str
    amount_refunded_cents: int
    method: str | None
    reference: str | None
    clabe: str | None
    tracking_code: str | None
    paid_at: datetime | None
    correlation_id: str
    last_event_id: str | None
    last_event_type: str | None
    last_event_at: datetime | None
    updated_at: datetime
    transitions: Sequence[dict[str, Any]]


async def get_order_view(engine: AsyncEngine, order_id: str) -> OrderView:
    """Return one payment's status, or raise NotFound."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(payments).where(payments.c.order_id == order_id))).first()
        if row is None:
            raise NotFound(f"order {order_id} is unknown")
        transitions = [
            {
                "from": t.from_status,
                "to": t.to_status,
                "source": t.source,
                "event_id": t.event_id,
                "at": t.at.isoformat(),
            }
            for t in await conn.execute(
                select(payment_transitions)
                .where(payment_transitions.c.order_id == order_id)
                .order_by(payment_transitions.c.id)
            )
        ]
    return OrderView(
        order_id=row.order_id,
        status=row.status,
        amount_cents=int(row.amount_cents),
        currency=row.currency,
        amount_refunded_cents=int(row.amount_refunded_cents),
        method=row.method_kind,
        reference=row.method_reference,
        clabe=row.clabe,
        tracking_code=row.tracking_code,
        paid_at=row.paid_at,
        correlation_id=row.correlation_id,
        last_event_id=row.last_event_id,
        last_event_type=row.last_event_type,
        last_event_at=row.last_event_at,
        updated_at=row.updated_at,
        transitions=transitions,
    )
