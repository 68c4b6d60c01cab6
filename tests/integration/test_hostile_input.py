"""Hostile input never makes a 500: the webhook and the API answer 4xx in one problem+json shape.

Every webhook refusal also leaves its forensic `webhook_attempts` row and its metric; the rows
keep only allow-listed headers, capped, so a flood of headers stores nothing of note.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from guardia.adapters.postgres.tables import webhook_attempts, webhook_events
from guardia.auth.tokens import Role
from guardia.bootstrap import Container
from tests.conftest import Signer, shared_dir
from tests.integration.conftest import auth

pytestmark = pytest.mark.integration

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance"}
HOSTILE_STATUSES = {400, 401, 404, 413, 415, 422}
INT64_OVERFLOW = 2**63


def nested(depth: int) -> str:
    """A JSON array nested `depth` levels deep."""
    return "[" * depth + "]" * depth


def event_with(**changes: Any) -> dict[str, Any]:
    """A real Conekta event from the fixtures with some fields replaced."""
    event: dict[str, Any] = json.loads(
        (shared_dir() / "fixtures" / "providers" / "conekta" / "order_paid_spei.json").read_text()
    )
    return {**event, **changes}


def raw(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))


def with_order_id(order_id: Any) -> str:
    event = event_with()
    event["data"]["object"]["id"] = order_id
    return raw(event)


WEBHOOK_BODIES: dict[str, str] = {
    "nul byte in the id": raw(event_with(id="evt\u0000x")),
    "nul byte deep in the body": raw(event_with(data={"object": {"note": "a\u0000b"}})),
    "lone surrogate": raw(event_with(id="evt_x")).replace("evt_x", "\\ud800"),
    "NaN": raw(event_with(created_at=0)).replace('"created_at":0', '"created_at":NaN'),
    "Infinity": raw(event_with(created_at=0)).replace('"created_at":0', '"created_at":Infinity'),
    "nesting of 1000": raw(event_with(data=0)).replace('"data":0', '"data":' + nested(1000)),
    "nesting of 100000": raw(event_with(data=0)).replace('"data":0', '"data":' + nested(100000)),
    "integer id": raw(event_with(id=12345)),
    "object id": raw(event_with(id={"$ne": None})),
    "20k-character id": raw(event_with(id="e" * 20_000)),
    "20k-character type": raw(event_with(type="order." + "p" * 20_000)),
    "object as order id": with_order_id({"id": "ord_x"}),
    "20k-character order id": with_order_id("o" * 20_000),
    "created_at yesterday": raw(event_with(created_at="yesterday")),
    "created_at 1e20": raw(event_with(created_at=1e20)),
    "created_at beyond int64": raw(event_with(created_at=INT64_OVERFLOW)),
    "livemode with a nul byte": raw(event_with(livemode="tr\u0000ue")),
}


def assert_problem(
    response: httpx.Response, statuses: set[int] = HOSTILE_STATUSES
) -> dict[str, Any]:
    """The response is one of the hostile-input statuses in the one problem+json shape."""
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert PROBLEM_KEYS <= body.keys(), body
    assert body["status"] == response.status_code
    return body


async def attempts(container: Container) -> list[Any]:
    async with container.engine.connect() as conn:
        return list(
            (await conn.execute(select(webhook_attempts).order_by(webhook_attempts.c.id))).all()
        )


async def refusals_counted(client: httpx.AsyncClient, outcome: str) -> float:
    metrics = (await client.get("/metrics")).text
    prefix = f'guardia_webhooks_received_total{{outcome="{outcome}",provider="conekta"}} '
    found = [line for line in metrics.splitlines() if line.startswith(prefix)]
    return float(found[0].removeprefix(prefix)) if found else 0.0


@pytest.mark.parametrize("case", sorted(WEBHOOK_BODIES))
async def test_a_hostile_signed_webhook_is_refused_with_a_forensic_row_and_a_metric(
    client: httpx.AsyncClient, container: Container, signer: Signer, case: str
) -> None:
    body = WEBHOOK_BODIES[case].encode()
    response = await client.post(
        "/webhooks/conekta",
        content=body,
        headers={"DIGEST": signer.digest(body), "Content-Type": "application/json"},
    )
    problem = assert_problem(response)
    assert response.status_code == 400
    rows = await attempts(container)
    assert [(r.outcome, r.http_status) for r in rows] == [(problem["outcome"], 400)]
    assert rows[0].body_size == len(body)
    assert await refusals_counted(client, problem["outcome"]) == 1.0
    async with container.engine.connect() as conn:
        assert (await conn.execute(select(webhook_events))).first() is None


async def test_a_webhook_content_type_merely_containing_json_is_refused_as_415(
    client: httpx.AsyncClient, container: Container, signer: Signer
) -> None:
    body = raw(event_with()).encode()
    response = await client.post(
        "/webhooks/conekta",
        content=body,
        headers={"DIGEST": signer.digest(body), "Content-Type": "text/jsonish"},
    )
    assert_problem(response)
    assert response.status_code == 415
    assert [r.outcome for r in await attempts(container)] == ["bad_media"]
    assert await refusals_counted(client, "bad_media") == 1.0


async def test_a_structured_json_content_type_with_parameters_is_accepted(
    client: httpx.AsyncClient, signer: Signer
) -> None:
    body = raw(event_with()).encode()
    response = await client.post(
        "/webhooks/conekta",
        content=body,
        headers={
            "DIGEST": signer.digest(body),
            "Content-Type": "application/vnd.conekta-v2.2.0+json; charset=utf-8",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "accepted"


async def test_a_flood_of_headers_keeps_only_allow_listed_ones_capped_and_redacted(
    client: httpx.AsyncClient, container: Container
) -> None:
    flood = {f"X-Filler-{i:03d}": "f" * 250 for i in range(296)}
    flood["X-Card"] = "4242 4242 4242 4242"
    flood["X-Webhook-Secret"] = "whsec_" + "s" * 40
    flood["User-Agent"] = "Conekta/2.2 whsec_" + "u" * 40 + " " + "x" * 5000
    flood["Content-Type"] = "application/json"
    response = await client.post("/webhooks/conekta", content=b"{}", headers=flood)
    assert_problem(response)
    assert response.status_code == 401
    [row] = await attempts(container)
    stored = json.dumps(row.headers)
    assert set(row.headers) <= {
        "content-type",
        "content-length",
        "user-agent",
        "digest",
        "host",
        "x-forwarded-for",
        "x-real-ip",
        "x-request-id",
        "x-correlation-id",
        "accept",
        "accept-encoding",
    }
    assert "x-card" not in row.headers
    assert "4242" not in stored
    assert "whsec_" not in stored
    assert len(stored) <= 2048
    assert row.headers["user-agent"].startswith("Conekta/2.2 [SECRET]")


# --- the API ------------------------------------------------------------------------------

OPERATOR = auth(Role.OPERATOR)


def request_of(method: str, path: str, body: str | None = None, **headers: str) -> dict[str, Any]:
    """httpx.request keyword arguments for a raw request as an operator."""
    sent = {**OPERATOR, "Content-Type": "application/json", **headers}
    return {"method": method, "url": path, "content": body, "headers": sent}


API_CASES: dict[str, dict[str, Any]] = {
    "incident id beyond int64": request_of("GET", f"/api/incidents/{INT64_OVERFLOW}"),
    "negative incident id beyond int64": request_of("GET", f"/api/incidents/-{INT64_OVERFLOW}"),
    "incident id beyond int64 in a step": request_of(
        "POST", f"/api/incidents/{INT64_OVERFLOW}/ack", "{}"
    ),
    "recon run beyond int64": request_of(
        "POST", f"/api/recon/runs/{INT64_OVERFLOW}/match", '{"bank_line_id":"x","reason":"abc"}'
    ),
    "manual id beyond int64": request_of(
        "POST", f"/api/recon/manual/{INT64_OVERFLOW}/approve", '{"reason":"abc"}'
    ),
    "report run beyond int64": request_of("GET", f"/api/recon/report?run={INT64_OVERFLOW}"),
    "nul byte in a path": request_of("GET", "/api/orders/ord%00x"),
    "nul byte in a query": request_of("GET", "/api/dead-letters?order_id=ord%00x"),
    "lone surrogate in a path": request_of("GET", "/api/orders/ord%ED%A0%80x"),
    "20k-character order id": request_of("GET", "/api/orders/" + "o" * 20_000),
    "20k-character event id to resend": request_of(
        "POST", "/api/events/" + "e" * 20_000 + "/resend"
    ),
    "nul byte in a body": request_of("POST", "/api/replay", '{"event_ids":["evt\\u0000x"]}'),
    "nul byte in a note": request_of("POST", "/api/incidents/1/notes", '{"text":"a\\u0000b"}'),
    "nul byte in an incident": request_of(
        "POST", "/api/incidents", '{"title":"abc","correlation_ids":["c\\u0000"]}'
    ),
    "lone surrogate in a body": request_of("POST", "/api/replay", '{"order_id":"\\udc00"}'),
    "NaN in a body": request_of("POST", "/api/replay", '{"since":NaN}'),
    "Infinity in a body": request_of("POST", "/api/replay", '{"ids":[Infinity]}'),
    "nesting of 1000": request_of("POST", "/api/replay", '{"event_ids":' + nested(1000) + "}"),
    "nesting of 100000": request_of("POST", "/api/replay", '{"event_ids":' + nested(100_000) + "}"),
    "not JSON": request_of("POST", "/api/replay", '{"event_ids":'),
    "integer ids": request_of("POST", "/api/replay", '{"event_ids":[1,2]}'),
    "object as order id": request_of("POST", "/api/replay", '{"order_id":{"$ne":null}}'),
    "20k-character ids": request_of(
        "POST", "/api/replay", json.dumps({"event_ids": ["e" * 20_000]})
    ),
    "20k-character correlation id": request_of(
        "POST", "/api/incidents", json.dumps({"title": "abc", "correlation_ids": ["c" * 20_000]})
    ),
    "date yesterday": request_of("POST", "/api/replay", '{"since":"yesterday"}'),
    "date 1e20": request_of("POST", "/api/replay", '{"since":1e20}'),
    "step date 1e20": request_of("POST", "/api/incidents/1/ack", '{"at":1e20}'),
    "dead letter id beyond int64": request_of(
        "POST", "/api/dead-letters/retry", json.dumps({"ids": [INT64_OVERFLOW]})
    ),
    "runbook incident beyond int64": request_of(
        "POST", "/api/runbooks/conekta/run", json.dumps({"incident_id": INT64_OVERFLOW})
    ),
    "content type merely containing json": request_of(
        "POST", "/api/replay", '{"event_ids":[]}', **{"Content-Type": "text/jsonish"}
    ),
    "post-mortem due yesterday": request_of(
        "PUT",
        "/api/incidents/1/postmortem",
        '{"action_items":[{"description":"d","owner":"o","due":"yesterday"}]}',
    ),
    "post-mortem action item not an object": request_of(
        "PUT", "/api/incidents/1/postmortem", '{"action_items":[1]}'
    ),
    "alertmanager 20k-character label": request_of(
        "POST",
        "/webhooks/alertmanager",
        json.dumps(
            {"status": "firing", "alerts": [{"status": "firing", "labels": {"a": "l" * 20_000}}]}
        ),
    ),
    "alertmanager nul byte": request_of(
        "POST",
        "/webhooks/alertmanager",
        '{"status":"firing","alerts":[{"status":"firing","labels":{"alertname":"a\\u0000"}}]}',
    ),
}


@pytest.mark.parametrize("case", sorted(API_CASES))
async def test_hostile_api_input_is_a_problem_never_a_server_error(
    client: httpx.AsyncClient, case: str
) -> None:
    assert_problem(await client.request(**API_CASES[case]))


async def test_validation_errors_are_problems_that_name_the_fields(
    client: httpx.AsyncClient,
) -> None:
    response = await client.request(**API_CASES["date yesterday"])
    problem = assert_problem(response)
    assert response.status_code == 422
    assert [e["loc"] for e in problem["errors"]] == [["body", "since"]]


async def test_an_unauthenticated_malformed_body_is_401_not_422(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/replay", content=b'{"since":', headers={"Content-Type": "application/json"}
    )
    assert_problem(response)
    assert response.status_code == 401


async def test_a_wrongly_authorised_malformed_body_is_403_not_422(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/replay",
        content=b'{"since":',
        headers={**auth(Role.AUDITOR), "Content-Type": "application/json"},
    )
    assert_problem(response, {403})


async def test_an_oversize_body_on_an_api_route_is_413(
    client: httpx.AsyncClient, container: Container
) -> None:
    limit = container.settings.api_max_body_bytes
    body = json.dumps({"title": "abc", "correlation_ids": ["c" * 100] * (limit // 100)})
    response = await client.request(**request_of("POST", "/api/incidents", body))
    assert_problem(response)
    assert response.status_code == 413


async def test_an_oversize_body_streamed_without_a_length_is_413(
    client: httpx.AsyncClient, container: Container
) -> None:
    limit = container.settings.api_max_body_bytes

    async def chunks() -> Any:
        yield b'{"title":"abc","correlation_ids":["'
        for _ in range(limit // 1000 + 1):
            yield b"c" * 1000
        yield b'"]}'

    response = await client.post(
        "/api/incidents",
        content=chunks(),
        headers={**OPERATOR, "Content-Type": "application/json"},
    )
    assert_problem(response)
    assert response.status_code == 413
