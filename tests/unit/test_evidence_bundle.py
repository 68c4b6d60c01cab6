"""Evidence bundles: hash-chained JSON plus Markdown that an auditor can check without Guardia."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings

from guardia.core.errors import Conflict, InvalidInput
from guardia.incidents.evidence import (
    JSON_NAME,
    MARKDOWN_NAME,
    VERIFY_NAME,
    Bundle,
    build_bundle,
    verify_bundle,
    write_bundle,
)
from guardia.incidents.model import (
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
)
from tests.support.pii import emails, phones

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
GENERATED = datetime(2026, 3, 4, 9, 30, tzinfo=UTC)
CLABE = "646180157200198457"
PAN = "4242 4242 4242 4242"


def _m(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


def _incident(*, closed: bool = True) -> Incident:
    lifecycle = Lifecycle(detected_at=T0, impact_started_at=_m(-12))
    lifecycle = advance(lifecycle, IncidentStatus.ACKNOWLEDGED, _m(3))
    lifecycle = advance(lifecycle, IncidentStatus.MITIGATED, _m(25))
    lifecycle = advance(lifecycle, IncidentStatus.RESOLVED, _m(40), verified=True)
    incident = Incident(
        id=42,
        title="Webhooks de Conekta rechazados | firma inválida",
        severity=Severity.SEV2,
        runbook=Runbook.WEBHOOK_MISSING,
        lifecycle=lifecycle,
        correlation_ids=("c0ffee01",),
        external_ids=ExternalIds(conekta_order=("ord_2yQ8",), conekta_event=("evt_91",)),
        corrective_actions=(Action(_m(20), "ana", "guardia pull ord_2yQ8", "pull-7"),),
        postmortem=PostMortem(
            summary="The webhook key rotated at Conekta and Guardia kept the old one.",
            impact="1 order shown unpaid for 40 minutes.",
            root_cause="Keys loaded only at start-up.",
            trigger="Key rotation at 08:45.",
            resolution="Reloaded the key and pulled the order.",
            detection="WebhookFailureRateHigh, TTD 12 minutes.",
            action_items=(ActionItem("Reload keys without restart", "ana", date(2026, 3, 20)),),
            lessons="Alert on the first invalid signature.",
        ),
        fingerprint="WebhookFailureRateHigh/conekta",
    )
    return close(incident, _m(60 * 30)) if closed else incident


def _timeline() -> list[TimelineEntry]:
    return [
        TimelineEntry(
            at=_m(10),
            kind=TimelineKind.PULL,
            source_table="pulls",
            source_id="7",
            summary="guardia pull ord_2yQ8 applied paid",
            correlation_id="c0ffee01",
            external_ids={"conekta_order": "ord_2yQ8"},
            actor="ana",
        ),
        TimelineEntry(
            at=_m(-12),
            kind=TimelineKind.WEBHOOK_ATTEMPT,
            source_table="webhook_attempts",
            source_id="9",
            summary="order.paid rejected: invalid signature",
            correlation_id="c0ffee01",
            external_ids={"conekta_event": "evt_91", "conekta_order": "ord_2yQ8"},
        ),
        TimelineEntry(
            at=T0,
            kind=TimelineKind.ALERT,
            source_table="alerts",
            source_id="3",
            summary="WebhookFailureRateHigh fired",
        ),
    ]


def _records() -> dict[str, list[dict[str, Any]]]:
    return {
        "webhook_attempts": [
            {
                "id": 9,
                "received_at": datetime(2026, 3, 2, 8, 48, tzinfo=timezone(timedelta(hours=-6))),
                "outcome": "invalid_signature",
                "amount": Decimal("1500.00"),
                "ratio": 0.95,
                "event_uuid": UUID("12345678-1234-5678-1234-567812345678"),
                "big": 2**60,
                "payer_clabe": CLABE,
                "note": f"paid with {PAN}",
                # Keys and text that JCS orders and escapes in its own way.
                "détails": {"\r": "cr", "😀": "emoji", "\ufb33": "dalet", "é": "tab\there\x01"},
            }
        ],
        "pulls": [{"id": 7, "order_id": "ord_2yQ8", "applied": True, "status": None}],
    }


def _bundle(**kwargs: Any) -> Bundle:
    return build_bundle(_incident(), _timeline(), _records(), generated_at=GENERATED, **kwargs)


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    return write_bundle(_bundle(), tmp_path / "incident-42")


def _load(directory: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((directory / JSON_NAME).read_text(encoding="utf-8"))
    return loaded


def _save(directory: Path, document: dict[str, Any]) -> None:
    """Write a tampered document in Guardia's own layout, so only the tampering shows."""
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    (directory / JSON_NAME).write_text(text, encoding="utf-8")


