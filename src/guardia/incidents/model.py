"""The incident record: what the runbooks' header says every incident must carry, and its lifecycle.

`shared/seed/runbooks-operativos.md` asks every incident to record five things: a timestamp, the
correlation_id (if one exists), the external provider ids, the corrective action and the
prevention (a short post-mortem). `missing_for_close` names whichever are absent and `close`
refuses until none is.

The lifecycle follows `shared/docs/operations.md` §1.1: the timestamps must satisfy
`impact_started_at ≤ detected_at ≤ acknowledged_at ≤ mitigated_at ≤ resolved_at ≤ closed_at`
(among those that are set). The status is derived from the furthest timestamp set, so the two
can never disagree. `advance` is the one transition function; it only moves forward, may skip
milestones (skipped ones stay empty) and refuses `closed`, which only `close` reaches, so no
caller can close an incident without the mandatory fields.

A resolution carries `resolved_verified`: true only when Guardia's automated post-condition
checks passed (operations.md §8); a human pressing "resolve" is recorded as unverified.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from guardia.core.errors import Conflict, InvalidInput

__all__ = [
    "MANDATORY_FIELDS",
    "PROVIDER_FIELDS",
    "Action",
    "ActionItem",
    "ExternalIds",
    "Incident",
    "IncidentStatus",
    "Lifecycle",
    "Origin",
    "PostMortem",
    "Runbook",
    "Severity",
    "TimelineEntry",
    "TimelineKind",
    "advance",
    "close",
    "missing_for_close",
    "order_timeline",
    "relates_to",
    "runbook_from_label",
]


class Severity(StrEnum):
    """How bad an incident is; sev1 is the most severe."""

    SEV1 = "sev1"
    SEV2 = "sev2"
    SEV3 = "sev3"
    SEV4 = "sev4"


class Origin(StrEnum):
    """Where an incident's fault came from: production, or a drill that injected it on purpose.

    Drill incidents count in the same statistics but stay separable, so a drill can show what
    a change did to MTTR without passing for production evidence."""

    LIVE = "live"
    DRILL = "drill"


class Runbook(StrEnum):
    """Which of the seed's seven runbooks an incident follows, or none of them."""

    WEBHOOK_MISSING = "1"
    ODOO_POSTING_FAILS = "2"
    RECONCILIATION_NO_MATCH = "3"
    KYC_STUCK = "4"
    SIGNATURE_FAILS = "5"
    SCORING_DOWN = "6"
    BACKUPS_NOT_RUNNING = "7"
    OTHER = "other"

    @property
    def seed_title(self) -> str:
        """The runbook's title as the seed writes it (Spanish)."""
        return _RUNBOOK_TITLES[self][0]

    @property
    def slug(self) -> str:
        """The anchor of the runbook's section in docs/runbooks.md, e.g. `1-webhook-de-…`."""
        return _RUNBOOK_TITLES[self][1]

    @property
    def number(self) -> int | None:
        """The runbook's number in the seed, or None for `other`."""
        return None if self is Runbook.OTHER else int(self.value)


_RUNBOOK_TITLES: dict[Runbook, tuple[str, str]] = {
    Runbook.WEBHOOK_MISSING: ("Webhook de Conekta no llega", "1-webhook-de-conekta-no-llega"),
    Runbook.ODOO_POSTING_FAILS: (
        "Asiento contable falla en Odoo",
        "2-asiento-contable-falla-en-odoo",
    ),
    Runbook.RECONCILIATION_NO_MATCH: (
        "Conciliación no encuentra match (dinero \u201chuérfano\u201d)",
        "3-conciliacion-no-encuentra-match-dinero-huerfano",
    ),
    Runbook.KYC_STUCK: (
        "KYC Metamap queda \u201cen progreso\u201d indefinidamente",
        "4-kyc-metamap-queda-en-progreso-indefinidamente",
    ),
    Runbook.SIGNATURE_FAILS: ("Firma Mifiel falla", "5-firma-mifiel-falla"),
    Runbook.SCORING_DOWN: (
        "Scoring (HASE/Voice) no responde o no persiste",
        "6-scoring-hase-voice-no-responde-o-no-persiste",
    ),
    Runbook.BACKUPS_NOT_RUNNING: ("Backups no se ejecutan", "7-backups-no-se-ejecutan"),
    Runbook.OTHER: ("Otro", "other"),
}


def runbook_from_label(label: str | None) -> Runbook:
    """Map a runbook number or docs anchor (`"2"`, `"2-asiento-…"`) to a Runbook, else OTHER."""
    if label is None:
        return Runbook.OTHER
    text = label.strip().lower()
    for runbook in Runbook:
        if text in (runbook.value, runbook.slug):
            return runbook
    head, _, _ = text.partition("-")
    if head.isdigit() and head != text:
        return next((r for r in Runbook if r.value == head), Runbook.OTHER)
    return Runbook.OTHER


