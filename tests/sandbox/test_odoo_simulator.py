"""The Odoo simulator over real HTTP on 127.0.0.1: JSON-RPC, JSON-2, XML-RPC, faults, CLI.

Expected shapes and texts come from shared/docs/odoo.md (§3, §4.2, §10), not from the code.
"""

from __future__ import annotations

import asyncio
import copy
import json
import socket
import time
import xmlrpc.client
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner

from guardia.core.clock import FakeClock
from guardia.sandbox.odoo import OdooSimConfig, OdooSimulator, create_app
from guardia.sandbox.odoo_cli import app as cli_app

DB = "mxtest"
LOGIN = "guardia-bot"
PASSWORD = "bot-password"
KEY = "odoo-test-api-key"
UID = 2
INVOICE_GROUP = "account.group_account_invoice"
T = TypeVar("T")

# odoo.md §5.1, the payload that works on 16 (valid 16-18; JSON-2 on 19).
PAYLOAD: dict[str, Any] = {
    "move_type": "entry",
    "journal_id": 3,
    "date": "2026-11-27",
    "ref": "conekta:ord_2tUigJ8DgBhbp6w5D",
    "line_ids": [
        [
            0,
            0,
            {
                "account_id": 50,
                "partner_id": 7,
                "name": "Pago Conekta",
                "debit": 1160.0,
                "credit": 0.0,
                "analytic_distribution": {"1": 100},
            },
        ],
        [
            0,
            0,
            {
                "account_id": 36,
                "partner_id": 7,
                "name": "Pago Conekta",
                "debit": 0.0,
                "credit": 1160.0,
                "analytic_distribution": {"1": 100},
            },
        ],
    ],
}
ACCESS_TEXT = (
    "You are not allowed to create 'Journal Entry' (account.move) records.\n\n"
    "This operation is allowed for the following groups:\n\t- Invoicing/Billing\n\n"
    "Contact your administrator to request access if necessary."
)
FK_TEXT = (
    "The operation cannot be completed: another model requires the record being deleted. "
    "If possible, archive it instead.\n\nModel: Journal Item (account.move.line)\n"
    "Constraint: account_move_line_account_id_fkey"
)
ERROR_KEYS = {"name", "debug", "message", "arguments", "context"}
MOVE_FIELDS = [
    "name",
    "state",
    "ref",
    "move_type",
    "journal_id",
    "date",
    "amount_total",
    "partner_id",
    "line_ids",
]


def payload(ref: str = PAYLOAD["ref"], **changes: Any) -> dict[str, Any]:
    """A deep copy of the §5.1 payload with header changes."""
    body = copy.deepcopy(PAYLOAD)
    body["ref"] = ref
    body.update(changes)
    return body


def line(account: int | None, debit: float = 0.0, credit: float = 0.0, **extra: Any) -> list[Any]:
    vals: dict[str, Any] = {"name": "Pago Conekta", "debit": debit, "credit": credit, **extra}
    if account is not None:
        vals["account_id"] = account
    return [0, 0, vals]


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


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Run an ASGI app with uvicorn on a free 127.0.0.1 port in this event loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, lifespan="on", log_level="warning", ws="none", http="h11", server_header=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started or task.done(), "uvicorn to start")
        if task.done():
            task.result()
        yield f"http://127.0.0.1:{port}"
    finally:
        # The test's client is closed by now: skip uvicorn's 0.1 s polls for open connections.
        server.should_exit = server.force_exit = True
        await task
        sock.close()


class RpcError(AssertionError):
    """A JSON-RPC error envelope where a result was expected."""


@dataclass
class Odoo:
    """A running simulator and a plain httpx client speaking its protocols."""

    sim: OdooSimulator
    base: str
    http: httpx.AsyncClient
    counter: list[int] = field(default_factory=lambda: [0])

    @property
    def major(self) -> int:
        return self.sim.major

    async def rpc(self, service: str, method: str, *args: Any) -> dict[str, Any]:
        """POST /jsonrpc and return the whole envelope."""
        self.counter[0] += 1
        body = {
            "jsonrpc": "2.0",
            "method": "call",
            "params": {"service": service, "method": method, "args": list(args)},
            "id": self.counter[0],
        }
        response = await self.http.post("/jsonrpc", json=body)
        assert response.status_code == 200, response.text
        envelope: dict[str, Any] = response.json()
        assert envelope["id"] == self.counter[0]
        assert envelope["jsonrpc"] == "2.0"
        return envelope

    async def call(
        self,
        model: str,
        method: str,
        args: list[Any],
        kwargs: dict[str, Any] | None = None,
        *,
        password: str = PASSWORD,
        db: str = DB,
    ) -> dict[str, Any]:
        return await self.rpc(
            "object", "execute_kw", db, UID, password, model, method, args, kwargs or {}
        )

    async def ok(
        self, model: str, method: str, args: list[Any], kwargs: dict[str, Any] | None = None
    ) -> Any:
        envelope = await self.call(model, method, args, kwargs)
        if "error" in envelope:
            raise RpcError(envelope["error"]["data"]["message"])
        return envelope.get("result")

    async def err(
        self, model: str, method: str, args: list[Any], kwargs: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        envelope = await self.call(model, method, args, kwargs)
        assert "result" not in envelope, envelope
        return error_data(envelope)

    async def json2(
        self, model: str, method: str, body: Any = None, *, key: str | None = KEY
    ) -> httpx.Response:
        headers = {"Authorization": f"bearer {key}"} if key is not None else {}
        return await self.http.post(f"/json/2/{model}/{method}", json=body or {}, headers=headers)

    async def fault(self, **body: Any) -> dict[str, Any]:
        response = await self.http.post("/_sandbox/faults", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def create_move(self, body: dict[str, Any] | None = None) -> int:
        move_id = await self.ok("account.move", "create", [body or payload()])
        assert isinstance(move_id, int)
        return move_id

    async def read_move(self, move_id: int) -> dict[str, Any]:
        (row,) = await self.ok("account.move", "read", [[move_id]], {"fields": MOVE_FIELDS})
        assert isinstance(row, dict)
        return row

    async def partner(self) -> int:
        created = await self.ok(
            "res.partner", "create", [{"name": "Cliente Demo", "vat": "XAXX010101000"}]
        )
        assert created == 7
        return 7


def error_data(envelope: dict[str, Any]) -> dict[str, Any]:
    """Check the §3.2 error envelope and return its `data`."""
    error = envelope["error"]
    assert error["message"] == "Odoo Server Error"
    assert error["code"] in (0, 200)
    data: dict[str, Any] = error["data"]
    assert set(data) == ERROR_KEYS
    assert data["debug"].startswith("Traceback (most recent call last):\n")
    assert data["debug"].endswith(f"{data['name'].removeprefix('builtins.')}: {data['message']}\n")
    assert data["arguments"] == [data["message"]] or data["name"] == "builtins.KeyError"
    assert data["context"] == {}
    return data


def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 27, 18, 0, tzinfo=UTC))