def _auditor_snippet(directory: Path) -> str:
    return (directory / VERIFY_NAME).read_text().split("```python\n", 1)[1].split("```", 1)[0]


def _run_auditor_snippet(directory: Path) -> list[str]:
    # -I: isolated from this environment, so the snippet can only use the standard library.
    result = subprocess.run(
        [sys.executable, "-I", "-c", _auditor_snippet(directory)],
        cwd=directory,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.splitlines()


# --- a clean bundle ----------------------------------------------------------------------------


def test_a_clean_bundle_verifies(bundle_dir: Path) -> None:
    result = verify_bundle(bundle_dir)
    assert result.problems == []
    assert result.ok
    assert result.head == _load(bundle_dir)["head"]


def test_verify_accepts_the_json_file_as_well_as_the_directory(bundle_dir: Path) -> None:
    assert verify_bundle(bundle_dir / JSON_NAME).ok


def test_the_bundle_holds_the_incident_then_the_timeline_in_order_then_the_records() -> None:
    bundle = _bundle()
    assert [(e["index"], e["type"]) for e in bundle.entries] == [
        (0, "incident"),
        (1, "timeline"),
        (2, "timeline"),
        (3, "timeline"),
        (4, "record"),
        (5, "record"),
    ]
    assert [e["body"]["kind"] for e in bundle.entries[1:4]] == ["webhook_attempt", "alert", "pull"]
    assert [e["body"]["table"] for e in bundle.entries[4:]] == ["pulls", "webhook_attempts"]
    assert bundle.header["entry_count"] == 6
    assert bundle.header["incident_id"] == 42
    assert bundle.header["generated_at"] == "2026-03-04T09:30:00+00:00"
    assert bundle.head == bundle.entries[-1]["hash"]


def test_a_timeline_row_links_to_the_entry_of_its_underlying_record() -> None:
    entries = _bundle().entries
    assert entries[1]["body"]["source"] == {"table": "webhook_attempts", "id": "9", "entry": 5}
    assert entries[3]["body"]["source"] == {"table": "pulls", "id": "7", "entry": 4}
    assert entries[2]["body"]["source"]["entry"] is None  # the alert row was not exported


def test_building_the_same_bundle_twice_gives_identical_bytes() -> None:
    first, second = _bundle(), _bundle()
    assert first.json_text() == second.json_text()
    assert first.markdown == second.markdown


def test_values_are_converted_to_exact_text_before_hashing() -> None:
    row = _bundle(redact=False).entries[5]["body"]["row"]
    assert row["received_at"] == "2026-03-02T14:48:00+00:00"
    assert row["amount"] == "1500.00"
    assert row["ratio"] == "0.95"
    assert row["event_uuid"] == "12345678-1234-5678-1234-567812345678"
    assert row["big"] == str(2**60)
    assert row["id"] == 9


@pytest.mark.parametrize(
    "value",
    [datetime(2026, 3, 2, 8, 48), b"raw body", {1, 2}],  # noqa: DTZ001
    ids=repr,
)
def test_values_without_an_exact_evidence_form_are_refused(value: object) -> None:
    with pytest.raises(InvalidInput, match=r"webhook_attempts|row"):
        build_bundle(_incident(), [], {"webhook_attempts": [{"id": 1, "x": value}]})


def test_secrets_and_personal_data_are_redacted_by_default(bundle_dir: Path) -> None:
    for name in (JSON_NAME, MARKDOWN_NAME):
        text = (bundle_dir / name).read_text(encoding="utf-8")
        assert CLABE not in text
        assert PAN not in text
        assert "paid with [PAN]" in text
    assert _load(bundle_dir)["header"]["redacted"] is True


def test_redaction_can_be_turned_off_and_the_header_says_so() -> None:
    bundle = _bundle(redact=False)
    assert CLABE in bundle.json_text()
    assert PAN in bundle.markdown
    assert bundle.header["redacted"] is False


def test_write_bundle_never_overwrites_evidence(bundle_dir: Path) -> None:
    with pytest.raises(Conflict, match=JSON_NAME):
        write_bundle(_bundle(), bundle_dir)


# --- tampering ---------------------------------------------------------------------------------


def _sample_positions(size: int, dense_prefix: int, stride: int) -> list[int]:
    """Every byte of the prefix, then every `stride`-th byte and the last (all would take 10 s)."""
    return sorted({*range(min(dense_prefix, size)), *range(0, size, stride), size - 1})


def test_one_byte_edits_across_bundle_json_are_all_detected(bundle_dir: Path) -> None:
    path = bundle_dir / JSON_NAME
    original = path.read_bytes()
    header_end = original.index(b'"entries"')
    undetected = []
    # The header, chained only through entry 0's prev_hash, is covered byte by byte.
    for position in _sample_positions(len(original), header_end, stride=11):
        edited = bytearray(original)
        edited[position] ^= 0x01
        path.write_bytes(bytes(edited))
        if verify_bundle(bundle_dir).ok:
            undetected.append(position)
    assert undetected == []


def test_one_byte_edits_across_bundle_md_are_all_detected(bundle_dir: Path) -> None:
    path = bundle_dir / MARKDOWN_NAME
    original = path.read_bytes()
    undetected = []
    for position in _sample_positions(len(original), 0, stride=29):
        edited = bytearray(original)
        edited[position] ^= 0x01
        path.write_bytes(bytes(edited))
        result = verify_bundle(bundle_dir)
        if result.problems != [
            f"{MARKDOWN_NAME}: SHA-256 differs from header.markdown_sha256 (edited)"
        ]:
            undetected.append(position)
    assert undetected == []


def test_an_edited_value_is_reported_at_its_entry_and_nowhere_else(bundle_dir: Path) -> None:
    document = _load(bundle_dir)
    document["entries"][4]["body"]["row"]["applied"] = False
    _save(bundle_dir, document)
    assert verify_bundle(bundle_dir).problems == [
        "entry 4 (position 4): content does not match its hash (edited)"
    ]


def test_a_deleted_entry_is_named(bundle_dir: Path) -> None:
    document = _load(bundle_dir)
    del document["entries"][2]
    _save(bundle_dir, document)
    problems = verify_bundle(bundle_dir).problems
    assert "entry 2: missing (deleted)" in problems
    assert "header: says 6 entries, the bundle holds 5" in problems
    assert any(p.startswith("entry 3 (position 2): prev_hash is not") for p in problems)


def test_a_deleted_last_entry_is_named_and_breaks_the_head(bundle_dir: Path) -> None:
    document = _load(bundle_dir)
    document["entries"].pop()
    _save(bundle_dir, document)
    problems = verify_bundle(bundle_dir).problems
    assert "entry 5: missing (deleted)" in problems
    assert any(p.startswith("head: does not match") for p in problems)


def test_a_swapped_pair_is_named(bundle_dir: Path) -> None:
    document = _load(bundle_dir)
    entries = document["entries"]
    entries[2], entries[3] = entries[3], entries[2]
    _save(bundle_dir, document)
    problems = verify_bundle(bundle_dir).problems
    assert "entries 2 and 3 are out of order (swapped) at positions 2 and 3" in problems
    assert not any("content does not match" in p for p in problems)


def test_a_swapped_pair_with_renumbered_indexes_fails_both_hashes(bundle_dir: Path) -> None:
    document = _load(bundle_dir)
    entries = document["entries"]
    entries[2], entries[3] = entries[3], entries[2]
    entries[2]["index"], entries[3]["index"] = 2, 3
    _save(bundle_dir, document)
    problems = verify_bundle(bundle_dir).problems
    assert "entry 2 (position 2): content does not match its hash (edited)" in problems
    assert "entry 3 (position 3): content does not match its hash (edited)" in problems


def test_an_edited_header_is_reported_as_the_header(bundle_dir: Path) -> None:
    document = _load(bundle_dir)
    document["header"]["generated_at"] = "2026-03-01T09:30:00+00:00"
    _save(bundle_dir, document)
    assert verify_bundle(bundle_dir).problems == [
        "entry 0 (position 0): prev_hash is not the header's hash (the header was edited "
        "or was removed)"
    ]


def test_an_edit_that_changes_no_value_is_still_reported(bundle_dir: Path) -> None:
    path = bundle_dir / JSON_NAME
    path.write_text(path.read_text(encoding="utf-8").replace('  "head"', '   "head"'), "utf-8")
    assert verify_bundle(bundle_dir).problems == [
        f"{JSON_NAME}: bytes differ from the layout Guardia writes (edited outside the values)"
    ]


def test_a_missing_markdown_file_is_reported(bundle_dir: Path) -> None:
    (bundle_dir / MARKDOWN_NAME).unlink()
    assert verify_bundle(bundle_dir).problems == [f"{MARKDOWN_NAME}: missing"]


def test_a_file_that_is_not_json_is_reported(bundle_dir: Path) -> None:
    (bundle_dir / JSON_NAME).write_text("not json", encoding="utf-8")
    result = verify_bundle(bundle_dir)
    assert not result.ok
    assert result.problems[0].startswith(f"{JSON_NAME}: not valid UTF-8 JSON")


def test_a_missing_bundle_is_reported(tmp_path: Path) -> None:
    result = verify_bundle(tmp_path)
    assert not result.ok
    assert result.problems[0].startswith(f"{JSON_NAME}: cannot be read")


# --- reading and checking without Guardia -----------------------------------------------------


def test_the_auditor_snippet_passes_a_clean_bundle_with_only_the_standard_library(
    bundle_dir: Path,
) -> None:
    assert _run_auditor_snippet(bundle_dir) == [f"entry {i} ok" for i in range(6)] + ["head ok"]


def test_the_auditor_snippet_flags_the_edited_entry(bundle_dir: Path) -> None:
    document = _load(bundle_dir)
    document["entries"][5]["body"]["row"]["outcome"] = "accepted"
    _save(bundle_dir, document)
    lines = _run_auditor_snippet(bundle_dir)
    assert "entry 5 BROKEN" in lines
    assert [line for line in lines if "BROKEN" in line] == ["entry 5 BROKEN"]


def test_the_auditor_snippet_is_short(bundle_dir: Path) -> None:
    assert len(_auditor_snippet(bundle_dir).splitlines()) <= 16


def test_the_markdown_digest_is_recorded_and_verify_md_explains_sha256sum(
    bundle_dir: Path,
) -> None:
    digest = hashlib.sha256((bundle_dir / MARKDOWN_NAME).read_bytes()).hexdigest()
    assert _load(bundle_dir)["header"]["markdown_sha256"] == digest
    guide = (bundle_dir / VERIFY_NAME).read_text(encoding="utf-8")
    assert f"sha256sum {MARKDOWN_NAME}" in guide
    assert digest in guide
    assert _load(bundle_dir)["head"] in guide


def test_the_markdown_shows_the_five_fields_timeline_post_mortem_and_records() -> None:
    markdown = _bundle().markdown
    assert "# Evidence bundle: incident 42" in markdown
    assert "| Title | Webhooks de Conekta rechazados \\| firma inválida |" in markdown
    assert "| Runbook | 1) Webhook de Conekta no llega |" in markdown
    for field in ("Timestamp (`detected_at`)", "correlation_id", "External IDs"):
        assert f"| {field} | yes |" in markdown
    assert "| Prevention (post-mortem) | yes | post-mortem below |" in markdown
    assert "conekta_order: `ord_2yQ8`; conekta_event: `evt_91`" in markdown
    assert "| 2026-03-02T14:48:00+00:00 | 2026-03-02T08:48:00-06:00 |" in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("| 1 |")]
    assert rows
    assert rows[0].endswith("| webhook_attempts/9 (entry 5) |")
    assert markdown.index("WebhookFailureRateHigh fired") < markdown.index("applied paid")
    assert "### Root cause\n\nKeys loaded only at start-up." in markdown
    assert "| Reload keys without restart | ana | 2026-03-20 |" in markdown
    assert "### Entry 4: pulls/7" in markdown
    assert '"order_id": "ord_2yQ8"' in markdown


