"""The failed-webhook-rate alert, evaluated from stored attempts, and its Prometheus rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from guardia.alerts.rules import evaluate_all, prometheus_rules
from guardia.auth.tokens import Role
from guardia.bootstrap import Container
from guardia.ledger.fakes import InMemoryLedger
from tests.conftest import Signer
from tests.integration.conftest import auth
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

    async def webhook_rule(moment: datetime) -> list[tuple[str, str, float]]:
        return [
            (t.rule, t.change, round(t.value, 2))
            for t in await evaluate_all(container.engine, container.settings, moment)
            if t.rule == "WebhookFailureRateHigh"
        ]

    assert await webhook_rule(now) == [("WebhookFailureRateHigh", "fired", 0.5)]
    assert [c for _, c, _ in await webhook_rule(now)] == ["still_firing"]
    later = now + timedelta(seconds=container.settings.alert_webhook_window_seconds + 1)
    assert [c for _, c, _ in await webhook_rule(later)] == ["clearing"]
    cleared = later + timedelta(seconds=container.settings.alert_clear_seconds)
    assert [c for _, c, _ in await webhook_rule(cleared)] == ["resolved"]


async def test_below_the_threshold_nothing_fires(
    client: httpx.AsyncClient, container: Container, signer: Signer
) -> None:
    event = fixture_event("order_paid_spei.json")
    for _ in range(30):
        await post_event(client, signer, event)
    await post_event(client, signer, event, digest="")
    fired = await evaluate_all(container.engine, container.settings, datetime.now(UTC))
    assert [t for t in fired if t.rule == "WebhookFailureRateHigh"] == []


def test_prometheus_rule_file_carries_threshold_and_runbook_url(container: Container) -> None:
    text = prometheus_rules(container.settings)
    assert "alert: WebhookFailureRateHigh" in text
    assert "> 0.05" in text
    assert "runbook_url:" in text
    assert "#1-webhook-de-conekta-no-llega" in text


async def test_dead_letter_growth_and_a_failing_odoo_check_fire_their_alerts(
    client: httpx.AsyncClient, container: Container
) -> None:
    async with container.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO dead_letters (task_name, task_kwargs, queue, cause, error_type, "
                "error_message, attempts) VALUES ('guardia:post_entry', '{}', 'ledger', "
                "'missing_account', 'ProviderRejected', 'account 401.01.01 not found', 1)"
            )
        )
    failing = await client.post("/api/checks/odoo", headers=auth(Role.OPERATOR))
    assert failing.status_code == 200
    await evaluate_all(container.engine, container.settings, datetime.now(UTC))
    alerts = (await client.get("/api/alerts", headers=auth(Role.AUDITOR))).json()["alerts"]
    runbook2 = [a for a in alerts if a["runbook_url"].endswith("#2-asiento-contable-falla-en-odoo")]
    assert {a["rule"] for a in runbook2 if a["status"] == "firing"} == {"DeadLettersGrowing"}


async def test_a_failing_odoo_check_fires_until_it_passes_again(
    client: httpx.AsyncClient, container: Container, ledger: InMemoryLedger
) -> None:
    ledger.groups.clear()
    failing = await client.post("/api/checks/odoo", headers=auth(Role.OPERATOR))
    assert failing.status_code == 409
    now = datetime.now(UTC)
    fired = await evaluate_all(container.engine, container.settings, now)
    assert [t.rule for t in fired if t.change == "fired" and "Odoo" in t.rule] == [
        "OdooConfigCheckFailing"
    ]
    # Billing alone is not enough: Guardia also creates partners (Contact Creation).
    ledger.groups.update({"account.group_account_invoice", "base.group_partner_manager"})
    assert (await client.post("/api/checks/odoo", headers=auth(Role.OPERATOR))).status_code == 200
    clearing = await evaluate_all(container.engine, container.settings, now)
    assert [t.change for t in clearing if t.rule == "OdooConfigCheckFailing"] == ["clearing"]
    later = now + timedelta(seconds=container.settings.alert_clear_seconds)
    cleared = await evaluate_all(container.engine, container.settings, later)
    assert [t.rule for t in cleared if t.change == "resolved"] == ["OdooConfigCheckFailing"]