@asynccontextmanager
async def running(
    version: str, *, timeout: float = 5.0, first_move_id: int = 1
) -> AsyncIterator[Odoo]:
    sim = OdooSimulator(OdooSimConfig(version=version, first_move_id=first_move_id), clock=clock())
    async with (
        serve(create_app(sim)) as base,
        httpx.AsyncClient(base_url=base, timeout=timeout) as http,
    ):
        yield Odoo(sim, base, http)


@pytest.fixture(params=["16.0", "18.0"])
async def odoo(request: pytest.FixtureRequest) -> AsyncIterator[Odoo]:
    """A JSON-RPC simulator, once as Odoo 16 and once as Odoo 18."""
    async with running(request.param) as env:
        yield env


@pytest.fixture
async def odoo16() -> AsyncIterator[Odoo]:
    async with running("16.0") as env:
        yield env


@pytest.fixture
async def odoo19() -> AsyncIterator[Odoo]:
    async with running("19.0") as env:
        yield env


# --- common service ----------------------------------------------------------------------------


async def test_version_answers_the_configured_server_version(odoo: Odoo) -> None:
    version = f"{odoo.major}.0"
    assert (await odoo.rpc("common", "version"))["result"] == {
        "server_version": version,
        "server_version_info": [odoo.major, 0, 0, "final", 0, ""],
        "server_serie": version,
        "protocol_version": 1,
    }


async def test_authenticate_returns_the_uid_or_false_and_never_a_fault(odoo: Odoo) -> None:
    assert (await odoo.rpc("common", "authenticate", DB, LOGIN, PASSWORD, {}))["result"] == UID
    assert (await odoo.rpc("common", "authenticate", DB, LOGIN, KEY, {}))["result"] == UID
    assert (await odoo.rpc("common", "login", DB, LOGIN, PASSWORD))["result"] == UID
    wrong = await odoo.rpc("common", "authenticate", DB, LOGIN, "nope", {})
    assert wrong == {"jsonrpc": "2.0", "id": wrong["id"], "result": False}
    other = await odoo.rpc("common", "authenticate", DB, "admin", PASSWORD, {})
    assert other["result"] is False


async def test_an_unknown_database_is_a_psycopg2_operational_error(odoo: Odoo) -> None:
    data = error_data(await odoo.rpc("common", "authenticate", "nodb", LOGIN, PASSWORD, {}))
    assert data["name"] == "psycopg2.OperationalError"
    assert data["message"].startswith("connection to server")
    assert 'failed: FATAL:  database "nodb" does not exist' in data["message"]
    on_object = error_data(await odoo.call("res.partner", "search", [[]], db="nodb"))
    assert on_object["name"] == "psycopg2.OperationalError"


async def test_an_unknown_common_method_is_method_not_found(odoo: Odoo) -> None:
    data = error_data(await odoo.rpc("common", "nope"))
    assert (data["name"], data["message"]) == ("builtins.Exception", "Method not found: nope")


# --- object service errors ---------------------------------------------------------------------


async def test_a_wrong_password_on_execute_kw_is_access_denied(odoo: Odoo) -> None:
    data = error_data(await odoo.call("res.partner", "search", [[]], password="nope"))
    assert (data["name"], data["message"]) == ("odoo.exceptions.AccessDenied", "Access Denied")


async def test_an_unknown_model_is_a_user_error(odoo: Odoo) -> None:
    data = await odoo.err("x.nope", "search", [[]])
    assert data["name"] == "odoo.exceptions.UserError"
    assert data["message"] == "Object x.nope doesn't exist"


async def test_a_private_method_is_refused_with_an_access_error(odoo: Odoo) -> None:
    data = await odoo.err("account.move", "_search", [[]])
    assert data["name"] == "odoo.exceptions.AccessError"
    if odoo.major == 16:
        expected = "Private methods (such as _search) cannot be called remotely."
    else:  # 18's get_public_method names the model
        expected = "Private methods (such as 'account.move._search') cannot be called remotely."
    assert data["message"] == expected


async def test_an_unknown_field_in_a_domain_is_a_value_error(odoo: Odoo) -> None:
    data = await odoo.err("account.account", "search_read", [[["nofield", "=", 1]]])
    assert data["name"] == "builtins.ValueError"
    assert data["message"] == "Invalid field account.account.nofield in leaf ('nofield', '=', 1)"