def test_the_markdown_marks_the_mandatory_fields_an_open_incident_lacks() -> None:
    bare = Incident(
        id=5,
        title="Backups",
        severity=Severity.SEV3,
        runbook=Runbook.BACKUPS_NOT_RUNNING,
        lifecycle=Lifecycle(detected_at=T0),
    )
    bundle = build_bundle(bare, [], {}, generated_at=GENERATED)
    assert bundle.entries[0]["body"]["missing_for_close"][:3] == [
        "correlation_id",
        "external_ids",
        "corrective_action",
    ]
    markdown = bundle.markdown
    assert "| correlation_id | NO |" in markdown
    assert "| Corrective action | NO | 0 recorded |" in markdown
    assert (
        "| Prevention (post-mortem) | NO | missing action_items, root_cause, summary |" in markdown
    )
    assert "No timeline rows." in markdown
    assert "Not written." in markdown


@settings(max_examples=60, deadline=None)
@given(email=emails(), phone=phones())
def test_no_generated_email_or_phone_number_reaches_a_bundle(email: str, phone: str) -> None:
    incident = replace(_incident(), title=f"Customer {email} reports a charge")
    records = {
        "webhook_attempts": [{"id": 9, "detail": f"callback to {phone}", "contact": email}],
        "notes": [{"id": 3, "note": f"called {phone}, then wrote to {email}"}],
    }

    bundle = build_bundle(incident, _timeline(), records, generated_at=GENERATED)

    for text in (bundle.json_text(), bundle.markdown):
        assert email not in text
        assert phone not in text
    assert "[EMAIL]" in bundle.markdown
    assert "[PHONE]" in bundle.markdown
