"""Evidence bundles: an incident, its timeline and the rows behind it, hash-chained for auditors.

A bundle is a directory of three files:

- `bundle.json`: a header, then one entry per item (the incident, each timeline row in order,
  each referenced record), then `head`. Each entry carries `index`, `type`, `prev_hash`, `hash`
  and `body`, where `hash = SHA-256(prev_hash || JCS(entry without "hash"))` (RFC 8785; see
  `guardia.core.canonical`). The first entry's `prev_hash` is `SHA-256("0"*64 || JCS(header))`,
  so the header is chained too, and `head` is the last entry's hash.
- `bundle.md`: the same content for people. Its SHA-256 is `header.markdown_sha256`.
- `VERIFY.md`: how to check both by hand with `sha256sum` and a dozen lines of Python.

Choices worth knowing:

- Values are converted before hashing so that the by-hand check needs no number formatting:
  datetimes become UTC ISO-8601 text, dates ISO text, Decimals and floats their decimal text,
  UUIDs and enums their text, integers beyond ±(2**53 - 1) their digits as text. Naive
  datetimes and bytes are refused (raw bodies do not belong in evidence; hash them first).
- Secrets and PII are redacted by default with the log redaction rules
  (`guardia.core.redaction`): the bundle leaves Guardia for auditors, who must not see them.
- `bundle.md` is rendered from the converted (and redacted) bodies, never from the raw objects,
  so it cannot show what `bundle.json` hides.
- `verify_bundle` also checks that `bundle.json` has exactly the layout Guardia writes, so even
  an edit that changes no value (whitespace) is reported.
- A chain proves that nothing changed *after* it was sealed, not who sealed it: whoever rewrites
  every hash produces a valid bundle. Record `head` somewhere the exporter cannot rewrite (the
  audit log, the WORM bucket) when a bundle is exported.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any
from uuid import UUID

from guardia.core.canonical import GENESIS, MAX_SAFE_INTEGER, canonical_json, chain_hash
from guardia.core.clock import MEXICO_CITY
from guardia.core.errors import Conflict, GuardiaError, InvalidInput
from guardia.core.redaction import REDACTED, is_sensitive_key, redact_integer, redact_text
from guardia.incidents.model import (
    Incident,
    TimelineEntry,
    missing_for_close,
    order_timeline,
)
from guardia.incidents.stats import durations

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "JSON_NAME",
    "MARKDOWN_NAME",
    "VERIFY_NAME",
    "Bundle",
    "VerifyResult",
    "build_bundle",
    "verify_bundle",
    "write_bundle",
]

FORMAT = "guardia-evidence-bundle"
FORMAT_VERSION = 1
JSON_NAME = "bundle.json"
MARKDOWN_NAME = "bundle.md"
VERIFY_NAME = "VERIFY.md"

_ENTRY_KEYS = ("index", "type", "prev_hash", "hash", "body")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CHAIN_RULE = (
    "hash = sha256(prev_hash || JCS(entry without 'hash')); "
    "entry 0 prev_hash = sha256('0'*64 || JCS(header)); head = last hash"
)


@dataclass(frozen=True, slots=True)
class Bundle:
    """A sealed evidence bundle, ready to write."""

    header: dict[str, Any]
    entries: list[dict[str, Any]]
    head: str
    markdown: str

    def document(self) -> dict[str, Any]:
        """The content of bundle.json."""
        return {"header": self.header, "entries": self.entries, "head": self.head}

    def json_text(self) -> str:
        """bundle.json exactly as written."""
        return _render_json(self.document())

    def verify_text(self) -> str:
        """VERIFY.md: how to check this bundle without Guardia."""
        return _verify_markdown(self.head, self.header.get("markdown_sha256", ""))


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of checking a bundle: ok, or every problem found, each naming where."""

    ok: bool
    problems: list[str]
    head: str | None = None