class IncidentStatus(StrEnum):
    """Where an incident stands; each status is the milestone whose timestamp was set last."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"
    CLOSED = "closed"


_STATUS_ORDER: tuple[IncidentStatus, ...] = tuple(IncidentStatus)
_RANK: dict[IncidentStatus, int] = {status: rank for rank, status in enumerate(_STATUS_ORDER)}
_STATUS_FIELD: dict[IncidentStatus, str] = {
    IncidentStatus.OPEN: "detected_at",
    IncidentStatus.ACKNOWLEDGED: "acknowledged_at",
    IncidentStatus.MITIGATED: "mitigated_at",
    IncidentStatus.RESOLVED: "resolved_at",
    IncidentStatus.CLOSED: "closed_at",
}
_ORDERED_FIELDS = ("impact_started_at", *_STATUS_FIELD.values())
_ORDER_TEXT = " ≤ ".join(_ORDERED_FIELDS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Lifecycle:
    """The incident's milestones (operations.md §1.1); set ones are in non-decreasing order."""

    impact_started_at: datetime | None = None
    detected_at: datetime
    acknowledged_at: datetime | None = None
    mitigated_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    resolved_verified: bool = False

    def __post_init__(self) -> None:
        previous: tuple[str, datetime] | None = None
        for name, moment in self.milestones():
            if moment is None:
                continue
            _require_aware(name, moment)
            if previous is not None and moment < previous[1]:
                raise InvalidInput(
                    f"{name} ({moment.isoformat()}) is before {previous[0]} "
                    f"({previous[1].isoformat()}); the order is {_ORDER_TEXT}"
                )
            previous = (name, moment)
        if self.resolved_verified and self.resolved_at is None:
            raise InvalidInput("resolved_verified is set but resolved_at is not")

    @property
    def status(self) -> IncidentStatus:
        """The furthest milestone reached (open as soon as it is detected)."""
        for status in reversed(_STATUS_ORDER[1:]):
            if getattr(self, _STATUS_FIELD[status]) is not None:
                return status
        return IncidentStatus.OPEN

    def milestones(self) -> list[tuple[str, datetime | None]]:
        """Every timestamp field with its value, in lifecycle order."""
        return [(name, getattr(self, name)) for name in _ORDERED_FIELDS]

    def at(self, status: IncidentStatus) -> datetime | None:
        """The timestamp of one milestone."""
        moment: datetime | None = getattr(self, _STATUS_FIELD[status])
        return moment


def advance(
    lifecycle: Lifecycle,
    to: IncidentStatus,
    at: datetime,
    *,
    impact_started_at: datetime | None = None,
    verified: bool = False,
) -> Lifecycle:
    """Move the lifecycle forward to `to` at `at`; raise Conflict on any out-of-order move."""
    if to is IncidentStatus.CLOSED:
        raise Conflict(
            "an incident is closed with close(incident, at), which checks the runbook's "
            "mandatory fields"
        )
    return _move(lifecycle, to, at, impact_started_at=impact_started_at, verified=verified)


def _move(
    lifecycle: Lifecycle,
    to: IncidentStatus,
    at: datetime,
    *,
    impact_started_at: datetime | None,
    verified: bool,
) -> Lifecycle:
    _require_aware("at", at)
    if impact_started_at is not None:
        _require_aware("impact_started_at", impact_started_at)
    if verified and to is not IncidentStatus.RESOLVED:
        raise InvalidInput("only a resolution can be verified")
    current = lifecycle.status
    if to is IncidentStatus.OPEN:
        raise Conflict("an incident opens once, when it is detected; it cannot return to open")
    if _RANK[to] <= _RANK[current]:
        raise Conflict(
            f"the incident is {current.value}; it cannot move to {to.value}: the lifecycle only "
            "moves forward"
        )
    latest_field = _STATUS_FIELD[current]
    latest = lifecycle.at(current)
    if latest is not None and at < latest:
        raise Conflict(
            f"{_STATUS_FIELD[to]} ({at.isoformat()}) would be before {latest_field} "
            f"({latest.isoformat()}); the order is {_ORDER_TEXT}"
        )
    if impact_started_at is not None and impact_started_at > lifecycle.detected_at:
        raise Conflict(
            f"impact_started_at ({impact_started_at.isoformat()}) would be after detected_at "
            f"({lifecycle.detected_at.isoformat()}); the order is {_ORDER_TEXT}"
        )
    changes: dict[str, Any] = {_STATUS_FIELD[to]: at}
    if impact_started_at is not None:
        changes["impact_started_at"] = impact_started_at
    if to is IncidentStatus.RESOLVED:
        changes["resolved_verified"] = verified
    return dataclasses.replace(lifecycle, **changes)


