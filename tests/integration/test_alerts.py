"""The failed-webhook-rate alert, evaluated from stored attempts, and its Prometheus rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from guardia.alerts.rules import evaluate_all, prometheus_rules
from guardia.bootstrap import Container
from tests.conftest import Signer
from tests.integration.test_webhook_ingest import fixture_event, post_event

pytestmark = pytest.mark.integration


async def test_failed_webhook_rate_fires_once_then_resolves(
    client: httpx.AsyncClient, container: Container, signer: Signer
) -> None:
    event = fixture_event("order_paid_spei.json")
    for _ in range(3):
        await post_event(client, signer, event)
    for _ in range(3):
        await post_event(client, signer, event, digest="bm90IGEgc2lnbmF0dXJl")
    now = datetime.now(UTC)
    fired = await evaluate_all(container.engine, container.settings, now)
    assert [(t.rule, t.change, round(t.value, 2)) for t in fired] == [
        ("WebhookFailureRateHigh", "fired", 0.5)
    ]
    again = await evaluate_all(container.engine, container.settings, now)
    assert [t.change for t in again] == ["still_firing"]
    later = now + timedelta(seconds=container.settings.alert_webhook_window_seconds + 1)
    cleared = await evaluate_all(container.engine, container.settings, later)
    assert [t.change for t in cleared] == ["resolved"]


async def test_below_the_threshold_nothing_fires(
    client: httpx.AsyncClient, container: Container, signer: Signer
) -> None:
    event = fixture_event("order_paid_spei.json")
    for _ in range(30):
        await post_event(client, signer, event)
    await post_event(client, signer, event, digest="")
    fired = await evaluate_all(container.engine, container.settings, datetime.now(UTC))
    assert fired == []


def test_prometheus_rule_file_carries_threshold_and_runbook_url(container: Container) -> None:
    text = prometheus_rules(container.settings)
    assert "alert: WebhookFailureRateHigh" in text
    assert "> 0.05" in text
    assert "runbook_url:" in text
    assert "#1-webhook-de-conekta-no-llega" in text
