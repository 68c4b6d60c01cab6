"""The payment state machine: Conekta order snapshots joined into one monotonic payment state.

Conekta delivers several events per payment, late, duplicated and out of order
(shared/docs/providers.md §1.8). Each event carries a snapshot of the order; `merge` is a join
(commutative, associative, idempotent), so any delivery order of the same snapshots gives the same
`PaymentState`, and no snapshot moves a payment backwards.

Fields that cannot be joined by a plain max/min ("the latest one wins": amount, fee, customer,
payment method) are last-writer-wins registers ordered by the `Stamp` of the snapshot that
supplied them, (updated_at, status position), with the value itself as the final tie-break. Those
stamps live in `PaymentState.provenance`, which a repository must persist with the state for
merges after a reload to stay order-independent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from guardia.core.clock import from_unix
from guardia.core.errors import InvalidInput
from guardia.core.money import Money

__all__ = [
    "OrderSnapshot",
    "PaymentMethod",
    "PaymentState",
    "PaymentStatus",
    "Provenance",
    "Stamp",
    "diff",
    "is_terminal",
    "merge",
    "snapshot_from_order",
    "status_rank",
]


class PaymentStatus(StrEnum):
    """Where a payment stands, as Guardia tracks it."""

    PENDING_PAYMENT = "pending_payment"
    DECLINED = "declined"
    EXPIRED = "expired"
    CANCELED = "canceled"
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    CHARGED_BACK = "charged_back"


# Total order used by the join. Expired and canceled share rank 2; the fixed tie-break puts
# canceled above expired (an explicit cancellation is the stronger fact).
_POSITION: dict[PaymentStatus, int] = {
    PaymentStatus.PENDING_PAYMENT: 0,
    PaymentStatus.DECLINED: 1,
    PaymentStatus.EXPIRED: 2,
    PaymentStatus.CANCELED: 3,
    PaymentStatus.PAID: 4,
    PaymentStatus.PARTIALLY_REFUNDED: 5,
    PaymentStatus.REFUNDED: 6,
    PaymentStatus.CHARGED_BACK: 7,
}
_RANK: dict[PaymentStatus, int] = {
    PaymentStatus.PENDING_PAYMENT: 0,
    PaymentStatus.DECLINED: 1,
    PaymentStatus.EXPIRED: 2,
    PaymentStatus.CANCELED: 2,
    PaymentStatus.PAID: 3,
    PaymentStatus.PARTIALLY_REFUNDED: 4,
    PaymentStatus.REFUNDED: 5,
    PaymentStatus.CHARGED_BACK: 6,
}
_TERMINAL = frozenset(
    {
        PaymentStatus.DECLINED,
        PaymentStatus.EXPIRED,
        PaymentStatus.CANCELED,
        PaymentStatus.REFUNDED,
        PaymentStatus.CHARGED_BACK,
    }
)

# Provider words that are not Guardia statuses but imply one.
_STATUS_ALIASES: dict[str, PaymentStatus] = {
    "pre_authorized": PaymentStatus.PENDING_PAYMENT,
    "voided": PaymentStatus.CANCELED,
    "cancelled": PaymentStatus.CANCELED,
    "chargeback": PaymentStatus.CHARGED_BACK,
}
_PAID_CHARGE_STATUSES = frozenset(
    {"paid", "partially_refunded", "refunded", "charged_back", "chargeback"}
)
_PAYER_FIELDS = ("clabe", "tracking_code", "reference_number")


@dataclass(frozen=True, slots=True)
class PaymentMethod:
    """How the customer pays: card, SPEI, OXXO, other cash, or a kind we don't model yet."""

    kind: str
    reference: str | None
    clabe: str | None = None
    tracking_code: str | None = None
    reference_number: str | None = None
    charge_id: str | None = None


@dataclass(frozen=True, slots=True)
class OrderSnapshot:
    """The authoritative fields of one Conekta order at one moment."""

    order_id: str
    status: PaymentStatus
    amount: Money
    amount_refunded_cents: int
    method: PaymentMethod | None
    paid_at: datetime | None
    updated_at: datetime
    customer_id: str | None
    fee_cents: int | None

    def __post_init__(self) -> None:
        _require_aware("updated_at", self.updated_at)
        if self.paid_at is not None:
            _require_aware("paid_at", self.paid_at)
        if self.amount_refunded_cents < 0:
            raise InvalidInput("amount_refunded_cents must not be negative")


