"""One contract for the ledger port, run against the in-memory fake and against the Odoo
simulator through the real client (JSON-RPC on 16 and 18, JSON-2 on 19)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import date
from decimal import Decimal

import pytest
import uvicorn

from guardia.adapters.odoo.client import OdooClient
from guardia.core.errors import ProviderRejected
from guardia.ledger.fakes import InMemoryLedger
from guardia.ledger.model import REQUIRED_RIGHTS, JournalEntry, two_line_entry
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


@pytest.fixture
def hold_together(
    request: pytest.FixtureRequest, simulators: dict[str, ServedSimulator]
) -> Callable[[int], None]:
    """Make the next `n` ledger requests overlap: the simulator holds each one's transaction
    open for a second (the in-memory fake has no transactions to hold)."""

    def hold(n: int) -> None:
        param = str(request.node.callspec.params["ledger"])
        if param.startswith("odoo-"):
            simulators[param.removeprefix("odoo-")].sim.add_fault(
                {"kind": "slow", "count": n, "seconds": 1}
            )

    return hold


@pytest.fixture
def take_group(
    request: pytest.FixtureRequest, simulators: dict[str, ServedSimulator]
) -> Callable[[LedgerGateway, str], None]:
    """Take a group from the bot: from the fake's set, or by the simulator's fault knob."""

    def take(ledger: LedgerGateway, group: str) -> None:
        param = str(request.node.callspec.params["ledger"])
        if isinstance(ledger, InMemoryLedger):
            ledger.groups.discard(group)
        else:
            simulators[param.removeprefix("odoo-")].sim.add_fault(
                {"kind": "permission_removed", "code": group}
            )

    return take


def entry(
    ref: str, amount: str = "1160.00", credit_account: int = 36, on: date = date(2026, 11, 27)
) -> JournalEntry:
    return two_line_entry(
        ref=ref,
        journal_id=7,
        entry_date=on,
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


async def test_entries_created_at_the_same_moment_as_a_periods_first_all_post_with_distinct_names(
    ledger: LedgerGateway, hold_together: Callable[[int], None]
) -> None:
    await ledger.authenticate()  # log in first: only the creates are held together
    hold_together(3)
    new_year = date(2027, 1, 1)
    ids = await asyncio.gather(
        *(ledger.create_move(entry(f"ord_new_year_{i}", on=new_year)) for i in range(3))
    )
    posted = [await ledger.post_move(move_id) for move_id in ids]
    assert [m.state for m in posted] == ["posted"] * 3
    assert len({m.name for m in posted}) == 3


async def test_a_draft_left_with_a_colliding_number_is_renumbered_when_posted(
    simulators: dict[str, ServedSimulator],
) -> None:
    """Drafts an Odoo 16 numbered at create, at the same moment, all hold the period's first
    number; posting one of them later must not fail forever on the duplicate."""
    if "16.0" not in simulators:
        simulators["16.0"] = ServedSimulator("16.0").__enter__()
    served = simulators["16.0"]
    served.sim.reset_faults()
    client = OdooClient(
        base_url=f"http://127.0.0.1:{served.port}",
        database="mxtest",
        login="guardia-bot",
        secret="odoo-test-api-key",
    )
    try:
        await client.authenticate()
        served.sim.add_fault({"kind": "slow", "count": 2, "seconds": 1})
        lines = [
            [0, 0, {"account_id": 51, "balance": 5.0}],
            [0, 0, {"account_id": 36, "balance": -5.0}],
        ]
        vals = {"move_type": "entry", "journal_id": 8, "date": "2028-01-03", "line_ids": lines}
        first, second = await asyncio.gather(
            client.create("account.move", {**vals, "ref": "ord_stuck_a"}),
            client.create("account.move", {**vals, "ref": "ord_stuck_b"}),
        )
        stuck = [await client.read_move(first), await client.read_move(second)]
        assert {m.name for m in stuck if m is not None} == {"BNK1/2028/00001"}
        one = await client.post_move(first)
        other = await client.post_move(second)
        assert (one.state, other.state) == ("posted", "posted")
        assert {one.name, other.name} == {"BNK1/2028/00001", "BNK1/2028/00002"}
    finally:
        await client.aclose()


async def test_the_bot_holds_every_right_guardia_uses_and_the_probe_writes_nothing(
    ledger: LedgerGateway,
) -> None:
    assert await ledger.missing_rights(REQUIRED_RIGHTS) == []


async def test_a_bot_without_contact_creation_is_told_before_any_partner_create_fails(
    ledger: LedgerGateway, take_group: Callable[[LedgerGateway, str], None]
) -> None:
    take_group(ledger, "base.group_partner_manager")
    missing = await ledger.missing_rights(REQUIRED_RIGHTS)
    assert [(r.model, r.operation) for r in missing] == [("res.partner", "create")]
    with pytest.raises(ProviderRejected) as info:
        await ledger.ensure_partner(f"conekta:cus_new_{id(ledger)}", "Ana López", None)
    assert info.value.cause == "permission"