PROVIDER_FIELDS: tuple[str, ...] = (
    "conekta_order",
    "conekta_charge",
    "conekta_event",
    "mifiel_document",
    "metamap_verification",
    "odoo_move",
    "neon_statement_line",
    "backup_object",
)


@dataclass(frozen=True, slots=True)
class ExternalIds:
    """The provider ids an incident touches, per provider, each list without duplicates."""

    conekta_order: tuple[str, ...] = ()
    conekta_charge: tuple[str, ...] = ()
    conekta_event: tuple[str, ...] = ()
    mifiel_document: tuple[str, ...] = ()
    metamap_verification: tuple[str, ...] = ()
    odoo_move: tuple[str, ...] = ()
    neon_statement_line: tuple[str, ...] = ()
    backup_object: tuple[str, ...] = ()  # the backup's id in its store (runbook 7)

    def __post_init__(self) -> None:
        for name in PROVIDER_FIELDS:
            object.__setattr__(self, name, _id_tuple(name, getattr(self, name)))

    @classmethod
    def from_dict(cls, ids: Mapping[str, Iterable[str]]) -> ExternalIds:
        """Build from `{provider_field: [ids]}`; unknown provider fields are refused."""
        unknown = sorted(set(ids) - set(PROVIDER_FIELDS))
        if unknown:
            raise InvalidInput(f"unknown external id fields: {', '.join(unknown)}")
        return cls(**{name: _id_tuple(name, values) for name, values in ids.items()})

    def as_dict(self) -> dict[str, list[str]]:
        """Every provider field with its ids (empty lists included), in a fixed order."""
        return {name: list(getattr(self, name)) for name in PROVIDER_FIELDS}

    def pairs(self) -> list[tuple[str, str]]:
        """Every (provider field, id) pair."""
        return [(name, value) for name in PROVIDER_FIELDS for value in getattr(self, name)]

    def is_empty(self) -> bool:
        """Tell whether no provider id is recorded."""
        return not any(getattr(self, name) for name in PROVIDER_FIELDS)

    def contains(self, provider_field: str, value: str) -> bool:
        """Tell whether this id is recorded under this provider field."""
        return provider_field in PROVIDER_FIELDS and value in getattr(self, provider_field)

    def union(self, other: ExternalIds) -> ExternalIds:
        """Both sets of ids, ours first, without duplicates."""
        return ExternalIds(
            **{name: getattr(self, name) + getattr(other, name) for name in PROVIDER_FIELDS}
        )


@dataclass(frozen=True, slots=True)
class ActionItem:
    """A follow-up from the post-mortem, with an owner and a due date."""

    description: str
    owner: str
    due: date

    def __post_init__(self) -> None:
        _require_text("action item description", self.description)
        _require_text("action item owner", self.owner)
        if isinstance(self.due, datetime) or not isinstance(self.due, date):
            raise InvalidInput("an action item's due must be a date")


@dataclass(frozen=True, slots=True, kw_only=True)
class PostMortem:
    """The short post-mortem (operations.md §2): the incident's prevention field."""

    summary: str = ""
    impact: str = ""
    root_cause: str = ""
    trigger: str = ""
    resolution: str = ""
    detection: str = ""
    action_items: tuple[ActionItem, ...] = ()
    lessons: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "action_items", tuple(self.action_items))


@dataclass(frozen=True, slots=True)
class Action:
    """A corrective action taken: what, by whom, when, and a reference such as a run id."""

    at: datetime
    actor: str
    description: str
    reference: str | None = None

    def __post_init__(self) -> None:
        _require_aware("action at", self.at)
        _require_text("action actor", self.actor)
        _require_text("action description", self.description)


@dataclass(frozen=True, slots=True, kw_only=True)
class Incident:
    """One incident: the runbook header's five fields, its lifecycle and its post-mortem."""

    id: int | None
    title: str
    severity: Severity
    runbook: Runbook
    lifecycle: Lifecycle
    correlation_ids: tuple[str, ...] = ()
    external_ids: ExternalIds = field(default_factory=ExternalIds)
    corrective_actions: tuple[Action, ...] = ()
    postmortem: PostMortem | None = None
    fingerprint: str | None = None
    no_correlation_id_reason: str | None = None
    origin: Origin = Origin.LIVE

    def __post_init__(self) -> None:
        _require_text("title", self.title)
        object.__setattr__(
            self, "correlation_ids", _id_tuple("correlation_ids", self.correlation_ids)
        )
        object.__setattr__(self, "corrective_actions", tuple(self.corrective_actions))
        if self.fingerprint is not None:
            _require_text("fingerprint", self.fingerprint)

    @property
    def status(self) -> IncidentStatus:
        """The status, derived from the lifecycle."""
        return self.lifecycle.status


MANDATORY_FIELDS: tuple[str, ...] = (
    "timestamp",
    "correlation_id",
    "external_ids",
    "corrective_action",
    "prevention",
)