@dataclass(frozen=True, slots=True, order=True)
class Stamp:
    """When, and at which status position, the snapshot that supplied a value was taken."""

    updated_at: datetime
    position: int


@dataclass(frozen=True, slots=True)
class Provenance:
    """Stamps of the snapshots behind each last-writer-wins field; persist it with the state."""

    raw_status: PaymentStatus
    amount: Stamp
    fee: Stamp | None = None
    customer_id: Stamp | None = None
    method: Stamp | None = None
    clabe: Stamp | None = None
    tracking_code: Stamp | None = None
    reference_number: Stamp | None = None


@dataclass(frozen=True, slots=True)
class PaymentState:
    """Guardia's view of one payment: the join of every order snapshot seen so far."""

    order_id: str
    status: PaymentStatus
    amount: Money
    amount_refunded_cents: int
    method: PaymentMethod | None
    paid_at: datetime | None
    customer_id: str | None
    fee_cents: int | None
    source_updated_at: datetime
    provenance: Provenance


_STATE_FIELDS = (
    "order_id",
    "status",
    "amount",
    "amount_refunded_cents",
    "method",
    "paid_at",
    "customer_id",
    "fee_cents",
    "source_updated_at",
)


def status_rank(status: PaymentStatus) -> int:
    """Return the documented rank of a status (expired and canceled share rank 2)."""
    return _RANK[status]


def is_terminal(status: PaymentStatus) -> bool:
    """Tell whether the normal lifecycle ends at this status (a higher rank may still arrive)."""
    return status in _TERMINAL


def snapshot_from_order(
    order: Mapping[str, Any], *, event_type: str | None = None
) -> OrderSnapshot:
    """Parse a Conekta order JSON leniently into a snapshot; the event name may raise the status."""
    kind = order.get("object")
    if kind is not None and kind != "order":
        raise InvalidInput(f"expected a Conekta order, got object {kind!r}")
    order_id = _text(order.get("id"))
    if order_id is None:
        raise InvalidInput("Conekta order has no id")
    amount = _money(order, order_id)
    updated_at = _instant(order.get("updated_at")) or _instant(order.get("created_at"))
    if updated_at is None:
        raise InvalidInput(f"Conekta order {order_id} has neither updated_at nor created_at")

    charges = _charges(order)
    refunded = _cents(order.get("amount_refunded"))
    if refunded is None:
        refunded = sum(abs(_cents(refund.get("amount")) or 0) for refund in _refunds(charges))
    refunded = abs(refunded)

    status = max(
        (
            s
            for s in (_status_from_payment_status(order), _status_from_event(event_type))
            if s is not None
        ),
        key=_POSITION.__getitem__,
        default=PaymentStatus.PENDING_PAYMENT,
    )
    paid_times = [t for t in (_instant(c.get("paid_at")) for c in charges) if t is not None]
    order_paid_at = _instant(order.get("paid_at"))
    if order_paid_at is not None:
        paid_times.append(order_paid_at)
    fees = [fee for fee in (_cents(c.get("fee")) for c in charges) if fee is not None]

    return OrderSnapshot(
        order_id=order_id,
        status=_derive(status, refunded, amount.cents),
        amount=amount,
        amount_refunded_cents=refunded,
        method=_method(charges),
        paid_at=min(paid_times, default=None),
        updated_at=updated_at,
        customer_id=_customer_id(order, charges),
        fee_cents=sum(fees) if fees else None,
    )


def merge(current: PaymentState | None, snapshot: OrderSnapshot) -> PaymentState:
    """Join a snapshot into the current state; order, duplicates and lateness don't matter."""
    observed = _lift(snapshot)
    if current is None:
        return observed
    return _join(current, observed)


