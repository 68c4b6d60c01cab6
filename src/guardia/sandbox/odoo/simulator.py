"""The Odoo simulator: the `common`, `db` and `object` services, JSON-2 calls, and fault knobs.

Transport-neutral: `app.py` wraps these calls in the JSON-RPC, JSON-2 and XML-RPC envelopes.
All state lives on the event loop that serves the app, so there are no locks. Every `object`
call is one transaction, rolled back on error (odoo.md §3.3), and only `/_sandbox` bypasses
Odoo's rules.
"""

from __future__ import annotations

import asyncio
import copy
import hmac
import inspect
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, TypeVar

from guardia.core.clock import Clock, SystemClock
from guardia.sandbox.odoo import accounting, models  # noqa: F401 - registers the model classes
from guardia.sandbox.odoo.errors import (
    AccessDenied,
    AccessError,
    HttpException,
    LockError,
    OdooError,
    OperationalError,
    PythonError,
    SerializationFailure,
    UserError,
    python_error,
)
from guardia.sandbox.odoo.faults import REMOVALS, Fault, FaultBook, FaultError, parse_fault
from guardia.sandbox.odoo.orm import BaseModel, Env, Registry
from guardia.sandbox.odoo.schema import SELECTION_ACCOUNT_TYPES, build_schema
from guardia.sandbox.odoo.seed import BOT_UID, account_row, seed

SUPPORTED: Final = (16, 17, 18, 19)
# Exactly the groups README.md tells the customer to give the bot: an internal user with
# Invoicing / Billing and Contact Creation (it creates a partner per customer), nothing more.
BOT_GROUPS: Final = frozenset(
    {"base.group_user", "base.group_partner_manager", "account.group_account_invoice"}
)
INVOICE_GROUP: Final = "account.group_account_invoice"
# Methods that never write: no snapshot, no lock_error.
READ_ONLY: Final = frozenset(
    {
        "search",
        "search_read",
        "search_count",
        "read",
        "fields_get",
        "check_access_rights",
        "has_access",
        "has_group",
        "context_get",
        "exists",
    }
)
_COMMON: Final = ("login", "about", "timezone_get", "version", "authenticate", "set_loglevel")
_DB_OPEN: Final = ("db_exist", "list", "list_lang", "server_version")
_DB_ADMIN: Final = (
    "create_database",
    "duplicate_database",
    "drop",
    "dump",
    "restore",
    "rename",
    "change_admin_password",
    "migrate_databases",
)
_BEARER = re.compile(r"^bearer\s+(.+)$", re.IGNORECASE)
_CALL_ERRORS: Final = (TypeError, ValueError, KeyError, IndexError, AttributeError, AssertionError)

F = TypeVar("F", bound=Callable[..., Any])


def _named(fn: F) -> F:
    """Make Python's TypeError texts name the function as Odoo's does ("exp_login() ...")."""
    fn.__qualname__ = fn.__name__
    return fn


@dataclass
class OdooSimConfig:
    """Settings of one simulated Odoo server and database."""

    version: str = "16.0"  # "16.0".."19.0": picks the has_group form and JSON-2 availability
    database: str = "mxtest"
    login: str = "guardia-bot"
    password: str = "bot-password"  # noqa: S105 - sandbox secret; also accepted on execute_kw
    api_keys: tuple[str, ...] = ("odoo-test-api-key",)  # JSON-2 bearer keys, usable as password
    latency_seconds: float = 0.0
    # account.move ids start here: a database that was used before. `guardia up` passes one
    # past the highest move Guardia remembers, so a restarted sandbox never reuses a move id.
    first_move_id: int = 1


@dataclass
class Outcome:
    """A method's return value, and how long to stall before answering (after commit)."""

    value: Any
    stall: float = 0.0


