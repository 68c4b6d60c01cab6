"""The incident record: lifecycle order, the runbook's five mandatory fields, timeline order."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guardia.core.errors import Conflict, InvalidInput
from guardia.incidents.model import (
    MANDATORY_FIELDS,
    PROVIDER_FIELDS,
    Action,
    ActionItem,
    ExternalIds,
    Incident,
    IncidentStatus,
    Lifecycle,
    PostMortem,
    Runbook,
    Severity,
    TimelineEntry,
    TimelineKind,
    advance,
    close,
    missing_for_close,
    order_timeline,
    relates_to,
    runbook_from_label,
)
from tests.conftest import shared_dir

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]
ITEM = ActionItem("Reload keys on SIGHUP", "ana", date(2026, 3, 20))


def _minutes(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


def _bare_incident(**changes: object) -> Incident:
    incident = Incident(
        id=7,
        title="Webhooks de Conekta rechazados",
        severity=Severity.SEV2,
        runbook=Runbook.WEBHOOK_MISSING,
        lifecycle=Lifecycle(detected_at=T0),
    )
    return dataclasses.replace(incident, **changes)  # type: ignore[arg-type]


def _complete_incident(lifecycle: Lifecycle | None = None) -> Incident:
    return _bare_incident(
        lifecycle=lifecycle or Lifecycle(detected_at=T0),
        correlation_ids=("corr-1",),
        external_ids=ExternalIds(conekta_order=("ord_1",)),
        corrective_actions=(Action(_minutes(5), "ana", "guardia pull ord_1", "run-1"),),
        postmortem=PostMortem(
            summary="Webhook key rotated without reload",
            root_cause="Key loaded only at start-up",
            action_items=(ITEM,),
        ),
    )


# --- lifecycle -----------------------------------------------------------------------------------


def test_a_new_lifecycle_is_open_at_detection() -> None:
    lifecycle = Lifecycle(detected_at=T0)
    assert lifecycle.status is IncidentStatus.OPEN
    assert lifecycle.at(IncidentStatus.OPEN) == T0


def test_advancing_through_every_milestone_records_each_timestamp() -> None:
    lifecycle = Lifecycle(detected_at=T0, impact_started_at=_minutes(-10))
    lifecycle = advance(lifecycle, IncidentStatus.ACKNOWLEDGED, _minutes(2))
    lifecycle = advance(lifecycle, IncidentStatus.MITIGATED, _minutes(20))
    lifecycle = advance(lifecycle, IncidentStatus.RESOLVED, _minutes(45), verified=True)
    incident = close(_complete_incident(lifecycle), _minutes(60 * 24))
    assert [moment for _, moment in incident.lifecycle.milestones()] == [
        _minutes(-10),
        T0,
        _minutes(2),
        _minutes(20),
        _minutes(45),
        _minutes(60 * 24),
    ]
    assert incident.status is IncidentStatus.CLOSED
    assert incident.lifecycle.resolved_verified


def test_resolving_straight_from_open_leaves_the_skipped_milestones_empty() -> None:
    lifecycle = advance(Lifecycle(detected_at=T0), IncidentStatus.RESOLVED, _minutes(30))
    assert lifecycle.status is IncidentStatus.RESOLVED
    assert lifecycle.acknowledged_at is None
    assert lifecycle.mitigated_at is None
    assert lifecycle.resolved_at == _minutes(30)


def test_resolving_before_detection_is_a_conflict() -> None:
    with pytest.raises(Conflict, match=r"resolved_at .* before detected_at"):
        advance(Lifecycle(detected_at=T0), IncidentStatus.RESOLVED, _minutes(-1))


def test_an_acknowledgement_at_the_detection_instant_is_allowed() -> None:
    lifecycle = advance(Lifecycle(detected_at=T0), IncidentStatus.ACKNOWLEDGED, T0)
    assert lifecycle.acknowledged_at == T0


def test_moving_backwards_is_a_conflict() -> None:
    lifecycle = advance(Lifecycle(detected_at=T0), IncidentStatus.MITIGATED, _minutes(5))
    with pytest.raises(Conflict, match="only moves forward"):
        advance(lifecycle, IncidentStatus.ACKNOWLEDGED, _minutes(6))


def test_repeating_the_current_status_is_a_conflict() -> None:
    lifecycle = advance(Lifecycle(detected_at=T0), IncidentStatus.ACKNOWLEDGED, _minutes(1))
    with pytest.raises(Conflict, match="is acknowledged"):
        advance(lifecycle, IncidentStatus.ACKNOWLEDGED, _minutes(2))


def test_an_incident_cannot_return_to_open() -> None:
    with pytest.raises(Conflict, match="cannot return to open"):
        advance(Lifecycle(detected_at=T0), IncidentStatus.OPEN, _minutes(1))


def test_advance_refuses_to_close_so_the_mandatory_fields_cannot_be_bypassed() -> None:
    with pytest.raises(Conflict, match=r"close\(incident, at\)"):
        advance(Lifecycle(detected_at=T0), IncidentStatus.CLOSED, _minutes(1))


def test_a_naive_timestamp_is_refused() -> None:
    with pytest.raises(InvalidInput, match="timezone-aware"):
        advance(Lifecycle(detected_at=T0), IncidentStatus.ACKNOWLEDGED, datetime(2026, 3, 2, 16))  # noqa: DTZ001
    with pytest.raises(InvalidInput, match="timezone-aware"):
        Lifecycle(detected_at=datetime(2026, 3, 2, 16))  # noqa: DTZ001


def test_offsets_other_than_utc_compare_as_instants() -> None:
    mexico = timezone(timedelta(hours=-6))
    # 09:00 in Mexico City is 15:00 UTC, the detection instant: not before it.
    lifecycle = advance(
        Lifecycle(detected_at=T0),
        IncidentStatus.ACKNOWLEDGED,
        datetime(2026, 3, 2, 9, tzinfo=mexico),
    )
    assert lifecycle.acknowledged_at == T0


def test_impact_start_may_be_back_dated_when_advancing() -> None:
    lifecycle = advance(
        Lifecycle(detected_at=T0),
        IncidentStatus.MITIGATED,
        _minutes(10),
        impact_started_at=_minutes(-40),
    )
    assert lifecycle.impact_started_at == _minutes(-40)


def test_impact_start_after_detection_is_a_conflict() -> None:
    with pytest.raises(Conflict, match=r"impact_started_at .* after detected_at"):
        advance(
            Lifecycle(detected_at=T0),
            IncidentStatus.ACKNOWLEDGED,
            _minutes(10),
            impact_started_at=_minutes(1),
        )


def test_a_manual_resolution_is_unverified_by_default() -> None:
    lifecycle = advance(Lifecycle(detected_at=T0), IncidentStatus.RESOLVED, _minutes(30))
    assert lifecycle.resolved_verified is False


def test_only_a_resolution_can_be_verified() -> None:
    with pytest.raises(InvalidInput, match="only a resolution"):
        advance(Lifecycle(detected_at=T0), IncidentStatus.MITIGATED, _minutes(3), verified=True)


@pytest.mark.parametrize(
    "fields",
    [
        {"impact_started_at": _minutes(1)},
        {"acknowledged_at": _minutes(10), "mitigated_at": _minutes(5)},
        {"resolved_at": _minutes(10), "closed_at": _minutes(9)},
        {"resolved_verified": True},
    ],
)
def test_a_lifecycle_built_out_of_order_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        Lifecycle(detected_at=T0, **fields)  # type: ignore[arg-type]


def test_the_status_is_the_furthest_milestone_set() -> None:
    lifecycle = Lifecycle(detected_at=T0, mitigated_at=_minutes(3))
    assert lifecycle.status is IncidentStatus.MITIGATED
    assert _bare_incident(lifecycle=lifecycle).status is IncidentStatus.MITIGATED


_RANK = {status: rank for rank, status in enumerate(IncidentStatus)}

steps = st.lists(
    st.tuples(
        st.sampled_from(list(IncidentStatus)),
        st.integers(-30, 200),
        st.none() | st.integers(-60, 30),
    ),
    max_size=8,
)


@given(steps)
def test_random_advances_never_break_the_order_and_every_illegal_one_is_a_conflict(
    sequence: list[tuple[IncidentStatus, int, int | None]],
) -> None:
    incident = _complete_incident()
    for to, offset, impact_offset in sequence:
        lifecycle = incident.lifecycle
        at = _minutes(offset)
        impact = None if impact_offset is None else _minutes(impact_offset)
        latest = lifecycle.at(lifecycle.status)
        assert latest is not None
        legal = (
            to is not IncidentStatus.OPEN
            and _RANK[to] > _RANK[lifecycle.status]
            and at >= latest
            and (impact is None or impact <= lifecycle.detected_at)
            and not (to is IncidentStatus.CLOSED and impact is not None)
        )
        try:
            if to is IncidentStatus.CLOSED:
                if impact is not None:
                    continue  # close takes no impact start; nothing to check
                incident = close(incident, at)
            else:
                incident = dataclasses.replace(
                    incident, lifecycle=advance(lifecycle, to, at, impact_started_at=impact)
                )
        except Conflict:
            assert not legal, (to, at, lifecycle)
            assert incident.lifecycle == lifecycle
            continue
        assert legal, (to, at, lifecycle)
        assert incident.status is to
        assert incident.lifecycle.at(to) == at
        moments = [m for _, m in incident.lifecycle.milestones() if m is not None]
        assert moments == sorted(moments)


# --- the five mandatory fields -------------------------------------------------------------------


def test_the_runbook_header_names_five_mandatory_fields() -> None:
    assert MANDATORY_FIELDS == (
        "timestamp",
        "correlation_id",
        "external_ids",
        "corrective_action",
        "prevention",
    )


def test_a_fresh_incident_lacks_everything_but_its_timestamp() -> None:
    assert missing_for_close(_bare_incident()) == [
        "correlation_id",
        "external_ids",
        "corrective_action",
        "prevention.summary",
        "prevention.root_cause",
        "prevention.action_items",
    ]


def test_close_refuses_and_says_which_fields_are_missing() -> None:
    incident = dataclasses.replace(_complete_incident(), correlation_ids=(), corrective_actions=())
    with pytest.raises(Conflict) as caught:
        close(incident, _minutes(90))
    message = caught.value.message
    assert message.startswith("incident 7 cannot be closed: missing correlation_id")
    assert "corrective_action (at least one corrective action)" in message
    assert "external_ids" not in message
    assert "prevention" not in message


@pytest.mark.parametrize(
    ("change", "missing"),
    [
        ({"correlation_ids": ()}, ["correlation_id"]),
        ({"external_ids": ExternalIds()}, ["external_ids"]),
        ({"corrective_actions": ()}, ["corrective_action"]),
        (
            {"postmortem": None},
            ["prevention.summary", "prevention.root_cause", "prevention.action_items"],
        ),
        (
            {"postmortem": PostMortem(summary="s", root_cause="  ", action_items=(ITEM,))},
            ["prevention.root_cause"],
        ),
        (
            {"postmortem": PostMortem(summary="s", root_cause="r")},
            ["prevention.action_items"],
        ),
    ],
)
def test_each_missing_field_alone_blocks_the_close(
    change: dict[str, object], missing: list[str]
) -> None:
    incident = dataclasses.replace(_complete_incident(), **change)  # type: ignore[arg-type]
    assert missing_for_close(incident) == missing
    with pytest.raises(Conflict, match="cannot be closed"):
        close(incident, _minutes(90))


def test_a_stated_reason_that_no_correlation_id_exists_satisfies_that_field() -> None:
    incident = dataclasses.replace(
        _complete_incident(),
        correlation_ids=(),
        no_correlation_id_reason="Opened by hand from a customer call; no request reached us",
    )
    assert missing_for_close(incident) == []


def test_a_blank_reason_does_not_replace_a_correlation_id() -> None:
    incident = dataclasses.replace(
        _complete_incident(), correlation_ids=(), no_correlation_id_reason="   "
    )
    assert missing_for_close(incident) == ["correlation_id"]


def test_a_complete_incident_closes_and_cannot_close_twice() -> None:
    closed = close(_complete_incident(), _minutes(120))
    assert closed.status is IncidentStatus.CLOSED
    assert closed.lifecycle.closed_at == _minutes(120)
    with pytest.raises(Conflict, match="only moves forward"):
        close(closed, _minutes(121))


def test_closing_before_the_last_milestone_is_a_conflict() -> None:
    lifecycle = advance(Lifecycle(detected_at=T0), IncidentStatus.RESOLVED, _minutes(50))
    with pytest.raises(Conflict, match=r"closed_at .* before resolved_at"):
        close(_complete_incident(lifecycle), _minutes(49))


@pytest.mark.parametrize(
    ("description", "owner", "due"),
    [
        ("", "ana", date(2026, 4, 1)),
        ("Alert on key age", " ", date(2026, 4, 1)),
        ("Alert on key age", "ana", datetime(2026, 4, 1, tzinfo=UTC)),
    ],
)
def test_an_action_item_needs_a_description_an_owner_and_a_due_date(
    description: str, owner: str, due: date
) -> None:
    with pytest.raises(InvalidInput):
        ActionItem(description, owner, due)


def test_a_corrective_action_needs_an_aware_time_and_an_actor() -> None:
    with pytest.raises(InvalidInput):
        Action(datetime(2026, 3, 2, 16), "ana", "replay")  # noqa: DTZ001
    with pytest.raises(InvalidInput):
        Action(T0, "", "replay")


def test_an_incident_needs_a_title_and_real_correlation_ids() -> None:
    with pytest.raises(InvalidInput):
        _bare_incident(title=" ")
    with pytest.raises(InvalidInput):
        _bare_incident(correlation_ids=("ok", ""))


def test_duplicate_correlation_ids_are_kept_once() -> None:
    assert _bare_incident(correlation_ids=("a", "b", "a")).correlation_ids == ("a", "b")


# --- external ids --------------------------------------------------------------------------------


def test_external_ids_cover_every_provider_the_runbooks_name() -> None:
    assert PROVIDER_FIELDS == (
        "conekta_order",
        "conekta_charge",
        "conekta_event",
        "mifiel_document",
        "metamap_verification",
        "odoo_move",
        "neon_statement_line",
        "backup_object",
    )


def test_the_union_of_external_ids_keeps_order_and_drops_duplicates() -> None:
    first = ExternalIds(conekta_order=("ord_1", "ord_2"), odoo_move=("41",))
    second = ExternalIds(conekta_order=("ord_2", "ord_3"), mifiel_document=("doc_9",))
    union = first.union(second)
    assert union.conekta_order == ("ord_1", "ord_2", "ord_3")
    assert union.odoo_move == ("41",)
    assert union.mifiel_document == ("doc_9",)
    assert union.pairs()[:3] == [
        ("conekta_order", "ord_1"),
        ("conekta_order", "ord_2"),
        ("conekta_order", "ord_3"),
    ]


def test_external_ids_round_trip_through_a_dict() -> None:
    ids = ExternalIds(conekta_event=("evt_1",), neon_statement_line=("L-3",))
    assert ExternalIds.from_dict(ids.as_dict()) == ids
    assert not ids.is_empty()
    assert ExternalIds().is_empty()


def test_unknown_providers_and_bare_strings_are_refused() -> None:
    with pytest.raises(InvalidInput, match="conekta_orden"):
        ExternalIds.from_dict({"conekta_orden": ["ord_1"]})
    with pytest.raises(InvalidInput, match="not one string"):
        ExternalIds(conekta_order="ord_1")  # type: ignore[arg-type]


# --- runbooks ------------------------------------------------------------------------------------


def test_runbook_titles_are_the_seed_headings() -> None:
    seed = (shared_dir() / "seed" / "runbooks-operativos.md").read_text(encoding="utf-8")
    headings = dict(re.findall(r"^## (\d)\) (.+)$", seed, flags=re.MULTILINE))
    assert {str(r.number): r.seed_title for r in Runbook if r.number} == headings


def test_runbook_anchors_match_the_runbooks_document() -> None:
    anchors = re.findall(r"^## (\d-\S+)$", (REPO / "docs" / "runbooks.md").read_text(), re.M)
    assert anchors
    assert all(runbook_from_label(anchor).slug == anchor for anchor in anchors)


@pytest.mark.parametrize(
    ("label", "runbook"),
    [
        ("2", Runbook.ODOO_POSTING_FAILS),
        ("2-asiento-contable-falla-en-odoo", Runbook.ODOO_POSTING_FAILS),
        ("7-whatever-the-anchor-says", Runbook.BACKUPS_NOT_RUNNING),
        ("webhook-failures", Runbook.OTHER),
        ("9", Runbook.OTHER),
        (None, Runbook.OTHER),
    ],
)
def test_runbook_labels_from_alerts_map_to_a_runbook_or_other(
    label: str | None, runbook: Runbook
) -> None:
    assert runbook_from_label(label) is runbook


# --- timeline ------------------------------------------------------------------------------------


def _row(
    at: datetime,
    kind: TimelineKind,
    table: str,
    source_id: str,
    *,
    correlation_id: str | None = None,
    external_ids: dict[str, str] | None = None,
    actor: str | None = None,
) -> TimelineEntry:
    return TimelineEntry(
        at=at,
        kind=kind,
        source_table=table,
        source_id=source_id,
        summary="s",
        correlation_id=correlation_id,
        external_ids=external_ids or {},
        actor=actor,
    )


def test_the_timeline_orders_by_time_then_kind_table_and_numeric_id() -> None:
    rows = [
        _row(_minutes(2), TimelineKind.ALERT, "alerts", "1"),
        _row(_minutes(1), TimelineKind.WEBHOOK_ATTEMPT, "webhook_attempts", "10"),
        _row(_minutes(1), TimelineKind.WEBHOOK_ATTEMPT, "webhook_attempts", "9"),
        _row(_minutes(1), TimelineKind.DEAD_LETTER, "dead_letters", "3"),
        _row(_minutes(1), TimelineKind.WEBHOOK_ATTEMPT, "inbox", "evt_b"),
    ]
    ordered = order_timeline(rows)
    assert [(r.source_table, r.source_id) for r in ordered] == [
        ("dead_letters", "3"),
        ("inbox", "evt_b"),
        ("webhook_attempts", "9"),
        ("webhook_attempts", "10"),
        ("alerts", "1"),
    ]


def test_timeline_rows_with_equal_keys_keep_their_given_order() -> None:
    first = _row(T0, TimelineKind.NOTE, "notes", "5", actor="ana")
    second = _row(T0, TimelineKind.NOTE, "notes", "5", actor="luis")
    assert [r.actor for r in order_timeline([first, second])] == ["ana", "luis"]
    assert [r.actor for r in order_timeline([second, first])] == ["luis", "ana"]


def test_a_timeline_row_needs_an_aware_time_and_known_provider_fields() -> None:
    with pytest.raises(InvalidInput):
        _row(datetime(2026, 3, 2), TimelineKind.NOTE, "notes", "1")  # noqa: DTZ001
    with pytest.raises(InvalidInput, match="conekta_orden"):
        _row(T0, TimelineKind.NOTE, "notes", "1", external_ids={"conekta_orden": "ord_1"})


def test_a_row_relates_to_an_incident_by_correlation_id_or_provider_id() -> None:
    incident = _complete_incident()
    assert relates_to(
        _row(T0, TimelineKind.JOB_RUN, "jobs", "1", correlation_id="corr-1"), incident
    )
    assert relates_to(
        _row(T0, TimelineKind.PULL, "pulls", "2", external_ids={"conekta_order": "ord_1"}),
        incident,
    )
    assert not relates_to(
        _row(T0, TimelineKind.PULL, "pulls", "3", external_ids={"conekta_charge": "ord_1"}),
        incident,
    )
    assert not relates_to(_row(T0, TimelineKind.JOB_RUN, "jobs", "4", correlation_id="x"), incident)
