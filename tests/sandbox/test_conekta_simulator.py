"""The Conekta simulator over real HTTP on 127.0.0.1: API, signed webhooks, retries, faults."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.hashes import SHA256
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from typer.testing import CliRunner

from guardia.sandbox.conekta import ConektaSimConfig, ConektaSimulator, create_app
from guardia.sandbox.conekta_cli import app as cli_app

API_KEY = "key_sim_tests_0123456789"
RETRIES = (0.05, 0.1, 0.15)
T = TypeVar("T")

# Key sets of shared/fixtures/providers/conekta/*.json, the shapes the simulator must reproduce.
EVENT_KEYS = {
    "data",
    "livemode",
    "webhook_status",
    "webhook_logs",
    "id",
    "object",
    "type",
    "created_at",
}
ORDER_KEYS = {
    "livemode",
    "amount",
    "currency",
    "payment_status",
    "amount_refunded",
    "customer_info",
    "object",
    "id",
    "metadata",
    "is_refundable",
    "created_at",
    "updated_at",
    "line_items",
    "charges",
}
CHARGE_KEYS = {
    "id",
    "livemode",
    "created_at",
    "currency",
    "object",
    "description",
    "status",
    "amount",
    "paid_at",
    "fee",
    "customer_id",
    "order_id",
    "payment_method",
}
SPEI_KEYS = {
    "object",
    "type",
    "bank",
    "clabe",
    "receiving_account_number",
    "receiving_account_bank",
    "receiving_account_holder_name",
    "receiving_account_tax_id",
    "issuing_account_holder_name",
    "issuing_account_tax_id",
    "issuing_account_bank",
    "issuing_account_number",
    "reference_number",
    "tracking_code",
    "description",
    "executed_at",
    "payment_attempts",
    "expires_at",
}
CASH_KEYS = {
    "object",
    "type",
    "service_name",
    "store_name",
    "reference",
    "barcode_url",
    "expires_at",
    "auth_code",
    "cashier_id",
    "store",
}
CARD_KEYS = {
    "object",
    "type",
    "name",
    "last4",
    "brand",
    "exp_month",
    "exp_year",
    "auth_code",
    "issuer",
    "account_type",
    "country",
    "fraud_indicators",
}
ERROR_KEYS = {"object", "type", "log_id", "details"}
DETAIL_KEYS = {"debug_message", "message", "param", "code"}
HEX24 = re.compile(r"^[0-9a-f]{24}$")


def clabe_ok(clabe: str) -> bool:
    """Check a CLABE independently of the simulator's code (weights 3,7,1; Banxico)."""
    if not re.fullmatch(r"\d{18}", clabe):
        return False
    total = sum(int(d) * (3, 7, 1)[i % 3] % 10 for i, d in enumerate(clabe[:17]))
    return (10 - total % 10) % 10 == int(clabe[17])


@cache
def signing_key_pem() -> bytes:
    """One RSA key for the whole module: generating 2048-bit keys per test is slow."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


async def until(check: Callable[[], T], what: str, timeout: float = 5.0) -> T:
    """Poll `check` until it returns something truthy, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass
class Received:
    path: str
    body: bytes
    headers: dict[str, str]

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    @property
    def type(self) -> str:
        return str(self.event["type"])

    @property
    def order_id(self) -> str | None:
        obj = self.event["data"].get("object") or {}
        if obj.get("object") == "order":
            return str(obj["id"])
        return obj.get("order_id")