def build_bundle(
    incident: Incident,
    timeline: Sequence[TimelineEntry],
    records: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    generated_at: datetime | None = None,
    redact: bool = True,
) -> Bundle:
    """Seal an incident, its timeline and the rows it references into a hash-chained bundle."""
    moment = generated_at if generated_at is not None else datetime.now(UTC)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput("generated_at must be timezone-aware")
    ordered = order_timeline(timeline)
    # Tables in name order, each table's rows in the order given.
    record_items = [(table, row) for table in sorted(records) for row in records[table]]
    first_record = 1 + len(ordered)
    record_index: dict[tuple[str, str], int] = {}
    for offset, (table, row) in enumerate(record_items):
        row_id = _row_id(row)
        if row_id is not None:
            record_index.setdefault((table, row_id), first_record + offset)
    items: list[tuple[str, Any]] = [("incident", _incident_body(incident))]
    items += [("timeline", _timeline_body(entry, record_index)) for entry in ordered]
    items += [("record", {"table": table, "row": dict(row)}) for table, row in record_items]
    bodies = [
        (kind, _clean(body, f"entries[{i}].body", redact)) for i, (kind, body) in enumerate(items)
    ]

    header: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "generated_at": _instant(moment),
        "incident_id": incident.id,
        "entry_count": len(bodies),
        "canonicalization": "RFC 8785 (JCS)",
        "hash_algorithm": "sha256",
        "chain": _CHAIN_RULE,
        "redacted": redact,
        "markdown_file": MARKDOWN_NAME,
    }
    markdown = _render_markdown(header, bodies)
    header["markdown_sha256"] = hashlib.sha256(markdown.encode("utf-8")).hexdigest()

    entries: list[dict[str, Any]] = []
    previous = chain_hash(GENESIS, header)
    for index, (kind, body) in enumerate(bodies):
        entry: dict[str, Any] = {"index": index, "type": kind, "prev_hash": previous, "body": body}
        entry["hash"] = chain_hash(previous, entry)
        entries.append({key: entry[key] for key in _ENTRY_KEYS})
        previous = entry["hash"]
    return Bundle(header=header, entries=entries, head=previous, markdown=markdown)


def write_bundle(bundle: Bundle, directory: Path) -> Path:
    """Write bundle.json, bundle.md and VERIFY.md into a directory; never overwrite; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        JSON_NAME: bundle.json_text(),
        MARKDOWN_NAME: bundle.markdown,
        VERIFY_NAME: bundle.verify_text(),
    }
    for name, text in files.items():
        try:
            with (directory / name).open("xb") as handle:
                handle.write(text.encode("utf-8"))
        except FileExistsError as exc:
            raise Conflict(f"{name} already exists in the bundle directory") from exc
    return directory


def verify_bundle(path: Path) -> VerifyResult:
    """Check a bundle directory (or its bundle.json) and name every edit, deletion or swap."""
    json_path = path / JSON_NAME if path.is_dir() else path
    problems: list[str] = []
    try:
        raw = json_path.read_bytes()
    except OSError as exc:
        return VerifyResult(ok=False, problems=[f"{JSON_NAME}: cannot be read ({exc.strerror})"])
    try:
        text = raw.decode("utf-8")
        document = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        return VerifyResult(ok=False, problems=[f"{JSON_NAME}: not valid UTF-8 JSON ({exc})"])
    if not isinstance(document, dict) or set(document) != {"header", "entries", "head"}:
        return VerifyResult(
            ok=False, problems=[f"{JSON_NAME}: top level must hold exactly header, entries, head"]
        )
    header, entries, head = document["header"], document["entries"], document["head"]
    if not isinstance(header, dict) or not isinstance(entries, list):
        return VerifyResult(ok=False, problems=[f"{JSON_NAME}: header or entries malformed"])
    if _render_json(document) != text:
        problems.append(
            f"{JSON_NAME}: bytes differ from the layout Guardia writes (edited outside the values)"
        )
    problems += _check_header(header, len(entries))
    problems += _check_order(entries, header.get("entry_count"))
    last = _check_chain(header, entries, problems)
    if head != last:
        problems.append("head: does not match the last entry's hash (entries cut or head edited)")
    problems += _check_markdown(json_path.parent / MARKDOWN_NAME, header.get("markdown_sha256"))
    return VerifyResult(
        ok=not problems, problems=problems, head=head if isinstance(head, str) else None
    )


# --- verification ----------------------------------------------------------------------------


def _check_header(header: dict[str, Any], found: int) -> list[str]:
    problems: list[str] = []
    if header.get("format") != FORMAT or header.get("format_version") != FORMAT_VERSION:
        problems.append(f"header: not a {FORMAT} version {FORMAT_VERSION}")
    count = header.get("entry_count")
    if count != found:
        problems.append(f"header: says {count!r} entries, the bundle holds {found}")
    return problems


def _check_order(entries: list[Any], expected: object) -> list[str]:
    """Name deleted, duplicated and swapped entries from the recorded indexes."""
    indexes = [_entry_index(entry) for entry in entries]
    present = [i for i in indexes if i is not None]
    total = expected if isinstance(expected, int) and not isinstance(expected, bool) else 0
    total = max(total, len(entries), max(present, default=-1) + 1)
    recorded = set(present)
    problems = [f"entry {i}: missing (deleted)" for i in range(total) if i not in recorded]
    seen: set[int] = set()
    for i in present:
        if i in seen:
            problems.append(f"entry {i}: appears more than once")
        seen.add(i)
    position = 0
    while position + 1 < len(indexes):
        here, there = indexes[position], indexes[position + 1]
        if here is not None and there is not None and here > there:
            problems.append(
                f"entries {there} and {here} are out of order (swapped) at positions "
                f"{position} and {position + 1}"
            )
            position += 2
        else:
            position += 1
    for position, index in enumerate(indexes):
        if index is None:
            problems.append(f"position {position}: entry has no valid index")
    return problems


def _check_chain(header: dict[str, Any], entries: list[Any], problems: list[str]) -> str | None:
    """Check every entry's own hash and its link to the one before; return the last hash."""
    try:
        previous: str | None = chain_hash(GENESIS, header)
    except GuardiaError as exc:
        problems.append(f"header: cannot be canonicalised ({exc.message})")
        previous = None
    for position, entry in enumerate(entries):
        label = f"entry {_entry_index(entry)} (position {position})"
        if not isinstance(entry, dict) or set(entry) != set(_ENTRY_KEYS):
            problems.append(f"{label}: malformed (expected keys {', '.join(_ENTRY_KEYS)})")
            previous = None
            continue
        prev_hash, own = entry["prev_hash"], entry["hash"]
        if prev_hash != previous:
            what = "the header's hash" if position == 0 else "the previous entry's hash"
            culprit = "the header was edited" if position == 0 else "an entry before it moved"
            problems.append(f"{label}: prev_hash is not {what} ({culprit} or was removed)")
        content = {key: value for key, value in entry.items() if key != "hash"}
        try:
            valid_prev = isinstance(prev_hash, str) and _HEX64.fullmatch(prev_hash)
            recomputed = chain_hash(prev_hash, content) if valid_prev else None
        except GuardiaError as exc:
            recomputed = None
            problems.append(f"{label}: cannot be canonicalised ({exc.message})")
        if recomputed is None or recomputed != own:
            problems.append(f"{label}: content does not match its hash (edited)")
        previous = own if isinstance(own, str) else None
    return previous


