"""Fault knobs of the Odoo simulator: each drives one DLQ cause or retry path of odoo.md §10.4."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Final

FAULT_KINDS: Final = (
    "down",  # every request: 503 from the reverse proxy, HTML body
    "slow",  # sleep `seconds` before answering
    "error_5xx",  # next `count` requests: 502/503/504 from the proxy
    "auth_revoked",  # authenticate -> false, execute_kw -> AccessDenied, JSON-2 -> 401
    "account_removed",  # account `code` gone: not found, its id fails the FK check
    "journal_removed",  # journal `code` gone, likewise
    "permission_removed",  # the bot loses account.group_account_invoice (or the group `code`)
    "lock_error",  # next `count` writes: SerializationFailure / JSON-2 409
    "timeout_after_commit",  # next `count` account.move creates commit, then stall `seconds`
    "database_missing",  # the database is gone: psycopg2.OperationalError
)
REMOVALS: Final = ("account_removed", "journal_removed", "permission_removed")
_COUNTED: Final = {"error_5xx": 1, "lock_error": 1, "timeout_after_commit": 1}
_SECONDS: Final = {"slow": 2.0, "timeout_after_commit": 30.0}
PROXY_STATUSES: Final = (502, 503, 504)


class FaultError(ValueError):
    """A `POST /_sandbox/faults` body that cannot be installed."""


@dataclass
class Fault:
    """One installed fault; `remaining` None means it lasts until cleared."""

    id: str
    kind: str
    count: int | None
    remaining: int | None
    code: str | None
    seconds: float
    status: int
    created_at: str
    removed: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Return the fault as the control API shows it."""
        return {
            "id": self.id,
            "kind": self.kind,
            "count": self.count,
            "remaining": self.remaining,
            "code": self.code,
            "seconds": self.seconds,
            "status": self.status,
            "created_at": self.created_at,
        }


def parse_fault(body: object, now: str) -> Fault:
    """Validate a `{kind, count?, code?, seconds?, status?}` body into a Fault."""
    if not isinstance(body, dict):
        raise FaultError("expected a JSON object")
    kind = body.get("kind")
    if kind not in FAULT_KINDS:
        raise FaultError(f"kind: expected one of {list(FAULT_KINDS)}, got {kind!r}")
    count = body.get("count", _COUNTED.get(kind))
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise FaultError("count: expected a positive integer")
    code = body.get("code")
    if kind in ("account_removed", "journal_removed"):
        if not isinstance(code, str) or not code:
            raise FaultError(f"code: {kind} needs the account or journal code")
    elif code is not None and not isinstance(code, str):
        raise FaultError("code: expected a string")
    seconds = body.get("seconds", _SECONDS.get(kind, 0.0))
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not 0 <= seconds <= 600:
        raise FaultError("seconds: expected a number between 0 and 600")
    status = body.get("status", 502 if kind == "error_5xx" else 503)
    if kind == "error_5xx" and status not in PROXY_STATUSES:
        raise FaultError(f"status: expected one of {list(PROXY_STATUSES)}")
    return Fault(
        id=f"flt_{secrets.token_hex(6)}",
        kind=str(kind),
        count=count,
        remaining=count,
        code=code,
        seconds=float(seconds),
        status=int(status),
        created_at=now,
    )


@dataclass
class FaultBook:
    """The installed faults, oldest first; exhausted ones disappear."""

    faults: list[Fault] = field(default_factory=list)

    def add(self, fault: Fault) -> None:
        """Install a fault."""
        self.faults.append(fault)

    def active(self, kind: str) -> Fault | None:
        """Return the oldest active fault of `kind` without consuming it."""
        return next((f for f in self.faults if f.kind == kind and f.remaining != 0), None)

    def take(self, kind: str) -> Fault | None:
        """Consume one unit of the oldest active `kind` fault and return it."""
        fault = self.active(kind)
        if fault is not None and fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining == 0:
                self.faults.remove(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        """Uninstall one fault."""
        if fault in self.faults:
            self.faults.remove(fault)

    def clear(self) -> list[Fault]:
        """Remove every fault and return them."""
        removed, self.faults = self.faults, []
        return removed

    def to_json(self) -> list[dict[str, Any]]:
        """Return the active faults as the control API lists them."""
        return [f.to_json() for f in self.faults]
