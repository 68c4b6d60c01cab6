"""The Odoo client over recorded shapes (docs/odoo.md §3, §4, §10): transports, traps, causes."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from guardia.adapters.odoo.client import OdooClient
from guardia.adapters.odoo.errors import classify
from guardia.core.errors import ProviderRejected, ProviderUnavailable
from guardia.ledger.model import two_line_entry


def rpc_error(name: str, message: str) -> dict[str, Any]:
    return {
        "code": 200,
        "message": "Odoo Server Error",
        "data": {"name": name, "debug": "Traceback…", "message": message, "arguments": [message]},
    }


class FakeJsonRpc:
    """Answers /jsonrpc like Odoo 16: always HTTP 200, errors in the envelope."""

    def __init__(self, answers: dict[tuple[str, str], Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str, list[Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        params = body["params"]
        args = params["args"]
        if params["service"] == "object":
            key = (args[3], args[4])
        else:
            key = ("common", params["method"])
        self.calls.append((*key, args))
        answer = self.answers.get(key, None)
        envelope: dict[str, Any] = {"jsonrpc": "2.0", "id": body["id"]}
        if isinstance(answer, Exception):
            envelope["error"] = rpc_error(type(answer).__name__, str(answer))
        elif isinstance(answer, dict) and "__error__" in answer:
            envelope["error"] = rpc_error(answer["__error__"], answer["message"])
        elif answer is not None:
            envelope["result"] = answer
        return httpx.Response(200, json=envelope)


def client(handler: Any, version: str = "auto") -> OdooClient:
    return OdooClient(
        base_url="http://odoo.test",
        database="mxtest",
        login="bot",
        secret="key",
        version=version,
        transport=httpx.MockTransport(handler),
        attempts=2,
    )


VERSION_16 = {"server_version": "16.0", "server_serie": "16.0", "protocol_version": 1}


async def test_authenticate_false_is_an_auth_rejection_not_a_crash() -> None:
    odoo = client(
        FakeJsonRpc({("common", "version"): VERSION_16, ("common", "authenticate"): False})
    )
    with pytest.raises(ProviderRejected) as info:
        await odoo.authenticate()
    assert info.value.cause == "auth"


async def test_a_missing_database_is_permanent_despite_being_an_operational_error() -> None:
    answers = {
        ("common", "version"): VERSION_16,
        ("common", "authenticate"): {
            "__error__": "psycopg2.OperationalError",
            "message": 'connection to server failed: FATAL:  database "nodb" does not exist',
        },
    }
    with pytest.raises(ProviderRejected) as info:
        await client(FakeJsonRpc(answers)).authenticate()
    assert info.value.cause == "auth"


async def test_a_nonexistent_account_reported_as_a_foreign_key_is_missing_account() -> None:
    fk = (
        "The operation cannot be completed: another model requires the record being deleted.\n"
        "Constraint: account_move_line_account_id_fkey"
    )
    answers = {
        ("common", "version"): VERSION_16,
        ("common", "authenticate"): 2,
        ("account.move", "create"): {"__error__": "odoo.exceptions.ValidationError", "message": fk},
    }
    entry = two_line_entry(
        ref="ord_x",
        journal_id=7,
        entry_date=date(2026, 11, 27),
        amount=Decimal("10.00"),
        debit_account_id=50,
        credit_account_id=999,
        label="Pago",
        partner_id=None,
        analytic_account_id=1,
    )
    with pytest.raises(ProviderRejected) as info:
        await client(FakeJsonRpc(answers)).create_move(entry)
    assert info.value.cause == "missing_account"


async def test_posting_an_already_posted_move_is_success_and_none_results_are_tolerated() -> None:
    fake = FakeJsonRpc(
        {
            ("common", "version"): VERSION_16,
            ("common", "authenticate"): 2,
            ("account.move", "action_post"): {
                "__error__": "odoo.exceptions.UserError",
                "message": "The entry MISC/2026/11/0001 (id 1) is already posted.",
            },
            ("account.move", "read"): [
                {
                    "id": 1,
                    "name": "MISC/2026/11/0001",
                    "state": "posted",
                    "ref": "x",
                    "journal_id": [3, "MISC"],
                }
            ],
        }
    )
    move = await client(fake).post_move(1)
    assert (move.name, move.state, move.journal_id) == ("MISC/2026/11/0001", "posted", 3)


async def test_entries_are_sent_as_odoo_expects_them() -> None:
    fake = FakeJsonRpc(
        {
            ("common", "version"): VERSION_16,
            ("common", "authenticate"): 2,
            ("account.move", "create"): [5],
        }
    )
    entry = two_line_entry(
        ref="ord_x",
        journal_id=7,
        entry_date=date(2026, 11, 27),
        amount=Decimal("1160.00"),
        debit_account_id=50,
        credit_account_id=36,
        label="Pago",
        partner_id=8,
        analytic_account_id=1,
    )
    assert await client(fake).create_move(entry) == 5
    (vals,) = fake.calls[-1][2][5][0]
    assert vals["name"] == "/"  # numbered when posted, never at create (odoo.md §5.1)
    assert vals["move_type"] == "entry"
    assert vals["date"] == "2026-11-27"
    assert vals["partner_id"] == 8
    assert vals["line_ids"][0] == [
        0,
        0,
        {
            "account_id": 50,
            "name": "Pago",
            "debit": 1160.0,
            "credit": 0.0,
            "partner_id": 8,
            "analytic_distribution": {"1": 100},
        },
    ]


@pytest.mark.parametrize(
    ("version", "expected_args"),
    [("16.0", ["account.group_account_invoice"]), ("18.0", [[2], "account.group_account_invoice"])],
)
async def test_has_group_uses_the_form_of_the_server_version(
    version: str, expected_args: list[Any]
) -> None:
    fake = FakeJsonRpc(
        {
            ("common", "version"): {"server_serie": version},
            ("common", "authenticate"): 2,
            ("res.users", "has_group"): True,
        }
    )
    assert await client(fake).has_group("account.group_account_invoice") is True
    assert fake.calls[-1][2][5] == expected_args


async def test_version_17_falls_back_to_the_other_has_group_form_on_type_error() -> None:
    seen: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        args = body["params"]["args"]
        envelope: dict[str, Any] = {"jsonrpc": "2.0", "id": body["id"]}
        if body["params"]["method"] == "version":
            envelope["result"] = {"server_serie": "17.0"}
        elif body["params"]["method"] == "authenticate":
            envelope["result"] = 2
        else:
            seen.append(args[5])
            if args[5] == ["account.group_account_invoice"]:
                envelope["error"] = rpc_error(
                    "builtins.TypeError", "has_group() missing 1 required positional argument"
                )
            else:
                envelope["result"] = True
        return httpx.Response(200, json=envelope)

    assert await client(handler).has_group("account.group_account_invoice") is True
    assert seen == [["account.group_account_invoice"], [[2], "account.group_account_invoice"]]


async def test_json2_is_used_from_19_with_bearer_key_and_named_arguments() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/json/2/res.users/context_get":
            return httpx.Response(200, json={"lang": "en_US", "tz": False, "uid": 2})
        if request.url.path == "/json/2/account.move/create":
            return httpx.Response(200, json=[11])
        return httpx.Response(404, text="<html>not found</html>")

    odoo = client(handler, version="19.0")
    assert await odoo.authenticate() == 2
    assert await odoo.create("account.move", {"ref": "x"}) == 11
    assert seen[-1].headers["authorization"] == "bearer key"
    assert json.loads(seen[-1].content) == {"vals_list": [{"ref": "x"}]}


async def test_json2_statuses_map_to_causes_and_retries() -> None:
    answers = iter(
        [
            httpx.Response(409, json={"name": "odoo.exceptions.LockError", "message": "locked"}),
            httpx.Response(200, json=[{"id": 3}]),
        ]
    )
    odoo = client(lambda request: next(answers), version="19.0")
    assert await odoo.search_read("res.partner", [], ["id"]) == [{"id": 3}]
    unauthorized = client(
        lambda r: httpx.Response(
            401, json={"name": "werkzeug.exceptions.Unauthorized", "message": "Invalid apikey"}
        ),
        version="19.0",
    )
    with pytest.raises(ProviderRejected) as info:
        await unauthorized.authenticate()
    assert info.value.cause == "auth"


async def test_proxy_errors_and_resets_are_retried_then_reported_unavailable() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(503, text="<html>bad gateway</html>")

    with pytest.raises(ProviderUnavailable):
        await client(handler).server()
    assert calls == 2


@pytest.mark.parametrize(
    ("name", "message", "status", "expected"),
    [
        (
            "odoo.exceptions.AccessError",
            "You are not allowed to create 'Journal Entry'",
            None,
            "permission",
        ),
        ("odoo.exceptions.AccessDenied", "Access Denied", None, "auth"),
        ("odoo.exceptions.UserError", "The move is not balanced.", None, "validation"),
        (
            "odoo.exceptions.ValidationError",
            "Missing required account on accountable line.",
            None,
            "payload_incomplete",
        ),
        ("odoo.exceptions.UserError", "Object x.nope doesn't exist", None, "unknown"),
        (
            "odoo.exceptions.AccessError",
            "Private methods (such as _search) cannot be called remotely.",
            None,
            "unknown",
        ),
        ("builtins.ValueError", "Invalid field account.account.nofield in leaf", None, "unknown"),
    ],
)
def test_permanent_errors_carry_their_cause(
    name: str, message: str, status: int | None, expected: str
) -> None:
    error = classify(name, message, http_status=status)
    assert isinstance(error, ProviderRejected)
    assert error.cause == expected


@pytest.mark.parametrize(
    ("name", "message", "status"),
    [
        ("psycopg2.errors.SerializationFailure", "could not serialize access", None),
        ("odoo.exceptions.LockError", "locked", 409),
        ("", "internal server error", 500),
    ],
)
def test_lock_and_server_errors_are_retryable(name: str, message: str, status: int | None) -> None:
    assert isinstance(classify(name, message, http_status=status), ProviderUnavailable)


class TimingOut(FakeJsonRpc):
    """Like FakeJsonRpc, but the given calls time out (the request reached Odoo; no answer)."""

    def __init__(self, answers: dict[tuple[str, str], Any], stalls: dict[tuple[str, str], int]):
        super().__init__(answers)
        self.stalls = dict(stalls)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        response = super().__call__(request)
        key = self.calls[-1][:2]
        if self.stalls.get(key, 0) > 0:
            self.stalls[key] -= 1
            raise httpx.ReadTimeout("timed out", request=request)
        return response


def sent(fake: FakeJsonRpc, model: str, method: str) -> int:
    return sum(1 for call in fake.calls if call[:2] == (model, method))


LOGGED_IN = {("common", "version"): VERSION_16, ("common", "authenticate"): 2}


async def test_a_create_whose_answer_times_out_is_sent_once_never_retried_below_the_job() -> None:
    fake = TimingOut({**LOGGED_IN, ("account.move", "create"): 5}, {("account.move", "create"): 1})
    entry = two_line_entry(
        ref="ord_x",
        journal_id=7,
        entry_date=date(2026, 11, 27),
        amount=Decimal("10.00"),
        debit_account_id=50,
        credit_account_id=36,
        label="Pago",
        partner_id=None,
        analytic_account_id=None,
    )
    with pytest.raises(ProviderUnavailable):
        await client(fake).create_move(entry)
    assert sent(fake, "account.move", "create") == 1


async def test_a_partner_create_whose_answer_times_out_is_sent_once() -> None:
    fake = TimingOut(
        {**LOGGED_IN, ("res.partner", "search_read"): [], ("res.partner", "create"): 7},
        {("res.partner", "create"): 1},
    )
    with pytest.raises(ProviderUnavailable):
        await client(fake).ensure_partner("conekta:cus_1", "Ana", None)
    assert sent(fake, "res.partner", "create") == 1


async def test_posting_and_reversing_are_sent_once_when_their_answer_times_out() -> None:
    posting = TimingOut(
        {**LOGGED_IN, ("account.move", "action_post"): False},
        {("account.move", "action_post"): 1},
    )
    with pytest.raises(ProviderUnavailable):
        await client(posting).post_move(1)
    assert sent(posting, "account.move", "action_post") == 1
    reversing = TimingOut(
        {
            **LOGGED_IN,
            ("account.move", "read"): [{"id": 1, "name": "X", "state": "posted", "journal_id": 7}],
            ("account.move.reversal", "create"): 4,
        },
        {("account.move.reversal", "create"): 1},
    )
    with pytest.raises(ProviderUnavailable):
        await client(reversing).reverse_move(1, date(2026, 11, 28), "refund")
    assert sent(reversing, "account.move.reversal", "create") == 1


async def test_read_only_calls_keep_their_retries() -> None:
    fake = TimingOut(
        {**LOGGED_IN, ("res.partner", "search_read"): [{"id": 7}]},
        {("res.partner", "search_read"): 1},
    )
    assert await client(fake).ensure_partner("conekta:cus_1", "Ana", None) == 7
    assert sent(fake, "res.partner", "search_read") == 2
