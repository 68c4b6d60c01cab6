"""A directory as backup target (the embedded default). Dumps are written under a `.partial`
name and renamed into place only when whole; small objects are written then renamed, so a
reader never sees half a file."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import stat
from pathlib import Path
from typing import BinaryIO

from guardia.backups.errors import ObjectMissing, StoreError
from guardia.backups.model import COMPLETE_FILE
from guardia.backups.ports import Materialized, OnChunk, ProbeItem

CHUNK = 1024 * 1024
PARTIAL = ".partial"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_private(path: Path) -> BinaryIO:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "wb")


def world_accessible(path: Path) -> bool:
    """True when users other than the owner's group can read or enter the directory."""
    return bool(stat.S_IMODE(path.stat().st_mode) & 0o007)


class LocalWriter:
    """Writes `<key>.partial`, renamed to `<key>` on commit."""

    def __init__(self, final: Path) -> None:
        final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._final = final
        self._partial = final.with_name(final.name + PARTIAL)
        self._file: BinaryIO | None = _open_private(self._partial)

    def write(self, chunk: bytes) -> None:
        """Append bytes."""
        if self._file is None:
            raise StoreError("write after commit or abort")
        self._file.write(chunk)

    def commit(self) -> None:
        """Flush to disk and rename into place."""
        if self._file is None:
            raise StoreError("commit after commit or abort")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        self._partial.replace(self._final)
        _fsync_dir(self._final.parent)

    def abort(self) -> None:
        """Remove the partial file."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._partial.unlink(missing_ok=True)


class LocalStore:
    """Backups under one directory: `<dir>/<name>/{dump.pgdump, manifest.json, COMPLETE}`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def location(self) -> str:
        """The directory."""
        return f"file:{self.directory}"

    def _path(self, key: str) -> Path:
        path = (self.directory / key).resolve()
        if self.directory.resolve() not in path.parents:
            raise StoreError(f"key {key!r} escapes the backup directory")
        return path

    def probe(self) -> list[ProbeItem]:
        """The directory exists (or can be made), is writable, and is not world-readable."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            probe = self.directory / f".guardia-probe-{secrets.token_hex(4)}"
            with _open_private(probe) as fh:
                fh.write(b"probe")
            probe.unlink()
        except OSError as exc:
            return [
                ProbeItem(
                    "target_writable",
                    False,
                    f"cannot write in {self.directory}: {exc.strerror}",
                    f"create {self.directory} writable by this user, or set "
                    "GUARDIA_BACKUP_LOCAL_DIR",
                )
            ]
        items = [
            ProbeItem("target_writable", True, f"wrote and deleted a probe in {self.directory}")
        ]
        private = not world_accessible(self.directory)
        items.append(
            ProbeItem(
                "target_permissions",
                private,
                f"{self.directory} mode {stat.S_IMODE(self.directory.stat().st_mode):o}",
                f"dumps hold personal data: chmod o-rwx {self.directory}",
            )
        )
        return items

    def open_writer(self, key: str) -> LocalWriter:
        """Start writing a dump (the target directory is created private, like the preflight
        wants it)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        return LocalWriter(self._path(key))

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write a small file atomically."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        writer = LocalWriter(self._path(key))
        try:
            writer.write(data)
            writer.commit()
        except BaseException:
            writer.abort()
            raise

    def get_bytes(self, key: str) -> bytes:
        """Read a small file."""
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectMissing(f"{key} is missing from {self.directory}") from exc

    def materialize(self, key: str, staging_dir: Path, on_chunk: OnChunk) -> Materialized:
        """Hash the file in place (no copy)."""
        path = self._path(key)
        digest = hashlib.sha256()
        size = 0
        try:
            with path.open("rb") as fh:
                while chunk := fh.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    on_chunk(len(chunk))
        except FileNotFoundError as exc:
            raise ObjectMissing(f"{key} is missing from {self.directory}") from exc
        return Materialized(path, size, digest.hexdigest(), temporary=False)

    def complete_names(self) -> list[str]:
        """Directories holding a COMPLETE marker."""
        if not self.directory.is_dir():
            return []
        return sorted(p.parent.name for p in self.directory.glob(f"*/{COMPLETE_FILE}"))

    def delete_backup(self, name: str) -> None:
        """Marker first, then the directory."""
        folder = self._path(name)
        with contextlib.suppress(FileNotFoundError):
            (folder / COMPLETE_FILE).unlink()
        shutil.rmtree(folder, ignore_errors=True)
