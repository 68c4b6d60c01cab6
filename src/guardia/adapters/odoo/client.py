"""Odoo external-API client on httpx: JSON-RPC (`/jsonrpc`, `execute_kw`) for 16 to 18 and JSON-2
(`/json/2/<model>/<method>`, bearer API key) for 19+, chosen from the detected (or configured)
server version. Implements `Ledger` and `LedgerCatalog`.

Traps handled (docs/odoo.md): `authenticate` answers `false` instead of failing; JSON-RPC errors
come with HTTP 200; a None result omits `result`; a missing database is an OperationalError that
must not be retried; a non-existent account is reported as a foreign-key violation; duplicate
refs are accepted silently (Guardia searches by ref itself); `action_post` on a posted move is a
UserError that means success; `has_group` takes different arguments on 16 and 18+.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import stamina
import structlog

from guardia.adapters.odoo.errors import classify
from guardia.core.breaker import AsyncBreaker
from guardia.core.errors import InvalidInput, ProviderRejected, ProviderUnavailable
from guardia.ledger.model import (
    AccountInfo,
    AnalyticInfo,
    JournalEntry,
    JournalInfo,
    MoveInfo,
    RequiredRight,
    ServerInfo,
)

log = structlog.get_logger(__name__)

MOVE_FIELDS = ["id", "name", "state", "ref", "journal_id"]
# Methods that change nothing, so a retry after a timeout is harmless (odoo.md §4.3).
READ_ONLY_METHODS = frozenset(
    {"search_read", "read", "has_group", "check_access_rights", "has_access", "context_get"}
)


def _m2o_id(value: Any) -> int | None:
    """Read a many2one value (`[id, "name"]` or false)."""
    if isinstance(value, list | tuple) and value:
        return int(value[0])
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _money(value: Decimal) -> float:
    """Odoo's JSON takes pesos as numbers; the Decimal is already exact to the cent."""
    return float(value)


def _move(row: dict[str, Any]) -> MoveInfo:
    return MoveInfo(
        move_id=int(row["id"]),
        name=str(row.get("name") or "/"),
        state=str(row.get("state") or "draft"),
        ref=row.get("ref") or None,
        journal_id=_m2o_id(row.get("journal_id")),
    )


def _stuck_on_its_number(move: MoveInfo, exc: ProviderRejected) -> bool:
    """A draft whose create-time number is already taken by a posted move (odoo.md §5.1)."""
    # _check_unique_sequence_number: "Posted journal entry must have an unique sequence
    # number per company.\nProblematic numbers: …" (a ValidationError, 16-19).
    return move.state == "draft" and move.name != "/" and "unique sequence number" in exc.message


def _retry_hook(exc: Exception) -> bool:
    return isinstance(exc, ProviderUnavailable)