class OdooSimulator:
    """A local, stateful stand-in for an Odoo 16-19 server with `account` + `l10n_mx`."""

    def __init__(self, config: OdooSimConfig, *, clock: Clock | None = None) -> None:
        match = re.fullmatch(r"(\d+)\.0", config.version)
        if match is None or int(match.group(1)) not in SUPPORTED:
            raise ValueError(f"unsupported Odoo version {config.version!r}; use 16.0 to 19.0")
        self.config = config
        self.major = int(match.group(1))
        self.clock: Clock = clock or SystemClock()
        self.faults = FaultBook()
        self.schemas = build_schema(self.major)
        self.db = seed(self.major, config.login)
        self.db.sequences["account.move"] = max(
            self.db.sequences["account.move"], config.first_move_id
        )
        self.registry = Registry(self.db, self.schemas, self.major, self.clock, self._groups_of)
        self._generation = 0

    # --- inspection ----------------------------------------------------------------------------

    def moves(self) -> list[dict[str, Any]]:
        """Return every account.move with its lines, amounts as exact decimal strings."""
        tables = self.db.tables
        out = []
        for move in sorted(tables["account.move"].values(), key=lambda m: m["id"]):
            lines = [
                line
                for line in sorted(tables["account.move.line"].values(), key=lambda ln: ln["id"])
                if line["move_id"] == move["id"]
            ]
            journal = self.db.row("account.journal", move["journal_id"]) or {}
            out.append(
                {
                    "id": move["id"],
                    "name": move.get("name") or "/",
                    "state": move["state"],
                    "ref": move.get("ref"),
                    "move_type": move["move_type"],
                    "date": move["date"],
                    "journal_id": move["journal_id"],
                    "journal_code": journal.get("code"),
                    "partner_id": move.get("partner_id"),
                    "reversed_entry_id": move.get("reversed_entry_id"),
                    "amount_total": str(sum((ln["debit"] for ln in lines), Decimal("0.00"))),
                    "lines": [
                        {
                            "id": line["id"],
                            "account_id": line.get("account_id"),
                            "account_code": (
                                self.db.row("account.account", line["account_id"]) or {}
                            ).get("code")
                            if line.get("account_id")
                            else None,
                            "partner_id": line.get("partner_id"),
                            "name": line.get("name"),
                            "debit": str(line["debit"]),
                            "credit": str(line["credit"]),
                            "balance": str(line["balance"]),
                            "analytic_distribution": copy.deepcopy(
                                line.get("analytic_distribution")
                            ),
                        }
                        for line in lines
                    ],
                }
            )
        return out

    def state(self) -> dict[str, Any]:
        """Return the simulator's settings (never secrets) and active faults."""
        return {
            "version": self.config.version,
            "database": self.config.database,
            "login": self.config.login,
            "uid": BOT_UID,
            "json2": self.major >= 19,
            "faults": self.faults.to_json(),
        }

    # --- fault knobs ---------------------------------------------------------------------------

    def add_fault(self, body: object) -> dict[str, Any]:
        """Install a fault; removals take effect at once. Raises FaultError on a bad body."""
        fault = parse_fault(body, self._now())
        if fault.kind == "account_removed":
            fault.removed = {"account.account": self._remove("account.account", fault.code)}
        elif fault.kind == "journal_removed":
            fault.removed = {"account.journal": self._remove("account.journal", fault.code)}
        self.faults.add(fault)
        return fault.to_json()

    def clear_faults(self) -> dict[str, int]:
        """Remove every fault, undo removals and release stalled answers."""
        removed = self.faults.clear()
        for fault in removed:
            self._undo(fault)
        self._generation += 1
        return {"cleared": len(removed)}

    def reset_faults(self) -> None:
        """Remove every fault (Python access for tests)."""
        self.clear_faults()

    def restore(self) -> dict[str, Any]:
        """Undo every removal (accounts, journals, permissions); other faults stay."""
        restored = [f for f in self.faults.faults if f.kind in REMOVALS]
        for fault in restored:
            self._undo(fault)
            self.faults.remove(fault)
        return {"restored": [f.to_json() for f in restored]}

    def add_account(self, body: object) -> dict[str, Any]:
        """(Re-)create an account with a new id, as an accountant would (`/_sandbox/accounts`)."""
        if not isinstance(body, dict):
            raise FaultError("expected a JSON object")
        code, name, kind = body.get("code"), body.get("name"), body.get("account_type")
        if not isinstance(code, str) or not code or not isinstance(name, str) or not name:
            raise FaultError("code and name: expected non-empty strings")
        if kind not in {key for key, _ in SELECTION_ACCOUNT_TYPES}:
            raise FaultError(f"account_type: {kind!r} is not an Odoo account type")
        accounts = self.db.tables["account.account"]
        if any(a["code"] == code for a in accounts.values()):
            raise FaultError("The code of the account must be unique per company !")
        # A re-created account is a new record: the removed one never comes back.
        for fault in self.faults.faults:
            ids = fault.removed.get("account.account", [])
            gone = self.db.tombstones.get("account.account", {})
            fault.removed["account.account"] = [
                i for i in ids if gone.get(i, {}).get("code") != code
            ]
        rid = self.db.next_id("account.account")
        row = account_row(self.major, rid, code, name, str(kind), bool(body.get("reconcile")))
        if body.get("deprecated"):
            row["deprecated" if self.major <= 18 else "active"] = self.major <= 18
        accounts[rid] = row
        env = Env(self.registry, BOT_UID)
        result: dict[str, Any] = env["account.account"].browse([rid]).read()[0]
        return result

    def _remove(self, model: str, code: str | None) -> list[int]:
        table = self.db.tables[model]
        ids = [rid for rid, row in table.items() if row.get("code") == code]
        if not ids:
            raise FaultError(f"code: no {model} with code {code!r}")
        graveyard = self.db.tombstones.setdefault(model, {})
        for rid in ids:
            graveyard[rid] = table.pop(rid)
        return ids

    def _undo(self, fault: Fault) -> None:
        for model, ids in fault.removed.items():
            graveyard = self.db.tombstones.get(model, {})
            table = self.db.tables[model]
            for rid in ids:
                row = graveyard.pop(rid, None)
                if row is not None and not any(
                    r.get("code") == row.get("code") for r in table.values()
                ):
                    table[rid] = row
        fault.removed = {}

    async def delay(self, seconds: float) -> None:
        """Sleep up to `seconds`; clearing the faults (from any thread) wakes every sleeper."""
        if seconds <= 0:
            return
        generation = self._generation
        deadline = time.monotonic() + seconds
        # A plain counter, polled, instead of an asyncio.Event: tests may clear the faults from
        # another thread or event loop than the one serving the app.
        while self._generation == generation:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.02))

    def take_proxy_fault(self) -> Fault | None:
        """Consume and return a `down` or `error_5xx` fault for the HTTP layer, if any."""
        return self.faults.take("down") or self.faults.take("error_5xx")

    def begin_transaction(self) -> None:
        """Open the arriving request's transaction: it sees what is committed now (and a slow
        answer holds it open, so requests held together do not see each other's writes)."""
        self.db.begin()

    def slow_seconds(self) -> float:
        """Return how long to hold a request (slow fault plus configured latency)."""
        slow = self.faults.take("slow")
        return (slow.seconds if slow else 0.0) + self.config.latency_seconds

    def database_available(self, name: str | None = None) -> bool:
        """Return whether the configured database (or `name`) exists."""
        if self.faults.active("database_missing"):
            return False
        return name is None or name == self.config.database

    # --- authentication ------------------------------------------------------------------------

    def _groups_of(self, uid: int) -> frozenset[str]:
        if uid != BOT_UID:
            return (
                frozenset({"base.group_user"})
                if uid in self.db.tables["res.users"]
                else frozenset()
            )
        removed = {
            f.code or INVOICE_GROUP for f in self.faults.faults if f.kind == "permission_removed"
        }
        return BOT_GROUPS - removed

    def _check_db(self, db: Any) -> None:
        if not isinstance(db, str) or not self.database_available(db):
            # odoo.md §4.2: config error, not a transient one, despite the class name.
            raise OperationalError(
                'connection to server at "localhost" (127.0.0.1), port 5432 failed: '
                f'FATAL:  database "{db}" does not exist\n'
            )

    def _secret_ok(self, secret: Any, *, password_allowed: bool) -> bool:
        if not isinstance(secret, str) or not secret or self.faults.active("auth_revoked"):
            return False
        accepted = [*self.config.api_keys, *([self.config.password] if password_allowed else [])]
        return any(hmac.compare_digest(secret.encode(), k.encode()) for k in accepted)

    def _check_credentials(self, uid: int, password: Any) -> None:
        if uid != BOT_UID or not self._secret_ok(password, password_allowed=True):
            raise AccessDenied()

    def bearer_uid(self, authorization: str | None) -> int:
        """Return the uid of a JSON-2 bearer key, or raise 401 as `_auth_method_bearer` does."""
        match = _BEARER.match(authorization or "")
        if match is None:
            raise HttpException(
                401, "User not authenticated, use an API Key with a Bearer Authorization header."
            )
        if not self._secret_ok(match.group(1), password_allowed=False):
            raise HttpException(401, "Invalid apikey")
        return BOT_UID

    # --- services ------------------------------------------------------------------------------

    def dispatch(self, service: Any, method: Any, params: Any) -> Outcome:
        """Run `dispatch_rpc(service, method, params)` for JSON-RPC and XML-RPC."""
        try:
            if not isinstance(params, list | tuple):
                raise python_error("TypeError", "params must be a list")
            if service == "common":
                return Outcome(self._common(method, list(params)))
            if service == "db":
                return Outcome(self._db(method, list(params)))
            if service == "object":
                return self._object(method, list(params))
            raise PythonError("KeyError", service)
        except _CALL_ERRORS as exc:
            raise PythonError.wrap(exc) from exc

    def _common(self, method: Any, params: list[Any]) -> Any:
        if method not in _COMMON:
            raise python_error("Exception", f"Method not found: {method}")
        handler: Callable[..., Any] = getattr(self, f"exp_{method}")
        return handler(*params)

    @_named
    def exp_version(self) -> dict[str, Any]:
        """Return `common.version()` (odoo.md §10.2)."""
        return {
            "server_version": self.config.version,
            "server_version_info": [self.major, 0, 0, "final", 0, ""],
            "server_serie": self.config.version,
            "protocol_version": 1,
        }

    @_named
    def exp_authenticate(self, db: Any, login: Any, password: Any, user_agent_env: Any) -> Any:
        """Return uid 2, or False (not a fault) on bad credentials (odoo.md §2)."""
        self._check_db(db)
        ok = login == self.config.login and self._secret_ok(password, password_allowed=True)
        return BOT_UID if ok else False

    @_named
    def exp_login(self, db: Any, login: Any, password: Any) -> Any:
        """Return uid 2 or False."""
        return self.exp_authenticate(db, login, password, {})

    @_named
    def exp_about(self, extended: Any = False) -> Any:
        """Return the about text."""
        info = "See http://openerp.com"
        return [info, self.config.version] if extended else info

    @_named
    def exp_timezone_get(self, db: Any, login: Any, password: Any) -> str:
        """Return the server time zone."""
        return "UTC"

    @_named
    def exp_set_loglevel(self, loglevel: Any, logger: Any = None) -> bool:
        """Accept a log level change."""
        return True

    def _db(self, method: Any, params: list[Any]) -> Any:
        if method in _DB_OPEN:
            return getattr(self, f"exp_{method}")(*params)
        if method in _DB_ADMIN:
            raise AccessDenied()  # check_super: no master password is ever accepted
        raise PythonError("KeyError", f"Method not found: {method}")

    @_named
    def exp_list(self, document: Any = False) -> list[str]:
        """Return the databases."""
        return [self.config.database] if self.database_available() else []

    @_named
    def exp_db_exist(self, db_name: Any) -> bool:
        """Return whether a database exists."""
        return self.database_available(db_name)

    @_named
    def exp_server_version(self) -> str:
        """Return the server version."""
        return self.config.version

    @_named
    def exp_list_lang(self) -> list[list[str]]:
        """Return the installable languages (a short list)."""
        return [["en_US", "English (US)"], ["es_MX", "Spanish (MX) / Español (MX)"]]

    def _object(self, method: Any, params: list[Any]) -> Outcome:
        # odoo/service/model.py dispatch: db, int(uid), password, then security.check.
        db, uid, password = params[0], int(params[1]), params[2]
        self._check_db(db)
        self._check_credentials(uid, password)
        if method == "execute_kw":

            @_named
            def execute_kw(obj: Any, method: Any, args: Any, kw: Any = None) -> Outcome:
                """Bind like `execute_kw(db, uid, pw, obj, method, args, kw=None)`."""
                if not isinstance(args, list | tuple):
                    raise python_error(
                        "TypeError",
                        f"argument after * must be an iterable, not {type(args).__name__}",
                    )
                if kw is not None and not isinstance(kw, Mapping):
                    raise python_error(
                        "TypeError", f"argument after ** must be a mapping, not {type(kw).__name__}"
                    )
                return self.execute(uid, obj, method, list(args), dict(kw or {}))

            return execute_kw(*params[3:])
        if method == "execute":
            if len(params) < 5:
                raise python_error("TypeError", "execute() missing required positional arguments")
            return self.execute(uid, params[3], params[4], list(params[5:]), {})
        raise python_error("NameError", f"Method not available {method}")

    def execute(
        self,
        uid: int,
        model: Any,
        method: Any,
        args: list[Any],
        kwargs: dict[str, Any],
        transport: str = "jsonrpc",
    ) -> Outcome:
        """Run `execute_kw` for an authenticated uid: checks in Odoo's order, then `call_kw`."""
        if not isinstance(method, str):
            raise python_error(
                "AttributeError", f"'{type(method).__name__}' object has no attribute 'startswith'"
            )
        if self.major <= 17 and method.startswith("_"):
            # check_method_name runs before the model lookup up to 17 (odoo.md §4.2).
            raise AccessError(f"Private methods (such as {method}) cannot be called remotely.")
        if not isinstance(model, str) or model not in self.schemas:
            raise UserError(f"Object {model} doesn't exist")
        context = kwargs.pop("context", None)
        env = Env(self.registry, uid, context if isinstance(context, Mapping) else None)
        records = env[model]
        fn, api = self._public(records, method)
        if api == "either":
            api = "multi" if args and isinstance(args[0], list) else "model"
        if api in ("model", "model_create"):
            target, call_args = records, args
        else:
            if not args:
                raise python_error("IndexError", "list index out of range")
            target, call_args = records.browse(args[0]), args[1:]

        def call() -> Any:
            result = fn(target, *call_args, **kwargs)
            if api == "model_create":
                if not call_args:
                    raise python_error("IndexError", "list index out of range")
                return result.ids[0] if isinstance(call_args[0], Mapping) else list(result.ids)
            return list(result.ids) if isinstance(result, BaseModel) else result

        return self._run(model, method, call, transport)

    def _public(self, records: BaseModel, method: str) -> tuple[Callable[..., Any], str]:
        found = type(records).public_method(method, self.major)
        if found is not None and not method.startswith("_"):
            return found[0], found[1].api
        name = records._name
        if self.major >= 18:
            # get_public_method (18+): existence first, then privacy.
            if method.startswith("_") and method in type(records)._private:
                raise AccessError(
                    f"Private methods (such as '{name}.{method}') cannot be called remotely."
                )
            raise python_error("AttributeError", f"The method '{name}.{method}' does not exist")
        raise python_error("AttributeError", f"type object '{name}' has no attribute '{method}'")

    def _run(self, model: str, method: str, call: Callable[[], Any], transport: str) -> Outcome:
        writes = method not in READ_ONLY
        if writes and self.faults.take("lock_error"):
            if transport == "json2":
                raise LockError("Could not obtain a lock on the records, try again later.")  # [inf]
            # Odoo retried MAX_TRIES_ON_CONCURRENCY_FAILURE times, then gave up (§4.3).
            raise SerializationFailure("could not serialize access due to concurrent update\n")
        snapshot = self.db.snapshot() if writes else None
        try:
            value = call()
        except OdooError:
            if snapshot is not None:
                self.db.rollback(snapshot)
            raise
        except _CALL_ERRORS as exc:
            if snapshot is not None:
                self.db.rollback(snapshot)
            raise PythonError.wrap(exc) from exc
        if writes:
            self.db.commits += 1
        stall = 0.0
        if model == "account.move" and method == "create":
            fault = self.faults.take("timeout_after_commit")
            stall = fault.seconds if fault is not None else 0.0
        return Outcome(value, stall)

    # --- JSON-2 --------------------------------------------------------------------------------

    def json2(self, model: str, method: str, authorization: str | None, body: bytes) -> Outcome:
        """Run `POST /json/2/<model>/<method>` (addons/rpc/controllers/json2.py, 19.0)."""
        uid = self.bearer_uid(authorization)
        params: Any = {}
        if body.strip():
            try:
                params = json.loads(body)
            except ValueError as exc:
                raise HttpException(
                    400, f"could not parse the body as json: {exc.args[0]}"
                ) from exc
            if not isinstance(params, dict):
                raise HttpException(400, "could not parse the body, expecting a json object")
        ids = params.pop("ids", ())
        context = params.pop("context", {})
        if model not in self.schemas:
            raise HttpException(404, f"the model {model!r} does not exist")
        env = Env(self.registry, uid, context if isinstance(context, Mapping) else None)
        records = env[model]
        try:
            fn, api = self._public(records, method)
        except PythonError as exc:
            raise HttpException(404, str(exc.args[0])) from exc
        if api in ("model", "model_create") and ids:
            raise HttpException(422, f"cannot call {model}.{method} with ids")
        target = records.browse(ids)
        try:
            inspect.signature(fn).bind(target, **params)
        except TypeError as exc:
            raise HttpException(422, str(exc.args[0])) from exc

        def call() -> Any:
            result = fn(target, **params)
            return list(result.ids) if isinstance(result, BaseModel) else result

        return self._run(model, method, call, "json2")

    def web_version(self) -> dict[str, Any]:
        """Return `GET /web/version` (19+)."""
        return {
            "version_info": [self.major, 0, 0, "final", 0, ""],
            "version": self.config.version,
        }

    def _now(self) -> str:
        return self.clock.now().isoformat()
