"""Pure Conekta rules: ids, CLABEs, fees, request validation, order JSON and its transitions.

Nothing here does I/O. Orders are kept as the JSON dicts Conekta returns (shape of
`shared/fixtures/providers/conekta/*.json`), because the simulator's job is to hand out those exact
shapes; the functions below mutate them the way Conekta would and report what changed.
"""

from __future__ import annotations

import copy
import secrets
import string
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from guardia.core.clock import MEXICO_CITY
from guardia.core.errors import GuardiaError

JSON = dict[str, Any]

_ALPHANUMERIC: Final = string.ascii_letters + string.digits

# A Conekta event/charge id is a 24-hex Mongo ObjectId: 4 bytes of Unix time, then 8 random bytes.
# Source: ids in conekta/openapi mocks/conekta_api.json, e.g. "637e79cb70d06300013ea169".


def object_id(now: int) -> str:
    """Return a 24-hex id shaped like Conekta's event, charge and refund ids."""
    return f"{now & 0xFFFFFFFF:08x}{secrets.token_hex(8)}"


def prefixed_id(prefix: str, length: int = 17) -> str:
    """Return `prefix` + `length` random alphanumerics, like `ord_2yQ8nCk3vJ5dWx9Ra`."""
    return prefix + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))


def random_digits(count: int) -> str:
    """Return `count` random decimal digits."""
    return "".join(str(secrets.randbelow(10)) for _ in range(count))


# --- CLABE -----------------------------------------------------------------------------------

_CLABE_WEIGHTS: Final = (3, 7, 1)
STP_CLABE_PREFIX: Final = "646180"  # bank 646 (STP), plaza 180: Conekta's per-order SPEI CLABEs