def diff(before: PaymentState | None, after: PaymentState) -> dict[str, tuple[object, object]]:
    """Return field → (old, new) for every visible field that differs, for dry runs."""
    if before is not None and before.order_id != after.order_id:
        raise InvalidInput(f"cannot diff order {before.order_id} against {after.order_id}")
    changes: dict[str, tuple[object, object]] = {}
    for name in _STATE_FIELDS:
        old = None if before is None else getattr(before, name)
        new = getattr(after, name)
        if old != new:
            changes[name] = (old, new)
    return changes


# --- join ----------------------------------------------------------------------------------

_V = TypeVar("_V")


def _lift(snapshot: OrderSnapshot) -> PaymentState:
    status = _derive(snapshot.status, snapshot.amount_refunded_cents, snapshot.amount.cents)
    stamp = Stamp(snapshot.updated_at.astimezone(UTC), _POSITION[status])
    method = snapshot.method
    return PaymentState(
        order_id=snapshot.order_id,
        status=status,
        amount=snapshot.amount,
        amount_refunded_cents=snapshot.amount_refunded_cents,
        method=method,
        paid_at=None if snapshot.paid_at is None else snapshot.paid_at.astimezone(UTC),
        customer_id=snapshot.customer_id,
        fee_cents=snapshot.fee_cents,
        source_updated_at=stamp.updated_at,
        provenance=Provenance(
            raw_status=status,
            amount=stamp,
            fee=_stamp_if(stamp, snapshot.fee_cents),
            customer_id=_stamp_if(stamp, snapshot.customer_id),
            method=_stamp_if(stamp, method),
            clabe=_stamp_if(stamp, None if method is None else method.clabe),
            tracking_code=_stamp_if(stamp, None if method is None else method.tracking_code),
            reference_number=_stamp_if(stamp, None if method is None else method.reference_number),
        ),
    )


def _join(a: PaymentState, b: PaymentState) -> PaymentState:
    if a.order_id != b.order_id:
        raise InvalidInput(f"cannot merge order {b.order_id} into {a.order_id}")
    if a.amount.currency != b.amount.currency:
        raise InvalidInput(
            f"order {a.order_id} changed currency: {a.amount.currency} vs {b.amount.currency}"
        )
    pa, pb = a.provenance, b.provenance

    raw_status = max(pa.raw_status, pb.raw_status, key=_POSITION.__getitem__)
    amount_stamp, amount_cents = max(
        (pa.amount, a.amount.cents), (pb.amount, b.amount.cents), key=_stamped_int_key
    )
    refunded = max(a.amount_refunded_cents, b.amount_refunded_cents)
    fee = _latest(_reg(pa.fee, a.fee_cents), _reg(pb.fee, b.fee_cents), _int_key)
    customer = _earliest(
        _reg(pa.customer_id, a.customer_id), _reg(pb.customer_id, b.customer_id), _str_key
    )
    base = _latest(_reg(pa.method, a.method), _reg(pb.method, b.method), _method_key)
    payer = {
        name: _latest(
            _reg(getattr(pa, name), _payer_field(a.method, name)),
            _reg(getattr(pb, name), _payer_field(b.method, name)),
            _str_key,
        )
        for name in _PAYER_FIELDS
    }
    method: PaymentMethod | None = None
    if base is not None:
        # Kind, reference and charge come from the latest snapshot; payer details it lacks are
        # kept from the latest snapshot that knew them (never replaced with None).
        method = PaymentMethod(
            kind=base[1].kind,
            reference=base[1].reference,
            charge_id=base[1].charge_id,
            clabe=_value(payer["clabe"]),
            tracking_code=_value(payer["tracking_code"]),
            reference_number=_value(payer["reference_number"]),
        )

    return PaymentState(
        order_id=a.order_id,
        status=_derive(raw_status, refunded, amount_cents),
        amount=Money(amount_cents, a.amount.currency),
        amount_refunded_cents=refunded,
        method=method,
        paid_at=min((t for t in (a.paid_at, b.paid_at) if t is not None), default=None),
        customer_id=_value(customer),
        fee_cents=_value(fee),
        source_updated_at=max(a.source_updated_at, b.source_updated_at),
        provenance=Provenance(
            raw_status=raw_status,
            amount=amount_stamp,
            fee=_stamp(fee),
            customer_id=_stamp(customer),
            method=_stamp(base),
            clabe=_stamp(payer["clabe"]),
            tracking_code=_stamp(payer["tracking_code"]),
            reference_number=_stamp(payer["reference_number"]),
        ),
    )


