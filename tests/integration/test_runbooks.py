"""Runbooks as code against the fakes: healthy and faulty checks, a dry run that changes
nothing, --apply that changes exactly what the dry run showed, verified recovery."""

from __future__ import annotations

import httpx
import pytest

from guardia.auth.tokens import Role
from guardia.bootstrap import Container
from guardia.ledger.fakes import InMemoryLedger
from guardia.payments.fakes import InMemoryOrders
from guardia.payments.model import snapshot_from_order
from guardia.runbooks import runner
from guardia.runbooks.docs import render
from tests.conftest import Signer
from tests.integration.conftest import auth
from tests.integration.test_recovery import drain_all, status_of
from tests.integration.test_webhook_ingest import fixture_event, post_event

pytestmark = pytest.mark.integration

ORDER = "ord_2yQ8nCk3vJ5dWx9Ra"


def by_name(report: runner.RunReport) -> dict[str, str]:
    return {c.name: c.status.value for c in report.checks}


async def test_runbook_1_dry_run_changes_nothing_and_apply_heals_and_verifies(
    client: httpx.AsyncClient, container: Container, signer: Signer, orders: InMemoryOrders
) -> None:
    await post_event(client, signer, fixture_event("order_pending_payment_spei.json"))
    await drain_all(container)
    orders.put(snapshot_from_order(fixture_event("order_paid_spei.json")["data"]["object"]))

    dry = await runner.run(container, "conekta-webhook", order_id=ORDER, apply=False, actor="t")
    assert by_name(dry)["order_paid_here_and_in_conekta"] == "fail"
    assert by_name(dry)["conekta_webhook_configuration"] == "fail"  # fake points elsewhere
    (resend, pull, _replay) = dry.actions
    assert resend.changes == []  # the fake Conekta lists no event we lack
    assert pull.applied is False
    assert "status: pending_payment → paid" in pull.changes
    assert await status_of(container, ORDER) == "pending_payment"
    assert dry.verified is False

    applied = await runner.run(container, "conekta-webhook", order_id=ORDER, apply=True, actor="t")
    assert applied.actions[1].changes == pull.changes
    assert await status_of(container, ORDER) == "paid"
    assert applied.verified is True
    assert dry.incident_id is None  # a dry run reports; the failing apply opens the incident
    assert applied.incident_id is not None
    assert applied.next_step.startswith("verification passed")
    shown = (
        await client.get(f"/api/incidents/{applied.incident_id}", headers=auth(Role.AUDITOR))
    ).json()
    assert shown["status"] == "resolved"
    assert shown["resolved_verified"] is True
    notes = [e["summary"] for e in shown["timeline"] if e["kind"] == "note"]
    assert not any(n.startswith("action pull_order (dry run)") for n in notes)
    assert any(n.startswith("action pull_order (applied)") for n in notes)


async def test_runbook_2_names_the_fault_and_retry_drains_the_queue_once_fixed(
    client: httpx.AsyncClient,
    container: Container,
    signer: Signer,
    orders: InMemoryOrders,
    ledger: InMemoryLedger,
) -> None:
    healthy = await runner.run(container, "odoo-posting", order_id=None, apply=False, actor="t")
    assert by_name(healthy) == {"odoo_configuration": "pass", "failed_postings": "pass"}

    removed = ledger.accounts.pop(36)
    event = fixture_event("order_paid_spei.json")
    orders.put(snapshot_from_order(event["data"]["object"]))
    await post_event(client, signer, event)
    await drain_all(container)
    faulty = await runner.run(container, "odoo-posting", order_id=None, apply=False, actor="t")
    assert by_name(faulty) == {"odoo_configuration": "fail", "failed_postings": "fail"}
    assert "credit_account" in faulty.checks[0].summary
    create, retry = faulty.actions
    # Creating accounts is off by default: the action guides the accountant instead.
    assert create.changes == []
    assert "401.01.01" in create.evidence["guide"][0]
    # Retrying into a broken configuration would only dead-letter the posting again.
    assert retry.changes == []
    assert retry.evidence["waiting_for"] == "odoo_configuration"
    assert ledger.posted_moves(ORDER) == []

    ledger.accounts[36] = removed
    fixed = await runner.run(container, "odoo-posting", order_id=None, apply=True, actor="t")
    assert len(fixed.actions[1].changes) == 1
    await drain_all(container)
    assert len(ledger.posted_moves(ORDER)) == 1
    after = await runner.run(container, "odoo-posting", order_id=None, apply=True, actor="t")
    assert by_name(after)["failed_postings"] == "pass"
    assert after.verified is True
    assert fixed.incident_id == after.incident_id


