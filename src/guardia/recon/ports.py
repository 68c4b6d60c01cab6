"""What reconciliation reads from the payment provider: settlement (transactions, transfers)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SettlementTransaction:
    """One movement of Conekta's per-charge ledger (docs/providers.md §1.6)."""

    transaction_id: str
    charge_id: str | None
    kind: str  # capture, refund, chargeback, …
    status: str
    amount_cents: int
    fee_cents: int
    net_cents: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SettlementTransfer:
    """A payout to the business bank account; it does not list the charges it settles."""

    transfer_id: str
    status: str
    amount_cents: int
    statement_reference: str | None
    statement_description: str | None
    destination_account: str | None
    created_at: datetime


class SettlementSource(Protocol):
    """Reads Conekta's settlement records."""

    async def list_transactions(self) -> list[SettlementTransaction]:
        """Every transaction (paged through)."""
        ...

    async def list_transfers(self) -> list[SettlementTransfer]:
        """Every transfer (paged through)."""
        ...
