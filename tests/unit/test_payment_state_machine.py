"""The payment state machine: lenient parsing of Conekta orders and an order-independent join."""

from __future__ import annotations

import copy
import itertools
import json
from datetime import UTC, datetime, timedelta
from functools import reduce
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardia.core.errors import InvalidInput
from guardia.core.money import Money
from guardia.payments.model import (
    OrderSnapshot,
    PaymentMethod,
    PaymentState,
    PaymentStatus,
    diff,
    is_terminal,
    merge,
    snapshot_from_order,
    status_rank,
)
from tests.conftest import shared_dir


def _conekta_dir() -> Path:
    return shared_dir() / "fixtures" / "providers" / "conekta"


def _event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((_conekta_dir() / name).read_text(encoding="utf-8"))
    return loaded


def _order(name: str) -> dict[str, Any]:
    order: dict[str, Any] = _event(name)["data"]["object"]
    return order


def _snapshot(name: str) -> OrderSnapshot:
    event = _event(name)
    return snapshot_from_order(event["data"]["object"], event_type=event["type"])


def _fold(snapshots: list[OrderSnapshot] | tuple[OrderSnapshot, ...]) -> PaymentState | None:
    return reduce(merge, snapshots, None)


# --- parsing the shared fixtures -------------------------------------------------------------


def test_a_paid_spei_order_yields_its_clabe_tracking_code_and_reference_number() -> None:
    snapshot = _snapshot("order_paid_spei.json")

    assert snapshot.order_id == "ord_2yQ8nCk3vJ5dWx9Ra"
    assert snapshot.status is PaymentStatus.PAID
    assert snapshot.amount == Money(150000, "MXN")
    assert snapshot.fee_cents == 1334
    assert snapshot.customer_id == "cus_2yQ8mXbN4kLpT7rEw"
    assert snapshot.paid_at == datetime(2025, 4, 16, 17, 10, 15, tzinfo=UTC)
    assert snapshot.updated_at == datetime(2025, 4, 16, 17, 10, 15, tzinfo=UTC)
    assert snapshot.method == PaymentMethod(
        kind="spei",
        reference="646180157200198457",
        clabe="646180157200198457",
        tracking_code="MBAN01002504160012345678",
        reference_number="1234567",
        charge_id="6631f0c2a4e9b3001d2f7a21",
    )


def test_a_pending_spei_order_has_the_clabe_but_no_payer_fields_yet() -> None:
    snapshot = _snapshot("order_pending_payment_spei.json")

    assert snapshot.status is PaymentStatus.PENDING_PAYMENT
    assert snapshot.method is not None
    assert snapshot.method.clabe == "646180157200198457"
    assert snapshot.method.tracking_code is None
    assert snapshot.method.reference_number is None
    assert snapshot.paid_at is None


def test_an_expired_oxxo_order_keeps_its_fourteen_digit_reference() -> None:
    snapshot = _snapshot("order_expired_oxxo.json")

    assert snapshot.status is PaymentStatus.EXPIRED
    assert snapshot.method == PaymentMethod(
        kind="oxxo", reference="93000262294518", charge_id="6631f5aaa4e9b3001d2f7c77"
    )


def test_a_refunded_card_order_with_a_negative_refund_amount_is_refunded() -> None:
    snapshot = _snapshot("order_refunded_card.json")

    assert snapshot.status is PaymentStatus.REFUNDED
    assert snapshot.amount_refunded_cents == 50000
    assert snapshot.method is not None
    assert snapshot.method.kind == "card"
    assert snapshot.method.reference == "visa ****4242"


def test_without_amount_refunded_the_refunds_are_summed_as_absolute_values() -> None:
    order = _order("order_refunded_card.json")
    del order["amount_refunded"]
    del order["payment_status"]

    snapshot = snapshot_from_order(order)

    assert snapshot.amount_refunded_cents == 50000
    assert snapshot.status is PaymentStatus.PENDING_PAYMENT  # no status, no event: not paid


def test_the_event_name_raises_a_missing_or_lagging_payment_status() -> None:
    missing = _order("order_refunded_card.json")
    del missing["payment_status"]
    lagging = _order("order_refunded_card.json")
    lagging["payment_status"] = "paid"

    assert snapshot_from_order(missing, event_type="order.refunded").status == "refunded"
    assert snapshot_from_order(lagging, event_type="order.refunded").status == "refunded"


