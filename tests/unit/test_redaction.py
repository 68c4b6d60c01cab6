"""Log redaction: generated CURP, RFC, CLABE, PAN, emails, phone numbers, JWT and secrets never
survive; ids do."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import string
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from guardia.core.logging import configure_logging
from guardia.core.redaction import (
    REDACTED,
    is_sensitive_key,
    redact_error_message,
    redact_event,
    redact_text,
)
from tests.support.pii import emails, phones

_UPPER = string.ascii_uppercase
_CONSONANTS = "BCDFGHJKLMNPQRSTVWXYZ"
_STATES = ["AS", "BC", "CC", "CH", "DF", "GT", "JC", "MC", "MN", "NL", "NE", "OC", "PL", "QT"]
_BANKS = ["002", "012", "014", "021", "030", "036", "044", "058", "072", "106", "127", "646"]
_BASE62 = string.ascii_letters + string.digits
_WORDS = st.text(alphabet=string.ascii_lowercase + ":=(", min_size=1, max_size=8)
# (IIN prefix, length): Visa, Mastercard (51-55 and 2-series), Amex, Discover, Carnet,
# UnionPay, Diners.
_CARD_SHAPES = [
    ("4", 16),
    ("4", 13),
    ("4", 19),
    ("51", 16),
    ("55", 16),
    ("2221", 16),
    ("2720", 16),
    ("34", 15),
    ("37", 15),
    ("6011", 16),
    ("506199", 16),
    ("62", 17),
    ("36", 14),
]
_PLAIN_KEYS = st.sampled_from(["note", "payload", "items", "meta", "detail", "message", "extra"])


def _render(event_dict: dict[str, Any]) -> str:
    redacted = redact_event(None, "info", dict(event_dict))
    return json.dumps(redacted, ensure_ascii=False, default=repr)


def _luhn_check_digit(body: str) -> str:
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char)
        if index % 2 == 0:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return str((10 - total % 10) % 10)


def _clabe_check_digit(body: str) -> str:
    total = sum(int(d) * (3, 7, 1)[i % 3] % 10 for i, d in enumerate(body))
    return str((10 - total % 10) % 10)


def _birth_date() -> st.SearchStrategy[str]:
    return st.dates(date(1930, 1, 1), date(2010, 12, 31)).map(lambda d: d.strftime("%y%m%d"))


@st.composite
def curps(draw: st.DrawFn) -> str:
    value = (
        draw(st.sampled_from(_UPPER))
        + draw(st.sampled_from("AEIOUX"))
        + draw(st.text(_UPPER, min_size=2, max_size=2))
        + draw(_birth_date())
        + draw(st.sampled_from("HM"))
        + draw(st.sampled_from(_STATES))
        + draw(st.text(_CONSONANTS, min_size=3, max_size=3))
        + draw(st.sampled_from(string.digits + _UPPER))
        + draw(st.sampled_from(string.digits))
    )
    return value.lower() if draw(st.booleans()) else value


@st.composite
def rfcs(draw: st.DrawFn) -> str:
    letters = draw(st.sampled_from([3, 4]))  # persona moral / persona física
    return (
        draw(st.text(_UPPER + "Ñ&", min_size=letters, max_size=letters))
        + draw(_birth_date())
        + draw(st.text(_UPPER + string.digits, min_size=3, max_size=3))
    )


@st.composite
def clabes(draw: st.DrawFn) -> str:
    body = (
        draw(st.sampled_from(_BANKS))
        + draw(st.text(string.digits, min_size=3, max_size=3))
        + draw(st.text(string.digits, min_size=11, max_size=11))
    )
    value = body + _clabe_check_digit(body)
    if draw(st.booleans()):
        return f"{value[:3]} {value[3:6]} {value[6:17]} {value[17]}"
    return value


@st.composite
def pans(draw: st.DrawFn) -> str:
    prefix, length = draw(st.sampled_from(_CARD_SHAPES))
    body = prefix + draw(st.text(string.digits, min_size=length - len(prefix) - 1, max_size=19))
    body = body[: length - 1]
    value = body + _luhn_check_digit(body)
    separator = draw(st.sampled_from(["", " ", "-"]))
    if separator and length == 16:
        return separator.join(value[i : i + 4] for i in range(0, 16, 4))
    if separator and length == 15:
        return separator.join([value[:4], value[4:10], value[10:]])
    return value


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@st.composite
def jwts(draw: st.DrawFn) -> str:
    header = {"alg": draw(st.sampled_from(["HS256", "RS256", "ES256"])), "typ": "JWT"}
    claims = draw(
        st.dictionaries(
            st.text(string.ascii_lowercase, min_size=1, max_size=6),
            st.text(string.ascii_letters, max_size=12) | st.integers(0, 2**31),
            max_size=4,
        )
    )
    signature = draw(st.binary(min_size=32, max_size=64))
    return ".".join(
        [
            _b64url(json.dumps(header).encode()),
            _b64url(json.dumps(claims).encode()),
            _b64url(signature),
        ]
    )


def _secrets() -> st.SearchStrategy[str]:
    whsec = st.binary(min_size=24, max_size=64).map(
        lambda raw: "whsec_" + base64.b64encode(raw).decode("ascii")
    )
    api_key = st.text(_BASE62, min_size=20, max_size=32).map(lambda tail: "key_" + tail)
    return whsec | api_key


def _bearer_tokens() -> st.SearchStrategy[str]:
    return st.text(_BASE62 + "-_.~", min_size=20, max_size=60)


@st.composite
def _placed(draw: st.DrawFn, value: str) -> tuple[dict[str, Any], str]:
    """Put a value somewhere in an event: a field, inside text, in lists and nested dicts."""
    text = f"{draw(_WORDS)} {value} {draw(_WORDS)}"
    key = draw(_PLAIN_KEYS)
    place = draw(st.sampled_from(["field", "text", "list", "nested", "tuple", "event", "bytes"]))
    holder: object
    if place == "field":
        holder = value
    elif place == "text":
        holder = text
    elif place == "list":
        holder = ["ok", 150000, text, value]
    elif place == "nested":
        holder = {"a": {"b": [{"c": text}, {"d": (1, value)}]}}
    elif place == "tuple":
        holder = ("x", {"deep": [[value]]})
    elif place == "bytes":
        holder = text.encode("utf-8")
    else:
        return {"event": text}, value
    return {"event": "webhook received", key: holder}, value


def _sensitive_values() -> st.SearchStrategy[str]:
    return curps() | rfcs() | clabes() | pans() | jwts() | _secrets() | emails() | phones()


@settings(max_examples=500, deadline=None)
@given(data=st.data(), value=_sensitive_values())
def test_no_generated_secret_or_pii_survives_anywhere_in_an_event(
    data: st.DataObject, value: str
) -> None:
    event, needle = data.draw(_placed(value), label="event")

    rendered = _render(event)

    assert needle not in rendered
    assert needle.replace(" ", "").replace("-", "") not in rendered.replace(" ", "")


@settings(max_examples=200, deadline=None)
@given(data=st.data(), token=_bearer_tokens())
def test_a_bearer_token_never_survives_but_the_scheme_word_does(
    data: st.DataObject, token: str
) -> None:
    event, _ = data.draw(_placed(f"Bearer {token}"), label="event")

    rendered = _render(event)

    assert token not in rendered
    assert "Bearer [TOKEN]" in rendered


@settings(max_examples=300, deadline=None)
@given(
    order_id=st.text(_BASE62, min_size=17, max_size=17).map(lambda tail: "ord_" + tail),
    event_id=st.text("0123456789abcdef", min_size=24, max_size=24),
    correlation_id=st.uuids(version=4).map(lambda u: u.hex),
    amount=st.integers(0, 10**11),
    oxxo_reference=st.text(string.digits, min_size=10, max_size=10).map(lambda t: "9300" + t),
)
def test_ordinary_ids_amounts_and_oxxo_references_survive(
    order_id: str, event_id: str, correlation_id: str, amount: int, oxxo_reference: str
) -> None:
    event = {
        "event": f"order {order_id} event {event_id}, oxxo {oxxo_reference}, "
        f"MXN {amount // 100}.{amount % 100:02d}",
        "order_id": order_id,
        "event_id": event_id,
        "correlation_id": correlation_id,
        "amount_cents": amount,
        "reference": oxxo_reference,
        "line_items": [{"unit_price": amount, "company": "HU25"}],
    }

    redacted = redact_event(None, "info", dict(event))

    assert redacted == event


def test_the_shared_fixture_identifiers_survive_and_its_pii_does_not() -> None:
    event = {
        "event": "order.paid",
        "order_id": "ord_2yQ8nCk3vJ5dWx9Ra",
        "event_id": "663346f7a4e9b3001d2f8b11",
        "payment_method": {
            "reference": "93000262294518",
            "receiving_account_number": "646180157200198457",
            "issuing_account_number": "012180001234567899",
            "issuing_account_tax_id": "LOHA850312AB1",
            "tracking_code": "MBAN01002504160012345678",
            "reference_number": "1234567",
            "executed_at": "2025-04-16T17:10:14Z",
        },
    }

    rendered = _render(event)

    for kept in (
        "ord_2yQ8nCk3vJ5dWx9Ra",
        "663346f7a4e9b3001d2f8b11",
        "93000262294518",
        "MBAN01002504160012345678",
        "1234567",
        "2025-04-16T17:10:14Z",
    ):
        assert kept in rendered
    for gone in ("646180157200198457", "012180001234567899", "LOHA850312AB1"):
        assert gone not in rendered


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "DB_PASSWD",
        "webhook_secret",
        "access_token",
        "Authorization",
        "api_key",
        "X-Api-Key",
        "apiKey",
        "DIGEST",
        "signature",
        "curp",
        "payer_rfc",
        "clabe",
        "card_number",
        "pan",
        "cardPAN",
        "ine_front",
        "INEFront",
        "cvv",
        "private_key",
        "privateKey",
        "Set-Cookie",
    ],
)
def test_a_sensitive_key_hides_its_value_whatever_it_holds(key: str) -> None:
    event = {"event": "x", "outer": {key: {"anything": ["at all", 42]}}, key: "hunter2"}

    redacted = redact_event(None, "info", event)

    assert redacted[key] == REDACTED
    assert redacted["outer"] == {key: REDACTED}


@pytest.mark.parametrize(
    "key", ["company", "span_id", "line_items", "timeline", "key_id", "order_id", "expand"]
)
def test_keys_that_merely_contain_pan_or_ine_are_not_sensitive(key: str) -> None:
    assert not is_sensitive_key(key)


def test_none_and_booleans_under_a_sensitive_key_are_kept() -> None:
    redacted = redact_event(None, "info", {"event": "x", "signature_valid": True, "token": None})

    assert redacted == {"event": "x", "signature_valid": True, "token": None}


def test_line_breaks_are_stripped_to_stop_log_injection() -> None:
    forged = "paid\r\n2025-04-16 INFO admin granted\u2028again"

    redacted = redact_event(None, "info", {"event": forged, "nested": [forged]})

    assert redacted["event"] == "paid  2025-04-16 INFO admin granted again"
    assert "\n" not in json.dumps(redacted, ensure_ascii=False).replace("\\n", "\n")[1:-1]


def test_credentials_in_a_webhook_url_are_hidden_but_the_host_is_kept() -> None:
    text = redact_text("POST https://guardia:s3cr3t@ops.example.mx/webhooks/conekta")

    assert text == "POST https://[CREDENTIALS]@ops.example.mx/webhooks/conekta"


def test_a_pan_stored_as_an_integer_is_redacted() -> None:
    redacted = redact_event(None, "info", {"event": "x", "n": 4242424242424242, "amount": 150000})

    assert redacted == {"event": "x", "n": "[PAN]", "amount": 150000}


@dataclass(frozen=True)
class _Payer:
    name: str
    account: str


def test_an_object_whose_repr_would_leak_is_replaced_by_its_redacted_repr() -> None:
    clean = _Payer("Ana", "n/a")

    redacted = redact_event(
        None, "info", {"event": "x", "payer": _Payer("Ana", "012180001234567899"), "ok": clean}
    )

    assert redacted["payer"] == "_Payer(name='Ana', account='[CLABE]')"
    assert redacted["ok"] is clean


def test_the_callers_nested_data_is_not_mutated() -> None:
    payload = {"items": ["LOHA850312AB1"], "password": "hunter2"}

    redact_event(None, "info", {"event": "x", "payload": payload})

    assert payload == {"items": ["LOHA850312AB1"], "password": "hunter2"}


def test_a_structlog_pipeline_with_the_processor_renders_redacted_json() -> None:
    logger = structlog.wrap_logger(
        structlog.ReturnLogger(),
        processors=[redact_event, structlog.processors.JSONRenderer()],
    )

    line = logger.info("card 4242 4242 4242 4242 declined", curp="GOMC850312HDFRRR09")

    assert json.loads(line) == {"event": "card [PAN] declined", "curp": REDACTED}


@pytest.mark.parametrize(
    "key", ["email", "customer_email", "phone", "PhoneNumber", "telefono", "celular"]
)
def test_contact_fields_hide_their_value_by_key(key: str) -> None:
    redacted = redact_event(None, "info", {"event": "x", key: "ana"})

    assert redacted[key] == REDACTED


def test_a_ten_digit_integer_is_an_amount_not_a_phone_number() -> None:
    event = {"event": "x", "amount_cents": 5512345678}

    assert redact_event(None, "info", dict(event)) == event


@contextlib.contextmanager
def _guardia_logs() -> Iterator[io.StringIO]:
    """Guardia's real logging configuration, writing into a buffer; restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_structlog = structlog.get_config()
    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer):
        configure_logging(json=True, level="INFO")
    try:
        yield buffer
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        structlog.configure(**saved_structlog)


