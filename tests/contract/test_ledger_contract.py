"""One contract for the ledger port, run against the in-memory fake and against the Odoo
simulator through the real client (JSON-RPC on 16 and 18, JSON-2 on 19)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from datetime import date
from decimal import Decimal

import pytest
import uvicorn

from guardia.adapters.odoo.client import OdooClient
from guardia.core.errors import ProviderRejected
from guardia.ledger.fakes import InMemoryLedger
from guardia.ledger.model import JournalEntry, two_line_entry
from guardia.ledger.ports import LedgerGateway
from guardia.sandbox.odoo import OdooSimConfig, OdooSimulator, create_app
from tests.e2e.conftest import free_port, poll


class ServedSimulator:
    """An Odoo simulator served by uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, version: str) -> None:
        self.sim = OdooSimulator(OdooSimConfig(version=version))
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(self.sim), host="127.0.0.1", port=self.port, log_config=None)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServedSimulator:
        self.thread.start()
        poll(lambda: True if self.server.started else None, timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def simulators() -> Iterator[dict[str, ServedSimulator]]:
    """Simulators by version, started on first use and stopped with the module."""
    started: dict[str, ServedSimulator] = {}
    yield started
    for served in started.values():
        served.__exit__(None, None, None)


@pytest.fixture(params=["fake", "odoo-16.0", "odoo-18.0", "odoo-19.0"])
async def ledger(
    request: pytest.FixtureRequest, simulators: dict[str, ServedSimulator]
) -> AsyncIterator[LedgerGateway]:
    if request.param == "fake":
        yield InMemoryLedger()
        return
    version = request.param.removeprefix("odoo-")
    if version not in simulators:
        simulators[version] = ServedSimulator(version).__enter__()
    served = simulators[version]
    served.sim.reset_faults()
    client = OdooClient(
        base_url=f"http://127.0.0.1:{served.port}",
        database="mxtest",
        login="guardia-bot",
        secret="odoo-test-api-key",
    )
    try:
        yield client
    finally:
        await client.aclose()


def entry(ref: str, amount: str = "1160.00", credit_account: int = 36) -> JournalEntry:
    return two_line_entry(
        ref=ref,
        journal_id=7,
        entry_date=date(2026, 11, 27),
        amount=Decimal(amount),
        debit_account_id=50,
        credit_account_id=credit_account,
        label="Pago Conekta",
        partner_id=None,
        analytic_account_id=1,
    )


async def test_the_catalogue_answers_the_mexican_chart(ledger: LedgerGateway) -> None:
    income = await ledger.find_account("401.01.01")
    assert income is not None
    assert (income.account_id, income.account_type) == (36, "income")
    assert await ledger.find_account("405.01.01") is None
    journal = await ledger.find_journal("CSH1")
    assert journal is not None
    assert (journal.journal_type, journal.default_account_id) == ("cash", 50)
    analytic = await ledger.get_analytic(1)
    assert analytic is not None
    assert analytic.active
    assert await ledger.get_analytic(999999) is None
    assert await ledger.has_group("account.group_account_invoice") is True
    assert await ledger.authenticate() == 2


async def test_create_then_post_names_the_move_and_posting_twice_is_harmless(
    ledger: LedgerGateway,
) -> None:
    ref = f"ord_contract_{id(ledger)}"
    move_id = await ledger.create_move(entry(ref))
    posted = await ledger.post_move(move_id)
    assert posted.state == "posted"
    assert posted.name.startswith("CSH1/")
    again = await ledger.post_move(move_id)
    assert (again.move_id, again.name, again.state) == (move_id, posted.name, "posted")


async def test_duplicate_refs_are_accepted_so_the_caller_must_search_first(
    ledger: LedgerGateway,
) -> None:
    ref = f"ord_dup_{id(ledger)}"
    first = await ledger.create_move(entry(ref))
    second = await ledger.create_move(entry(ref))
    found = await ledger.find_moves(ref, 7)
    assert [m.move_id for m in found] == sorted([first, second], reverse=True)


async def test_an_unknown_account_is_rejected_as_missing_account(ledger: LedgerGateway) -> None:
    with pytest.raises(ProviderRejected) as info:
        await ledger.create_move(entry(f"ord_bad_{id(ledger)}", credit_account=999999))
    assert info.value.cause == "missing_account"


async def test_a_reversal_swaps_debit_and_credit_and_is_found_again(ledger: LedgerGateway) -> None:
    move_id = await ledger.create_move(entry(f"ord_rev_{id(ledger)}"))
    await ledger.post_move(move_id)
    reversal = await ledger.reverse_move(move_id, date(2026, 11, 28), "refund")
    assert reversal.state == "posted"
    found = await ledger.find_reversal(move_id)
    assert found is not None
    assert found.move_id == reversal.move_id


async def test_partners_are_found_by_their_stable_ref(ledger: LedgerGateway) -> None:
    first = await ledger.ensure_partner("conekta:cus_contract", "Ana López", "ana@example.mx")
    second = await ledger.ensure_partner("conekta:cus_contract", "Ana López", None)
    assert first == second
