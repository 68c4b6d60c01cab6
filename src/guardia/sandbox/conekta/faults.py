"""Fault knobs of the Conekta simulator: what can go wrong between Conekta and Guardia."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Final

from guardia.sandbox.conekta.model import JSON, ErrorDetail, InvalidParameters, is_int

FAULT_KINDS: Final = ("drop", "duplicate", "reorder", "delay", "bad_signature", "api_error")


@dataclass
class Fault:
    """One installed fault; `remaining` None means it never runs out."""

    id: str
    kind: str
    order_id: str | None
    count: int | None
    remaining: int | None
    delay_seconds: float
    status_code: int
    created_at: int

    def matches(self, order_id: str | None) -> bool:
        """Return whether the fault applies to an event (or call) about `order_id`."""
        return self.remaining != 0 and (self.order_id is None or self.order_id == order_id)

    def consume(self) -> None:
        """Count one affected event or call."""
        if self.remaining is not None:
            self.remaining -= 1

    def to_json(self) -> JSON:
        """Return the fault as the control API shows it."""
        return {
            "id": self.id,
            "kind": self.kind,
            "order_id": self.order_id,
            "count": self.count,
            "remaining": self.remaining,
            "delay_seconds": self.delay_seconds,
            "status_code": self.status_code,
            "created_at": self.created_at,
        }


def _bad(param: str, why: str) -> ErrorDetail:
    return ErrorDetail(
        f"guardia.sandbox.fault.{param}.invalid", f"{param}: {why}", "Parámetro inválido.", param
    )


def parse_fault(body: object, now: int) -> Fault:
    """Validate a `POST /_sandbox/faults` body into a Fault."""
    if not isinstance(body, dict):
        raise InvalidParameters(details=[_bad("body", "expected a JSON object")])
    errors: list[ErrorDetail] = []
    kind = body.get("kind")
    if kind not in FAULT_KINDS:
        errors.append(_bad("kind", f"expected one of {list(FAULT_KINDS)}, got {kind!r}"))
    order_id = body.get("order_id")
    if order_id is not None and not isinstance(order_id, str):
        errors.append(_bad("order_id", "expected a string"))
    count = body.get("count")
    if count is not None and (not is_int(count) or count < 1):
        errors.append(_bad("count", "expected a positive integer"))
    delay = body.get("delay_seconds", 1.0 if kind == "delay" else 0.0)
    if not isinstance(delay, int | float) or isinstance(delay, bool) or not 0 <= delay <= 600:
        errors.append(_bad("delay_seconds", "expected seconds between 0 and 600"))
    status_code = body.get("status_code", 500)
    if not is_int(status_code) or not 400 <= status_code <= 599:
        errors.append(_bad("status_code", "expected an HTTP error status (400-599)"))
    if errors:
        raise InvalidParameters(details=errors)
    if count is None and kind == "api_error":
        count = 1
    return Fault(
        id=f"flt_{secrets.token_hex(6)}",
        kind=str(kind),
        order_id=order_id,
        count=count,
        remaining=count,
        delay_seconds=float(delay),
        status_code=int(status_code),
        created_at=now,
    )


@dataclass
class DeliveryPlan:
    """How the automatic delivery of one event is bent by the installed faults."""

    drop: bool = False
    copies: int = 1
    delay_seconds: float = 0.0
    bad_signature: bool = False
    reorder: Fault | None = None


@dataclass
class FaultBook:
    """The installed faults, oldest first; exhausted ones disappear."""

    faults: list[Fault] = field(default_factory=list)

    def add(self, fault: Fault) -> None:
        """Install a fault."""
        self.faults.append(fault)

    def clear(self) -> list[Fault]:
        """Remove every fault and return them."""
        removed, self.faults = self.faults, []
        return removed

    def take(self, kind: str, order_id: str | None) -> list[Fault]:
        """Consume one unit of every active `kind` fault matching `order_id` and return them."""
        hit = [f for f in self.faults if f.kind == kind and f.matches(order_id)]
        for fault in hit:
            fault.consume()
        self.faults = [f for f in self.faults if f.remaining != 0]
        return hit

    def plan(self, order_id: str | None) -> DeliveryPlan:
        """Return the delivery plan for a new event, consuming the faults it uses."""
        if self.take("drop", order_id):
            # A dropped event is never sent, so the other faults are not spent on it.
            return DeliveryPlan(drop=True)
        reorder = self.take("reorder", order_id)
        return DeliveryPlan(
            copies=2 if self.take("duplicate", order_id) else 1,
            delay_seconds=sum(f.delay_seconds for f in self.take("delay", order_id)),
            bad_signature=bool(self.take("bad_signature", order_id)),
            reorder=reorder[0] if reorder else None,
        )

    def api_error_for(self, path: str) -> Fault | None:
        """Consume and return the api_error fault that answers a call to `path`, if any."""
        for fault in self.faults:
            if fault.kind == "api_error" and fault.remaining != 0:
                if fault.order_id is None or fault.order_id in path:
                    fault.consume()
                    self.faults = [f for f in self.faults if f.remaining != 0]
                    return fault
        return None