def clabe_check_digit(first17: str) -> int:
    """Return the CLABE control digit for its first 17 digits (weights 3,7,1, Banxico rule)."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("a CLABE body is 17 digits")
    total = sum(int(d) * _CLABE_WEIGHTS[i % 3] % 10 for i, d in enumerate(first17))
    return (10 - total % 10) % 10


def is_valid_clabe(clabe: str) -> bool:
    """Return whether `clabe` is 18 digits with a correct control digit."""
    return len(clabe) == 18 and clabe.isdigit() and clabe_check_digit(clabe[:17]) == int(clabe[17])


def make_clabe(prefix: str) -> str:
    """Return a random valid 18-digit CLABE starting with the 6-digit bank+plaza `prefix`."""
    body = prefix + random_digits(17 - len(prefix))
    return body + str(clabe_check_digit(body))


# --- Fees --------------------------------------------------------------------------------------

IVA: Final = Decimal("0.16")


def charge_fee(method: str, amount: int) -> int:
    """Return Conekta's fee in cents (commission plus IVA) for a paid charge of `amount` cents.

    The rates reproduce the fixtures, not a price list: card 3.6% + IVA gives `fee` 2088 on 50000
    (`order_refunded_card.json`); SPEI $11.50 + IVA gives 1334 (`order_paid_spei.json`). The cash
    rate (2% + $10 + IVA, 3246 on 89900 against the fixture's 3247) is an assumption. Real rates
    are contractual (providers.md §1.6).
    """
    if method == "card":
        base = Decimal(amount) * Decimal("0.036")
    elif method == "spei":
        base = Decimal(1150)
    else:
        base = Decimal(amount) * Decimal("0.02") + Decimal(1000)
    return int((base * (1 + IVA)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


# --- Errors ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorDetail:
    """One entry of a Conekta error's `details[]`."""

    code: str
    debug_message: str
    message: str
    param: str | None = None

    def to_json(self) -> JSON:
        """Return the detail as Conekta serializes it."""
        return {
            "debug_message": self.debug_message,
            "message": self.message,
            "param": self.param,
            "code": self.code,
        }


class SimulatedApiError(GuardiaError):
    """The simulated Conekta API refused the request."""

    status_code = 400
    error_type = "api_error"

    def __init__(
        self,
        debug_message: str | None = None,
        *,
        code: str = "conekta.errors.api.system",
        message: str = "Hubo un error en el servidor de Conekta.",
        param: str | None = None,
        details: list[ErrorDetail] | None = None,
        status_code: int | None = None,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(debug_message)
        if status_code is not None:
            self.status_code = status_code
        if error_type is not None:
            self.error_type = error_type
        self.headers = headers or {}
        self.details = details or [ErrorDetail(code, self.message, message, param)]

    def to_json(self, log_id: str) -> JSON:
        """Return the error body in Conekta's shape.

        Shape from conekta/openapi `schemas/errors/error.yml` and `schemas/errors/details.yml`
        (https://github.com/conekta/openapi/tree/main/schemas/errors): `object: "error"`, `type`,
        `log_id` (24 hex) and `details[]` of `{debug_message, message, param, code}`.
        """
        return {
            "object": "error",
            "type": self.error_type,
            "log_id": log_id,
            "details": [d.to_json() for d in self.details],
        }


class InvalidParameters(SimulatedApiError):
    """The request has invalid or missing parameters."""

    status_code = 422
    error_type = "parameter_validation_error"


class ResourceNotFound(SimulatedApiError):
    """The requested resource does not exist."""

    status_code = 404
    error_type = "resource_not_found_error"


class AuthenticationFailed(SimulatedApiError):
    """The request carries no valid private API key."""

    status_code = 401
    error_type = "authentication_error"


class CardDeclined(SimulatedApiError):
    """The card was declined."""

    status_code = 402
    error_type = "processing_error"


class IllegalTransition(SimulatedApiError):
    """The order's current state does not allow this operation."""

    status_code = 409
    error_type = "conflict_error"


def not_found(kind: str, ident: str) -> ResourceNotFound:
    """Return the 404 Conekta answers for an unknown id."""
    return ResourceNotFound(
        f'The object {kind} "{ident}" could not be found.',
        code="conekta.errors.resource_not_found.entity",
        message="El recurso no ha sido encontrado.",
        param="id",
    )


def illegal(debug_message: str) -> IllegalTransition:
    """Return a 409 for a transition the order's state forbids."""
    return IllegalTransition(
        debug_message,
        code="guardia.sandbox.illegal_transition",
        message="La operación no es válida para el estado actual de la orden.",
    )


def _missing(param: str) -> ErrorDetail:
    # Code pattern seen in Conekta's Python client tests for an order without items:
    # "conekta.errors.parameter_validation.line_items.missing" (https://github.com/conekta).
    return ErrorDetail(
        f"conekta.errors.parameter_validation.{_code_path(param)}.missing",
        f"The parameter {param} is required.",
        f"El parámetro {param} es requerido.",
        param,
    )


def _invalid(param: str, why: str) -> ErrorDetail:
    return ErrorDetail(
        f"conekta.errors.parameter_validation.{_code_path(param)}.invalid",
        f"The parameter {param} is invalid: {why}.",
        f"El parámetro {param} es inválido.",
        param,
    )


def _code_path(param: str) -> str:
    return ".".join(p for p in param.split(".") if not p.isdigit())


# --- Order requests ----------------------------------------------------------------------------

PAYMENT_TYPES: Final = ("card", "spei", "oxxo", "cash")
# OXXO refuses references above $10,000 MXN per order [likely]; the error code is the one
# merchants' integrations handle ("conekta.errors.parameter_validation.combo.order.currency_type.
# oxxo.maximum", seen in public Conekta PHP integrations), not one from the OpenAPI spec.
OXXO_MAX_AMOUNT: Final = 1_000_000


def is_int(value: object) -> bool:
    """Return whether `value` is a JSON integer (bool excluded)."""
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class LineItemRequest:
    """One requested line item; `unit_price` in cents."""

    name: str
    unit_price: int
    quantity: int
    metadata: JSON = field(default_factory=dict)


@dataclass(frozen=True)
class OrderRequest:
    """A validated `POST /orders` body."""

    currency: str
    customer_name: str
    customer_email: str
    customer_phone: str
    customer_id: str | None
    line_items: tuple[LineItemRequest, ...]
    method: str  # "card" | "spei" | "oxxo" ("cash" is folded into "oxxo")
    token_id: str | None
    expires_at: int | None
    metadata: JSON

    @property
    def amount(self) -> int:
        """Return the order total in cents."""
        return sum(li.unit_price * li.quantity for li in self.line_items)


def parse_order_request(body: object, now: int) -> OrderRequest:
    """Validate a `POST /orders` body, raising InvalidParameters with every problem found."""
    if not isinstance(body, dict):
        raise InvalidParameters(details=[_invalid("body", "expected a JSON object")])
    errors: list[ErrorDetail] = []

    currency = body.get("currency")
    if currency is None:
        errors.append(_missing("currency"))
    elif currency != "MXN":
        errors.append(_invalid("currency", "the sandbox only supports MXN"))

    customer = body.get("customer_info")
    name = email = phone = ""
    customer_id: str | None = None
    if not isinstance(customer, dict):
        errors.append(_missing("customer_info"))
    else:
        raw_id = customer.get("customer_id")
        if raw_id is not None and not isinstance(raw_id, str):
            errors.append(_invalid("customer_info.customer_id", "expected a string"))
        customer_id = raw_id if isinstance(raw_id, str) else None
        values: dict[str, str] = {}
        for key in ("name", "email", "phone"):
            value = customer.get(key)
            if isinstance(value, str) and value.strip():
                values[key] = value
            elif customer_id is None or value is not None:
                # Conekta accepts `{customer_id}` alone for an existing customer.
                errors.append(_missing(f"customer_info.{key}"))
        name, email, phone = (
            values.get("name", ""),
            values.get("email", ""),
            values.get("phone", ""),
        )

    items: list[LineItemRequest] = []
    raw_items = body.get("line_items")
    if not isinstance(raw_items, list) or not raw_items:
        errors.append(_missing("line_items"))
    else:
        for i, raw in enumerate(raw_items):
            item = _parse_line_item(raw, f"line_items.{i}", errors)
            if item is not None:
                items.append(item)

    method, token_id, expires_at = _parse_charges(body.get("charges"), now, errors)

    metadata = body.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        errors.append(_invalid("metadata", "expected an object"))
        metadata = {}
    elif len(metadata) > 100:
        errors.append(_invalid("metadata", "at most 100 keys"))

    if not errors and method == "oxxo":
        total = sum(li.unit_price * li.quantity for li in items)
        if total > OXXO_MAX_AMOUNT:
            errors.append(
                ErrorDetail(
                    "conekta.errors.parameter_validation.combo.order.currency_type.oxxo.maximum",
                    f"The amount {total} exceeds the OXXO maximum of {OXXO_MAX_AMOUNT} cents.",
                    "El monto máximo para pagos con OXXO es de $10,000.00 MXN.",
                    "amount",
                )
            )
    if errors:
        raise InvalidParameters(details=errors)
    return OrderRequest(
        currency="MXN",
        customer_name=name,
        customer_email=email,
        customer_phone=phone,
        customer_id=customer_id,
        line_items=tuple(items),
        method=method,
        token_id=token_id,
        expires_at=expires_at,
        metadata=copy.deepcopy(metadata),
    )


def _parse_line_item(raw: object, param: str, errors: list[ErrorDetail]) -> LineItemRequest | None:
    if not isinstance(raw, dict):
        errors.append(_invalid(param, "expected an object"))
        return None
    found = len(errors)
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        errors.append(_missing(f"{param}.name"))
    unit_price = raw.get("unit_price")
    if unit_price is None:
        errors.append(_missing(f"{param}.unit_price"))
    elif not is_int(unit_price) or unit_price <= 0:
        # Amounts are integer cents; "150.00" or 150.5 is the classic pesos-vs-cents bug.
        errors.append(_invalid(f"{param}.unit_price", "expected a positive integer of cents"))
    quantity = raw.get("quantity", 1)
    if not is_int(quantity) or quantity <= 0:
        errors.append(_invalid(f"{param}.quantity", "expected a positive integer"))
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, dict):
        errors.append(_invalid(f"{param}.metadata", "expected an object"))
    if len(errors) > found or unit_price is None:
        return None
    return LineItemRequest(str(name), int(unit_price), int(quantity), copy.deepcopy(metadata))


def _parse_charges(
    raw: object, now: int, errors: list[ErrorDetail]
) -> tuple[str, str | None, int | None]:
    if not isinstance(raw, list) or not raw:
        errors.append(_missing("charges"))
        return "spei", None, None
    if len(raw) > 1:
        errors.append(_invalid("charges", "the sandbox supports one charge per order"))
    charge = raw[0]
    pm = charge.get("payment_method") if isinstance(charge, dict) else None
    if not isinstance(pm, dict):
        errors.append(_missing("charges.0.payment_method"))
        return "spei", None, None
    kind = pm.get("type")
    if kind is None:
        errors.append(_missing("charges.0.payment_method.type"))
        return "spei", None, None
    if kind not in PAYMENT_TYPES:
        errors.append(
            _invalid("charges.0.payment_method.type", f"unknown type {kind!r}, use {PAYMENT_TYPES}")
        )
        return "spei", None, None
    method = "oxxo" if kind == "cash" else str(kind)
    token = pm.get("token_id")
    if token is not None and not isinstance(token, str):
        errors.append(_invalid("charges.0.payment_method.token_id", "expected a string"))
        token = None
    expires_at = pm.get("expires_at")
    if expires_at is not None and (not is_int(expires_at) or expires_at <= now):
        errors.append(
            _invalid("charges.0.payment_method.expires_at", "expected a future Unix timestamp")
        )
        expires_at = None
    return method, token, expires_at


# --- Order JSON --------------------------------------------------------------------------------

BARCODE_URL: Final = "https://s3.amazonaws.com/cash_payment_barcodes/sandbox_reference.png"

# Conekta's sandbox test tokens as the official SDK tests use them (github.com/conekta/
# conekta-java and conekta-python tests: tok_test_visa_4242, tok_test_card_declined,
# tok_test_insufficient_funds): brand, last4, issuer; or a processing error for the declines.
_CARD_TOKENS: Final[dict[str, tuple[str, str, str]]] = {
    "tok_test_visa_4242": ("visa", "4242", "BANAMEX"),
    "tok_test_mastercard_4444": ("mastercard", "4444", "BBVA MEXICO"),
    "tok_test_mastercard_5100": ("mastercard", "5100", "BBVA MEXICO"),
    "tok_test_amex_0005": ("american_express", "0005", "AMERICAN EXPRESS"),
}
_DECLINE_TOKENS: Final[dict[str, tuple[str, str]]] = {
    "tok_test_card_declined": (
        "conekta.errors.processing.bank.declined",
        "La tarjeta ingresada ha sido declinada. Por favor intenta con otro método de pago.",
    ),
    "tok_test_insufficient_funds": (
        "conekta.errors.processing.bank.insufficient_funds",
        "Esta tarjeta no tiene suficientes fondos para completar la compra.",
    ),
}


def default_expiry(now: int, days: int = 3) -> int:
    """Return 23:59:59 UTC `days` days after `now`, as in the fixtures' `expires_at`."""
    day = datetime.fromtimestamp(now, UTC).date() + timedelta(days=days)
    end = datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC)
    return int(end.timestamp())