@settings(max_examples=100, deadline=None)
@given(email=emails(), phone=phones())
def test_logged_emails_and_phone_numbers_never_reach_the_log_output(email: str, phone: str) -> None:
    with _guardia_logs() as output:
        structlog.get_logger("guardia.test").info(
            f"receipt sent to {email}", customer={"contact": f"{phone} / {email}"}
        )
        logging.getLogger("guardia.test").warning("callback requested at %s", phone)
        try:
            raise ValueError(f"no customer with phone {phone}")
        except ValueError:
            structlog.get_logger("guardia.test").exception("lookup failed")

    lines = output.getvalue()
    assert lines.count("\n") == 3
    assert email not in lines
    assert phone not in lines
    assert "[EMAIL]" in lines
    assert "[PHONE]" in lines


def test_a_database_error_keeps_its_cause_but_not_its_sql_or_parameters() -> None:
    message = (
        "(psycopg.errors.InvalidTextRepresentation) invalid input syntax for type integer: "
        '"ana.lopez@example.mx"\n'
        "[SQL: INSERT INTO customers (email, phone)\nVALUES (%(email)s, %(phone)s)]\n"
        "[parameters: {'email': 'ana.lopez@example.mx', 'phone': '+52 55 1234 5678', "
        "'secret': 'x'}]\n"
        "(Background on this error at: https://sqlalche.me/e/20/9h9h)"
    )

    redacted = redact_error_message(message)

    assert redacted == (
        "(psycopg.errors.InvalidTextRepresentation) invalid input syntax for type integer: "
        '"[EMAIL]" (Background on this error at: https://sqlalche.me/e/20/9h9h)'
    )


def test_an_error_without_sql_is_only_redacted() -> None:
    assert redact_error_message("Odoo refused: partner +52 55 1234 5678") == (
        "Odoo refused: partner [PHONE]"
    )