async def test_runbooks_are_listed_and_documented_from_the_code(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/api/runbooks", headers=auth(Role.AUDITOR))).json()["runbooks"]
    assert {r["name"] for r in listed} == {
        "conekta-webhook",
        "odoo-posting",
        "recon-orphan",
        "backups",
    }
    document = render()
    for r in listed:
        assert f"runbook `{r['name']}`" in document
        for check in r["checks"]:
            assert f"`{check}`" in document
    refused = await client.post(
        "/api/runbooks/odoo-posting/run", json={"apply": True}, headers=auth(Role.AUDITOR)
    )
    assert refused.status_code == 403


async def test_guided_account_creation_creates_exactly_what_the_dry_run_showed_when_allowed(
    client: httpx.AsyncClient,
    container: Container,
    signer: Signer,
    orders: InMemoryOrders,
    ledger: InMemoryLedger,
) -> None:
    container.settings.runbook_create_accounts = True
    ledger.groups.add("account.group_account_manager")
    ledger.accounts.pop(36)
    event = fixture_event("order_paid_spei.json")
    orders.put(snapshot_from_order(event["data"]["object"]))
    await post_event(client, signer, event)
    await drain_all(container)

    dry = await runner.run(container, "odoo-posting", apply=False, actor="t")
    assert dry.actions[0].changes == [
        "create account 401.01.01 'Ingresos por ventas (Conekta)' of type income"
    ]
    assert await ledger.find_account("401.01.01") is None

    applied = await runner.run(container, "odoo-posting", apply=True, actor="t")
    assert applied.actions[0].changes == dry.actions[0].changes
    created = await ledger.find_account("401.01.01")
    assert created is not None
    assert created.account_type == "income"
    await drain_all(container)
    assert len(ledger.posted_moves(ORDER)) == 1
    again = await runner.run(container, "odoo-posting", apply=True, actor="t")
    assert again.actions[0].changes == []
    assert again.verified is True


async def test_resend_asks_conekta_for_the_events_we_never_stored(
    container: Container, orders: InMemoryOrders
) -> None:
    from guardia.payments.ports import EventSummary

    event = fixture_event("order_paid_spei.json")
    orders.put(snapshot_from_order(event["data"]["object"]))
    orders.events.append(EventSummary(event["id"], "order.paid", None, ORDER, "pending", ()))
    dry = await runner.run(container, "conekta-webhook", order_id=ORDER, apply=False, actor="t")
    assert by_name(dry)["conekta_delivery_results"] == "fail"
    assert dry.actions[0].changes == [f"resend {event['id']} (order.paid) to wh_1"]
    assert orders.resent == []
    applied = await runner.run(container, "conekta-webhook", order_id=ORDER, apply=True, actor="t")
    assert applied.actions[0].changes == dry.actions[0].changes
    assert orders.resent == [(event["id"], ("wh_1",))]


async def test_the_sweeper_records_a_lost_webhook_and_the_verifier_resolves_it(
    client: httpx.AsyncClient, container: Container, orders: InMemoryOrders
) -> None:
    from guardia.runbooks import automation

    container.settings.sweep_grace_seconds = 0
    container.settings.sweep_lookback_hours = 24 * 3650  # the fixture order is years old
    orders.put(snapshot_from_order(fixture_event("order_paid_spei.json")["data"]["object"]))
    result = await automation.sweep(container)
    assert result.healed == [ORDER]
    found = (await client.get("/api/incidents?runbook=1", headers=auth(Role.AUDITOR))).json()[
        "incidents"
    ]
    (incident,) = [i for i in found if i["title"].startswith("Webhook de Conekta no llega")]
    assert incident["status"] == "mitigated"
    assert incident["external_ids"]["conekta_order"] == [ORDER]
    assert await runner.verify_open_incidents(container) == [incident["id"]]
    shown = (
        await client.get(f"/api/incidents/{incident['id']}", headers=auth(Role.AUDITOR))
    ).json()
    assert shown["status"] == "resolved"
    assert shown["resolved_verified"] is True