def _check_markdown(path: Path, expected: object) -> list[str]:
    try:
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return [f"{MARKDOWN_NAME}: missing"]
    if actual != expected:
        return [f"{MARKDOWN_NAME}: SHA-256 differs from header.markdown_sha256 (edited)"]
    return []


def _entry_index(entry: object) -> int | None:
    if not isinstance(entry, dict):
        return None
    index = entry.get("index")
    return index if isinstance(index, int) and not isinstance(index, bool) else None


# --- bodies ------------------------------------------------------------------------------------


def _incident_body(incident: Incident) -> dict[str, Any]:
    lifecycle = incident.lifecycle
    postmortem = incident.postmortem
    return {
        "id": incident.id,
        "title": incident.title,
        "severity": incident.severity.value,
        "runbook": {
            "id": incident.runbook.value,
            "title": incident.runbook.seed_title,
            "anchor": incident.runbook.slug,
        },
        "status": incident.status.value,
        "fingerprint": incident.fingerprint,
        "origin": incident.origin.value,
        "lifecycle": {
            **{name: _optional_instant(moment) for name, moment in lifecycle.milestones()},
            "resolved_verified": lifecycle.resolved_verified,
        },
        "durations_seconds": durations(incident),
        "correlation_ids": list(incident.correlation_ids),
        "no_correlation_id_reason": incident.no_correlation_id_reason,
        "external_ids": incident.external_ids.as_dict(),
        "corrective_actions": [
            {
                "at": _instant(action.at),
                "actor": action.actor,
                "description": action.description,
                "reference": action.reference,
            }
            for action in incident.corrective_actions
        ],
        "postmortem": None
        if postmortem is None
        else {
            "summary": postmortem.summary,
            "impact": postmortem.impact,
            "root_cause": postmortem.root_cause,
            "trigger": postmortem.trigger,
            "resolution": postmortem.resolution,
            "detection": postmortem.detection,
            "action_items": [
                {"description": item.description, "owner": item.owner, "due": item.due.isoformat()}
                for item in postmortem.action_items
            ],
            "lessons": postmortem.lessons,
        },
        "missing_for_close": missing_for_close(incident),
    }