def card_details(token_id: str | None, customer_name: str, now: int) -> JSON:
    """Return a paid `card_payment` method for a test token, or raise CardDeclined."""
    token = token_id or "tok_test_visa_4242"
    if token in _DECLINE_TOKENS:
        code, message = _DECLINE_TOKENS[token]
        raise CardDeclined(f"The card was declined ({token}).", code=code, message=message)
    if not token.startswith("tok_"):
        raise InvalidParameters(
            details=[_invalid("charges.0.payment_method.token_id", "expected a tok_… token")]
        )
    brand, last4, issuer = _CARD_TOKENS.get(token, _CARD_TOKENS["tok_test_visa_4242"])
    exp_year = datetime.fromtimestamp(now, UTC).year + 3
    return {
        "object": "card_payment",
        "type": "credit",
        "name": customer_name,
        "last4": last4,
        "brand": brand,
        "exp_month": "12",
        "exp_year": f"{exp_year % 100:02d}",
        "auth_code": random_digits(6),
        "issuer": issuer,
        "account_type": "Credit",
        "country": "MX",
        "fraud_indicators": [],
    }


def spei_details(clabe: str, expires_at: int) -> JSON:
    """Return an unpaid `bank_transfer_payment` method (payer fields null until paid)."""
    return {
        "object": "bank_transfer_payment",
        "type": "spei",
        "bank": "STP",
        "clabe": clabe,
        "receiving_account_number": clabe,
        "receiving_account_bank": "STP",
        "receiving_account_holder_name": None,
        "receiving_account_tax_id": None,
        "issuing_account_holder_name": None,
        "issuing_account_tax_id": None,
        "issuing_account_bank": None,
        "issuing_account_number": None,
        "reference_number": None,
        "tracking_code": None,
        "description": None,
        "executed_at": None,
        "payment_attempts": [],
        "expires_at": expires_at,
    }


