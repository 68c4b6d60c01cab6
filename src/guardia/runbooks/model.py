"""The shape of a runbook: checks that return pass/fail/unknown with the evidence they saw, and
actions that show what they would change (dry run) before they change it (`--apply`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from guardia.incidents.model import Runbook as RunbookId


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


@dataclass(frozen=True, slots=True)
class Check:
    """One check of a runbook."""

    name: str
    description: str
    run: Callable[[Any], Awaitable[CheckResult]]


@dataclass(frozen=True, slots=True)
class Action:
    """One corrective action; `run(ctx, apply)` must be idempotent."""

    name: str
    description: str
    moves_money: bool
    run: Callable[[Any, bool], Awaitable[ActionResult]]


@dataclass(frozen=True, slots=True)
class RunbookSpec:
    """A runbook: checks in order, actions, and which checks verify the recovery."""

    name: str
    runbook: RunbookId
    title: str
    checks: tuple[Check, ...]
    actions: tuple[Action, ...]
    verification: tuple[str, ...]
    needs_order: bool = False


def next_step(checks: list[CheckResult], actions: list[ActionResult], applied: bool) -> str:
    """Suggest what the operator does next."""
    failing = [c.name for c in checks if c.status is Status.FAIL]
    if not failing:
        return "all checks pass: verify and resolve"
    if not applied and any(a.changes for a in actions):
        return f"failing: {', '.join(failing)}; review the dry run, then run again with --apply"
    return f"failing: {', '.join(failing)}; fix by hand (see the evidence), then run again"