_MISSING_TEXT: dict[str, str] = {
    "correlation_id": "at least one correlation_id, or no_correlation_id_reason saying none exists",
    "external_ids": "at least one external provider id",
    "corrective_action": "at least one corrective action",
    "prevention.summary": "a post-mortem summary",
    "prevention.root_cause": "a post-mortem root cause",
    "prevention.action_items": "a post-mortem action item with owner and due date",
}


def missing_for_close(incident: Incident) -> list[str]:
    """Name the runbook's mandatory fields this incident still lacks (empty when it may close)."""
    # "timestamp" is detected_at, which a Lifecycle cannot lack, so it is never reported.
    missing: list[str] = []
    if not incident.correlation_ids and not (incident.no_correlation_id_reason or "").strip():
        missing.append("correlation_id")
    if incident.external_ids.is_empty():
        missing.append("external_ids")
    if not incident.corrective_actions:
        missing.append("corrective_action")
    postmortem = incident.postmortem or PostMortem()
    if not postmortem.summary.strip():
        missing.append("prevention.summary")
    if not postmortem.root_cause.strip():
        missing.append("prevention.root_cause")
    if not postmortem.action_items:
        missing.append("prevention.action_items")
    return missing


def close(incident: Incident, at: datetime) -> Incident:
    """Close the incident at `at`; raise Conflict naming every mandatory field still missing."""
    missing = missing_for_close(incident)
    if missing:
        label = f"incident {incident.id}" if incident.id is not None else "the incident"
        details = "; ".join(f"{name} ({_MISSING_TEXT[name]})" for name in missing)
        raise Conflict(f"{label} cannot be closed: missing {details}")
    lifecycle = _move(
        incident.lifecycle, IncidentStatus.CLOSED, at, impact_started_at=None, verified=False
    )
    return dataclasses.replace(incident, lifecycle=lifecycle)


class TimelineKind(StrEnum):
    """What a timeline row records."""

    ALERT = "alert"
    WEBHOOK_ATTEMPT = "webhook_attempt"
    JOB_RUN = "job_run"
    DEAD_LETTER = "dead_letter"
    REPLAY = "replay"
    PULL = "pull"
    RETRY = "retry"
    CONFIG_CHECK = "config_check"
    POSTING_TEST = "posting_test"
    RECONCILIATION = "reconciliation"
    BACKUP = "backup"
    RESTORE_DRILL = "restore_drill"
    NOTIFICATION = "notification"
    OPERATOR_ACTION = "operator_action"
    STATUS_CHANGE = "status_change"
    NOTE = "note"


@dataclass(frozen=True, slots=True, kw_only=True)
class TimelineEntry:
    """One row on an incident's timeline, linking the stored row it came from."""

    at: datetime
    kind: TimelineKind
    source_table: str
    source_id: str
    summary: str
    correlation_id: str | None = None
    external_ids: dict[str, str] = field(default_factory=dict, hash=False)
    actor: str | None = None

    def __post_init__(self) -> None:
        _require_aware("timeline at", self.at)
        _require_text("timeline source_table", self.source_table)
        _require_text("timeline source_id", self.source_id)
        unknown = sorted(set(self.external_ids) - set(PROVIDER_FIELDS))
        if unknown:
            raise InvalidInput(f"unknown external id fields on a timeline row: {unknown}")


def order_timeline(entries: Iterable[TimelineEntry]) -> list[TimelineEntry]:
    """Sort timeline rows by (at, kind, source_table, source_id), numeric ids in numeric order."""
    return sorted(entries, key=_timeline_key)


def relates_to(entry: TimelineEntry, incident: Incident) -> bool:
    """Tell whether a timeline row carries one of the incident's correlation or provider ids."""
    if entry.correlation_id is not None and entry.correlation_id in incident.correlation_ids:
        return True
    return any(incident.external_ids.contains(k, v) for k, v in entry.external_ids.items())


def _timeline_key(entry: TimelineEntry) -> tuple[datetime, str, str, tuple[int, int, str]]:
    source_id = entry.source_id
    # Row ids are usually integers rendered as text: "9" must come before "10".
    id_key = (
        (0, int(source_id), "")
        if source_id.isascii() and source_id.isdigit()
        else (1, 0, source_id)
    )
    return entry.at, entry.kind.value, entry.source_table, id_key


def _require_aware(name: str, moment: object) -> None:
    if not isinstance(moment, datetime):
        raise InvalidInput(f"{name} must be a datetime")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput(f"{name} must be timezone-aware")


def _require_text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{name} must be non-empty text")


def _id_tuple(name: str, values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise InvalidInput(f"{name} must be a list of ids, not one string")
    result: list[str] = []
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput(f"{name} holds an empty or non-text id")
        if value not in result:
            result.append(value)
    return tuple(result)