def cash_details(reference: str, expires_at: int) -> JSON:
    """Return an unpaid OXXO `cash_payment` method."""
    return {
        "object": "cash_payment",
        "type": "oxxo",
        "service_name": "OxxoPay",
        "store_name": "OXXO",
        "reference": reference,
        "barcode_url": BARCODE_URL,
        "expires_at": expires_at,
        "auth_code": None,
        "cashier_id": None,
        "store": None,
    }


def build_order(
    req: OrderRequest,
    *,
    order_id: str,
    charge_id: str,
    payment_method: JSON,
    livemode: bool,
    now: int,
) -> JSON:
    """Return a new order, charge still `pending_payment`, in the fixtures' key order."""
    customer_id = req.customer_id or prefixed_id("cus_")
    return {
        "livemode": livemode,
        "amount": req.amount,
        "currency": req.currency,
        "payment_status": "pending_payment",
        "amount_refunded": 0,
        "customer_info": {
            "email": req.customer_email,
            "phone": req.customer_phone,
            "name": req.customer_name,
            "corporate": False,
            "customer_id": customer_id,
            "object": "customer_info",
        },
        "object": "order",
        "id": order_id,
        "metadata": copy.deepcopy(req.metadata),
        "is_refundable": False,
        "created_at": now,
        "updated_at": now,
        "line_items": {
            "object": "list",
            "has_more": False,
            "total": len(req.line_items),
            "data": [
                {
                    "name": li.name,
                    "unit_price": li.unit_price,
                    "quantity": li.quantity,
                    "object": "line_item",
                    "id": prefixed_id("line_item_"),
                    "parent_id": order_id,
                    "metadata": copy.deepcopy(li.metadata),
                    "antifraud_info": {},
                }
                for li in req.line_items
            ],
        },
        "charges": {
            "object": "list",
            "has_more": False,
            "total": 1,
            "data": [
                {
                    "id": charge_id,
                    "livemode": livemode,
                    "created_at": now,
                    "currency": req.currency,
                    "object": "charge",
                    "description": "Payment from order",
                    "status": "pending_payment",
                    "amount": req.amount,
                    "paid_at": None,
                    "fee": 0,
                    "customer_id": customer_id,
                    "order_id": order_id,
                    "payment_method": payment_method,
                }
            ],
        },
    }