def _timeline_body(
    entry: TimelineEntry, record_index: dict[tuple[str, str], int]
) -> dict[str, Any]:
    return {
        "at": _instant(entry.at),
        "kind": entry.kind.value,
        "summary": entry.summary,
        "actor": entry.actor,
        "correlation_id": entry.correlation_id,
        "external_ids": dict(sorted(entry.external_ids.items())),
        "source": {
            "table": entry.source_table,
            "id": entry.source_id,
            "entry": record_index.get((entry.source_table, entry.source_id)),
        },
    }


def _row_id(row: Mapping[str, Any]) -> str | None:
    value = row.get("id")
    if value is None or isinstance(value, bool):
        return None
    return str(value)


def _clean(value: object, path: str, redact: bool, key: str | None = None) -> Any:
    """Convert to hashable JSON values (see module docstring) and redact if asked."""
    if redact and key is not None and value is not None and not isinstance(value, bool):
        if is_sensitive_key(key):
            return REDACTED
    converted = _convert(value, path, redact)
    if redact and isinstance(converted, str):
        return "\n".join(redact_text(line) for line in converted.split("\n"))
    if redact and isinstance(converted, int) and not isinstance(converted, bool):
        return redact_integer(converted)
    return converted


def _convert(value: object, path: str, redact: bool) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Enum):
        return _clean(value.value, path, redact)
    if isinstance(value, int):
        return value if abs(value) <= MAX_SAFE_INTEGER else str(value)
    if isinstance(value, float):
        return canonical_json(value).decode("ascii") if math.isfinite(value) else repr(value)
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidInput(f"evidence: naive datetime at {path}; store instants with a zone")
        return _instant(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(f"evidence: key {key!r} at {path} is not text")
            result[key] = _clean(item, f"{path}.{key}", redact, key)
        return result
    if isinstance(value, list | tuple):
        return [_clean(item, f"{path}[{i}]", redact) for i, item in enumerate(value)]
    raise InvalidInput(
        f"evidence: {type(value).__name__} at {path} has no evidence form; convert it first"
    )


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _optional_instant(moment: datetime | None) -> str | None:
    return None if moment is None else _instant(moment)


def _render_json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


# --- Markdown ------------------------------------------------------------------------------------

_MILESTONE_LABELS = {
    "impact_started_at": "Impact started",
    "detected_at": "Detected",
    "acknowledged_at": "Acknowledged",
    "mitigated_at": "Mitigated",
    "resolved_at": "Resolved",
    "closed_at": "Closed",
}
_POSTMORTEM_SECTIONS = (
    ("summary", "Summary"),
    ("impact", "Impact"),
    ("root_cause", "Root cause"),
    ("trigger", "Trigger"),
    ("resolution", "Resolution"),
    ("detection", "Detection"),
    ("lessons", "Lessons learned"),
)


def _render_markdown(header: Mapping[str, Any], bodies: list[tuple[str, Any]]) -> str:
    incident = bodies[0][1]
    timeline = [(i, body) for i, (kind, body) in enumerate(bodies) if kind == "timeline"]
    records = [(i, body) for i, (kind, body) in enumerate(bodies) if kind == "record"]
    lines: list[str] = []
    lines += _md_intro(header, incident)
    lines += _md_incident(incident)
    lines += _md_mandatory(incident)
    lines += _md_timeline(timeline)
    lines += _md_postmortem(incident["postmortem"])
    lines += _md_records(records)
    return "\n".join(lines).rstrip("\n") + "\n"


def _md_intro(header: Mapping[str, Any], incident: Mapping[str, Any]) -> list[str]:
    ident = incident["id"] if incident["id"] is not None else "(unsaved)"
    about = (
        f"Generated by Guardia at {header['generated_at']} (format {FORMAT} v{FORMAT_VERSION}). "
        "Times are UTC, with America/Mexico_City where shown."
    )
    if header["redacted"]:
        about += " Secrets and personal data are redacted."
    return [
        f"# Evidence bundle: incident {ident}",
        "",
        about,
        "",
        f"This file reads on its own. `{JSON_NAME}` holds the same entries, hash-chained, and "
        f"this file's SHA-256; `{VERIFY_NAME}` explains how to check both without Guardia. "
        "*Entry* numbers below are entry indexes in the JSON file.",
        "",
    ]


def _md_incident(incident: Mapping[str, Any]) -> list[str]:
    runbook = incident["runbook"]
    runbook_text = (
        runbook["title"] if runbook["id"] == "other" else f"{runbook['id']}) {runbook['title']}"
    )
    lines = [
        "## Incident (entry 0)",
        "",
        "| Field | Value |",
        "|---|---|",
        f"| Title | {_cell(incident['title'])} |",
        f"| Severity | {_cell(incident['severity'])} |",
        f"| Runbook | {_cell(runbook_text)} |",
        f"| Status | {_cell(incident['status'])} |",
        f"| Fingerprint | {_cell(incident['fingerprint'])} |",
        "",
        "### Lifecycle",
        "",
        "| Milestone | UTC | America/Mexico_City |",
        "|---|---|---|",
    ]
    lifecycle = incident["lifecycle"]
    for name, label in _MILESTONE_LABELS.items():
        moment = lifecycle[name]
        lines.append(f"| {label} (`{name}`) | {_cell(moment)} | {_cell(_local(moment))} |")
    verified = "yes" if lifecycle["resolved_verified"] else "no"
    lines += ["", f"Resolution verified by automated checks: {verified}.", ""]
    # .get: bundles sealed before durations were recorded still render.
    spans = incident.get("durations_seconds") or {}
    if spans:
        lines += ["### Durations", "", "| Metric | Seconds |", "|---|---|"]
        lines += [f"| {name} | {_cell(value)} |" for name, value in spans.items()]
        lines += ["", f"Origin: {_cell(incident.get('origin', 'live'))}.", ""]
    return lines


def _md_mandatory(incident: Mapping[str, Any]) -> list[str]:
    missing = set(incident["missing_for_close"])
    ids = incident["correlation_ids"]
    reason = incident["no_correlation_id_reason"]
    correlation = ", ".join(f"`{_code(i)}`" for i in ids) or (
        f"none exists: {reason}" if reason else ""
    )
    external = "; ".join(
        f"{name}: " + ", ".join(f"`{_code(v)}`" for v in values)
        for name, values in incident["external_ids"].items()
        if values
    )
    actions = incident["corrective_actions"]
    prevention_missing = sorted(m.split(".", 1)[1] for m in missing if m.startswith("prevention."))
    prevention = (
        "missing " + ", ".join(prevention_missing) if prevention_missing else "post-mortem below"
    )
    rows = [
        ("Timestamp (`detected_at`)", True, incident["lifecycle"]["detected_at"]),
        ("correlation_id", "correlation_id" not in missing, correlation),
        ("External IDs", "external_ids" not in missing, external),
        ("Corrective action", "corrective_action" not in missing, f"{len(actions)} recorded"),
        ("Prevention (post-mortem)", not prevention_missing, prevention),
    ]
    lines = [
        "## The runbook's five mandatory fields",
        "",
        "| Field | Recorded | Value |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {'yes' if ok else 'NO'} | {_cell(value)} |" for name, ok, value in rows]
    lines += ["", "### Corrective actions", ""]
    if actions:
        lines += ["| At (UTC) | Actor | Action | Reference |", "|---|---|---|---|"]
        lines += [
            f"| {_cell(a['at'])} | {_cell(a['actor'])} | {_cell(a['description'])} | "
            f"{_cell(a['reference'])} |"
            for a in actions
        ]
    else:
        lines.append("None recorded.")
    lines.append("")
    return lines


def _md_timeline(timeline: list[tuple[int, Mapping[str, Any]]]) -> list[str]:
    lines = ["## Timeline", ""]
    if not timeline:
        return [*lines, "No timeline rows.", ""]
    lines += [
        "| Entry | UTC | America/Mexico_City | Kind | Summary | Actor | correlation_id "
        "| External IDs | Source row |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for index, row in timeline:
        source = row["source"]
        link = f"{source['table']}/{source['id']}"
        if source["entry"] is not None:
            link += f" (entry {source['entry']})"
        external = ", ".join(f"{k}: {v}" for k, v in row["external_ids"].items())
        lines.append(
            f"| {index} | {_cell(row['at'])} | {_cell(_local(row['at']))} | {_cell(row['kind'])} "
            f"| {_cell(row['summary'])} | {_cell(row['actor'])} | {_cell(row['correlation_id'])} "
            f"| {_cell(external)} | {_cell(link)} |"
        )
    lines.append("")
    return lines


def _md_postmortem(postmortem: Mapping[str, Any] | None) -> list[str]:
    lines = ["## Post-mortem", ""]
    if postmortem is None:
        return [*lines, "Not written.", ""]
    for key, title in _POSTMORTEM_SECTIONS:
        text = str(postmortem[key]).strip() or "(empty)"
        lines += [f"### {title}", "", text, ""]
    lines += ["### Action items", ""]
    items = postmortem["action_items"]
    if not items:
        return [*lines, "None.", ""]
    lines += ["| Action | Owner | Due |", "|---|---|---|"]
    lines += [
        f"| {_cell(i['description'])} | {_cell(i['owner'])} | {_cell(i['due'])} |" for i in items
    ]
    lines.append("")
    return lines


def _md_records(records: list[tuple[int, Mapping[str, Any]]]) -> list[str]:
    lines = ["## Records", ""]
    if not records:
        return [*lines, "No records.", ""]
    for index, record in records:
        row = record["row"]
        ident = row.get("id") if isinstance(row, Mapping) else None
        name = f"{record['table']}/{ident}" if ident is not None else str(record["table"])
        text = json.dumps(row, ensure_ascii=False, indent=2)
        fence = "`" * max(3, _longest_backtick_run(text) + 1)
        lines += [f"### Entry {index}: {_cell(name)}", "", f"{fence}json", text, fence, ""]
    return lines


def _cell(value: object) -> str:
    if value is None:
        return "—"
    text = " ".join(str(value).split())  # table cells are one line
    return text.replace("\\", "\\\\").replace("|", "\\|") or "—"


def _code(value: object) -> str:
    return str(value).replace("`", "'")


def _local(moment: object) -> str | None:
    if not isinstance(moment, str):
        return None
    return datetime.fromisoformat(moment).astimezone(MEXICO_CITY).isoformat()


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)


# --- VERIFY.md -----------------------------------------------------------------------------------

_SNIPPET = """\
import hashlib, json
def jcs(v):  # RFC 8785 for this bundle's values: text, integers, true, false, null (no floats)
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: k.encode("utf-16-be"))  # UTF-16 code-unit order
        return "{" + ",".join(jcs(k) + ":" + jcs(v[k]) for k in keys) + "}"
    if isinstance(v, list):
        return "[" + ",".join(jcs(x) for x in v) + "]"
    return json.dumps(v, ensure_ascii=False)
def sha(prev, obj): return hashlib.sha256((prev + jcs(obj)).encode()).hexdigest()
b = json.load(open("bundle.json", encoding="utf-8"))
prev = sha("0" * 64, b["header"])
for i, e in enumerate(b["entries"]):
    own = sha(prev, {k: v for k, v in e.items() if k != "hash"})
    print("entry", i, "ok" if e["index"] == i and e["hash"] == own else "BROKEN")
    prev = e["hash"]
print("head", "ok" if b["head"] == prev else "BROKEN")
"""


def _verify_markdown(head: str, markdown_sha256: str) -> str:
    return f"""\
# How to verify this evidence bundle without Guardia

This directory holds `{JSON_NAME}` (the evidence, hash-chained), `{MARKDOWN_NAME}` (the same
evidence for reading) and this file, which is guidance only and is not itself protected.

## 1. The readable copy

```sh
sha256sum {MARKDOWN_NAME}
```

The digest must equal `header.markdown_sha256` in `{JSON_NAME}`. When this bundle was written
it was `{markdown_sha256}`.

## 2. The hash chain

Every entry in `{JSON_NAME}` has `index`, `type`, `prev_hash`, `hash` and `body`:

- `hash` = SHA-256 of `prev_hash` (64 lowercase hex characters, as ASCII) followed by the
  RFC 8785 (JCS) canonical JSON of the entry without its `hash` member;
- the first entry's `prev_hash` = SHA-256 of 64 `0` characters followed by JCS(`header`);
- every later entry's `prev_hash` is the previous entry's `hash`, and `index` counts from 0;
- `head` is the last entry's `hash`.

An edited byte changes a hash, a deleted entry leaves a gap in `index` and breaks a link, and
swapped entries break the links and the `index` order. Run this with Python 3 in this directory
(standard library only; the bundle holds no floating-point numbers, so `json.dumps` already
writes every value as JCS does):

```python
{_SNIPPET}```

Every line must end in `ok`.

## 3. The head

A consistent chain shows nothing changed after sealing, not who sealed it. Compare the head,
`{head}`, with the value Guardia recorded when it exported this bundle (its audit log).
"""
