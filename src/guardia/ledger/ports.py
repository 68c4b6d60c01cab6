"""What posting needs from the ledger (`Ledger`); what the config check reads (`LedgerCatalog`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol

from guardia.ledger.model import (
    AccountInfo,
    AnalyticInfo,
    JournalEntry,
    JournalInfo,
    MoveInfo,
    RequiredRight,
    ServerInfo,
)


class Ledger(Protocol):
    """Creates and posts journal entries; the provider does not deduplicate, Guardia does."""

    async def find_moves(self, ref: str, journal_id: int) -> list[MoveInfo]:
        """Moves with this exact ref in this journal, not cancelled, newest first."""
        ...

    async def create_move(self, entry: JournalEntry) -> int:
        """Create a draft move; return its id."""
        ...

    async def post_move(self, move_id: int) -> MoveInfo:
        """Post a move (an already posted one is success); return its state."""
        ...

    async def reverse_move(self, move_id: int, on: date, reason: str) -> MoveInfo:
        """Post the reversal of a posted move; return the reversal."""
        ...

    async def find_reversal(self, move_id: int) -> MoveInfo | None:
        """The newest non-cancelled reversal of a move, if any."""
        ...

    async def ensure_partner(self, ref: str, name: str, email: str | None) -> int:
        """Find the partner with this stable external ref, or create it."""
        ...


class LedgerCatalog(Protocol):
    """Read-only facts the start-up check verifies."""

    async def server(self) -> ServerInfo:
        """Version and transport."""
        ...

    async def authenticate(self) -> int:
        """Log in (or check the API key); return the bot's user id."""
        ...

    async def find_account(self, code: str) -> AccountInfo | None:
        """The account with this exact code, if any."""
        ...

    async def find_journal(self, code: str) -> JournalInfo | None:
        """The journal with this code, if any."""
        ...

    async def get_analytic(self, analytic_id: int) -> AnalyticInfo | None:
        """The analytic account, if it exists."""
        ...

    async def has_group(self, group: str) -> bool:
        """Whether the bot user belongs to a security group."""
        ...

    async def missing_rights(self, rights: tuple[RequiredRight, ...]) -> list[RequiredRight]:
        """The rights the bot lacks, asked without writing anything."""
        ...

    async def create_account(self, code: str, name: str, account_type: str) -> int:
        """Create an account in our company (needs account.group_account_manager)."""
        ...


@dataclass(frozen=True, slots=True)
class CustomerInfo:
    """Who paid, as the ledger's partner."""

    ref: str
    name: str
    email: str | None


class CustomerSource(Protocol):
    """Reads the paying customer of an order from the payment provider."""

    async def customer_of(self, order_id: str) -> CustomerInfo:
        """Name, e-mail and stable reference of an order's customer."""
        ...


class LedgerGateway(Ledger, LedgerCatalog, Protocol):
    """A ledger connection used both to post and to check configuration."""

    async def aclose(self) -> None:
        """Release connections."""
        ...
