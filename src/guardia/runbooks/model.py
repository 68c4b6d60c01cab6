"""The shape of a runbook: checks that return pass/fail/unknown with the evidence they saw, and
actions that show what they would change (dry run) before they change it (`--apply`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from guardia.incidents.model import Runbook as RunbookId

if TYPE_CHECKING:
    from guardia.bootstrap import Container


class Status(StrEnum):
    """A check's verdict."""

    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What a check saw."""

    name: str
    status: Status
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What an action changed (applied) or would change (dry run)."""

    name: str
    applied: bool
    changes: list[str]
    evidence: dict[str, Any] = field(default_factory=dict)
    failed: bool = False  # asked to apply and could not; `changes` says what it tried


@dataclass
class RunContext:
    """What checks and actions see: the wiring, the subject of the run, who runs it and when.

    `order_ids` (runbook 1) and `line_ids` (runbook 3, bank statement lines) come from the
    command line or from the incident's external ids when the verifier runs the checks.
    """

    container: Container
    actor: str
    now: datetime
    order_ids: tuple[str, ...] = ()
    line_ids: tuple[str, ...] = ()
    incident_id: int | None = None
    opened_at: datetime | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def order_id(self) -> str | None:
        """The single order the run is about (the first one given)."""
        return self.order_ids[0] if self.order_ids else None


@dataclass(frozen=True, slots=True)
class Check:
    """One check of a runbook."""

    name: str
    description: str
    run: Callable[[RunContext], Awaitable[CheckResult]]


@dataclass(frozen=True, slots=True)
class Action:
    """One corrective action; `run(ctx, apply)` must be idempotent.

    `moves_money` marks actions that move money or post accounting: they change nothing without
    `--apply`, and what they change is audited.
    """

    name: str
    description: str
    moves_money: bool
    run: Callable[[RunContext, bool], Awaitable[ActionResult]]


@dataclass(frozen=True, slots=True)
class RunbookSpec:
    """A runbook: checks in order, actions, and which checks verify the recovery."""

    name: str
    runbook: RunbookId
    title: str
    checks: tuple[Check, ...]
    actions: tuple[Action, ...]
    verification: tuple[str, ...]
    prevention: tuple[str, ...]
    needs: str | None = None  # "order" (--order-id) or "line" (--line-id)
    symptoms: str = ""
    detection: str = ""  # detection besides the alert rules that link to this runbook
    commands: tuple[str, ...] = ()  # the same steps as single commands, for the document
    no_correlation_reason: str = ""  # why its incidents may lack a correlation id

    def check(self, name: str) -> Check:
        """A check by name."""
        return next(c for c in self.checks if c.name == name)


def next_step(
    checks: list[CheckResult],
    actions: list[ActionResult],
    applied: bool,
    *,
    verified: bool = False,
) -> str:
    """Suggest what the operator does next: from the checks of a dry run, or from the
    verification of an applied run (its opening checks failed by definition)."""
    if verified:
        return "verification passed: the incident resolves once none of its alerts fires"
    failing = [c.name for c in checks if c.status is Status.FAIL]
    if not failing:
        if applied:
            return "verification did not pass: see the evidence of each check"
        return "all checks pass: nothing to fix"
    if not applied and any(a.changes for a in actions):
        return f"failing: {', '.join(failing)}; review the dry run, then run again with --apply"
    return f"failing: {', '.join(failing)}; fix by hand (see the evidence), then run again"