def test_a_status_is_never_lowered_by_an_older_event_name() -> None:
    order = _order("order_paid_spei.json")

    assert snapshot_from_order(order, event_type="order.pending_payment").status == "paid"
    assert snapshot_from_order(order, event_type="order.expired").status == "paid"


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [
        ("order.paid", PaymentStatus.PAID),
        ("order.expired", PaymentStatus.EXPIRED),
        ("order.canceled", PaymentStatus.CANCELED),
        ("order.declined", PaymentStatus.DECLINED),
        ("order.partially_refunded", PaymentStatus.PARTIALLY_REFUNDED),
        ("order.charged_back", PaymentStatus.CHARGED_BACK),
        ("order.voided", PaymentStatus.CANCELED),
        ("order.updated", PaymentStatus.PENDING_PAYMENT),
        ("charge.paid", PaymentStatus.PENDING_PAYMENT),
    ],
)
def test_each_order_event_name_implies_its_status(event_type: str, expected: PaymentStatus) -> None:
    order = _order("order_pending_payment_spei.json")

    assert snapshot_from_order(order, event_type=event_type).status is expected


def test_an_unknown_payment_method_object_parses_as_other() -> None:
    order = _order("order_paid_spei.json")
    order["charges"]["data"][0]["payment_method"] = {
        "object": "apple_pay_payment",
        "type": "wallet",
    }

    snapshot = snapshot_from_order(order)

    assert snapshot.method == PaymentMethod(
        kind="other", reference=None, charge_id="6631f0c2a4e9b3001d2f7a21"
    )


def test_an_unknown_payment_status_word_is_ignored_rather_than_raised() -> None:
    order = _order("order_paid_spei.json")
    order["payment_status"] = "something_new"

    assert snapshot_from_order(order, event_type="order.paid").status is PaymentStatus.PAID


@pytest.mark.parametrize("field", ["id", "amount", "currency"])
def test_an_order_without_id_amount_or_currency_is_invalid_input(field: str) -> None:
    order = _order("order_paid_spei.json")
    del order[field]

    with pytest.raises(InvalidInput):
        snapshot_from_order(order)


@pytest.mark.parametrize("amount", [1500.0, -150000, "15.00", True])
def test_a_float_negative_or_non_integer_amount_is_invalid_input(amount: object) -> None:
    order = _order("order_paid_spei.json")
    order["amount"] = amount

    with pytest.raises(InvalidInput, match="integer amount"):
        snapshot_from_order(order)


@pytest.mark.parametrize("amount", [10**30, str(10**30), 2**63, "9" * 5000])
def test_an_amount_no_bigint_column_can_hold_is_invalid_input(amount: object) -> None:
    # JSON's 1e30 comes back from a jsonb column as the integer 10**30.
    order = _order("order_paid_spei.json")
    order["amount"] = amount

    with pytest.raises(InvalidInput, match="integer amount"):
        snapshot_from_order(order)


def test_refund_and_fee_amounts_beyond_a_bigint_are_ignored_not_stored() -> None:
    order = _order("order_paid_spei.json")
    order["amount_refunded"] = 10**30
    for charge in order["charges"]["data"]:
        charge["fee"] = 10**30

    snapshot = snapshot_from_order(order, event_type="order.paid")

    assert snapshot.amount_refunded_cents == 0
    assert snapshot.fee_cents is None


def test_a_charge_object_is_not_mistaken_for_an_order() -> None:
    charge = _event("charge_paid_oxxo.json")["data"]["object"]

    with pytest.raises(InvalidInput, match="charge"):
        snapshot_from_order(charge, event_type="charge.paid")


def test_a_naive_datetime_is_refused_in_a_snapshot() -> None:
    snapshot = _snapshot("order_paid_spei.json")

    with pytest.raises(InvalidInput, match="timezone-aware"):
        OrderSnapshot(
            order_id=snapshot.order_id,
            status=snapshot.status,
            amount=snapshot.amount,
            amount_refunded_cents=0,
            method=None,
            paid_at=None,
            updated_at=datetime(2025, 4, 16, 17, 10),  # noqa: DTZ001 -- the point of the test
            customer_id=None,
            fee_cents=None,
        )


# --- merging -------------------------------------------------------------------------------


def test_a_late_pending_payment_never_undoes_paid() -> None:
    pending, paid = _snapshot("order_pending_payment_spei.json"), _snapshot("order_paid_spei.json")

    state = _fold([paid, pending])

    assert state == _fold([pending, paid])
    assert state is not None
    assert state.status is PaymentStatus.PAID
    assert state.method is not None
    assert state.method.tracking_code == "MBAN01002504160012345678"
    assert state.fee_cents == 1334
    assert state.source_updated_at == datetime(2025, 4, 16, 17, 10, 15, tzinfo=UTC)


def test_a_late_expired_never_undoes_paid() -> None:
    paid = _snapshot("order_paid_spei.json")
    order = _order("order_pending_payment_spei.json")
    order["payment_status"] = "expired"
    order["updated_at"] = 1745107200  # after the payment
    expired = snapshot_from_order(order, event_type="order.expired")

    assert _fold([paid, expired]) == _fold([expired, paid])
    state = _fold([paid, expired])
    assert state is not None
    assert state.status is PaymentStatus.PAID
    assert state.paid_at == paid.paid_at