def charge_of(order: JSON) -> JSON:
    """Return the order's (single) charge."""
    charge: JSON = order["charges"]["data"][0]
    return charge


def method_of(order: JSON) -> str:
    """Return "card", "spei" or "oxxo" for an order."""
    obj = charge_of(order)["payment_method"]["object"]
    return {"card_payment": "card", "bank_transfer_payment": "spei"}.get(obj, "oxxo")


# --- Transitions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """What a transition changed: the event to emit and the previous values."""

    order_event: str
    order_previous: JSON
    charge_previous: JSON | None = None


def _touch(order: JSON, now: int) -> None:
    # Strictly increasing, not just "now": pollers use `updated_at_gte` cursors at one-second
    # resolution, and two changes in the same second must still read as newer.
    order["updated_at"] = max(now, int(order["updated_at"]) + 1)


def _require(order: JSON, allowed: tuple[str, ...], action: str) -> str:
    status = str(order["payment_status"])
    if status not in allowed:
        raise illegal(
            f"Cannot {action} order {order['id']}: it is {status}; "
            f"{action} needs payment_status in {list(allowed)}."
        )
    return status


def _ascii_upper(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).upper()


def _fake_rfc(name: str) -> str:
    letters = "".join(c for c in _ascii_upper(name) if c.isalpha())
    head = (letters + "XXXX")[:4]
    return f"{head}{random_digits(6)}{secrets.choice(string.ascii_uppercase)}{random_digits(2)}"


