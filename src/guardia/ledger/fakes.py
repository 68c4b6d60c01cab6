"""An in-memory ledger that keeps Odoo's rules (docs/odoo.md §10): duplicate refs accepted,
entries must balance, unknown or deprecated accounts and unknown journals rejected with Odoo's
causes, posting a posted move is a no-op, reversals swap debit and credit, and every write needs
the group Odoo's ACL asks for. For unit tests and the contract suite."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

from guardia.core.errors import ProviderRejected, ProviderUnavailable
from guardia.ledger.model import (
    AccountInfo,
    AnalyticInfo,
    EntryLine,
    JournalEntry,
    JournalInfo,
    MoveInfo,
    RequiredRight,
    ServerInfo,
)


@dataclass
class FakeMove:
    """A move as the fake ledger stores it."""

    move_id: int
    name: str
    state: str
    ref: str
    journal_id: int
    entry_date: date
    lines: tuple[EntryLine, ...]
    partner_id: int | None
    reversed_entry_id: int | None = None

    def info(self) -> MoveInfo:
        """The public view."""
        return MoveInfo(self.move_id, self.name, self.state, self.ref, self.journal_id)


@dataclass
class InMemoryLedger:
    """Odoo's chart of §7.2 in memory, with the bot holding the groups the README lists."""

    accounts: dict[int, AccountInfo] = field(
        default_factory=lambda: {
            50: AccountInfo(50, "101.01.01", "Cash", "asset_cash", False),
            51: AccountInfo(51, "102.01.04", "Bank", "asset_cash", False),
            36: AccountInfo(36, "401.01.01", "Ventas", "income", False),
        }
    )
    journals: dict[int, JournalInfo] = field(
        default_factory=lambda: {
            3: JournalInfo(3, "MISC", "Miscellaneous Operations", "general", None),
            7: JournalInfo(7, "CSH1", "Cash", "cash", 50),
            8: JournalInfo(8, "BNK1", "Bank", "bank", 51),
        }
    )
    analytics: dict[int, AnalyticInfo] = field(
        default_factory=lambda: {1: AnalyticInfo(1, "Conekta pilot", True, 1)}
    )
    groups: set[str] = field(
        default_factory=lambda: {
            "base.group_user",
            "base.group_partner_manager",
            "account.group_account_invoice",
        }
    )
    moves: dict[int, FakeMove] = field(default_factory=dict)
    partners: dict[str, int] = field(default_factory=dict)
    unavailable: bool = False
    credentials_ok: bool = True
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _sequence: dict[tuple[int, str], int] = field(default_factory=dict)

    async def aclose(self) -> None:
        """Nothing to release."""

    def _guard(self) -> None:
        if self.unavailable:
            raise ProviderUnavailable("fake ledger is down")
        if not self.credentials_ok:
            raise ProviderRejected("Access Denied", cause="auth")

    async def server(self) -> ServerInfo:
        """A 16.0 server on JSON-RPC."""
        self._guard()
        return ServerInfo("16.0", 16, "jsonrpc")

    async def authenticate(self) -> int:
        """The bot's uid."""
        self._guard()
        return 2

    async def find_account(self, code: str) -> AccountInfo | None:
        """By exact code."""
        self._guard()
        return next((a for a in self.accounts.values() if a.code == code), None)

    async def find_journal(self, code: str) -> JournalInfo | None:
        """By code."""
        self._guard()
        return next((j for j in self.journals.values() if j.code == code), None)

    async def get_analytic(self, analytic_id: int) -> AnalyticInfo | None:
        """By id."""
        self._guard()
        return self.analytics.get(analytic_id)

    async def has_group(self, group: str) -> bool:
        """Group membership of the bot."""
        self._guard()
        return group in self.groups

    async def missing_rights(self, rights: tuple[RequiredRight, ...]) -> list[RequiredRight]:
        """Rights whose group the bot lacks (reads only)."""
        self._guard()
        return [r for r in rights if r.group not in self.groups]

    def _require(self, group: str, what: str) -> None:
        if group not in self.groups:
            raise ProviderRejected(
                f"You are not allowed to create '{what}' records.", cause="permission"
            )

    async def create_account(self, code: str, name: str, account_type: str) -> int:
        """Create an account; refused without the manager group or with a taken code."""
        self._guard()
        if "account.group_account_manager" not in self.groups:
            raise ProviderRejected(
                "You are not allowed to create 'Account' records.", cause="permission"
            )
        if any(a.code == code for a in self.accounts.values()):
            raise ProviderRejected(
                "The code of the account must be unique per company !", cause="validation"
            )
        account_id = max(self.accounts, default=0) + 1
        self.accounts[account_id] = AccountInfo(account_id, code, name, account_type, False)
        return account_id

    async def find_moves(self, ref: str, journal_id: int) -> list[MoveInfo]:
        """Exact ref, not cancelled, newest first."""
        self._guard()
        found = [
            m.info()
            for m in self.moves.values()
            if m.ref == ref and m.journal_id == journal_id and m.state != "cancel"
        ]
        return sorted(found, key=lambda m: m.move_id, reverse=True)

    async def create_move(self, entry: JournalEntry) -> int:
        """Create a draft; Odoo's validation, no duplicate check."""
        self._guard()
        self._require("account.group_account_invoice", "Journal Entry")
        if entry.journal_id not in self.journals:
            raise ProviderRejected("journal does not exist", cause="payload_incomplete")
        for line in entry.lines:
            if line.account_id not in self.accounts:
                raise ProviderRejected("account_move_line_account_id_fkey", cause="missing_account")
            if self.accounts[line.account_id].deprecated:
                raise ProviderRejected("The account is deprecated.", cause="missing_account")
        debit = sum((line.debit for line in entry.lines), Decimal(0))
        credit = sum((line.credit for line in entry.lines), Decimal(0))
        if debit != credit:
            raise ProviderRejected("The move is not balanced.", cause="validation")
        move_id = next(self._ids)
        self.moves[move_id] = FakeMove(
            move_id,
            "/",
            "draft",
            entry.ref,
            entry.journal_id,
            entry.entry_date,
            entry.lines,
            entry.partner_id,
        )
        return move_id

    async def post_move(self, move_id: int) -> MoveInfo:
        """Post (already posted is fine); the name is assigned from the journal sequence."""
        self._guard()
        move = self.moves.get(move_id)
        if move is None:
            raise ProviderRejected("Record does not exist or has been deleted.", cause="validation")
        if "account.group_account_invoice" not in self.groups:
            raise ProviderRejected(
                "You don't have the access rights to post an invoice.", cause="permission"
            )
        if move.state == "draft":
            code = self.journals[move.journal_id].code
            key = (move.journal_id, move.entry_date.strftime("%Y/%m"))
            self._sequence[key] = self._sequence.get(key, 0) + 1
            move.name = f"{code}/{key[1]}/{self._sequence[key]:04d}"
            move.state = "posted"
        return move.info()

    async def reverse_move(self, move_id: int, on: date, reason: str) -> MoveInfo:
        """Post a reversal with debit and credit swapped."""
        self._guard()
        original = self.moves[move_id]
        swapped = tuple(replace(x, debit=x.credit, credit=x.debit) for x in original.lines)
        new_id = next(self._ids)
        self.moves[new_id] = FakeMove(
            new_id,
            "/",
            "draft",
            f"Reversal of: {original.name}, {reason}",
            original.journal_id,
            on,
            swapped,
            original.partner_id,
            reversed_entry_id=move_id,
        )
        return await self.post_move(new_id)

    async def find_reversal(self, move_id: int) -> MoveInfo | None:
        """Newest reversal of a move."""
        self._guard()
        found = [m for m in self.moves.values() if m.reversed_entry_id == move_id]
        return max(found, key=lambda m: m.move_id).info() if found else None

    async def ensure_partner(self, ref: str, name: str, email: str | None) -> int:
        """Find by ref or create (creating needs Contact Creation, as Odoo's ACL says)."""
        self._guard()
        if ref not in self.partners:
            self._require("base.group_partner_manager", "Contact")
            self.partners[ref] = 100 + len(self.partners)
        return self.partners[ref]

    def posted_moves(self, ref: str) -> list[FakeMove]:
        """Posted moves with a ref (test helper)."""
        return [m for m in self.moves.values() if m.ref == ref and m.state == "posted"]