def test_a_later_snapshot_without_payer_fields_keeps_the_known_ones() -> None:
    paid = _snapshot("order_paid_spei.json")
    order = _order("order_paid_spei.json")
    order["payment_status"] = "partially_refunded"
    order["amount_refunded"] = 50000
    order["updated_at"] += 3600
    method = order["charges"]["data"][0]["payment_method"]
    method["tracking_code"] = None
    method["reference_number"] = None
    refund = snapshot_from_order(order, event_type="order.partially_refunded")

    state = _fold([paid, refund])

    assert state == _fold([refund, paid])
    assert state is not None
    assert state.status is PaymentStatus.PARTIALLY_REFUNDED
    assert state.amount_refunded_cents == 50000
    assert state.method is not None
    assert state.method.tracking_code == "MBAN01002504160012345678"
    assert state.method.reference_number == "1234567"


def test_a_refund_reaching_the_amount_derives_refunded_across_snapshots() -> None:
    paid = _snapshot("order_paid_spei.json")
    lagging = _order("order_paid_spei.json")
    lagging["amount_refunded"] = 150000  # payment_status still says "paid"
    lagging["updated_at"] += 60

    state = _fold([paid, snapshot_from_order(lagging)])

    assert state is not None
    assert state.status is PaymentStatus.REFUNDED


def test_a_chargeback_is_not_turned_into_a_refund() -> None:
    order = _order("order_refunded_card.json")
    order["payment_status"] = "charged_back"

    assert snapshot_from_order(order).status is PaymentStatus.CHARGED_BACK


def test_merging_a_snapshot_of_another_order_is_invalid_input() -> None:
    state = merge(None, _snapshot("order_paid_spei.json"))

    with pytest.raises(InvalidInput, match="cannot merge"):
        merge(state, _snapshot("order_refunded_card.json"))


def test_merging_a_snapshot_in_another_currency_is_invalid_input() -> None:
    state = merge(None, _snapshot("order_paid_spei.json"))
    order = _order("order_paid_spei.json")
    order["currency"] = "USD"

    with pytest.raises(InvalidInput, match="currency"):
        merge(state, snapshot_from_order(order))


def test_the_diff_of_a_new_payment_lists_every_visible_field() -> None:
    state = merge(None, _snapshot("order_pending_payment_spei.json"))

    changes = diff(None, state)

    # paid_at is None before and after, so it is the one field that does not change.
    assert set(changes) == {
        "order_id",
        "status",
        "amount",
        "amount_refunded_cents",
        "method",
        "customer_id",
        "fee_cents",
        "source_updated_at",
    }
    assert changes["status"] == (None, PaymentStatus.PENDING_PAYMENT)
    assert "provenance" not in changes


def test_the_diff_of_a_payment_shows_only_what_changed() -> None:
    before = merge(None, _snapshot("order_pending_payment_spei.json"))
    after = merge(before, _snapshot("order_paid_spei.json"))

    changes = diff(before, after)

    assert set(changes) == {"status", "method", "paid_at", "fee_cents", "source_updated_at"}
    assert changes["status"] == (PaymentStatus.PENDING_PAYMENT, PaymentStatus.PAID)
    assert changes["fee_cents"] == (0, 1334)
    assert diff(after, after) == {}


def test_terminal_statuses_are_the_ends_of_the_normal_lifecycle() -> None:
    terminal = {status for status in PaymentStatus if is_terminal(status)}

    assert terminal == {"declined", "expired", "canceled", "refunded", "charged_back"}
    assert status_rank(PaymentStatus.EXPIRED) == status_rank(PaymentStatus.CANCELED) == 2


# --- the join is order-independent ------------------------------------------------------------

_PATHS: list[list[str]] = [
    ["pending_payment"],
    ["pending_payment", "expired"],
    ["pending_payment", "canceled"],
    ["pending_payment", "declined"],
    ["pending_payment", "expired", "canceled"],
    ["pending_payment", "paid"],
    ["pending_payment", "expired", "paid"],
    ["pending_payment", "paid", "partially_refunded"],
    ["pending_payment", "paid", "partially_refunded", "refunded"],
    ["pending_payment", "paid", "refunded"],
    ["pending_payment", "paid", "charged_back"],
    ["pending_payment", "paid", "partially_refunded", "charged_back"],
]
_T0 = datetime(2025, 4, 15, 17, 30, tzinfo=UTC)