def _derive(status: PaymentStatus, refunded_cents: int, amount_cents: int) -> PaymentStatus:
    """Raise the status to what the refunded amount proves; never lower it."""
    if _RANK[status] < _RANK[PaymentStatus.PAID] or status is PaymentStatus.CHARGED_BACK:
        return status
    if refunded_cents >= amount_cents and refunded_cents > 0:
        return PaymentStatus.REFUNDED
    if refunded_cents > 0 and status is PaymentStatus.PAID:
        return PaymentStatus.PARTIALLY_REFUNDED
    return status


def _reg(stamp: Stamp | None, value: _V | None) -> tuple[Stamp, _V] | None:
    if stamp is None or value is None:
        return None
    return stamp, value


def _latest(
    a: tuple[Stamp, _V] | None,
    b: tuple[Stamp, _V] | None,
    tie_break: Callable[[_V], tuple[object, ...]],
) -> tuple[Stamp, _V] | None:
    if a is None or b is None:
        return a if b is None else b
    key_a = (a[0].updated_at, a[0].position, tie_break(a[1]))
    key_b = (b[0].updated_at, b[0].position, tie_break(b[1]))
    return a if key_a >= key_b else b


def _earliest(
    a: tuple[Stamp, _V] | None,
    b: tuple[Stamp, _V] | None,
    tie_break: Callable[[_V], tuple[object, ...]],
) -> tuple[Stamp, _V] | None:
    if a is None or b is None:
        return a if b is None else b
    key_a = (a[0].updated_at, a[0].position, tie_break(a[1]))
    key_b = (b[0].updated_at, b[0].position, tie_break(b[1]))
    return a if key_a <= key_b else b


def _value(register: tuple[Stamp, _V] | None) -> _V | None:
    return None if register is None else register[1]


def _stamp(register: tuple[Stamp, _V] | None) -> Stamp | None:
    return None if register is None else register[0]


def _stamp_if(stamp: Stamp, value: object) -> Stamp | None:
    return None if value is None else stamp


def _stamped_int_key(register: tuple[Stamp, int]) -> tuple[datetime, int, int]:
    return register[0].updated_at, register[0].position, register[1]


def _int_key(value: int) -> tuple[object, ...]:
    return (value,)


def _str_key(value: str) -> tuple[object, ...]:
    return (value,)


def _method_key(method: PaymentMethod) -> tuple[object, ...]:
    # Only the fields the base register supplies: payer fields are joined separately, so a
    # state's filled-in payer fields must not change how its base compares.
    return tuple(
        (value is not None, value or "")
        for value in (method.kind, method.reference, method.charge_id)
    )


def _payer_field(method: PaymentMethod | None, name: str) -> str | None:
    if method is None:
        return None
    value: str | None = getattr(method, name)
    return value


# --- lenient parsing -----------------------------------------------------------------------