@dataclass
class Receiver:
    """Guardia's webhook endpoint stand-in: records raw requests, can be told to fail."""

    requests: list[Received] = field(default_factory=list)
    always_fail: bool = False
    fail_first_per_event: int = 0
    _seen: dict[str, int] = field(default_factory=dict)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/webhooks/{name}")
        async def hook(name: str, request: Request) -> JSONResponse:
            body = await request.body()
            self.requests.append(
                Received(request.url.path, body, {k.lower(): v for k, v in request.headers.items()})
            )
            event_id = json.loads(body)["id"]
            self._seen[event_id] = self._seen.get(event_id, 0) + 1
            if self.always_fail or self._seen[event_id] <= self.fail_first_per_event:
                return JSONResponse({"error": "boom"}, status_code=500)
            return JSONResponse({"received": True})

        return app

    def of(
        self, order_id: str | None = None, type_: str | None = None, path: str | None = None
    ) -> list[Received]:
        return [
            r
            for r in self.requests
            if (order_id is None or r.order_id == order_id)
            and (type_ is None or r.type == type_)
            and (path is None or r.path == path)
        ]


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Run an ASGI app with uvicorn on a free 127.0.0.1 port in this event loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="on", log_level="warning", ws="none", http="h11")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started or task.done(), "uvicorn to start")
        if task.done():
            task.result()
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@dataclass
class Env:
    sim: ConektaSimulator
    base: str
    hook_url: str
    receiver: Receiver
    api: httpx.AsyncClient
    control: httpx.AsyncClient

    async def settle(self) -> None:
        """Wait until the simulator has recorded every request the receiver has answered."""
        await until(
            lambda: len(self.sim.deliveries()) >= len(self.receiver.requests), "delivery records"
        )

    def public_key(self) -> rsa.RSAPublicKey:
        key = serialization.load_pem_public_key(self.sim.public_key_pem().encode())
        assert isinstance(key, rsa.RSAPublicKey)
        return key

    def verifies(self, received: Received) -> bool:
        signature = base64.b64decode(received.headers["digest"].strip(), validate=True)
        try:
            self.public_key().verify(signature, received.body, PKCS1v15(), SHA256())
        except InvalidSignature:
            return False
        return True

    async def create(self, method: str = "spei", amount: int = 150000, **pm: Any) -> dict[str, Any]:
        response = await self.api.post("/orders", json=order_body(method, amount, **pm))
        assert response.status_code == 200, response.text
        order: dict[str, Any] = response.json()
        return order

    async def sandbox(self, action: str, order_id: str, **body: Any) -> httpx.Response:
        return await self.control.post(f"/_sandbox/orders/{order_id}/{action}", json=body)

    async def fault(self, **body: Any) -> dict[str, Any]:
        response = await self.control.post("/_sandbox/faults", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def event_of(self, order_id: str, type_: str) -> dict[str, Any]:
        events = (await self.api.get("/events", params={"limit": 250})).json()["data"]
        for event in events:
            obj = event["data"].get("object") or {}
            if event["type"] == type_ and order_id in (obj.get("id"), obj.get("order_id")):
                found: dict[str, Any] = event
                return found
        raise AssertionError(f"no {type_} event for {order_id}")


def order_body(method: str, amount: int, **payment_method: Any) -> dict[str, Any]:
    return {
        "currency": "MXN",
        "customer_info": {
            "name": "Ana López Hernández",
            "email": "ana.lopez@example.mx",
            "phone": "+525512345678",
        },
        "line_items": [{"name": "Pago mensualidad 3/12", "unit_price": amount, "quantity": 1}],
        "charges": [{"payment_method": {"type": method, **payment_method}}],
        "metadata": {"loan_id": "CR-000417"},
    }


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    receiver = Receiver()
    async with serve(receiver.app()) as receiver_url:
        hook_url = f"{receiver_url}/webhooks/conekta"
        sim = ConektaSimulator(
            ConektaSimConfig(
                api_key=API_KEY,
                webhook_urls=[hook_url],
                private_key_pem=signing_key_pem(),
                retry_schedule=RETRIES,
                delivery_timeout=2.0,
            )
        )
        async with (
            serve(create_app(sim)) as base,
            httpx.AsyncClient(
                base_url=base, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5.0
            ) as api,
            httpx.AsyncClient(base_url=base, timeout=5.0) as control,
        ):
            yield Env(sim, base, hook_url, receiver, api, control)


# --- happy paths and shapes --------------------------------------------------------------------


async def test_paying_a_spei_order_delivers_signed_events_in_creation_order(env: Env) -> None:
    order = await env.create("spei", 150000)
    paid = await env.sandbox("pay", order["id"])
    assert paid.status_code == 200

    await until(lambda: env.receiver.of(order["id"], "order.paid"), "order.paid")
    received = env.receiver.of(order["id"])
    assert [r.type for r in received] == [
        "order.created",
        "order.pending_payment",
        "charge.paid",
        "order.paid",
    ]
    for r in received:
        assert env.verifies(r), r.type
        assert r.headers["content-type"] == "application/json"
        assert r.body == json.dumps(r.event, separators=(",", ":"), ensure_ascii=False).encode()
        assert set(r.event) == EVENT_KEYS
    assert "Ana López".encode() in received[0].body  # UTF-8 kept, not \u-escaped

    event = env.receiver.of(order["id"], "order.paid")[0].event
    snapshot = event["data"]["object"]
    assert event["data"]["previous_attributes"] == {"payment_status": "pending_payment"}
    assert snapshot["payment_status"] == "paid"
    assert snapshot["amount"] == 150000
    charge = snapshot["charges"]["data"][0]
    assert (charge["status"], charge["fee"]) == ("paid", 1334)
    assert isinstance(charge["paid_at"], int)
    payer = charge["payment_method"]
    assert re.fullmatch(r"MBAN0100\d{16}", payer["tracking_code"])
    assert re.fullmatch(r"\d{7}", payer["reference_number"])
    assert clabe_ok(payer["issuing_account_number"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", payer["executed_at"])

    charge_paid = env.receiver.of(order["id"], "charge.paid")[0].event["data"]
    assert charge_paid["object"]["object"] == "charge"
    assert charge_paid["previous_attributes"] == {"status": "pending_payment"}

    keys = (await env.api.get("/webhook_keys")).json()["data"]
    assert keys[0]["public_key"] == env.sim.public_key_pem()
    assert keys[0]["object"] == "webhook_key"
    assert keys[0]["active"] is True
    pem = (await env.control.get("/_sandbox/public_key")).text
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert pem == env.sim.public_key_pem()

    def attempts_of_order() -> list[dict[str, object]]:
        return [d for d in env.sim.deliveries() if d["order_id"] == order["id"]]

    await until(lambda: len(attempts_of_order()) >= 4, "four recorded attempts")
    attempts = attempts_of_order()
    assert len(attempts) == 4
    assert all(d["status_code"] == 200 and d["signature_ok"] is True for d in attempts)


async def test_spei_order_is_shaped_like_the_fixtures_with_cents_and_a_valid_stp_clabe(
    env: Env,
) -> None:
    body = order_body("spei", 100000)
    body["line_items"].append({"name": "Comisión", "unit_price": 25000, "quantity": 2})
    response = await env.api.post("/orders", json=body)
    order = response.json()

    assert clabe_ok("646180157200198457")
    assert not clabe_ok("646180157200198458")
    assert set(order) == ORDER_KEYS
    assert re.fullmatch(r"ord_[A-Za-z0-9]{17}", order["id"])
    assert order["amount"] == 150000
    assert order["amount_refunded"] == 0
    assert order["payment_status"] == "pending_payment"
    assert order["line_items"]["total"] == 2
    assert order["customer_info"]["object"] == "customer_info"
    charge = order["charges"]["data"][0]
    assert set(charge) == CHARGE_KEYS
    assert HEX24.match(charge["id"])
    assert (charge["amount"], charge["fee"], charge["paid_at"]) == (150000, 0, None)
    method = charge["payment_method"]
    assert set(method) == SPEI_KEYS
    assert method["object"] == "bank_transfer_payment"
    assert method["type"] == "spei"
    assert method["clabe"] == method["receiving_account_number"]
    assert method["clabe"].startswith("646180")
    assert clabe_ok(method["clabe"])
    assert method["bank"] == "STP"
    assert method["expires_at"] > order["created_at"]
    assert method["tracking_code"] is None
    assert method["issuing_account_number"] is None

    other = await env.create("spei")
    assert other["charges"]["data"][0]["payment_method"]["clabe"] != method["clabe"]
    created = await env.event_of(order["id"], "order.created")
    assert HEX24.match(created["id"])
    assert set(created) == EVENT_KEYS
    assert created["data"]["previous_attributes"] == {}


async def test_oxxo_order_gets_a_14_digit_reference_and_charge_paid_carries_the_charge(
    env: Env,
) -> None:
    order = await env.create("oxxo", 89900)
    cash = await env.create("cash", 10000)
    method = order["charges"]["data"][0]["payment_method"]
    assert set(method) == CASH_KEYS
    assert (method["object"], method["type"]) == ("cash_payment", "oxxo")
    assert re.fullmatch(r"9300\d{10}", method["reference"])
    assert method["service_name"] == "OxxoPay"
    assert method["barcode_url"].startswith("https://")
    assert cash["charges"]["data"][0]["payment_method"]["type"] == "oxxo"

    await env.sandbox("pay", order["id"])
    received = await until(lambda: env.receiver.of(order["id"], "charge.paid"), "charge.paid")
    charge = received[0].event["data"]["object"]
    assert set(charge) == CHARGE_KEYS
    assert charge["status"] == "paid"
    assert charge["fee"] > 0
    assert charge["paid_at"] is not None
    assert charge["payment_method"]["auth_code"] is not None
    current = (await env.api.get(f"/orders/{order['id']}")).json()
    assert current["payment_status"] == "paid"
    too_big = await env.api.post("/orders", json=order_body("oxxo", 1_000_001))
    assert too_big.status_code == 422


async def test_card_order_is_paid_at_once_and_a_declined_card_creates_nothing(env: Env) -> None:
    order = await env.create("card", 50000, token_id="tok_test_visa_4242")
    assert order["payment_status"] == "paid"
    assert order["is_refundable"] is True
    charge = order["charges"]["data"][0]
    assert set(charge["payment_method"]) == CARD_KEYS
    assert charge["payment_method"]["object"] == "card_payment"
    assert (charge["payment_method"]["brand"], charge["payment_method"]["last4"]) == (
        "visa",
        "4242",
    )
    assert re.fullmatch(r"\d{6}", charge["payment_method"]["auth_code"])
    assert charge["fee"] == 2088  # 3.6% + IVA, as in order_refunded_card.json
    await until(lambda: env.receiver.of(order["id"], "order.paid"), "order.paid")
    assert [r.type for r in env.receiver.of(order["id"])] == [
        "order.created",
        "charge.created",
        "charge.paid",
        "order.paid",
    ]

    declined = await env.api.post(
        "/orders", json=order_body("card", 50000, token_id="tok_test_card_declined")
    )
    assert declined.status_code == 402
    assert declined.json()["type"] == "processing_error"
    listed = (await env.api.get("/orders")).json()["data"]
    assert [o["id"] for o in listed] == [order["id"]]


async def test_an_idempotency_key_replays_the_original_order(env: Env) -> None:
    headers = {"Idempotency-Key": "loan-CR-000417-3"}
    first = await env.api.post("/orders", json=order_body("spei", 1000), headers=headers)
    second = await env.api.post("/orders", json=order_body("spei", 1000), headers=headers)
    assert first.json() == second.json()
    assert len((await env.api.get("/orders")).json()["data"]) == 1


# --- delivery and retries ----------------------------------------------------------------------


async def test_a_receiver_500_is_retried_until_200_and_the_webhook_log_records_it(
    env: Env,
) -> None:
    env.receiver.fail_first_per_event = 2
    order = await env.create("spei")

    async def delivered() -> dict[str, Any]:
        return await env.event_of(order["id"], "order.created")

    deadline = time.monotonic() + 5
    event = await delivered()
    while event["webhook_status"] != "successful":
        assert time.monotonic() < deadline, event
        await asyncio.sleep(0.02)
        event = await delivered()
    (log,) = event["webhook_logs"]
    assert log["object"] == "webhook_log"
    assert re.fullmatch(r"webhl_[A-Za-z0-9]{17}", log["id"])
    assert log["url"] == env.hook_url
    assert log["failed_attempts"] == 2
    assert log["last_http_response_status"] == 200
    assert isinstance(log["last_attempted_at"], int)
    attempts = [d for d in env.sim.deliveries() if d["event_id"] == event["id"]]
    assert [d["status_code"] for d in attempts] == [500, 500, 200]
    assert [d["attempt"] for d in attempts] == [1, 2, 3]
    bodies = {r.body for r in env.receiver.requests if r.event["id"] == event["id"]}
    assert len(bodies) == 1  # retries resend the exact same bytes


async def test_retries_stop_after_the_schedule_then_resend_recovers_the_event(env: Env) -> None:
    env.receiver.always_fail = True
    order = await env.create("spei")
    created = await env.event_of(order["id"], "order.created")

    async def status() -> str:
        return str((await env.api.get(f"/events/{created['id']}")).json()["webhook_status"])

    deadline = time.monotonic() + 5
    while await status() != "failed":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    event = (await env.api.get(f"/events/{created['id']}")).json()
    assert event["webhook_logs"][0]["failed_attempts"] == len(RETRIES) + 1
    assert event["webhook_logs"][0]["last_http_response_status"] == 500
    assert len([d for d in env.sim.deliveries() if d["event_id"] == created["id"]]) == 4
    (webhook,) = (await env.api.get("/webhooks")).json()["data"]
    assert webhook["status"] == "intermittent_errors"

    env.receiver.always_fail = False
    log = (
        await env.api.post(
            f"/events/{created['id']}/resend", json={"webhooks_ids": [webhook["id"]]}
        )
    ).json()
    assert log["last_http_response_status"] == 200
    assert log["failed_attempts"] == 4
    assert (await status()) == "successful"
    assert (await env.api.get("/webhooks")).json()["data"][0]["status"] == "listening"


async def test_stop_cancels_pending_retries_cleanly() -> None:
    receiver = Receiver(always_fail=True)
    async with serve(receiver.app()) as receiver_url:
        sim = ConektaSimulator(
            ConektaSimConfig(
                api_key=API_KEY,
                webhook_urls=[f"{receiver_url}/webhooks/conekta"],
                private_key_pem=signing_key_pem(),
                retry_schedule=(30.0,),
            )
        )
        await sim.start()
        sim.create_order(order_body("spei", 1000))
        await until(lambda: len(sim.deliveries()) == 2, "both first attempts")
        await asyncio.wait_for(sim.stop(), timeout=2.0)
        pending = [t for t in asyncio.all_tasks() if t.get_name().startswith(("retry-", "lane-"))]
        assert pending == []
        assert len(sim.deliveries()) == 2


# --- faults ------------------------------------------------------------------------------------


async def test_dropped_events_are_never_sent_but_resend_delivers_them_signed(env: Env) -> None:
    order = await env.create("spei")
    await until(lambda: env.receiver.of(order["id"], "order.pending_payment"), "pending")
    await env.fault(kind="drop", order_id=order["id"])
    await env.sandbox("pay", order["id"])

    sentinel = await env.create("card", 1000)
    await until(lambda: env.receiver.of(sentinel["id"], "order.paid"), "sentinel order.paid")
    assert env.receiver.of(order["id"], "charge.paid") == []
    assert env.receiver.of(order["id"], "order.paid") == []
    paid = await env.event_of(order["id"], "order.paid")
    assert paid["webhook_status"] == "pending"
    assert paid["webhook_logs"] == []
    assert not [d for d in env.sim.deliveries() if d["event_id"] == paid["id"]]

    (webhook,) = (await env.api.get("/webhooks")).json()["data"]
    response = await env.api.post(
        f"/events/{paid['id']}/resend", json={"webhooks_ids": [webhook["id"]]}
    )
    log = response.json()
    assert response.status_code == 200
    assert log["object"] == "webhook_log"
    assert log["last_http_response_status"] == 200
    assert log["failed_attempts"] == 0
    assert log["url"] == env.hook_url
    (resent,) = env.receiver.of(order["id"], "order.paid")
    assert env.verifies(resent)


async def test_duplicate_fault_delivers_one_event_twice_with_identical_bytes(env: Env) -> None:
    order = await env.create("spei")
    await until(lambda: env.receiver.of(order["id"], "order.pending_payment"), "pending")
    await env.fault(kind="duplicate", order_id=order["id"], count=1)
    await env.sandbox("pay", order["id"])

    await until(lambda: env.receiver.of(order["id"], "order.paid"), "order.paid")
    twice = env.receiver.of(order["id"], "charge.paid")
    assert len(twice) == 2
    assert twice[0].body == twice[1].body
    assert all(env.verifies(r) for r in twice)
    assert len(env.receiver.of(order["id"], "order.paid")) == 1
    kinds = sorted(str(d["kind"]) for d in env.sim.deliveries() if d["type"] == "charge.paid")
    assert kinds == ["automatic", "duplicate"]


async def test_reorder_fault_delivers_held_events_newest_first(env: Env) -> None:
    order = await env.create("spei")
    await until(lambda: env.receiver.of(order["id"], "order.pending_payment"), "pending")
    await env.fault(kind="reorder", order_id=order["id"], count=2)
    await env.sandbox("pay", order["id"])

    await until(lambda: len(env.receiver.of(order["id"])) == 4, "both held events")
    assert [r.type for r in env.receiver.of(order["id"])][2:] == ["order.paid", "charge.paid"]
    assert (await env.control.get("/_sandbox/faults")).json()["data"] == []


async def test_reorder_without_count_holds_events_until_flushed(env: Env) -> None:
    await env.fault(kind="reorder")
    order = await env.create("spei")
    assert env.sim.deliveries() == []
    flushed = (await env.control.post("/_sandbox/faults/flush")).json()
    assert flushed == {"released": 2}
    await until(lambda: len(env.receiver.of(order["id"])) == 2, "released events")
    assert [r.type for r in env.receiver.of(order["id"])] == [
        "order.pending_payment",
        "order.created",
    ]
    cleared = (await env.control.delete("/_sandbox/faults")).json()
    assert cleared == {"cleared": 1, "released": 0}


async def test_delay_fault_postpones_delivery(env: Env) -> None:
    order = await env.create("spei")
    await until(lambda: env.receiver.of(order["id"], "order.pending_payment"), "pending")
    await env.fault(kind="delay", order_id=order["id"], delay_seconds=0.4, count=1)
    started = time.monotonic()
    await env.sandbox("pay", order["id"])
    await until(lambda: env.receiver.of(order["id"], "charge.paid"), "charge.paid")
    assert time.monotonic() - started >= 0.4


async def test_bad_signature_fault_sends_a_digest_that_fails_verification(env: Env) -> None:
    await env.fault(kind="bad_signature", count=1)
    order = await env.create("spei")
    await until(lambda: len(env.receiver.of(order["id"])) == 2, "two events")
    created, pending = env.receiver.of(order["id"])
    assert created.type == "order.created"
    assert not env.verifies(created)
    assert env.verifies(pending)
    await env.settle()
    flags = {str(d["type"]): d["signature_ok"] for d in env.sim.deliveries()}
    assert flags == {"order.created": False, "order.pending_payment": True}


async def test_api_error_fault_answers_429_with_retry_after_then_recovers(env: Env) -> None:
    await env.fault(kind="api_error", status_code=429)
    limited = await env.api.get("/orders")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "1"
    assert set(limited.json()) == ERROR_KEYS
    assert limited.json()["object"] == "error"
    assert (await env.api.get("/orders")).status_code == 200

    await env.fault(kind="api_error", count=2)
    statuses = [(await env.api.get("/events")).status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert (await env.api.get("/events")).status_code == 200


# --- errors ------------------------------------------------------------------------------------


async def test_requests_without_a_valid_key_get_401_in_conekta_error_shape(env: Env) -> None:
    missing = await env.control.get("/orders")
    assert missing.status_code == 401
    body = missing.json()
    assert set(body) == ERROR_KEYS
    assert HEX24.match(body["log_id"])
    assert (body["object"], body["type"]) == ("error", "authentication_error")
    assert set(body["details"][0]) == DETAIL_KEYS
    assert body["details"][0]["code"] == "conekta.errors.authentication.missing_key"

    wrong = await env.control.get("/orders", headers={"Authorization": "Bearer key_wrong"})
    assert wrong.status_code == 401
    assert wrong.json()["type"] == "authentication_error"
    basic = await env.control.get("/orders", auth=(API_KEY, ""))
    assert basic.status_code == 200


async def test_unknown_ids_get_404_resource_not_found_error(env: Env) -> None:
    for path in ("/orders/ord_AAAAAAAAAAAAAAAAA", "/events/0123456789abcdef01234567"):
        response = await env.api.get(path)
        assert response.status_code == 404
        body = response.json()
        assert body["type"] == "resource_not_found_error"
        assert set(body) == ERROR_KEYS
        assert body["details"][0]["param"] == "id"
    assert (await env.sandbox("pay", "ord_AAAAAAAAAAAAAAAAA")).status_code == 404


async def test_invalid_orders_get_422_parameter_validation_error_with_details(env: Env) -> None:
    cases: list[tuple[dict[str, Any], set[str]]] = []
    body = order_body("spei", 1000)
    del body["currency"], body["line_items"]
    cases.append((body, {"currency", "line_items"}))
    body = order_body("spei", 1000)
    body["line_items"][0]["unit_price"] = "1500.00"
    cases.append((body, {"line_items.0.unit_price"}))
    body = order_body("spei", 1000)
    body["line_items"][0]["unit_price"] = 15.5
    cases.append((body, {"line_items.0.unit_price"}))
    cases.append((order_body("bitcoin", 1000), {"charges.0.payment_method.type"}))
    for body, params in cases:
        response = await env.api.post("/orders", json=body)
        assert response.status_code == 422, body
        error = response.json()
        assert error["type"] == "parameter_validation_error"
        assert {d["param"] for d in error["details"]} == params
        assert all(set(d) == DETAIL_KEYS for d in error["details"])
    assert (await env.api.get("/orders")).json()["data"] == []


async def test_illegal_transitions_answer_409_with_a_clear_message(env: Env) -> None:
    expired = await env.create("oxxo")
    assert (await env.sandbox("expire", expired["id"])).status_code == 200
    pay_expired = await env.sandbox("pay", expired["id"])
    assert pay_expired.status_code == 409
    assert "expired" in pay_expired.json()["details"][0]["debug_message"]

    unpaid = await env.create("spei")
    refund_unpaid = await env.sandbox("refund", unpaid["id"])
    assert refund_unpaid.status_code == 409
    assert "pending_payment" in refund_unpaid.json()["details"][0]["debug_message"]

    await env.sandbox("pay", unpaid["id"])
    assert (await env.sandbox("pay", unpaid["id"])).status_code == 409
    assert (await env.sandbox("cancel", unpaid["id"])).status_code == 409
    too_much = await env.sandbox("refund", unpaid["id"], amount=150001)
    assert too_much.status_code == 409
    assert "150000" in too_much.json()["details"][0]["debug_message"]
    current = (await env.api.get(f"/orders/{unpaid['id']}")).json()
    assert current["payment_status"] == "paid"
    assert current["amount_refunded"] == 0


async def test_refunds_are_negative_and_lead_to_partially_then_fully_refunded(env: Env) -> None:
    order = await env.create("card", 50000)
    partial = (await env.sandbox("refund", order["id"], amount=20000)).json()
    assert partial["payment_status"] == "partially_refunded"
    assert partial["amount_refunded"] == 20000
    charge = partial["charges"]["data"][0]
    assert charge["status"] == "partially_refunded"
    assert [r["amount"] for r in charge["refunds"]["data"]] == [-20000]
    assert partial["updated_at"] > order["updated_at"]

    full = (await env.sandbox("refund", order["id"])).json()
    assert full["payment_status"] == "refunded"
    assert full["amount_refunded"] == 50000
    refunds = full["charges"]["data"][0]["refunds"]["data"]
    assert [r["amount"] for r in refunds] == [-20000, -30000]
    assert all(r["object"] == "refund" and HEX24.match(r["id"]) for r in refunds)
    assert full["updated_at"] > partial["updated_at"]
    assert (await env.sandbox("refund", order["id"], amount=1)).status_code == 409

    await until(lambda: env.receiver.of(order["id"], "order.refunded"), "order.refunded")
    partially = env.receiver.of(order["id"], "order.partially_refunded")[0].event["data"]
    assert partially["previous_attributes"]["payment_status"] == "paid"
    assert partially["object"]["amount_refunded"] == 20000
    refunded = env.receiver.of(order["id"], "order.refunded")[0].event["data"]
    assert refunded["previous_attributes"]["payment_status"] == "partially_refunded"


async def test_cancel_and_chargeback_emit_their_order_events(env: Env) -> None:
    pending = await env.create("spei")
    card = await env.create("card", 30000)
    assert (await env.sandbox("cancel", pending["id"])).json()["payment_status"] == "canceled"
    charged_back = (await env.sandbox("chargeback", card["id"])).json()
    assert charged_back["payment_status"] == "charged_back"
    await until(lambda: env.receiver.of(pending["id"], "order.canceled"), "order.canceled")
    await until(lambda: env.receiver.of(card["id"], "order.charged_back"), "charged_back")


# --- listing -----------------------------------------------------------------------------------


async def test_events_are_listed_newest_first_with_cursor_paging(env: Env) -> None:
    orders = [await env.create("spei") for _ in range(3)]
    first = (await env.api.get("/events", params={"limit": 4})).json()
    assert first["object"] == "list"
    assert first["has_more"] is True
    assert len(first["data"]) == 4
    assert first["previous_page_url"] is None
    second = (await env.api.get(first["next_page_url"])).json()
    assert second["has_more"] is False
    assert second["next_page_url"] is None
    events = first["data"] + second["data"]
    assert len({e["id"] for e in events}) == 6

    expected = [
        (o["id"], t) for o in reversed(orders) for t in ("order.pending_payment", "order.created")
    ]
    assert [(e["data"]["object"]["id"], e["type"]) for e in events] == expected
    back = (await env.api.get(second["previous_page_url"])).json()
    assert [e["id"] for e in back["data"]] == [e["id"] for e in first["data"]]
    assert (await env.api.get("/events", params={"limit": 251})).status_code == 422
    assert (await env.api.get("/events", params={"next": "nope"})).status_code == 422


async def test_orders_are_filtered_by_updated_at_and_status_with_cursor_paging(env: Env) -> None:
    orders = [await env.create("spei") for _ in range(3)]
    paid = (await env.sandbox("pay", orders[0]["id"])).json()

    only_paid = (await env.api.get("/orders", params={"payment_status": "paid"})).json()
    assert [o["id"] for o in only_paid["data"]] == [paid["id"]]

    page = (await env.api.get("/orders", params={"limit": 2})).json()
    assert page["has_more"] is True
    assert [o["id"] for o in page["data"]] == [orders[2]["id"], orders[1]["id"]]
    rest = (await env.api.get(page["next_page_url"])).json()
    assert [o["id"] for o in rest["data"]] == [orders[0]["id"]]
    assert rest["has_more"] is False

    window = {"updated_at_gte": paid["updated_at"]}
    recent = (await env.api.get("/orders", params=window)).json()["data"]
    assert paid["id"] in [o["id"] for o in recent]
    assert all(o["updated_at"] >= paid["updated_at"] for o in recent)
    before = {"updated_at_lte": orders[0]["created_at"] - 1}
    assert (await env.api.get("/orders", params=before)).json()["data"] == []


# --- webhooks ----------------------------------------------------------------------------------


async def test_webhook_test_sends_a_ping_and_subscriptions_filter_events(env: Env) -> None:
    second_url = env.hook_url.replace("/conekta", "/second")
    created = await env.api.post(
        "/webhooks", json={"url": second_url, "subscribed_events": ["order.paid"]}
    )
    webhook = created.json()
    assert HEX24.match(webhook["id"])
    assert webhook["status"] == "listening"
    listed = (await env.api.get("/webhooks")).json()["data"]
    assert {w["url"] for w in listed} == {env.hook_url, second_url}

    assert (await env.api.post(f"/webhooks/{webhook['id']}/test")).status_code == 200
    (ping,) = await until(lambda: env.receiver.of(type_="webhook_ping"), "webhook_ping")
    assert ping.path == "/webhooks/second"
    assert ping.event["data"] == {"livemode": False, "action": "ping"}
    assert env.verifies(ping)

    order = await env.create("card", 1000)
    await until(lambda: env.receiver.of(order["id"], path="/webhooks/second"), "second webhook")
    await until(lambda: env.receiver.of(order["id"], "order.paid", "/webhooks/conekta"), "first")
    assert [r.type for r in env.receiver.of(order["id"], path="/webhooks/second")] == ["order.paid"]
    await env.settle()
    event = await env.event_of(order["id"], "order.paid")
    assert {log["url"] for log in event["webhook_logs"]} == {env.hook_url, second_url}


# --- CLI ---------------------------------------------------------------------------------------


async def test_the_cli_creates_pays_refunds_and_lists_deliveries_over_http(env: Env) -> None:
    runner = CliRunner()
    common = ["--url", env.base, "--json"]

    async def cli(*args: str) -> Any:
        result = await asyncio.to_thread(runner.invoke, cli_app, [*args, *common])
        return result

    created = await cli(
        "create-order", "--method", "spei", "--amount", "1234", "--api-key", API_KEY
    )
    assert created.exit_code == 0, created.output
    order = json.loads(created.output)
    assert order["amount"] == 1234
    assert order["payment_status"] == "pending_payment"

    refused = await cli("refund", order["id"])
    assert refused.exit_code == 1

    paid = await cli("pay", order["id"])
    assert json.loads(paid.output)["payment_status"] == "paid"
    fault = await cli("fault", "drop", "--order-id", order["id"], "--count", "1")
    assert json.loads(fault.output)["kind"] == "drop"
    await until(lambda: env.receiver.of(order["id"], "order.paid"), "order.paid")
    await env.settle()
    rows = json.loads((await cli("deliveries")).output)
    assert {row["type"] for row in rows if row["order_id"] == order["id"]} >= {"order.paid"}
    cleared = await cli("clear-faults")
    assert json.loads(cleared.output) == {"cleared": 1, "released": 0}