@st.composite
def _lifecycles(draw: st.DrawFn) -> list[OrderSnapshot]:
    """Up to five snapshots of one order along a realistic path, with ties and duplicates."""
    amount = draw(st.integers(100, 5_000_000), label="amount")
    kind = draw(st.sampled_from(["spei", "oxxo", "card"]), label="kind")
    path = draw(st.sampled_from(_PATHS), label="path")
    customer = draw(st.sampled_from([None, "cus_2yQ8mXbN4kLpT7rEw"]), label="customer")
    charge_id = "6631f0c2a4e9b3001d2f7a21"
    pending_method = {
        "spei": PaymentMethod("spei", "646180157200198457", clabe="646180157200198457"),
        "oxxo": PaymentMethod("oxxo", "93000262294518"),
        "card": PaymentMethod("card", "visa ****4242"),
    }[kind]
    pending_method = PaymentMethod(
        pending_method.kind,
        pending_method.reference,
        clabe=pending_method.clabe,
        charge_id=draw(st.sampled_from([None, charge_id])),
    )
    partial = draw(st.integers(1, amount - 1), label="partial refund")

    snapshots: list[OrderSnapshot] = []
    moment = _T0
    paid_at: datetime | None = None
    refunded = 0
    for status_name in path:
        # A zero step makes snapshots share updated_at, as charge.paid/order.paid/order.updated do.
        moment += timedelta(seconds=draw(st.sampled_from([0, 1, 60, 3600])))
        status = PaymentStatus(status_name)
        method: PaymentMethod | None = pending_method
        fee: int | None = 0
        if status_rank(status) >= status_rank(PaymentStatus.PAID):
            paid_at = paid_at or moment
            fee = draw(st.sampled_from([None, 1334, 1400]), label="fee")
            knows_payer = draw(st.booleans(), label="payer fields present")
            if kind == "spei" and knows_payer:
                method = PaymentMethod(
                    "spei",
                    "646180157200198457",
                    clabe="646180157200198457",
                    tracking_code="MBAN01002504160012345678",
                    reference_number="1234567",
                    charge_id=charge_id,
                )
        if status is PaymentStatus.PARTIALLY_REFUNDED:
            refunded = max(refunded, partial)
        if status is PaymentStatus.REFUNDED:
            refunded = amount
        # Conekta may send the refund before payment_status catches up.
        lagging = refunded > 0 and draw(st.booleans(), label="status lags")
        snapshots.append(
            OrderSnapshot(
                order_id="ord_2yQ8nCk3vJ5dWx9Ra",
                status=PaymentStatus.PAID if lagging else status,
                amount=Money(amount, "MXN"),
                amount_refunded_cents=refunded,
                method=draw(st.sampled_from([method, None])) if status_name != "paid" else method,
                paid_at=paid_at,
                updated_at=moment,
                customer_id=draw(st.sampled_from([customer, None])),
                fee_cents=fee,
            )
        )
    room = 5 - len(snapshots)
    duplicates = draw(st.lists(st.sampled_from(snapshots), max_size=room), label="duplicates")
    return snapshots + duplicates


@settings(max_examples=300, deadline=None)
@given(snapshots=_lifecycles())
def test_every_delivery_order_of_a_lifecycle_folds_to_the_same_state(
    snapshots: list[OrderSnapshot],
) -> None:
    expected = _fold(snapshots)

    for permutation in itertools.permutations(snapshots):
        assert _fold(permutation) == expected


@settings(max_examples=300, deadline=None)
@given(snapshots=_lifecycles())
def test_reapplying_any_snapshot_to_the_folded_state_changes_nothing(
    snapshots: list[OrderSnapshot],
) -> None:
    state = _fold(snapshots)
    assert state is not None

    for snapshot in snapshots:
        assert merge(state, snapshot) == state
        assert status_rank(state.status) >= status_rank(snapshot.status)


@settings(max_examples=200, deadline=None)
@given(snapshots=_lifecycles(), data=st.data())
def test_folding_never_moves_a_payment_backwards(
    snapshots: list[OrderSnapshot], data: st.DataObject
) -> None:
    order = data.draw(st.permutations(snapshots), label="delivery order")
    state: PaymentState | None = None

    for snapshot in order:
        previous = state
        state = merge(state, snapshot)
        if previous is not None:
            assert status_rank(state.status) >= status_rank(previous.status)
            assert state.amount_refunded_cents >= previous.amount_refunded_cents
            assert state.source_updated_at >= previous.source_updated_at


def test_the_state_of_two_shared_fixtures_does_not_depend_on_arrival_order() -> None:
    pending = _order("order_pending_payment_spei.json")
    paid = _order("order_paid_spei.json")
    snapshots = [
        snapshot_from_order(pending, event_type="order.pending_payment"),
        snapshot_from_order(paid, event_type="order.paid"),
        snapshot_from_order(copy.deepcopy(paid), event_type="order.paid"),
    ]

    states = {_fold(list(p)) for p in itertools.permutations(snapshots)}

    assert len(states) == 1
