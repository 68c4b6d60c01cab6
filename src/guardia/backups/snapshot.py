"""Facts read inside one snapshot: row counts, money-table checksums, the migration revision.

The same functions read the source (inside the transaction whose snapshot `pg_dump` imports)
and the restored scratch database, with the same session settings, so the row texts hashed on
both sides are byte-identical.

Money checksum: every row's text is hashed with md5 and the first 60 bits of each hash are
summed (a multiset hash, independent of row order). reliability.md §1.4 suggests
`md5(string_agg(row::text, '' ORDER BY pk))`; that concatenation hits PostgreSQL's 1 GB limit
on large tables, while the sum stays a number and needs no sort.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import psycopg
from psycopg import sql

SESSION_SETTINGS = (
    "SET TIME ZONE 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 1",
    "SET bytea_output = 'hex'",
    "SET statement_timeout = 0",
)


def open_session(url: str, *, application_name: str = "guardia-backup") -> psycopg.Connection:
    """An autocommit connection with fixed output settings (the caller opens transactions)."""
    conn = psycopg.connect(url, autocommit=True, application_name=application_name)
    for statement in SESSION_SETTINGS:
        conn.execute(statement)  # fixed statements, no parameters
    return conn


def server_version(conn: psycopg.Connection) -> tuple[str, int]:
    """(`server_version`, `server_version_num`)."""
    text = conn.execute("SHOW server_version").fetchone()
    num = conn.execute("SHOW server_version_num").fetchone()
    return str(text[0] if text else ""), int(num[0] if num else 0)


def qualified(name: str) -> str:
    """`table` → `public.table`."""
    return name if "." in name else f"public.{name}"


def _ident(name: str) -> sql.Composable:
    schema, table = qualified(name).split(".", 1)
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))


def user_tables(conn: psycopg.Connection) -> list[str]:
    """Every ordinary or partitioned table outside the system schemas, as `schema.table`."""
    rows = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' "
        "ORDER BY 1, 2"
    ).fetchall()
    return [f"{schema}.{table}" for schema, table in rows]


def existing(conn: psycopg.Connection, names: Iterable[str]) -> list[str]:
    """The given tables that exist, qualified."""
    present = set(user_tables(conn))
    return [qualified(n) for n in names if qualified(n) in present]


def money_checksums(conn: psycopg.Connection, names: Sequence[str]) -> dict[str, str]:
    """`count:sum-of-row-hashes` of each money table present."""
    out: dict[str, str] = {}
    for name in existing(conn, names):
        query = sql.SQL(
            "SELECT count(*), "
            "coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint), 0) FROM {} t"
        ).format(_ident(name))
        row = conn.execute(query).fetchone()
        out[name] = f"{row[0]}:{row[1]}" if row else "0:0"
    return out


def table_rows(
    conn: psycopg.Connection, tables: Sequence[str], known: dict[str, str] | None = None
) -> dict[str, int]:
    """Exact row count of each table (counts already in `known` checksums are reused)."""
    known = known or {}
    out: dict[str, int] = {}
    for name in tables:
        if name in known:
            out[name] = int(known[name].split(":", 1)[0])
            continue
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(_ident(name))).fetchone()
        out[name] = int(row[0]) if row else 0
    return out


def alembic_revision(conn: psycopg.Connection) -> str | None:
    """The migration revision stored in the database, if any."""
    found = conn.execute("SELECT to_regclass('public.alembic_version')").fetchone()
    if not found or found[0] is None:
        return None
    row = conn.execute("SELECT version_num FROM alembic_version LIMIT 1").fetchone()
    return str(row[0]) if row else None
