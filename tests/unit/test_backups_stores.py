"""The directory target (nothing half-written is ever visible) and the client-tool helpers
(versions, missing tools, passwords kept off command lines and out of messages)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from guardia.backups.errors import ObjectMissing, StoreError, ToolMissing
from guardia.backups.local_store import LocalStore
from guardia.backups.model import complete_key, dump_key, manifest_key
from guardia.backups.pgtools import libpq_args, resolve_tools, scrub, tool_version


def test_an_aborted_dump_leaves_no_file_behind(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "backups")
    writer = store.open_writer(dump_key("b1"))
    writer.write(b"x" * 1000)
    writer.abort()
    assert [p.name for p in (tmp_path / "backups" / "b1").iterdir()] == []
    assert store.complete_names() == []


def test_a_dump_is_visible_under_its_name_only_once_committed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "backups")
    writer = store.open_writer(dump_key("b1"))
    writer.write(b"part one ")
    assert not (tmp_path / "backups" / dump_key("b1")).exists()
    writer.write(b"part two")
    writer.commit()
    assert (tmp_path / "backups" / dump_key("b1")).read_bytes() == b"part one part two"
    assert (tmp_path / "backups" / dump_key("b1")).stat().st_mode & 0o077 == 0


def test_only_backups_with_a_completion_marker_are_listed_and_deletion_removes_them(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "backups")
    for name in ("b1", "b2"):
        store.put_bytes(dump_key(name), b"dump")
        store.put_bytes(manifest_key(name), b"{}")
    store.put_bytes(complete_key("b2"), b"{}")
    assert store.complete_names() == ["b2"]
    store.delete_backup("b2")
    assert store.complete_names() == []
    assert not (tmp_path / "backups" / "b2").exists()
    with pytest.raises(ObjectMissing, match=r"b2/manifest\.json is missing"):
        store.get_bytes(manifest_key("b2"))


def test_materialising_a_local_dump_hashes_it_in_place(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "backups")
    store.put_bytes(dump_key("b1"), b"abc")
    seen: list[int] = []
    got = store.materialize(dump_key("b1"), tmp_path / "staging", seen.append)
    assert got.sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert (got.size, got.temporary, sum(seen)) == (3, False, 3)


def test_a_key_cannot_escape_the_backup_directory(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "backups")
    with pytest.raises(StoreError, match="escapes"):
        store.put_bytes("../outside", b"x")


def test_the_probe_flags_a_directory_other_users_can_read(tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    items = {i.name: i for i in LocalStore(folder).probe()}
    assert items["target_writable"].ok
    assert not items["target_permissions"].ok
    assert "chmod o-rwx" in items["target_permissions"].fix


def fake_tool(folder: Path, name: str, output: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f'#!/bin/sh\necho "{output}"\n')
    path.chmod(0o755)
    return path


def test_tool_versions_are_read_from_debian_and_upstream_builds(tmp_path: Path) -> None:
    debian = fake_tool(
        tmp_path / "a", "pg_dump", "pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"
    )
    upstream = fake_tool(tmp_path / "b", "pg_dump", "pg_dump (PostgreSQL) 18.4")
    assert tool_version(debian)[1] == 15
    assert tool_version(upstream) == ("18.4", 18)


def test_pg_restore_is_taken_from_beside_the_configured_pg_dump(tmp_path: Path) -> None:
    pg_dump = fake_tool(tmp_path / "bin", "pg_dump", "pg_dump (PostgreSQL) 17.2")
    fake_tool(tmp_path / "bin", "pg_restore", "pg_restore (PostgreSQL) 17.2")
    tools = resolve_tools(str(pg_dump))
    assert tools.pg_restore == tmp_path / "bin" / "pg_restore"
    assert tools.major == 17


def test_a_missing_pg_dump_is_named_with_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "none" / "pg_dump"
    with pytest.raises(ToolMissing, match=re.escape(f"pg_dump not found at {missing}")):
        resolve_tools(str(missing))


def test_the_password_travels_in_the_environment_not_on_the_command_line() -> None:
    conninfo, env = libpq_args(
        "postgresql://guardia:s3cr3t-pw@db.example:5432/guardia?sslmode=require"
    )
    assert "s3cr3t-pw" not in conninfo
    assert "host=db.example" in conninfo
    assert "sslmode=require" in conninfo
    assert env["PGPASSWORD"] == "s3cr3t-pw"


def test_tool_messages_lose_connection_strings_and_passwords() -> None:
    text = scrub(
        'pg_dump: error: connection to "postgresql://u:hunter2@h/db" failed\n'
        "password=hunter2 host=h"
    )
    assert "hunter2" not in text
    assert "postgresql://…" in text
