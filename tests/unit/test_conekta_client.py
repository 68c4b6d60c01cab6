"""The Conekta client classifies failures and retries only what may succeed later."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from guardia.adapters.conekta.client import ConektaClient
from guardia.core.errors import NotFound, ProviderRejected, ProviderUnavailable
from tests.conftest import shared_dir


def order_json() -> dict[str, Any]:
    path = Path(shared_dir()) / "fixtures/providers/conekta/order_paid_spei.json"
    data: dict[str, Any] = json.loads(path.read_text())["data"]["object"]
    return data


def client_for(handler: Any, attempts: int = 4) -> ConektaClient:
    return ConektaClient(
        base_url="https://api.conekta.test",
        api_key="key_unit_test",
        transport=httpx.MockTransport(handler),
        attempts=attempts,
    )


async def test_sends_bearer_key_and_version_and_reads_the_order() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=order_json())

    snapshot = await client_for(handler).get_order("ord_2yQ8nCk3vJ5dWx9Ra")
    assert snapshot.status.value == "paid"
    assert snapshot.amount.cents == 150000
    assert seen[0].headers["authorization"] == "Bearer key_unit_test"
    assert seen[0].headers["accept"] == "application/vnd.conekta-v2.2.0+json"


async def test_429_is_retried_honouring_retry_after_then_succeeds() -> None:
    answers = iter(
        [
            httpx.Response(429, headers={"Retry-After": "0"}, json={"object": "error"}),
            httpx.Response(503, json={"object": "error"}),
            httpx.Response(200, json=order_json()),
        ]
    )
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return next(answers)

    snapshot = await client_for(handler).get_order("ord_2yQ8nCk3vJ5dWx9Ra")
    assert snapshot.order_id == "ord_2yQ8nCk3vJ5dWx9Ra"
    assert calls == 3


async def test_persistent_5xx_ends_as_provider_unavailable() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(500, json={"object": "error", "type": "api_error"})

    with pytest.raises(ProviderUnavailable):
        await client_for(handler, attempts=2).get_order("ord_x")
    assert calls == 2


@pytest.mark.parametrize(
    ("status", "error", "cause"),
    [(401, ProviderRejected, "auth"), (422, ProviderRejected, "validation"), (404, NotFound, None)],
)
async def test_4xx_is_permanent_and_not_retried(
    status: int, error: type[Exception], cause: str | None
) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        body = {"object": "error", "details": [{"message": f"status {status}"}]}
        return httpx.Response(status, json=body)

    with pytest.raises(error) as info:
        await client_for(handler).get_order("ord_x")
    assert calls == 1
    if cause is not None:
        assert getattr(info.value, "cause", None) == cause


async def test_order_listing_follows_the_cursor() -> None:
    base = order_json()
    pages = {
        None: {
            "has_more": True,
            "next_page_url": "https://api.conekta.test/orders?next=ord_b&limit=1",
            "data": [{**base, "id": "ord_a"}],
        },
        "ord_b": {"has_more": False, "next_page_url": None, "data": [{**base, "id": "ord_b"}]},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[request.url.params.get("next")])

    since = datetime(2025, 1, 1, tzinfo=UTC)
    ids = [s.order_id async for s in client_for(handler).iter_orders(updated_at_gte=since)]
    assert ids == ["ord_a", "ord_b"]


async def test_the_breaker_opens_after_repeated_outages_and_fails_fast() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(502)

    client = client_for(handler, attempts=1)
    for _ in range(5):
        with pytest.raises(ProviderUnavailable):
            await client.get_order("ord_x")
    assert client.breaker.state == "open"
    with pytest.raises(ProviderUnavailable, match="circuit"):
        await client.get_order("ord_x")
    assert calls == 5
