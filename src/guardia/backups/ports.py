"""The port a backup target implements (a directory here, any S3-compatible bucket)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

OnChunk = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class ProbeItem:
    """One fact of a target's preflight, and what to do when it is false."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass(frozen=True, slots=True)
class Materialized:
    """A stored dump available as a local file, hashed while it was read."""

    path: Path
    size: int
    sha256: str
    temporary: bool  # a download in the staging directory, to delete after use


class ObjectWriter(Protocol):
    """An object being written. It does not exist for readers until `commit`."""

    def write(self, chunk: bytes) -> None:
        """Append bytes."""
        ...

    def commit(self) -> None:
        """Make the object exist, whole (S3: complete the multipart upload)."""
        ...

    def abort(self) -> None:
        """Discard everything written (S3: abort the multipart upload)."""
        ...


class BackupStore(Protocol):
    """Where backups live. Keys are relative to the target's root (prefix or directory)."""

    @property
    def location(self) -> str:
        """Where this target is, for people and rows (never with credentials)."""
        ...

    def probe(self) -> list[ProbeItem]:
        """Check credentials, existence and write access (a probe object written, deleted)."""
        ...

    def open_writer(self, key: str) -> ObjectWriter:
        """Start writing an object (streamed; nothing visible until committed)."""
        ...

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write a small object whole (atomically)."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """Read a small object; ObjectMissing if absent."""
        ...

    def materialize(self, key: str, staging_dir: Path, on_chunk: OnChunk) -> Materialized:
        """Hash an object while making it a local file (downloaded into staging if remote)."""
        ...

    def complete_names(self) -> list[str]:
        """Names of backups whose completion marker exists."""
        ...

    def delete_backup(self, name: str) -> None:
        """Remove a backup: its marker first (so it stops looking complete), then the rest,
        including unfinished uploads."""
        ...