async def test_a_malformed_jsonrpc_body_and_an_unknown_path_are_not_json(odoo: Odoo) -> None:
    bad = await odoo.http.post(
        "/jsonrpc", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert (bad.status_code, bad.text) == (400, "Invalid JSON data")
    for path in ("/nope", "/json/2/res.partner/search", "/web/version", "/xmlrpc/nope"):
        response = await odoo.http.post(path, json={})
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert "<title>404 Not Found</title>" in response.text


# --- seed data ---------------------------------------------------------------------------------


async def test_accounts_journals_and_analytics_match_a_fresh_l10n_mx_database(odoo: Odoo) -> None:
    company = "company_id" if odoo.major <= 17 else "company_ids"
    fields = ["id", "code", "name", "account_type", "deprecated", company]
    rows = await odoo.ok(
        "account.account",
        "search_read",
        [[["code", "in", ["101.01.01", "102.01.04", "401.01.01", "405.01.01"]]]],
        {"fields": fields},
    )
    by_code = {row["code"]: row for row in rows}
    assert set(by_code) == {"101.01.01", "102.01.04", "401.01.01"}
    expected_company: Any = [1, "My Company"] if odoo.major <= 17 else [1]
    assert by_code["101.01.01"] == {
        "id": 50,
        "code": "101.01.01",
        "name": "Cash",
        "account_type": "asset_cash",
        "deprecated": False,
        company: expected_company,
    }
    assert (by_code["102.01.04"]["id"], by_code["102.01.04"]["account_type"]) == (51, "asset_cash")
    assert by_code["401.01.01"]["id"] == 36
    assert by_code["401.01.01"]["name"] == "Ventas y/o servicios gravados a la tasa general"
    other_income = await odoo.ok("account.account", "search", [[["code", "=", "403.01.01"]]])
    assert other_income == ([] if odoo.major == 16 else [53])

    journals = await odoo.ok(
        "account.journal",
        "search_read",
        [[["code", "in", ["MISC", "BNK1", "CSH1"]], ["company_id", "=", 1]]],
        {"fields": ["id", "code", "name", "type", "default_account_id", "company_id"]},
    )
    assert sorted(journals, key=lambda j: j["id"]) == [
        {
            "id": 3,
            "code": "MISC",
            "name": "Miscellaneous Operations",
            "type": "general",
            "default_account_id": False,
            "company_id": [1, "My Company"],
        },
        {
            "id": 7,
            "code": "CSH1",
            "name": "Cash",
            "type": "cash",
            "default_account_id": [50, "101.01.01 Cash"],
            "company_id": [1, "My Company"],
        },
        {
            "id": 8,
            "code": "BNK1",
            "name": "Bank",
            "type": "bank",
            "default_account_id": [51, "102.01.04 Bank"],
            "company_id": [1, "My Company"],
        },
    ]
    analytic = await odoo.ok(
        "account.analytic.account",
        "read",
        [[1]],
        {"fields": ["id", "name", "plan_id", "company_id", "active"]},
    )
    assert analytic == [
        {
            "id": 1,
            "name": "Conekta pilot",
            "plan_id": [1, "Pilot"],
            "company_id": [1, "My Company"],
            "active": True,
        }
    ]


async def test_account_company_field_follows_the_version(odoo: Odoo) -> None:
    leaf = ["company_id", "=", 1]
    envelope = await odoo.call("account.account", "search", [[leaf]])
    if odoo.major <= 17:
        assert 50 in envelope["result"]
    else:  # odoo.md §7.3: 18 replaced company_id with company_ids
        data = error_data(envelope)
        assert data["message"] == (
            "Invalid field account.account.company_id in leaf ('company_id', '=', 1)"
        )
        assert 50 in await odoo.ok("account.account", "search", [[["company_ids", "in", [1]]]])


async def test_partners_are_found_by_ref_or_vat_and_create_returns_an_int_or_a_list(
    odoo: Odoo,
) -> None:
    assert await odoo.partner() == 7
    assert await odoo.ok("res.partner", "create", [[{"name": "A"}, {"name": "B"}]]) == [8, 9]
    await odoo.ok("res.partner", "write", [[8], {"ref": "cus_2tUig"}])
    by_ref = await odoo.ok(
        "res.partner",
        "search_read",
        [[["ref", "=", "cus_2tUig"]]],
        {"fields": ["id", "name", "vat", "ref", "company_id"]},
    )
    assert by_ref == [{"id": 8, "name": "A", "vat": False, "ref": "cus_2tUig", "company_id": False}]
    by_vat = await odoo.ok("res.partner", "search", [[["vat", "=", "XAXX010101000"]]])
    assert by_vat == [7]
    assert await odoo.ok("res.partner", "search", [[["name", "ilike", "cliente"]]]) == [7]
    nameless = await odoo.err("res.partner", "create", [{"vat": "XAXX010101000"}])
    assert nameless["name"] == "odoo.exceptions.ValidationError"


# --- account.move ------------------------------------------------------------------------------


async def test_an_entry_is_created_read_and_posted_with_the_shapes_odoo_returns(
    odoo: Odoo,
) -> None:
    await odoo.partner()
    move_id = await odoo.create_move()
    assert move_id == 1
    assert await odoo.read_move(1) == {
        "id": 1,
        # 16/17 number the first draft of a period at create [obs 16]; 18+ only at posting.
        "name": "MISC/2026/11/0001" if odoo.major <= 17 else "/",
        "state": "draft",
        "ref": "conekta:ord_2tUigJ8DgBhbp6w5D",
        "move_type": "entry",
        "journal_id": [3, "Miscellaneous Operations"],
        "date": "2026-11-27",
        "amount_total": 1160.0,
        "partner_id": False,
        "line_ids": [1, 2],
    }
    posted = await odoo.call("account.move", "action_post", [[1]])
    assert posted["result"] is False
    after = await odoo.ok("account.move", "read", [[1]], {"fields": ["state", "payment_state"]})
    assert after == [{"id": 1, "state": "posted", "payment_state": "not_paid"}]
    lines = await odoo.ok(
        "account.move.line",
        "search_read",
        [[["move_id", "=", 1]]],
        {
            "fields": [
                "account_id",
                "partner_id",
                "debit",
                "credit",
                "balance",
                "analytic_distribution",
                "name",
            ]
        },
    )
    assert lines == [
        {
            "id": 1,
            "account_id": [50, "101.01.01 Cash"],
            "partner_id": [7, "Cliente Demo"],
            "debit": 1160.0,
            "credit": 0.0,
            "balance": 1160.0,
            "analytic_distribution": {"1": 100.0},
            "name": "Pago Conekta",
        },
        {
            "id": 2,
            "account_id": [36, "401.01.01 Ventas y/o servicios gravados a la tasa general"],
            "partner_id": [7, "Cliente Demo"],
            "debit": 0.0,
            "credit": 1160.0,
            "balance": -1160.0,
            "analytic_distribution": {"1": 100.0},
            "name": "Pago Conekta",
        },
    ]


async def test_posting_an_entry_twice_is_refused_with_the_versions_text(odoo: Odoo) -> None:
    await odoo.partner()
    await odoo.create_move()
    await odoo.ok("account.move", "action_post", [[1]])
    data = await odoo.err("account.move", "action_post", [[1]])
    assert data["name"] == "odoo.exceptions.UserError"
    if odoo.major == 16:  # odoo.md §4.2 [obs]
        assert data["message"] == "The entry MISC/2026/11/0001 (id 1) is already posted."
    else:  # 18 collects the _post checks and reworded this one
        assert data["message"] == "The entry MISC/2026/11/0001 (id 1) must be in draft."


async def test_drafts_after_the_first_of_a_period_stay_unnamed_until_posted(odoo: Odoo) -> None:
    await odoo.partner()
    first = await odoo.create_move(payload("a"))
    second = await odoo.create_move(payload("b"))
    third = await odoo.create_move(payload("c"))
    december = await odoo.create_move(payload("d", date="2026-12-01"))
    bank = await odoo.create_move(payload("e", journal_id=8))
    names = {r["id"]: r["name"] for r in await odoo.ok("account.move", "read", [[1, 2, 3, 4, 5]])}
    if odoo.major <= 17:
        assert names == {
            first: "MISC/2026/11/0001",
            second: "/",
            third: "/",
            december: "MISC/2026/12/0001",
            bank: "BNK1/2026/00001",  # bank and cash journals number yearly, 5 digits
        }
    else:  # 18's _compute_name numbers only moves that are not drafts
        assert set(names.values()) == {"/"}
    await odoo.ok("account.move", "action_post", [[third]])
    await odoo.ok("account.move", "action_post", [[second]])
    taken = 1 if odoo.major <= 17 else 0  # 16/17: the first draft holds 0001 already
    assert (await odoo.read_move(third))["name"] == f"MISC/2026/11/{taken + 1:04d}"
    assert (await odoo.read_move(second))["name"] == f"MISC/2026/11/{taken + 2:04d}"


async def rpc_at_once(odoo: Odoo, *calls: tuple[str, str, list[Any]]) -> list[dict[str, Any]]:
    """Send several `execute_kw` calls together, each on its own request (own JSON-RPC id)."""

    async def one(index: int, model: str, method: str, args: list[Any]) -> dict[str, Any]:
        body = {
            "jsonrpc": "2.0",
            "method": "call",
            "params": {
                "service": "object",
                "method": "execute_kw",
                "args": [DB, UID, PASSWORD, model, method, args, {}],
            },
            "id": 1000 + index,
        }
        response = await odoo.http.post("/jsonrpc", json=body)
        envelope: dict[str, Any] = response.json()
        return envelope

    return list(await asyncio.gather(*(one(i, *call) for i, call in enumerate(calls))))


async def test_first_drafts_created_at_the_same_moment_collide_and_only_one_can_post(
    odoo16: Odoo,
) -> None:
    odoo = odoo16
    await odoo.partner()
    # Both transactions are open together (each held 1 s): neither sees the other's draft.
    await odoo.fault(kind="slow", count=2, seconds=1)
    answers = await rpc_at_once(
        odoo,
        ("account.move", "create", [payload("conekta:ord_a")]),
        ("account.move", "create", [payload("conekta:ord_b")]),
    )
    first, second = sorted(a["result"] for a in answers)
    assert (await odoo.read_move(first))["name"] == "MISC/2026/11/0001"
    assert (await odoo.read_move(second))["name"] == "MISC/2026/11/0001"
    await odoo.ok("account.move", "action_post", [[first]])
    data = await odoo.err("account.move", "action_post", [[second]])
    assert (data["name"], data["message"]) == (
        "odoo.exceptions.ValidationError",
        "Posted journal entry must have an unique sequence number per company.\n"
        "Problematic numbers: MISC/2026/11/0001\n",
    )
    assert (await odoo.read_move(second))["state"] == "draft"
    # Posting never renumbers a named draft; giving it back "/" lets posting number it.
    assert await odoo.ok("account.move", "write", [[second], {"name": "/"}]) is True
    await odoo.ok("account.move", "action_post", [[second]])
    assert (await odoo.read_move(second))["name"] == "MISC/2026/11/0002"


async def test_drafts_created_with_name_slash_at_the_same_moment_are_numbered_at_posting(
    odoo: Odoo,
) -> None:
    await odoo.partner()
    await odoo.fault(kind="slow", count=2, seconds=1)
    answers = await rpc_at_once(
        odoo,
        ("account.move", "create", [payload("conekta:ord_a", name="/")]),
        ("account.move", "create", [payload("conekta:ord_b", name="/")]),
    )
    ids = sorted(a["result"] for a in answers)
    assert [(await odoo.read_move(i))["name"] for i in ids] == ["/", "/"]
    for move_id in ids:
        await odoo.ok("account.move", "action_post", [[move_id]])
    names = {(await odoo.read_move(i))["name"] for i in ids}
    assert names == {"MISC/2026/11/0001", "MISC/2026/11/0002"}


async def test_the_same_ref_twice_creates_two_entries_listed_newest_first(odoo: Odoo) -> None:
    await odoo.partner()
    first = await odoo.create_move()
    await odoo.ok("account.move", "action_post", [[first]])
    second = await odoo.create_move()
    assert second == 2
    await odoo.ok("account.move", "action_post", [[second]])
    found = await odoo.ok(
        "account.move",
        "search_read",
        [[["ref", "=", PAYLOAD["ref"]], ["journal_id", "=", 3], ["state", "!=", "cancel"]]],
        {"fields": ["name", "state"]},
    )
    assert found == [
        {"id": 2, "name": "MISC/2026/11/0002", "state": "posted"},
        {"id": 1, "name": "MISC/2026/11/0001", "state": "posted"},
    ]


async def test_an_unbalanced_entry_is_refused_and_still_burns_an_id(odoo: Odoo) -> None:
    await odoo.create_move(payload("first", line_ids=[line(50, 5.0), line(36, credit=5.0)]))
    unbalanced = payload("unbal", line_ids=[line(50, 1160.0), line(36, credit=1000.0)])
    data = await odoo.err("account.move", "create", [unbalanced])
    assert data["name"] == "odoo.exceptions.UserError"
    # §4.2 text; format_amount joins the symbol with a NO-BREAK SPACE.
    assert data["message"] == (
        "An error has occurred.\n\n"
        "The move (Draft Entry (* 2) (unbal)) is not balanced.\n"
        "The total of debits equals $\u00a01,160.00 and the total of credits equals "
        "$\u00a01,000.00.\n"
        'You might want to specify a default account on journal "Miscellaneous Operations" '
        "to automatically balance each move."
    )
    assert [m["ref"] for m in odoo.sim.moves()] == ["first"]
    # PostgreSQL sequences are not transactional: the failed INSERT consumed id 2.
    assert (
        await odoo.create_move(payload("next", line_ids=[line(50, 1.0), line(36, credit=1.0)])) == 3
    )


async def test_a_restarted_sandbox_resumes_move_ids_past_the_ones_guardia_remembers() -> None:
    async with running("16.0", first_move_id=41) as odoo:
        first = await odoo.create_move(payload("a", line_ids=[line(50, 1.0), line(36, credit=1.0)]))
        assert first == 41
        assert [m["id"] for m in odoo.sim.moves()] == [41]
        # Other models keep their documented sequences (odoo.md §10.3: partners start at 7).
        assert await odoo.ok("res.partner", "create", [{"name": "Cliente"}]) == 7


async def test_amounts_are_compared_as_exact_cents_not_floats(odoo: Odoo) -> None:
    cents = payload("cents", line_ids=[line(50, 0.1), line(50, 0.2), line(36, credit=0.3)])
    move_id = await odoo.create_move(cents)
    by_balance = payload(
        "balance-only",
        line_ids=[
            [0, 0, {"account_id": 51, "balance": 250.0}],
            [0, 0, {"account_id": 36, "balance": -250.0}],
        ],
    )
    other = await odoo.create_move(by_balance)
    lines = await odoo.ok(
        "account.move.line",
        "search_read",
        [[["move_id", "=", other]]],
        {"fields": ["debit", "credit"]},
    )
    assert [(ln["debit"], ln["credit"]) for ln in lines] == [(250.0, 0.0), (0.0, 250.0)]
    assert (await odoo.read_move(move_id))["amount_total"] == 0.3
    rounding = payload("round", line_ids=[line(50, 100.005), line(36, credit=100.01)])
    assert await odoo.create_move(rounding) > other


async def test_a_line_without_account_is_a_validation_error(odoo: Odoo) -> None:
    body = payload("no-account", line_ids=[line(None, 10.0), line(36, credit=10.0)])
    data = await odoo.err("account.move", "create", [body])
    assert data["name"] == "odoo.exceptions.ValidationError"
    assert data["message"] == (
        "The operation cannot be completed: Missing required account on accountable line."
    )


async def test_a_non_existent_account_fails_with_the_misleading_foreign_key_text(
    odoo: Odoo,
) -> None:
    body = payload("ghost", line_ids=[line(999999, 10.0), line(36, credit=10.0)])
    data = await odoo.err("account.move", "create", [body])
    assert data["name"] == "odoo.exceptions.ValidationError"
    assert data["message"].rstrip("\n") == FK_TEXT
    assert odoo.sim.moves() == []


async def test_a_missing_journal_is_a_mandatory_field_validation_error(odoo: Odoo) -> None:
    body = payload("no-journal")
    del body["journal_id"]
    data = await odoo.err("account.move", "create", [body])
    assert data["name"] == "odoo.exceptions.ValidationError"
    assert data["message"].startswith(
        "The operation cannot be completed:\n- Create/update: a mandatory field is not set."
    )
    assert "Field: Journal (journal_id)" in data["message"]


async def test_an_unknown_analytic_account_is_accepted_silently(odoo: Odoo) -> None:
    odd = {"999999": 100}
    body = payload(
        "analytic",
        line_ids=[
            line(50, 10.0, analytic_distribution=odd),
            line(36, credit=10.0, analytic_distribution=odd),
        ],
    )
    move_id = await odoo.create_move(body)
    (first, _) = odoo.sim.moves()[0]["lines"]
    assert first["analytic_distribution"] == {"999999": 100.0}
    assert await odoo.ok("account.move", "action_post", [[move_id]]) is False


async def test_a_failed_create_of_several_entries_rolls_all_of_them_back(odoo: Odoo) -> None:
    good = payload("good")
    bad = payload("bad", line_ids=[line(50, 1.0), line(36, credit=2.0)])
    await odoo.partner()
    data = await odoo.err("account.move", "create", [[good, bad]])
    assert data["name"] == "odoo.exceptions.UserError"
    assert odoo.sim.moves() == []
    assert await odoo.ok("account.move", "create", [[good, payload("good2")]]) == [3, 4]


async def test_write_on_a_missing_id_is_missing_error_and_read_skips_it(odoo: Odoo) -> None:
    data = await odoo.err("account.move", "write", [[999999], {"ref": "x"}])
    assert data["name"] == "odoo.exceptions.MissingError"
    assert data["message"] == (
        "Record does not exist or has been deleted.\n(Record: account.move(999999,), User: 2)"
    )
    assert (await odoo.call("account.move", "read", [[999999]]))["result"] == []


async def test_a_none_result_is_omitted_from_the_jsonrpc_envelope(odoo: Odoo) -> None:
    await odoo.partner()
    move_id = await odoo.create_move()
    await odoo.ok("account.move", "action_post", [[move_id]])
    envelope = await odoo.call("account.move", "button_draft", [[move_id]])
    assert envelope == {"jsonrpc": "2.0", "id": envelope["id"]}
    assert (await odoo.read_move(move_id))["state"] == "draft"


# --- permissions -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["16.0", "17.0", "18.0"])
async def test_has_group_accepts_only_the_form_of_the_configured_version(version: str) -> None:
    async with running(version) as odoo:
        old_form = await odoo.call("res.users", "has_group", [INVOICE_GROUP])
        new_form = await odoo.call("res.users", "has_group", [[UID], INVOICE_GROUP])
        if version == "16.0":
            assert old_form["result"] is True
            data = error_data(new_form)
            assert data["name"] == "builtins.TypeError"
            assert data["message"] == "has_group() takes 2 positional arguments but 3 were given"
        elif version == "17.0":  # odoo.md §8.2: not verified, so either form works
            assert (old_form["result"], new_form["result"]) == (True, True)
        else:
            assert new_form["result"] is True
            assert error_data(old_form)["name"] == "builtins.TypeError"
        await odoo.fault(kind="permission_removed")
        form = [INVOICE_GROUP] if version == "16.0" else [[UID], INVOICE_GROUP]
        assert await odoo.ok("res.users", "has_group", form) is False


async def test_check_access_rights_and_context_get_describe_the_bot(odoo: Odoo) -> None:
    probe = await odoo.ok(
        "account.move", "check_access_rights", ["create"], {"raise_exception": False}
    )
    assert probe is True
    assert await odoo.ok("res.users", "context_get", []) == {"lang": "en_US", "tz": False, "uid": 2}
    if odoo.major >= 18:
        assert await odoo.ok("account.move", "has_access", [[], "create"]) is True


async def test_without_the_billing_group_create_and_post_are_access_errors(odoo: Odoo) -> None:
    await odoo.partner()
    draft = await odoo.create_move()
    await odoo.fault(kind="permission_removed")
    data = await odoo.err("account.move", "create", [payload("denied")])
    assert (data["name"], data["message"]) == ("odoo.exceptions.AccessError", ACCESS_TEXT)
    post = await odoo.err("account.move", "action_post", [[draft]])
    assert post["name"] == "odoo.exceptions.AccessError"
    probe = await odoo.ok(
        "account.move", "check_access_rights", ["create"], {"raise_exception": False}
    )
    assert probe is False
    assert (await odoo.http.post("/_sandbox/restore")).status_code == 200
    assert await odoo.ok("account.move", "action_post", [[draft]]) is False


# --- reversal ----------------------------------------------------------------------------------


async def test_the_reversal_wizard_posts_a_mirror_entry_of_the_original(odoo: Odoo) -> None:
    await odoo.partner()
    original = await odoo.create_move()
    await odoo.ok("account.move", "action_post", [[original]])
    wizard_vals: dict[str, Any] = {
        "move_ids": [[6, 0, [original]]],
        "date": "2026-11-27",
        "reason": "order refunded",
        "journal_id": 3,
    }
    if odoo.major == 16:
        wizard_vals["refund_method"] = "cancel"  # 16: without it the reversal stays a draft
    wizard = await odoo.ok("account.move.reversal", "create", [wizard_vals])
    action = await odoo.ok("account.move.reversal", "reverse_moves", [[wizard]])
    assert action["res_model"] == "account.move"
    assert action["type"] == "ir.actions.act_window"
    reversal = action["res_id"]
    row = await odoo.ok(
        "account.move",
        "read",
        [[reversal]],
        {"fields": ["name", "state", "ref", "reversed_entry_id", "date"]},
    )
    assert row == [
        {
            "id": reversal,
            "name": "MISC/2026/11/0002",
            "state": "posted",
            "ref": "Reversal of: MISC/2026/11/0001, order refunded",
            "reversed_entry_id": [original, "MISC/2026/11/0001 (conekta:ord_2tUigJ8DgBhbp6w5D)"],
            "date": "2026-11-27",
        }
    ]
    swapped = {m["id"]: m for m in odoo.sim.moves()}[reversal]["lines"]
    assert [(ln["account_code"], ln["debit"], ln["credit"]) for ln in swapped] == [
        ("101.01.01", "0.00", "1160.00"),
        ("401.01.01", "1160.00", "0.00"),
    ]
    # A reversal dated after today waits as a draft to be auto-posted on its date.
    later = await odoo.ok(
        "account.move.reversal", "create", [{**wizard_vals, "date": "2026-12-15"}]
    )
    action = await odoo.ok("account.move.reversal", "reverse_moves", [[later]])
    future = await odoo.ok(
        "account.move", "read", [[action["res_id"]]], {"fields": ["state", "auto_post"]}
    )
    assert future == [{"id": action["res_id"], "state": "draft", "auto_post": "at_date"}]
    early = await odoo.err("account.move", "action_post", [[action["res_id"]]])
    assert early["message"] == "This move is configured to be auto-posted on 12/15/2026"


async def test_on_16_a_reversal_without_refund_method_stays_a_draft(odoo16: Odoo) -> None:
    odoo = odoo16
    original = await odoo.create_move(payload("r", line_ids=[line(50, 5.0), line(36, credit=5.0)]))
    await odoo.ok("account.move", "action_post", [[original]])
    wizard = await odoo.ok("account.move.reversal", "create", [{"move_ids": [[6, 0, [original]]]}])
    (method,) = await odoo.ok(
        "account.move.reversal", "read", [[wizard]], {"fields": ["refund_method"]}
    )
    assert method["refund_method"] == "refund"
    action = await odoo.ok("account.move.reversal", "reverse_moves", [[wizard]])
    assert (await odoo.read_move(action["res_id"]))["state"] == "draft"
    # From the UI (active_ids in context) default_get picks "cancel" for an entry.
    ctx = {"context": {"active_model": "account.move", "active_ids": [original]}}
    wizard = await odoo.ok("account.move.reversal", "create", [{}], ctx)
    action = await odoo.ok("account.move.reversal", "reverse_moves", [[wizard]])
    assert (await odoo.read_move(action["res_id"]))["state"] == "posted"


# --- fault knobs -------------------------------------------------------------------------------


async def test_down_answers_503_html_from_the_proxy_until_cleared(odoo16: Odoo) -> None:
    await odoo16.fault(kind="down")
    for _ in range(2):
        response = await odoo16.http.post("/jsonrpc", json={})
        assert response.status_code == 503
        assert response.headers["server"] == "nginx"
        assert "503 Service Temporarily Unavailable" in response.text
    assert (await odoo16.http.delete("/_sandbox/faults")).json() == {"cleared": 1}
    assert (await odoo16.rpc("common", "version"))["result"]["server_serie"] == "16.0"


async def test_error_5xx_answers_the_next_calls_then_recovers(odoo16: Odoo) -> None:
    await odoo16.fault(kind="error_5xx", count=2, status=504)
    statuses = [(await odoo16.http.post("/jsonrpc", json={})).status_code for _ in range(2)]
    assert statuses == [504, 504]
    assert "result" in await odoo16.rpc("common", "version")
    assert (await odoo16.http.get("/_sandbox/faults")).json() == {"data": []}


async def test_slow_holds_answers_past_a_client_timeout_until_cleared(odoo16: Odoo) -> None:
    await odoo16.fault(kind="slow", seconds=30)
    async with httpx.AsyncClient(base_url=odoo16.base, timeout=0.2) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            await impatient.post("/jsonrpc", json={})
    await odoo16.http.delete("/_sandbox/faults")
    assert "result" in await odoo16.rpc("common", "version")


async def test_auth_revoked_makes_authenticate_false_and_execute_kw_access_denied(
    odoo: Odoo,
) -> None:
    await odoo.fault(kind="auth_revoked")
    assert (await odoo.rpc("common", "authenticate", DB, LOGIN, PASSWORD, {}))["result"] is False
    data = error_data(await odoo.call("res.partner", "search", [[]]))
    assert data["name"] == "odoo.exceptions.AccessDenied"
    await odoo.http.delete("/_sandbox/faults")
    assert await odoo.ok("res.partner", "search", [[["id", "=", 1]]]) == [1]


async def test_account_removed_hides_the_account_and_fails_its_id_on_create(odoo: Odoo) -> None:
    await odoo.partner()
    await odoo.fault(kind="account_removed", code="401.01.01")
    assert await odoo.ok("account.account", "search", [[["code", "=", "401.01.01"]]]) == []
    data = await odoo.err("account.move", "create", [payload("gone")])
    assert data["name"] == "odoo.exceptions.ValidationError"
    assert data["message"].rstrip("\n") == FK_TEXT
    created = await odoo.http.post(
        "/_sandbox/accounts",
        json={"code": "401.01.01", "name": "Ventas nuevas", "account_type": "income"},
    )
    assert created.status_code == 201
    new_id = created.json()["id"]
    assert new_id != 36
    assert await odoo.ok("account.account", "search", [[["code", "=", "401.01.01"]]]) == [new_id]
    # The old id stays gone even after the faults are cleared: the code now has a new account.
    await odoo.http.delete("/_sandbox/faults")
    assert await odoo.ok("account.account", "search", [[["code", "=", "401.01.01"]]]) == [new_id]


async def test_journal_removed_hides_the_journal_until_restored(odoo16: Odoo) -> None:
    odoo = odoo16
    await odoo.fault(kind="journal_removed", code="BNK1")
    assert await odoo.ok("account.journal", "search", [[["code", "=", "BNK1"]]]) == []
    data = await odoo.err("account.move", "create", [payload("j", journal_id=8)])
    assert "account_move_journal_id_fkey" in data["message"]
    restored = (await odoo.http.post("/_sandbox/restore")).json()["restored"]
    assert [r["kind"] for r in restored] == ["journal_removed"]
    assert await odoo.ok("account.journal", "search", [[["code", "=", "BNK1"]]]) == [8]


async def test_lock_error_fails_the_next_write_and_commits_nothing(odoo: Odoo) -> None:
    await odoo.partner()
    await odoo.fault(kind="lock_error", count=1)
    assert await odoo.ok("account.account", "search", [[["id", "=", 50]]]) == [50]
    data = await odoo.err("account.move", "create", [payload()])
    assert data["name"] == "psycopg2.errors.SerializationFailure"
    assert data["message"] == "could not serialize access due to concurrent update\n"
    assert odoo.sim.moves() == []
    assert await odoo.create_move() > 0


async def test_timeout_after_commit_creates_the_entry_although_the_client_gives_up(
    odoo16: Odoo,
) -> None:
    odoo = odoo16
    await odoo.partner()
    await odoo.fault(kind="timeout_after_commit", seconds=30)
    body = {
        "jsonrpc": "2.0",
        "method": "call",
        "params": {
            "service": "object",
            "method": "execute_kw",
            "args": [DB, UID, PASSWORD, "account.move", "create", [payload("slow")], {}],
        },
        "id": 99,
    }
    async with httpx.AsyncClient(base_url=odoo.base, timeout=0.3) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            await impatient.post("/jsonrpc", json=body)
    found = await odoo.ok(
        "account.move", "search_read", [[["ref", "=", "slow"]]], {"fields": ["state"]}
    )
    assert found == [{"id": 1, "state": "draft"}]
    await odoo.http.delete("/_sandbox/faults")
    assert await odoo.create_move(payload("next")) == 2


async def test_database_missing_turns_calls_into_operational_errors(odoo: Odoo) -> None:
    await odoo.fault(kind="database_missing")
    data = error_data(await odoo.rpc("common", "authenticate", DB, LOGIN, PASSWORD, {}))
    assert data["name"] == "psycopg2.OperationalError"
    assert f'database "{DB}" does not exist' in data["message"]
    assert (await odoo.rpc("common", "version"))["result"]["protocol_version"] == 1


async def test_the_fault_api_validates_lists_and_clears_faults(odoo16: Odoo) -> None:
    http = odoo16.http
    assert (await http.post("/_sandbox/faults", json={"kind": "meteor"})).status_code == 422
    assert (
        await http.post("/_sandbox/faults", json={"kind": "account_removed"})
    ).status_code == 422
    missing = await http.post("/_sandbox/faults", json={"kind": "account_removed", "code": "405"})
    assert missing.status_code == 422
    first = await odoo16.fault(kind="lock_error", count=3)
    assert (first["kind"], first["remaining"]) == ("lock_error", 3)
    await odoo16.fault(kind="permission_removed")
    listed = (await http.get("/_sandbox/faults")).json()["data"]
    assert [f["kind"] for f in listed] == ["lock_error", "permission_removed"]
    odoo16.sim.reset_faults()
    assert (await http.get("/_sandbox/faults")).json() == {"data": []}
    assert await odoo16.ok("res.users", "has_group", [INVOICE_GROUP]) is True


# --- JSON-2 (19) -------------------------------------------------------------------------------


async def test_json2_requires_a_valid_bearer_key(odoo19: Odoo) -> None:
    missing = await odoo19.json2("res.users", "context_get", key=None)
    assert missing.status_code == 401
    assert missing.json()["name"] == "werkzeug.exceptions.Unauthorized"
    for key in ("wrong-key", PASSWORD):
        invalid = await odoo19.json2("res.users", "context_get", key=key)
        assert invalid.status_code == 401
        body = invalid.json()
        assert set(body) == ERROR_KEYS
        assert body["message"] == "Invalid apikey"
        assert body["arguments"] == ["Invalid apikey", 401]
    upper = await odoo19.http.post(
        "/json/2/res.users/context_get", json={}, headers={"Authorization": f"BEARER {KEY}"}
    )
    assert upper.json() == {"lang": "en_US", "tz": False, "uid": 2}


async def test_json2_serves_web_version_and_the_bot_context(odoo19: Odoo) -> None:
    version = await odoo19.http.get("/web/version")
    assert version.json() == {"version_info": [19, 0, 0, "final", 0, ""], "version": "19.0"}
    context = await odoo19.json2("res.users", "context_get", {})
    assert (context.status_code, context.json()) == (200, {"lang": "en_US", "tz": False, "uid": 2})


async def test_json2_creates_and_posts_an_entry_with_bare_values(odoo19: Odoo) -> None:
    odoo = odoo19
    accounts = await odoo.json2(
        "account.account",
        "search_read",
        {"domain": [["code", "=", "401.01.01"]], "fields": ["code", "account_type", "active"]},
    )
    assert accounts.json() == [
        {"id": 36, "code": "401.01.01", "account_type": "income", "active": True}
    ]
    partner = await odoo.json2("res.partner", "create", {"vals_list": {"name": "Cliente Demo"}})
    assert partner.json() == [7]
    created = await odoo.json2("account.move", "create", {"vals_list": [payload()]})
    assert (created.status_code, created.json()) == (200, [1])
    posted = await odoo.json2("account.move", "action_post", {"ids": [1]})
    assert (posted.status_code, posted.json()) == (200, False)
    again = await odoo.json2("account.move", "action_post", {"ids": [1]})
    assert again.status_code == 422
    assert again.json()["name"] == "odoo.exceptions.UserError"
    assert again.json()["message"] == "The entry MISC/2026/11/0001 (id 1) must be in draft."
    has_group = await odoo.json2(
        "res.users", "has_group", {"ids": [UID], "group_ext_id": INVOICE_GROUP}
    )
    assert has_group.json() is True
    has_access = await odoo.json2("account.move", "has_access", {"operation": "create"})
    assert has_access.json() is True


async def test_json2_maps_each_error_to_its_status(odoo19: Odoo) -> None:
    odoo = odoo19
    cases: list[tuple[httpx.Response, int, str]] = [
        (await odoo.json2("x.nope", "search", {}), 404, "werkzeug.exceptions.NotFound"),
        (await odoo.json2("account.move", "nope", {}), 404, "werkzeug.exceptions.NotFound"),
        (
            await odoo.json2("account.move", "check_access_rights", {"operation": "create"}),
            404,
            "werkzeug.exceptions.NotFound",
        ),
        (await odoo.json2("account.move", "_search", {}), 403, "odoo.exceptions.AccessError"),
        (
            await odoo.json2("account.move", "search", {"ids": [1], "domain": []}),
            422,
            "werkzeug.exceptions.UnprocessableEntity",
        ),
        (
            await odoo.json2("account.move", "search", {"domain": [], "badparameter": 1}),
            422,
            "werkzeug.exceptions.UnprocessableEntity",
        ),
        (
            await odoo.json2("account.move", "write", {"ids": [999999], "vals": {"ref": "x"}}),
            404,
            "odoo.exceptions.MissingError",
        ),
        (
            await odoo.json2(
                "account.move",
                "create",
                {"vals_list": [payload("x", line_ids=[line(None, 1.0), line(36, credit=1.0)])]},
            ),
            422,
            "odoo.exceptions.ValidationError",
        ),
        (
            await odoo.json2("account.account", "search", {"domain": [["nofield", "=", 1]]}),
            500,
            "builtins.ValueError",
        ),
        (
            await odoo.json2("res.users", "has_group", {"group_ext_id": INVOICE_GROUP}),
            500,
            "builtins.ValueError",
        ),
    ]
    for response, status, name in cases:
        assert (response.status_code, response.json()["name"]) == (status, name), response.text
        assert set(response.json()) == ERROR_KEYS
    assert cases[0][0].json()["message"] == "the model 'x.nope' does not exist"
    assert cases[4][0].json()["message"] == "cannot call account.move.search with ids"
    assert cases[5][0].json()["message"] == "got an unexpected keyword argument 'badparameter'"
    not_json = await odoo.http.post(
        "/json/2/res.partner/search",
        content=b"{nope",
        headers={"Authorization": f"bearer {KEY}", "content-type": "application/json"},
    )
    assert not_json.status_code == 400
    a_list = await odoo.http.post(
        "/json/2/res.partner/search", json=[1], headers={"Authorization": f"bearer {KEY}"}
    )
    assert a_list.status_code == 400
    plain = await odoo.http.post(
        "/json/2/res.partner/search", content=b"x", headers={"Authorization": f"bearer {KEY}"}
    )
    assert plain.status_code == 400
    assert "but 'json2' was forced by the path" in plain.text
    elsewhere = await odoo.http.post("/json/2/res.partner", json={})
    assert elsewhere.status_code == 404
    assert elsewhere.json()["message"] == "Did you mean POST /json/2/<model>/<method>?"


async def test_json2_faults_answer_401_403_409_and_404(odoo19: Odoo) -> None:
    odoo = odoo19
    await odoo.fault(kind="lock_error")
    locked = await odoo.json2("res.partner", "create", {"vals_list": [{"name": "L"}]})
    assert (locked.status_code, locked.json()["name"]) == (409, "odoo.exceptions.LockError")
    await odoo.fault(kind="permission_removed")
    denied = await odoo.json2("account.move", "create", {"vals_list": [payload()]})
    assert (denied.status_code, denied.json()["message"]) == (403, ACCESS_TEXT)
    await odoo.fault(kind="auth_revoked")
    assert (await odoo.json2("res.users", "context_get", {})).status_code == 401
    await odoo.fault(kind="database_missing")
    gone = await odoo.json2("res.users", "context_get", {})
    assert gone.status_code == 404
    assert gone.headers["content-type"].startswith("text/html")


async def test_json2_reversal_returns_an_action_pointing_at_the_posted_mirror(
    odoo19: Odoo,
) -> None:
    odoo = odoo19
    await odoo.json2(
        "account.move",
        "create",
        {"vals_list": [payload("rev", line_ids=[line(51, 9.5), line(36, credit=9.5)])]},
    )
    await odoo.json2("account.move", "action_post", {"ids": [1]})
    wizard = await odoo.json2(
        "account.move.reversal",
        "create",
        {"vals_list": [{"move_ids": [[6, 0, [1]]], "date": "2026-11-27", "reason": "refund"}]},
    )
    action = await odoo.json2("account.move.reversal", "reverse_moves", {"ids": wizard.json()})
    res_id = action.json()["res_id"]
    read = await odoo.json2(
        "account.move", "read", {"ids": [res_id], "fields": ["state", "ref", "amount_total"]}
    )
    assert read.json() == [
        {
            "id": res_id,
            "state": "posted",
            "ref": "Reversal of: MISC/2026/11/0001, refund",
            "amount_total": 9.5,
        }
    ]


# --- XML-RPC -----------------------------------------------------------------------------------


async def test_xmlrpc_faults_use_integer_codes_and_none_fails_after_commit(odoo16: Odoo) -> None:
    odoo = odoo16

    async def xml(service: str, method: str, *params: Any) -> Any:
        body = xmlrpc.client.dumps(params, method)
        response = await odoo.http.post(f"/xmlrpc/2/{service}", content=body)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/xml")
        try:
            return xmlrpc.client.loads(response.text)[0][0]
        except xmlrpc.client.Fault as fault:
            return fault

    assert await xml("common", "authenticate", DB, LOGIN, "nope", {}) is False
    no_service = await xml("nope", "version")
    assert no_service.faultCode == 1
    assert no_service.faultString.endswith("KeyError: 'nope'\n")
    denied = await xml("object", "execute_kw", DB, UID, "nope", "res.partner", "search", [[]])
    assert (denied.faultCode, denied.faultString) == (3, "Access Denied")
    unknown = await xml("object", "execute_kw", DB, UID, PASSWORD, "x.nope", "search", [[]])
    assert (unknown.faultCode, unknown.faultString) == (2, "Object x.nope doesn't exist")
    private = await xml("object", "execute_kw", DB, UID, PASSWORD, "account.move", "_search", [[]])
    assert private.faultCode == 4
    bad_field = await xml(
        "object", "execute_kw", DB, UID, PASSWORD, "account.account", "search", [[["x", "=", 1]]]
    )
    assert bad_field.faultCode == 1
    assert bad_field.faultString.endswith(
        "ValueError: Invalid field account.account.x in leaf ('x', '=', 1)\n"
    )
    await odoo.partner()
    move_id = await odoo.create_move()
    await odoo.ok("account.move", "action_post", [[move_id]])
    none = await xml(
        "object", "execute_kw", DB, UID, PASSWORD, "account.move", "button_draft", [[move_id]]
    )
    assert none.faultCode == 1
    assert "cannot marshal None unless allow_none is enabled" in none.faultString
    assert (await odoo.read_move(move_id))["state"] == "draft"  # committed despite the fault


# --- sandbox inspection and CLI ----------------------------------------------------------------


async def test_the_cli_installs_faults_restores_and_lists_moves_over_http(odoo16: Odoo) -> None:
    runner = CliRunner()

    async def cli(*args: str) -> Any:
        result = await asyncio.to_thread(
            runner.invoke, cli_app, [*args, "--url", odoo16.base, "--json"]
        )
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    await odoo16.partner()
    await odoo16.create_move()
    fault = await cli("fault", "account_removed", "--code", "101.01.01")
    assert (fault["kind"], fault["code"]) == ("account_removed", "101.01.01")
    assert await odoo16.ok("account.account", "search", [[["code", "=", "101.01.01"]]]) == []
    assert [r["kind"] for r in (await cli("restore"))["restored"]] == ["account_removed"]
    assert await odoo16.ok("account.account", "search", [[["code", "=", "101.01.01"]]]) == [50]
    account = await cli("add-account", "403.02.01", "Otros ingresos Conekta", "income_other")
    assert account["display_name"] == "403.02.01 Otros ingresos Conekta"
    (move,) = await cli("moves")
    assert (move["name"], move["amount_total"]) == ("MISC/2026/11/0001", "1160.00")
    assert [(ln["account_code"], ln["debit"]) for ln in move["lines"]] == [
        ("101.01.01", "1160.00"),
        ("401.01.01", "0.00"),
    ]
    await cli("fault", "lock_error", "--count", "2")
    assert await cli("clear-faults") == {"cleared": 1}
    refused = await asyncio.to_thread(
        runner.invoke, cli_app, ["fault", "account_removed", "--url", odoo16.base]
    )
    assert refused.exit_code == 1
    assert (await odoo16.http.get("/_sandbox/moves")).json() == odoo16.sim.moves()