class OdooClient:
    """One Odoo database, one bot user."""

    def __init__(
        self,
        *,
        base_url: str,
        database: str,
        login: str,
        secret: str,
        version: str = "auto",
        company_id: int = 1,
        timeout: float = 15.0,
        attempts: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._db = database
        self._login = login
        self._secret = secret
        self._configured_version = version
        self._company_id = company_id
        self._attempts = attempts
        self._server: ServerInfo | None = None
        self._uid: int | None = None
        self._ids = itertools.count(1)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers={"User-Agent": "guardia/0.1"},
            follow_redirects=False,
            transport=transport,
        )
        self.breaker = AsyncBreaker("odoo")

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # --- transport -------------------------------------------------------------------------

    async def _post(self, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.post(url, **kwargs)
        except httpx.TimeoutException as exc:
            raise ProviderUnavailable(f"Odoo timed out on {url}") from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailable(f"Odoo unreachable: {type(exc).__name__}") from exc
        if response.status_code in (502, 503, 504):
            raise ProviderUnavailable(f"Odoo unavailable (HTTP {response.status_code})")
        return response

    async def _jsonrpc_once(self, service: str, method: str, args: list[Any]) -> Any:
        payload = {
            "jsonrpc": "2.0",
            "method": "call",
            "params": {"service": service, "method": method, "args": args},
            "id": next(self._ids),
        }
        response = await self._post("/jsonrpc", json=payload)
        if response.status_code == 404:
            raise ProviderRejected(
                "Odoo has no /jsonrpc here: check GUARDIA_ODOO_URL", cause="unknown"
            )
        if response.status_code >= 500:
            raise ProviderUnavailable(f"Odoo answered HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise ProviderUnavailable("Odoo answered a body that is not JSON") from exc
        error = body.get("error")
        if error:
            data = error.get("data") or {}
            raise classify(
                str(data.get("name", "")), str(data.get("message") or error.get("message"))
            )
        return body.get("result")  # absent when the method returned None (odoo.md §3.2)

    async def _json2_once(self, model: str, method: str, params: dict[str, Any]) -> Any:
        response = await self._post(
            f"/json/2/{model}/{method}",
            json=params,
            headers={
                "Authorization": f"bearer {self._secret}",
                "X-Odoo-Database": self._db,
            },
        )
        if response.status_code == 200:
            return response.json()
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text[:300]
        if isinstance(body, dict):
            name, message = str(body.get("name", "")), str(body.get("message", ""))
        else:  # one master revision answered a bare JSON string (odoo.md §3.3)
            name, message = "", str(body)
        raise classify(name, message, http_status=response.status_code)

    async def _retrying(self, fn: Any) -> Any:
        async for attempt in stamina.retry_context(
            on=_retry_hook, attempts=self._attempts, wait_initial=0.2, wait_max=3.0, timeout=30.0
        ):
            with attempt:
                return await self.breaker.call(fn)
        raise AssertionError("unreachable: stamina re-raises the last failure")

    # --- session ---------------------------------------------------------------------------

    async def server(self) -> ServerInfo:
        """Detect (once) the server version and pick the transport."""
        if self._server is not None:
            return self._server
        version = self._configured_version
        if version == "auto":
            version = await self._detect_version()
        try:
            major = int(version.split(".")[0].replace("saas~", ""))
        except ValueError as exc:
            raise InvalidInput(f"unreadable Odoo version {version!r}") from exc
        self._server = ServerInfo(version, major, "json2" if major >= 19 else "jsonrpc")
        return self._server

    async def _detect_version(self) -> str:
        try:
            info = await self._retrying(lambda: self._jsonrpc_once("common", "version", []))
            return str(info.get("server_serie") or info.get("server_version"))
        except ProviderRejected:
            pass  # no /jsonrpc (Odoo 22+): JSON-2 only
        response = await self._retrying(lambda: self._http.get("/web/version"))
        if response.status_code != 200:
            raise ProviderRejected("cannot read the Odoo version", cause="unknown")
        return str(response.json()["version"])

    async def authenticate(self) -> int:
        """Check the credentials; return the bot's uid."""
        server = await self.server()
        if server.transport == "json2":
            ctx = await self._retrying(lambda: self._json2_once("res.users", "context_get", {}))
            uid = ctx.get("uid") if isinstance(ctx, dict) else None
        else:
            uid = await self._retrying(
                lambda: self._jsonrpc_once(
                    "common", "authenticate", [self._db, self._login, self._secret, {}]
                )
            )
        if not isinstance(uid, int) or isinstance(uid, bool):
            # authenticate answers `false`, not an error, on bad credentials (odoo.md §2).
            raise ProviderRejected(
                f"Odoo rejected login {self._login!r} on database {self._db!r}", cause="auth"
            )
        self._uid = uid
        return uid

    async def _uid_or_login(self) -> int:
        return self._uid if self._uid is not None else await self.authenticate()

    async def call(
        self,
        model: str,
        method: str,
        *,
        args: list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """Call a method that changes nothing, retrying transient failures.

        `args`/`kwargs` are for JSON-RPC, named `params` for JSON-2. Only read-only methods may
        come here: a write goes through `call_once`.
        """
        if method not in READ_ONLY_METHODS:
            raise AssertionError(f"{model}.{method} writes: use call_once, never a retried call")
        send = await self._sender(model, method, args, kwargs, params)
        return await self._retrying(send)

    async def call_once(
        self,
        model: str,
        method: str,
        *,
        args: list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """Call a method that writes, exactly one time.

        A timeout or a reset after the request left may come after Odoo committed (odoo.md
        §4.3 "ambiguous outcome"), and Odoo does not deduplicate (`ref` is not unique), so a
        write is never retried here: the caller's job searches by `ref`, adopts, then retries.
        """
        send = await self._sender(model, method, args, kwargs, params)
        return await self.breaker.call(send)

    async def _sender(
        self,
        model: str,
        method: str,
        args: list[Any] | None,
        kwargs: dict[str, Any] | None,
        params: dict[str, Any] | None,
    ) -> Callable[[], Awaitable[Any]]:
        server = await self.server()
        if server.transport == "json2":
            named = dict(params or {})
            return lambda: self._json2_once(model, method, named)
        uid = await self._uid_or_login()
        call_args = [self._db, uid, self._secret, model, method, args or [], kwargs or {}]
        return lambda: self._jsonrpc_once("object", "execute_kw", call_args)

    async def search_read(
        self, model: str, domain: list[Any], fields: list[str], *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """search_read on both transports."""
        kw: dict[str, Any] = {"fields": fields}
        if limit is not None:
            kw["limit"] = limit
        rows = await self.call(
            model, "search_read", args=[domain], kwargs=kw, params={"domain": domain, **kw}
        )
        return list(rows or [])

    async def create(self, model: str, vals: dict[str, Any]) -> int:
        """Create one record; return its id (JSON-2 answers a list)."""
        result = await self.call_once(model, "create", args=[[vals]], params={"vals_list": [vals]})
        if isinstance(result, list):
            if len(result) != 1:
                raise ProviderUnavailable(f"Odoo create answered {result!r}")
            return int(result[0])
        return int(result)

    # --- catalog ---------------------------------------------------------------------------

    async def find_account(self, code: str) -> AccountInfo | None:
        """The account with this exact code in our company."""
        server = await self.server()
        company = (
            ["company_ids", "in", [self._company_id]]
            if server.major >= 18
            else ["company_id", "=", self._company_id]
        )
        fields = ["id", "code", "name", "account_type"]
        if server.major <= 18:
            fields.append("deprecated")
        rows = await self.search_read("account.account", [["code", "=", code], company], fields)
        if not rows:
            return None
        row = rows[0]
        return AccountInfo(
            account_id=int(row["id"]),
            code=str(row.get("code")),
            name=str(row.get("name")),
            account_type=str(row.get("account_type")),
            deprecated=bool(row.get("deprecated", False)),
        )

    async def create_account(self, code: str, name: str, account_type: str) -> int:
        """Create an account in our company; 18+ link companies through `company_ids`."""
        server = await self.server()
        company: dict[str, Any] = (
            {"company_ids": [(6, 0, [self._company_id])]}
            if server.major >= 18
            else {"company_id": self._company_id}
        )
        return await self.create(
            "account.account", {"code": code, "name": name, "account_type": account_type, **company}
        )

    async def find_journal(self, code: str) -> JournalInfo | None:
        """The journal with this code in our company."""
        rows = await self.search_read(
            "account.journal",
            [["code", "=", code], ["company_id", "=", self._company_id]],
            ["id", "code", "name", "type", "default_account_id"],
        )
        if len(rows) != 1:
            return None
        row = rows[0]
        return JournalInfo(
            journal_id=int(row["id"]),
            code=str(row.get("code")),
            name=str(row.get("name")),
            journal_type=str(row.get("type")),
            default_account_id=_m2o_id(row.get("default_account_id")),
        )

    async def get_analytic(self, analytic_id: int) -> AnalyticInfo | None:
        """Read the analytic account (Odoo accepts unknown ids silently, so we must)."""
        fields = ["id", "name", "active", "company_id"]
        rows = await self.call(
            "account.analytic.account",
            "read",
            args=[[analytic_id]],
            kwargs={"fields": fields},
            params={"ids": [analytic_id], "fields": fields},
        )
        if not rows:
            return None
        row = rows[0]
        return AnalyticInfo(
            analytic_id=int(row["id"]),
            name=str(row.get("name")),
            active=bool(row.get("active", True)),
            company_id=_m2o_id(row.get("company_id")),
        )

    async def has_group(self, group: str) -> bool:
        """Whether the bot holds a group; the call's shape differs by version (odoo.md §8.2)."""
        server = await self.server()
        uid = await self._uid_or_login()
        if server.transport == "json2":
            result = await self.call(
                "res.users", "has_group", params={"ids": [uid], "group_ext_id": group}
            )
            return bool(result)
        if server.major >= 18:
            return bool(await self.call("res.users", "has_group", args=[[uid], group]))
        try:
            return bool(await self.call("res.users", "has_group", args=[group]))
        except ProviderRejected:
            if server.major != 17:
                raise
        # 17 is unverified (odoo.md §8.2): after a TypeError on the 16 form, try the 18 form.
        return bool(await self.call("res.users", "has_group", args=[[uid], group]))

    async def missing_rights(self, rights: tuple[RequiredRight, ...]) -> list[RequiredRight]:
        """Ask Odoo's ACLs for each right, writing nothing (odoo.md §8.2 "Access probes").

        `check_access_rights(op, raise_exception=False)` answers true/false up to 18 (deprecated
        there); 19 replaced it with the record method `has_access(op)` [inf], asked on no ids.
        """
        server = await self.server()
        missing = []
        for right in rights:
            if server.major >= 19:
                granted = await self.call(
                    right.model, "has_access", params={"operation": right.operation}
                )
            else:
                granted = await self.call(
                    right.model,
                    "check_access_rights",
                    args=[right.operation],
                    kwargs={"raise_exception": False},
                )
            if not granted:
                missing.append(right)
        return missing

    # --- ledger ----------------------------------------------------------------------------

    async def find_moves(self, ref: str, journal_id: int) -> list[MoveInfo]:
        """Moves with this exact ref in the journal, not cancelled, newest first."""
        rows = await self.search_read(
            "account.move",
            [["ref", "=", ref], ["journal_id", "=", journal_id], ["state", "!=", "cancel"]],
            MOVE_FIELDS,
        )
        return sorted((_move(r) for r in rows), key=lambda m: m.move_id, reverse=True)

    async def create_move(self, entry: JournalEntry) -> int:
        """Create the draft move."""
        lines = []
        for line in entry.lines:
            vals: dict[str, Any] = {
                "account_id": line.account_id,
                "name": line.label,
                "debit": _money(line.debit),
                "credit": _money(line.credit),
            }
            if line.partner_id is not None:
                vals["partner_id"] = line.partner_id
            if line.analytic_account_id is not None:
                vals["analytic_distribution"] = {str(line.analytic_account_id): 100}
            lines.append([0, 0, vals])
        vals_move: dict[str, Any] = {
            # Odoo 16 numbers the first draft of a period at create, and drafts created at the
            # same moment all get that number; posting keeps it, so all but one would fail on
            # every retry. "/" protects the name: Odoo numbers the move when it is posted (16-19;
            # 18+ never numbers drafts, addons/account/models/account_move.py `_compute_name`).
            "name": "/",
            "move_type": "entry",
            "journal_id": entry.journal_id,
            "date": entry.entry_date.isoformat(),
            "ref": entry.ref,
            "line_ids": lines,
        }
        if entry.partner_id is not None:
            # For entries Odoo leaves the header partner empty unless told (odoo.md §5.1).
            vals_move["partner_id"] = entry.partner_id
        return await self.create("account.move", vals_move)

    async def read_move(self, move_id: int) -> MoveInfo | None:
        """Read one move."""
        rows = await self.call(
            "account.move",
            "read",
            args=[[move_id]],
            kwargs={"fields": MOVE_FIELDS},
            params={"ids": [move_id], "fields": MOVE_FIELDS},
        )
        return _move(rows[0]) if rows else None

    async def post_move(self, move_id: int) -> MoveInfo:
        """Post a move; one that is already posted counts as success.

        Odoo 16 says "…is already posted." while 18+ says "…must be in draft." (and 17+ posts
        an entry's reversal itself), so after a rejection the move is re-read and its state,
        not the message, decides.
        """
        try:
            await self._action_post(move_id)
        except ProviderRejected as exc:
            current = await self.read_move(move_id)
            if current is not None and current.state == "posted":
                log.info("odoo_move_already_posted", move_id=move_id, odoo_said=exc.message[:120])
                return current
            if current is None or not _stuck_on_its_number(current, exc):
                raise
            # A draft numbered at create (by Odoo 16, before Guardia sent "/") that shares its
            # number with a posted move: posting never renumbers it, so give it back "/" and
            # post again. Renaming keeps the one move (and its id) that the ref search found.
            log.warning("odoo_draft_renumbered", move_id=move_id, stuck_name=current.name)
            await self.call_once(
                "account.move",
                "write",
                args=[[move_id], {"name": "/"}],
                params={"ids": [move_id], "vals": {"name": "/"}},
            )
            await self._action_post(move_id)
        move = await self.read_move(move_id)
        if move is None:
            raise ProviderRejected(f"Odoo move {move_id} vanished", cause="validation")
        return move

    async def _action_post(self, move_id: int) -> None:
        await self.call_once(
            "account.move", "action_post", args=[[move_id]], params={"ids": [move_id]}
        )

    async def reverse_move(self, move_id: int, on: date, reason: str) -> MoveInfo:
        """Reverse a posted move through Odoo's reversal wizard, then post the reversal."""
        wizard_vals: dict[str, Any] = {
            "move_ids": [[6, 0, [move_id]]],
            "date": on.isoformat(),
            "reason": reason,
        }
        original = await self.read_move(move_id)
        if original is not None and original.journal_id is not None:
            wizard_vals["journal_id"] = original.journal_id
        wizard_id = await self.create("account.move.reversal", wizard_vals)
        action = await self.call_once(
            "account.move.reversal",
            "reverse_moves",
            args=[[wizard_id]],
            params={"ids": [wizard_id]},
        )
        reversal_id = action.get("res_id") if isinstance(action, dict) else None
        if not reversal_id:
            rows = await self.search_read(
                "account.move", [["reversed_entry_id", "=", move_id]], MOVE_FIELDS
            )
            if not rows:
                raise ProviderRejected(
                    f"Odoo made no reversal of move {move_id}", cause="validation"
                )
            reversal_id = max(int(r["id"]) for r in rows)
        return await self.post_move(int(reversal_id))

    async def find_reversal(self, move_id: int) -> MoveInfo | None:
        """The newest non-cancelled reversal of a move."""
        rows = await self.search_read(
            "account.move",
            [["reversed_entry_id", "=", move_id], ["state", "!=", "cancel"]],
            MOVE_FIELDS,
        )
        moves = sorted((_move(r) for r in rows), key=lambda m: m.move_id, reverse=True)
        return moves[0] if moves else None

    async def ensure_partner(self, ref: str, name: str, email: str | None) -> int:
        """Find the partner by our stable external ref, or create it."""
        rows = await self.search_read("res.partner", [["ref", "=", ref]], ["id"], limit=1)
        if rows:
            return int(rows[0]["id"])
        vals: dict[str, Any] = {"name": name or ref, "ref": ref}
        if email:
            vals["email"] = email
        return await self.create("res.partner", vals)
