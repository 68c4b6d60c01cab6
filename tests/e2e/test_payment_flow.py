"""The real app, worker and Conekta simulator on 127.0.0.1, end to end."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Running, poll

pytestmark = pytest.mark.e2e


def create_order(run: Running, method: str, amount: int = 150000) -> dict[str, Any]:
    with run.conekta() as conekta:
        response = conekta.post(
            "/orders",
            json={
                "currency": "MXN",
                "customer_info": {
                    "name": "Ana López",
                    "email": "ana@example.mx",
                    "phone": "+525512345678",
                },
                "line_items": [{"name": "Mensualidad 3/12", "unit_price": amount, "quantity": 1}],
                "charges": [{"payment_method": {"type": method}}],
            },
        )
    assert response.status_code == 200, response.text
    order: dict[str, Any] = response.json()
    return order


def status_in_guardia(run: Running, order_id: str) -> str | None:
    with run.pwa() as pwa:
        response = pwa.get(f"/api/orders/{order_id}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


def test_a_simulated_spei_payment_shows_paid_through_the_api(guardia_up: Running) -> None:
    order = create_order(guardia_up, "spei")
    order_id = order["id"]
    poll(lambda: status_in_guardia(guardia_up, order_id) == "pending_payment" or None)
    with guardia_up.conekta() as sim:
        assert sim.post(f"/_sandbox/orders/{order_id}/pay").status_code == 200
    poll(lambda: status_in_guardia(guardia_up, order_id) == "paid" or None)
    with guardia_up.pwa() as pwa:
        body = pwa.get(f"/api/orders/{order_id}").json()
    assert body["amount"] == {"cents": 150000, "currency": "MXN"}
    assert body["payment_method"]["type"] == "spei"
    assert body["payment_method"]["clabe"].startswith("646180")
    assert body["paid_at"] is not None
    assert body["last_event"]["type"] in ("order.paid", "charge.paid", "order.updated")


def test_a_dropped_webhook_is_healed_by_the_sweeper(guardia_up: Running) -> None:
    order = create_order(guardia_up, "oxxo", amount=25000)
    order_id = order["id"]
    poll(lambda: status_in_guardia(guardia_up, order_id) == "pending_payment" or None)
    with guardia_up.conekta() as sim:
        fault = sim.post("/_sandbox/faults", json={"kind": "drop", "order_id": order_id})
        assert fault.status_code in (200, 201), fault.text
        assert sim.post(f"/_sandbox/orders/{order_id}/pay").status_code == 200
    poll(lambda: status_in_guardia(guardia_up, order_id) == "paid" or None, timeout=45)
    with guardia_up.guardia() as api:
        attempts = api.get("/api/webhook-attempts", params={"order_id": order_id}).json()
        order_view = api.get(f"/api/orders/{order_id}").json()
    delivered = {a["event_id"] for a in attempts["attempts"]}
    with guardia_up.conekta() as sim:
        deliveries = sim.get("/_sandbox/deliveries").json()
    paid_events = {
        d["event_id"]
        for d in deliveries
        if d.get("order_id") == order_id and d["type"] == "order.paid"
    }
    assert not paid_events & delivered
    assert [t["source"] for t in order_view["transitions"]][-1] == "sweep"


def test_a_forged_webhook_is_rejected_and_changes_nothing(guardia_up: Running) -> None:
    order = create_order(guardia_up, "spei")
    order_id = order["id"]
    poll(lambda: status_in_guardia(guardia_up, order_id) == "pending_payment" or None)
    forged = (
        '{"id":"aaaaaaaaaaaaaaaaaaaaaaaa","type":"order.paid","livemode":false,'
        '"data":{"object":{"id":"' + order_id + '","object":"order","amount":150000,'
        '"currency":"MXN","payment_status":"paid","updated_at":1999999999}}}'
    ).encode()
    with guardia_up.guardia() as api:
        response = api.post(
            "/webhooks/conekta",
            content=forged,
            headers={"DIGEST": "Zm9yZ2Vk", "Content-Type": "application/json"},
        )
        assert response.status_code == 401
        rejected = api.get("/api/webhook-attempts", params={"outcome": "invalid_signature"}).json()
    assert len(rejected["attempts"]) == 1
    assert status_in_guardia(guardia_up, order_id) == "pending_payment"


def test_resend_through_the_api_delivers_a_dropped_event(guardia_up: Running) -> None:
    order = create_order(guardia_up, "spei", amount=99900)
    order_id = order["id"]
    poll(lambda: status_in_guardia(guardia_up, order_id) == "pending_payment" or None)
    with guardia_up.conekta() as sim:
        sim.post("/_sandbox/faults", json={"kind": "drop", "order_id": order_id})
        sim.post(f"/_sandbox/orders/{order_id}/pay")
        events = sim.get("/events", params={"limit": 50}).json()["data"]
    paid = next(
        e for e in events if e["type"] == "order.paid" and e["data"]["object"]["id"] == order_id
    )
    with guardia_up.guardia() as api:
        resent = api.post(f"/api/events/{paid['id']}/resend", json={})
        assert resent.status_code == 200, resent.text
        assert resent.json()["last_http_response_status"] == 200

        def delivered() -> bool | None:
            rows = api.get("/api/webhook-attempts", params={"event_id": paid["id"]}).json()
            return True if rows["attempts"] else None

        poll(delivered)
    poll(lambda: status_in_guardia(guardia_up, order_id) == "paid" or None)