def _require_aware(name: str, moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput(f"{name} must be timezone-aware")


def _text(value: object) -> str | None:
    if isinstance(value, str):
        stripped = value.strip()
        return stripped or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


# What a PostgreSQL bigint holds. A JSON amount such as 1e30 comes back from a jsonb column as
# a 31-digit integer: refused here, it is invalid input once, not a database error retried forever.
_MAX_CENTS = 2**63 - 1


def _cents(value: object) -> int | None:
    """Integer cents from an int or a string of digits; floats and out-of-range values are
    refused (never money)."""
    cents: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        cents = value
    elif isinstance(value, str):
        stripped = value.strip()
        digits = stripped.removeprefix("-")
        # The length test comes first: int() refuses strings past 4300 digits with ValueError.
        if len(digits) <= len(str(_MAX_CENTS)) and digits.isascii() and digits.isdigit():
            cents = int(stripped)
    if cents is None or abs(cents) > _MAX_CENTS:
        return None
    return cents


def _instant(value: object) -> datetime | None:
    """An aware UTC datetime from Unix seconds (int or digit string) or ISO-8601 with offset."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        try:
            return from_unix(value)
        except (ValueError, OverflowError, OSError):
            return None
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.isascii() and stripped.isdigit():
            return _instant(int(stripped))
        try:
            parsed = datetime.fromisoformat(stripped)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            return None
        return parsed.astimezone(UTC)
    return None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list_of_mappings(value: object) -> list[Mapping[str, Any]]:
    items = value.get("data") if isinstance(value, Mapping) else value
    if isinstance(items, Sequence) and not isinstance(items, str | bytes):
        return [item for item in items if isinstance(item, Mapping)]
    return []


def _money(order: Mapping[str, Any], order_id: str) -> Money:
    cents = _cents(order.get("amount"))
    if cents is None or cents < 0:
        raise InvalidInput(f"Conekta order {order_id} has no non-negative integer amount")
    currency = _text(order.get("currency"))
    if currency is None:
        raise InvalidInput(f"Conekta order {order_id} has no currency")
    try:
        return Money(cents, currency.upper())
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"Conekta order {order_id}: {exc}") from exc


def _charges(order: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return _list_of_mappings(order.get("charges"))


def _refunds(charges: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [refund for charge in charges for refund in _list_of_mappings(charge.get("refunds"))]


def _parse_status(value: object) -> PaymentStatus | None:
    text = _text(value)
    if text is None:
        return None
    text = text.lower()
    try:
        return PaymentStatus(text)
    except ValueError:
        return _STATUS_ALIASES.get(text)


def _status_from_payment_status(order: Mapping[str, Any]) -> PaymentStatus | None:
    return _parse_status(order.get("payment_status"))


def _status_from_event(event_type: str | None) -> PaymentStatus | None:
    if event_type is None or not event_type.startswith("order."):
        return None
    return _parse_status(event_type.removeprefix("order."))


def _customer_id(order: Mapping[str, Any], charges: list[Mapping[str, Any]]) -> str | None:
    found = _text(_mapping(order.get("customer_info")).get("customer_id"))
    if found is not None:
        return found
    return next(
        (cid for cid in (_text(c.get("customer_id")) for c in charges) if cid is not None), None
    )


def _method(charges: list[Mapping[str, Any]]) -> PaymentMethod | None:
    """The payment method of the charge that paid, else of the newest charge."""
    with_method = [c for c in charges if isinstance(c.get("payment_method"), Mapping)]
    if not with_method:
        return None

    def preference(charge: Mapping[str, Any]) -> tuple[bool, float, str]:
        paid = (
            _instant(charge.get("paid_at")) is not None
            or str(charge.get("status")) in _PAID_CHARGE_STATUSES
        )
        created = _instant(charge.get("created_at"))
        return (paid, created.timestamp() if created else 0.0, _text(charge.get("id")) or "")

    charge = max(with_method, key=preference)
    return _payment_method(_mapping(charge.get("payment_method")), _text(charge.get("id")))


def _payment_method(pm: Mapping[str, Any], charge_id: str | None) -> PaymentMethod:
    kind = _text(pm.get("object"))
    sub_type = (_text(pm.get("type")) or "").lower()
    if kind in ("card_payment", "card"):
        last4 = _text(pm.get("last4"))
        brand = _text(pm.get("brand")) or "card"
        return PaymentMethod(
            kind="card",
            reference=f"{brand} ****{last4}" if last4 else None,
            charge_id=charge_id,
        )
    if kind == "bank_transfer_payment":
        clabe = _text(pm.get("clabe")) or _text(pm.get("receiving_account_number"))
        return PaymentMethod(
            kind="spei",
            reference=clabe,
            clabe=clabe,
            tracking_code=_text(pm.get("tracking_code")),
            reference_number=_text(pm.get("reference_number")),
            charge_id=charge_id,
        )
    if kind == "cash_payment":
        return PaymentMethod(
            kind="oxxo" if sub_type == "oxxo" else "cash",
            reference=_text(pm.get("reference")),
            charge_id=charge_id,
        )
    return PaymentMethod(kind="other", reference=_text(pm.get("reference")), charge_id=charge_id)