def pay(order: JSON, now: int) -> Change:
    """Mark a pending order and its charge paid, filling payer fields for SPEI and OXXO."""
    previous = _require(order, ("pending_payment",), "pay")
    charge = charge_of(order)
    method = method_of(order)
    pm = charge["payment_method"]
    if method == "spei":
        # Payer data arrives with the SPEI transfer: clave de rastreo like
        # MBAN01002504160012345678 (sender prefix, "00", yymmdd, 10 digits) and a 7-digit
        # referencia numérica (fixtures README, order_paid_spei.json).
        local_day = datetime.fromtimestamp(now, UTC).astimezone(MEXICO_CITY).strftime("%y%m%d")
        pm.update(
            issuing_account_holder_name=_ascii_upper(order["customer_info"]["name"]),
            issuing_account_tax_id=_fake_rfc(order["customer_info"]["name"]),
            issuing_account_bank="BBVA MEXICO",
            issuing_account_number=make_clabe("012180"),
            reference_number=random_digits(7),
            tracking_code=f"MBAN0100{local_day}{random_digits(10)}",
            executed_at=datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
    elif method == "oxxo":
        pm.update(
            auth_code=int("1" + random_digits(7)),
            cashier_id=f"OXXO-{random_digits(4)}",
            store=f"10MON{random_digits(2)}AUG",
        )
    charge["status"] = "paid"
    charge["paid_at"] = now
    charge["fee"] = charge_fee(method, int(charge["amount"]))
    order["payment_status"] = "paid"
    order["is_refundable"] = method == "card"
    _touch(order, now)
    return Change("order.paid", {"payment_status": previous}, {"status": "pending_payment"})


def expire(order: JSON, now: int) -> Change:
    """Expire a pending order (its reference or CLABE was not paid in time)."""
    previous = _require(order, ("pending_payment",), "expire")
    charge_of(order)["status"] = "expired"
    order["payment_status"] = "expired"
    _touch(order, now)
    return Change("order.expired", {"payment_status": previous})


def cancel(order: JSON, now: int) -> Change:
    """Cancel a pending order."""
    previous = _require(order, ("pending_payment",), "cancel")
    charge_of(order)["status"] = "canceled"
    order["payment_status"] = "canceled"
    _touch(order, now)
    return Change("order.canceled", {"payment_status": previous})


def refund(order: JSON, amount: int | None, now: int, refund_id: str) -> Change:
    """Refund `amount` cents (default: all that remains) of a paid order."""
    previous = _require(order, ("paid", "partially_refunded"), "refund")
    remaining = int(order["amount"]) - int(order["amount_refunded"])
    if amount is None:
        amount = remaining
    if not is_int(amount) or amount <= 0:
        raise InvalidParameters(details=[_invalid("amount", "expected a positive integer")])
    if amount > remaining:
        raise illegal(
            f"Cannot refund {amount} cents of order {order['id']}: only {remaining} of "
            f"{order['amount']} remain refundable."
        )
    charge = charge_of(order)
    refunds = charge.setdefault(
        "refunds", {"object": "list", "has_more": False, "total": 0, "data": []}
    )
    pm = charge["payment_method"]
    refunds["data"].append(
        {
            "id": refund_id,
            "object": "refund",
            # Conekta reports refunds as negative amounts (providers.md §1.5).
            "amount": -amount,
            "auth_code": pm.get("auth_code") if pm["object"] == "card_payment" else None,
            "created_at": now,
            "status": "pending",
        }
    )
    refunds["total"] = len(refunds["data"])
    previous_refunded = int(order["amount_refunded"])
    order["amount_refunded"] = previous_refunded + amount
    full = order["amount_refunded"] == order["amount"]
    status = "refunded" if full else "partially_refunded"
    order["payment_status"] = status
    charge["status"] = status
    order["is_refundable"] = not full and method_of(order) == "card"
    _touch(order, now)
    changed: JSON = {"amount_refunded": previous_refunded}
    if status != previous:
        changed = {"payment_status": previous, **changed}
    return Change(f"order.{status}", changed)


def charge_back(order: JSON, now: int) -> Change:
    """Record a chargeback on a paid order."""
    previous = _require(order, ("paid", "partially_refunded"), "charge back")
    charge_of(order)["status"] = "charged_back"
    order["payment_status"] = "charged_back"
    order["is_refundable"] = False
    _touch(order, now)
    return Change("order.charged_back", {"payment_status": previous})


# --- Settlement: transactions and transfers (providers.md §1.6) ---------------------------------

# conekta/openapi schemas/transactions/transaction_response.yml lists these `type` and `status`
# values; the simulator produces `capture` and `refund`, `available` and `paid_out`.
TRANSACTION_TYPES: Final = (
    "capture",
    "capture_reversal",
    "liquidation",
    "payout",
    "refund",
    "chargeback",
    "won_chargeback",
    "transferred",
)
PAYOUT_BANK_PREFIX: Final = "012180"  # BBVA México, plaza 180: the simulated business account


def capture_transaction(charge: JSON, txn_id: str, now: int) -> JSON:
    """Return the `capture` ledger entry for a paid charge: net = amount - fee (IVA included)."""
    amount = int(charge["amount"])
    fee = int(charge["fee"])
    return {
        "id": txn_id,
        "object": "transaction",
        "amount": amount,
        "fee": fee,
        "net": amount - fee,
        "status": "available",
        "type": "capture",
        "charge": str(charge["id"]),
        "currency": str(charge["currency"]),
        "created_at": now,
    }


def refund_transaction(charge: JSON, refunded: int, txn_id: str, now: int) -> JSON:
    """Return the `refund` ledger entry for `refunded` cents: negative amount and net.

    Whether Conekta gives back part of the fee on a refund is not documented (providers.md §1.6);
    the simulator assumes it keeps the whole fee, so the refund carries fee 0.
    """
    return {
        "id": txn_id,
        "object": "transaction",
        "amount": -refunded,
        "fee": 0,
        "net": -refunded,
        "status": "available",
        "type": "refund",
        "charge": str(charge["id"]),
        "currency": str(charge["currency"]),
        "created_at": now,
    }


def build_transfer(
    transactions: list[JSON],
    *,
    transfer_id: str,
    statement_reference: str,
    clabe: str,
    holder: str,
    now: int,
) -> JSON:
    """Return a payout of `transactions` (Σ net, may be negative); it does not list them.

    Shape of conekta/openapi schemas/transfers/transfer_response.yml: `statement_reference` is 7
    digits (the SPEI referencia numérica) and `statement_description` is "Conekta " + it.
    """
    if len(statement_reference) != 7 or not statement_reference.isdigit():
        raise ValueError("a statement reference is 7 digits")
    return {
        "id": transfer_id,
        "object": "transfer",
        "amount": sum(int(t["net"]) for t in transactions),
        "status": "paid_out",
        "statement_reference": statement_reference,
        "statement_description": f"Conekta {statement_reference}",
        "currency": "MXN",
        "created_at": now,
        "destination": {
            "object": "bank_account",
            "account_number": clabe,
            "account_holder_name": holder,
        },
    }


def nothing_to_pay_out() -> IllegalTransition:
    """Return the 409 for a payout request when no transaction is `available`."""
    return IllegalTransition(
        "Cannot create a payout: there are no available transactions; pay or refund an order "
        "first (every available transaction is already in a transfer).",
        code="guardia.sandbox.nothing_to_pay_out",
        message="No hay saldo disponible para dispersar.",
    )
