"""Backups in an S3-compatible bucket, streamed with multipart uploads.

An object written through `open_writer` is a multipart upload: S3 shows nothing under its key
until `CompleteMultipartUpload`, and an aborted (or abandoned) upload never becomes an object.
Parts are uploaded by a few threads while the dump keeps streaming, so upload and `pg_dump`
overlap; at most `max_concurrency + 1` parts are held in memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from guardia.backups.config import S3Target
from guardia.backups.errors import ObjectMissing, StoreError
from guardia.backups.model import COMPLETE_FILE
from guardia.backups.ports import Materialized, OnChunk, ProbeItem

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

CHUNK = 1024 * 1024
MIN_PART = 5 * 1024 * 1024  # S3's minimum for every part but the last


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


class S3Store:
    """A bucket and prefix; backups under `<prefix><name>/`."""

    def __init__(self, target: S3Target, client: S3Client | None = None) -> None:
        self.target = target
        prefix = target.prefix.lstrip("/")
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.client: S3Client = client or self._client()

    def _client(self) -> S3Client:
        t = self.target
        session = boto3.session.Session(
            aws_access_key_id=t.access_key_id,
            aws_secret_access_key=t.secret_access_key,
            aws_session_token=t.session_token,
            region_name=t.region,
        )
        style = cast(
            Literal["auto", "virtual", "path"],
            t.addressing_style or ("path" if t.endpoint_url else "auto"),
        )
        config = Config(
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=10,
            read_timeout=120,
            max_pool_connections=max(10, t.max_concurrency + 4),
            s3={"addressing_style": style},
        )
        return session.client("s3", endpoint_url=t.endpoint_url, config=config)

    @property
    def location(self) -> str:
        """`s3://bucket/prefix` (the endpoint host when not AWS)."""
        where = f"s3://{self.target.bucket}/{self.prefix}"
        if self.target.endpoint_url:
            host = self.target.endpoint_url.split("://", 1)[-1].split("@")[-1].split("/")[0]
            where += f" at {host}"
        return where

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _sse(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.target.server_side_encryption:
            extra["ServerSideEncryption"] = self.target.server_side_encryption
        if self.target.sse_kms_key_id:
            extra["SSEKMSKeyId"] = self.target.sse_kms_key_id
        return extra

    def translate(self, exc: Exception, doing: str) -> StoreError:
        """Map a boto failure to a StoreError that says what to fix."""
        bucket = self.target.bucket
        if isinstance(exc, NoCredentialsError):
            return StoreError(
                f"{doing}: no S3 credentials found",
                fix="set GUARDIA_BACKUP_S3_ACCESS_KEY_ID and GUARDIA_BACKUP_S3_SECRET_ACCESS_KEY, "
                "or AWS_* variables, a profile or an instance role",
            )
        if isinstance(exc, ClientError):
            code, status = _code(exc), _status(exc)
            if code in ("NoSuchBucket",) or (status == 404 and code in ("404", "NotFound")):
                return StoreError(
                    f"{doing}: bucket {bucket} does not exist",
                    fix=f"create bucket {bucket} (versioned, ideally with Object Lock) or fix "
                    "GUARDIA_BACKUP_S3_BUCKET / GUARDIA_BACKUP_S3_ENDPOINT_URL",
                )
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
                return StoreError(
                    f"{doing}: S3 rejected the credentials ({code})",
                    fix="rotate or fix the S3 access key and secret",
                )
            if code in ("AccessDenied", "403", "Forbidden") or status == 403:
                return StoreError(
                    f"{doing}: access denied on bucket {bucket}",
                    fix=f"grant s3:PutObject, s3:GetObject, s3:DeleteObject, s3:ListBucket and "
                    f"s3:AbortMultipartUpload on {bucket}/{self.prefix}* (and kms:GenerateDataKey "
                    "with SSE-KMS)",
                )
            return StoreError(f"{doing}: S3 answered {code or status}", fix="see the S3 error")
        return StoreError(
            f"{doing}: S3 unreachable ({type(exc).__name__})",
            fix="check GUARDIA_BACKUP_S3_ENDPOINT_URL, the network and the region",
        )

    def probe(self) -> list[ProbeItem]:
        """Bucket reachable with these credentials, and a probe object written and deleted."""
        try:
            self.client.head_bucket(Bucket=self.target.bucket)
        except (ClientError, BotoCoreError) as exc:
            err = self.translate(exc, "bucket check")
            return [ProbeItem("bucket", False, err.message, err.fix)]
        items = [ProbeItem("bucket", True, f"{self.location} reachable with these credentials")]
        probe = self._key(f".guardia-probe-{secrets.token_hex(4)}")
        try:
            self.client.put_object(
                Bucket=self.target.bucket, Key=probe, Body=b"probe", **self._sse()
            )
            self.client.delete_object(Bucket=self.target.bucket, Key=probe)
        except (ClientError, BotoCoreError) as exc:
            err = self.translate(exc, "probe write")
            items.append(ProbeItem("bucket_writable", False, err.message, err.fix))
            return items
        items.append(ProbeItem("bucket_writable", True, "probe object written and deleted"))
        try:
            versioning = self.client.get_bucket_versioning(Bucket=self.target.bucket)
            state: str = versioning.get("Status", "Disabled")
        except (ClientError, BotoCoreError):
            state = "unknown"
        items.append(
            ProbeItem(
                "bucket_versioning",
                True,
                f"versioning {state}"
                + ("" if state == "Enabled" else " (recommended: Enabled, with Object Lock)"),
            )
        )
        return items

    def open_writer(self, key: str) -> MultipartWriter:
        """Start a multipart upload."""
        try:
            return MultipartWriter(self, self._key(key))
        except (ClientError, BotoCoreError) as exc:
            raise self.translate(exc, "starting the upload") from exc

    def put_bytes(self, key: str, data: bytes) -> None:
        """PutObject (atomic in S3)."""
        try:
            self.client.put_object(
                Bucket=self.target.bucket, Key=self._key(key), Body=data, **self._sse()
            )
        except (ClientError, BotoCoreError) as exc:
            raise self.translate(exc, f"writing {key}") from exc

    def get_bytes(self, key: str) -> bytes:
        """GetObject, whole."""
        try:
            body = self.client.get_object(Bucket=self.target.bucket, Key=self._key(key))["Body"]
            return body.read()
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                raise ObjectMissing(f"{key} is missing from {self.location}") from exc
            raise self.translate(exc, f"reading {key}") from exc
        except BotoCoreError as exc:
            raise self.translate(exc, f"reading {key}") from exc

    def materialize(self, key: str, staging_dir: Path, on_chunk: OnChunk) -> Materialized:
        """Download into the staging directory, hashing on the way."""
        staging_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        dest = staging_dir / f"{key.replace('/', '_')}.{secrets.token_hex(3)}.download"
        digest = hashlib.sha256()
        size = 0
        try:
            obj = self.client.get_object(Bucket=self.target.bucket, Key=self._key(key))
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                for chunk in obj["Body"].iter_chunks(CHUNK):
                    digest.update(chunk)
                    fh.write(chunk)
                    size += len(chunk)
                    on_chunk(len(chunk))
        except ClientError as exc:
            dest.unlink(missing_ok=True)
            if _code(exc) in ("NoSuchKey", "404"):
                raise ObjectMissing(f"{key} is missing from {self.location}") from exc
            raise self.translate(exc, f"downloading {key}") from exc
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
        return Materialized(dest, size, digest.hexdigest(), temporary=True)

    def _list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.target.bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return keys

    def complete_names(self) -> list[str]:
        """Names whose `<name>/COMPLETE` exists."""
        try:
            keys = self._list(self.prefix)
        except (ClientError, BotoCoreError) as exc:
            raise self.translate(exc, "listing backups") from exc
        suffix = "/" + COMPLETE_FILE
        return sorted(
            k[len(self.prefix) : -len(suffix)]
            for k in keys
            if k.endswith(suffix) and "/" not in k[len(self.prefix) : -len(suffix)]
        )

    def delete_backup(self, name: str) -> None:
        """Marker, then every object and unfinished upload under `<prefix><name>/`."""
        folder = self._key(name + "/")
        bucket = self.target.bucket
        try:
            self.client.delete_object(Bucket=bucket, Key=folder + COMPLETE_FILE)
            keys = self._list(folder)
            for start in range(0, len(keys), 1000):
                batch = [{"Key": k} for k in keys[start : start + 1000]]
                self.client.delete_objects(Bucket=bucket, Delete={"Objects": batch})  # type: ignore[typeddict-item]
            uploads = self.client.list_multipart_uploads(Bucket=bucket, Prefix=folder)
            for upload in uploads.get("Uploads", []):
                self.client.abort_multipart_upload(
                    Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
        except (ClientError, BotoCoreError) as exc:
            raise self.translate(exc, f"deleting {name}") from exc


class MultipartWriter:
    """One multipart upload fed by a stream; parts go up on worker threads."""

    def __init__(self, store: S3Store, key: str) -> None:
        self._store = store
        self._client = store.client
        self._bucket = store.target.bucket
        self._key = key
        self._part_size = max(MIN_PART, store.target.part_size)
        created = self._client.create_multipart_upload(Bucket=self._bucket, Key=key, **store._sse())
        self._upload_id = created["UploadId"]
        self._buffer = bytearray()
        self._number = 0
        self._futures: list[Future[CompletedPartTypeDef]] = []
        self._slots = threading.BoundedSemaphore(store.target.max_concurrency)
        self._pool = ThreadPoolExecutor(
            max_workers=store.target.max_concurrency, thread_name_prefix="s3-part"
        )
        self._closed = False

    def _upload(self, number: int, data: bytes) -> CompletedPartTypeDef:
        try:
            answer = self._client.upload_part(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=data,
            )
            return {"PartNumber": number, "ETag": answer["ETag"]}
        finally:
            self._slots.release()

    def _send(self, data: bytes) -> None:
        for done in [f for f in self._futures if f.done()]:
            done.result()  # surface a failed part now, not at the end
        self._slots.acquire()
        self._number += 1
        self._futures.append(self._pool.submit(self._upload, self._number, data))

    def write(self, chunk: bytes) -> None:
        """Buffer bytes; send a part whenever a part's worth is buffered."""
        self._buffer += chunk
        while len(self._buffer) >= self._part_size:
            part = bytes(self._buffer[: self._part_size])
            del self._buffer[: self._part_size]
            try:
                self._send(part)
            except (ClientError, BotoCoreError) as exc:
                raise self._store.translate(exc, "uploading a part") from exc

    def commit(self) -> None:
        """Send the last part, wait for every part, complete the upload."""
        try:
            if self._buffer or self._number == 0:
                self._send(bytes(self._buffer))
                self._buffer.clear()
            parts = [f.result() for f in self._futures]
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": sorted(parts, key=lambda p: p["PartNumber"])},
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._store.translate(exc, "completing the upload") from exc
        finally:
            self._pool.shutdown(wait=True)
        self._closed = True

    def abort(self) -> None:
        """Cancel queued parts and abort the upload (no object is left)."""
        if self._closed:
            return
        self._closed = True
        for future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        with contextlib.suppress(ClientError, BotoCoreError):
            self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
            )
