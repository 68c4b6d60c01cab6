"""Conventions that keep the code base honest, checked on every run."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from guardia.settings import Settings

SRC = Path(__file__).resolve().parents[2] / "src" / "guardia"
REPO = SRC.parents[1]


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_core_imports_nothing_else_of_guardia() -> None:
    for path in (SRC / "core").glob("*.py"):
        ours = {m for m in imports_of(path) if m.startswith("guardia.")}
        assert all(m.startswith("guardia.core") for m in ours), (path.name, ours)


def test_pure_models_import_no_framework() -> None:
    forbidden = ("sqlalchemy", "httpx", "fastapi", "procrastinate", "psycopg")
    for path in SRC.rglob("model.py"):
        if "sandbox" in path.parts:
            continue
        bad = {m for m in imports_of(path) if m.split(".")[0] in forbidden}
        assert not bad, (path, bad)


def test_adapters_never_import_entrypoints_or_bootstrap() -> None:
    for path in (SRC / "adapters").rglob("*.py"):
        bad = {
            m
            for m in imports_of(path)
            if m.startswith(("guardia.entrypoints", "guardia.bootstrap", "guardia.jobs"))
        }
        assert not bad, (path, bad)


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    listed = {
        line.split("=", 1)[0]
        for line in (REPO / ".env.example").read_text().splitlines()
        if line.startswith("GUARDIA_")
    }
    expected = {f"GUARDIA_{name.upper()}" for name in Settings.model_fields}
    assert listed == expected


def test_readme_configuration_table_mentions_every_setting() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [
        f"GUARDIA_{name.upper()}"
        for name in Settings.model_fields
        if f"`GUARDIA_{name.upper()}`" not in readme
    ]
    assert not missing, missing


def test_every_schedule_fires_at_even_intervals() -> None:
    """A 6-field cron puts seconds LAST; "*/5 * * * * *" would fire every second of every
    fifth minute, which this catches as uneven gaps."""
    import itertools
    from datetime import UTC, datetime

    import croniter

    from guardia.bootstrap import schedules

    for task, cron in schedules(Settings(_env_file=None)).items():  # type: ignore[call-arg]
        it = croniter.croniter(cron, datetime(2026, 1, 5, tzinfo=UTC))
        fires = [it.get_next(datetime) for _ in range(200)]
        gaps = {b - a for a, b in itertools.pairwise(fires)}
        assert len(gaps) == 1, (task, cron, sorted(gaps))


def test_every_alert_rule_links_to_a_section_of_the_runbooks_document() -> None:
    from guardia.alerts.rules import RULES

    anchors = {
        line.removeprefix("## ").strip()
        for line in (REPO / "docs" / "runbooks.md").read_text().splitlines()
        if line.startswith("## ")
    }
    missing = {rule.name: rule.runbook for rule in RULES if rule.runbook not in anchors}
    assert not missing, missing


def test_the_runbooks_document_is_the_one_the_code_generates() -> None:
    from guardia.runbooks.docs import render

    committed = (REPO / "docs" / "runbooks.md").read_text()
    assert committed.strip() == render().strip(), "run: guardia runbook docs > docs/runbooks.md"


def test_the_reference_copies_equal_the_reference_folder_beside_the_repository() -> None:
    reference = REPO / "tests" / "reference"
    copies = sorted(p for p in reference.rglob("*") if p.is_file() and p.name != "README.md")
    assert {p.relative_to(reference).as_posix() for p in copies} >= {
        "fixtures/providers/conekta/order_paid_spei.json",
        "fixtures/providers/conekta/signature_vectors.json",
        "seed/runbooks-operativos.md",
    }
    beside = REPO.parent / "shared"
    if not beside.is_dir():
        pytest.skip("no reference folder beside this clone: nothing to compare the copies with")
    differ = [
        p.relative_to(reference).as_posix()
        for p in copies
        if (beside / p.relative_to(reference)).read_bytes() != p.read_bytes()
    ]
    assert differ == [], f"copy them again from {beside.name}/: {differ}"
