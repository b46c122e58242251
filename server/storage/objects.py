"""The object store behind every file the service keeps: output images, job inputs and results,
profile references and pictures.

One small interface, :class:`ObjectStore`, with two backends chosen by ``ENHANCE_STORAGE_URL``:

* ``local`` (the default, an empty URL or ``file:///path``): a folder, by default the data dir. Writes
  are durable (temporary file, fsync, atomic rename). Downloads go through the service's own signed
  URLs.
* ``s3`` (``s3://bucket/prefix``): any S3-compatible server through boto3 (``ENHANCE_S3_ENDPOINT_URL``
  for SeaweedFS, MinIO, Ceph ...; credentials from the standard AWS environment variables). Downloads
  are presigned GET URLs of the store itself, so their bytes never pass through the service.

Keys are relative, ``/``-separated, made of letters, digits and ``._-`` (no ``..``); the callers build
them from ids they have validated. Every method blocks (disk or network I/O): callers on the event
loop run them in a worker thread.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from weights import write_atomically

if TYPE_CHECKING:
    from server.settings import Settings

logger = logging.getLogger(__name__)

_KEY = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
_S3_DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys


class StorageConfigError(ValueError):
    """``ENHANCE_STORAGE_URL`` names no registered backend, or its bucket cannot be used. Raised at start."""


class DuplicateStorageBackendError(ValueError):
    """Two entries of the backend registry share a name or a URL scheme. Raised when the registry is built."""


def check_key(key: str) -> str:
    """``key`` when it is a safe relative object key, else ``ValueError``."""
    if not _KEY.match(key) or any(part in {".", ".."} for part in key.split("/")):
        raise ValueError(f"not a valid object key: {key!r}")
    return key


def _check_prefix(prefix: str) -> str:
    """A folder-like prefix: empty, or a valid key followed by ``/``."""
    if prefix and (not prefix.endswith("/") or not _KEY.match(prefix[:-1])):
        raise ValueError(f"not a valid object prefix: {prefix!r}")
    return prefix


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object: its key (relative to the store) and last modification (unix seconds)."""

    key: str
    modified: float


class ObjectStore(Protocol):
    """Where the service's files live. Implementations: :class:`LocalObjectStore`, :class:`S3ObjectStore`."""

    backend: str

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Store ``data`` under ``key`` durably (replacing any previous object)."""

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is none."""

    def delete(self, key: str) -> None:
        """Remove the object; a missing object is not an error."""

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object whose key starts with the folder ``prefix`` (``a/b/``); returns how many."""

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under the folder ``prefix`` (recursively), in no particular order."""

    def presigned_url(self, key: str, expires_in_s: int) -> str | None:
        """A URL that downloads the object without credentials for ``expires_in_s`` seconds, or None when
        this store has no such URLs (the service then serves the object itself)."""

    def local_path(self, key: str) -> Path | None:
        """The object's file when the store is a local folder (and it exists), else None."""

    def check(self) -> None:
        """Raise when the store cannot be used (readiness)."""


class LocalObjectStore:
    """Objects as files under ``root`` (key ``a/b`` is ``root/a/b``)."""

    backend = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        # A full disk (ENOSPC) fails the write or the fsync: the partial file goes, the old one stays.
        write_atomically(self._path(key), data)

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # Drop folders left empty, up to the root (a job's folder disappears with its last file).
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def delete_prefix(self, prefix: str) -> int:
        if not prefix:
            raise ValueError("refusing to delete the whole store")
        count = sum(1 for _ in self.list(prefix))
        shutil.rmtree(self.root / _check_prefix(prefix), ignore_errors=True)
        return count

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        folder = self.root / _check_prefix(prefix) if prefix else self.root
        if not folder.is_dir():
            return
        for directory, _, names in os.walk(folder):
            for name in names:
                if name.startswith("."):
                    continue  # a write in progress
                path = Path(directory) / name
                try:
                    modified = path.stat().st_mtime
                except FileNotFoundError:
                    continue
                yield ObjectInfo(key=path.relative_to(self.root).as_posix(), modified=modified)

    def presigned_url(self, key: str, expires_in_s: int) -> str | None:
        return None

    def local_path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.is_file() else None

    def check(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise OSError(f"the storage folder {self.root} is not writable")


class S3ObjectStore:
    """Objects in an S3 bucket under ``prefix`` (key ``a/b`` is ``<prefix>/a/b``). ``client`` is a boto3 S3
    client; ``presign_client`` (default: ``client``) signs download URLs, so they can name an endpoint
    that clients reach when the service reaches the store at another address."""

    backend = "s3"

    def __init__(self, client: Any, bucket: str, prefix: str = "", presign_client: Any | None = None) -> None:
        self._client = client
        self._presign = presign_client or client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            check_key(self.prefix)

    def _full(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else {}
        self._client.put_object(Bucket=self.bucket, Key=self._full(key), Body=data, **extra)

    def get(self, key: str) -> bytes | None:
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=self._full(key))
        except self._client.exceptions.NoSuchKey:
            return None
        body: bytes = answer["Body"].read()
        return body

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=self._full(key))

    def _list_full(self, prefix: str) -> Iterator[dict[str, Any]]:
        folder = _check_prefix(prefix)
        full = f"{self.prefix}/{folder}" if self.prefix else folder
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            yield from page.get("Contents", [])

    def delete_prefix(self, prefix: str) -> int:
        keys = [entry["Key"] for entry in self._list_full(prefix)]
        for start in range(0, len(keys), _S3_DELETE_BATCH):
            batch = [{"Key": key} for key in keys[start : start + _S3_DELETE_BATCH]]
            self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        for entry in self._list_full(prefix):
            modified: dt.datetime = entry["LastModified"]
            yield ObjectInfo(key=self._relative(entry["Key"]), modified=modified.timestamp())

    def presigned_url(self, key: str, expires_in_s: int) -> str | None:
        url: str = self._presign.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._full(key)}, ExpiresIn=max(1, expires_in_s)
        )
        return url

    def local_path(self, key: str) -> Path | None:
        return None

    def check(self) -> None:
        self._client.head_bucket(Bucket=self.bucket)


class PatientObjectStore:
    """Another store whose reads and writes wait out an outage of it (refused connections, 5xx answers, a
    full disk) for up to ``patience_s`` seconds before the error propagates: the background work's view
    of the store (a job's upload is retried; a request's is not, it answers 503 at once)."""

    def __init__(self, inner: ObjectStore, patience_s: float) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.patience_s = patience_s

    def _retry(self, what: str, call: Callable[[], Any]) -> Any:
        from server.storage.outages import retry_blocking

        return retry_blocking(call, what=what, patience_s=self.patience_s)

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        self._retry(f"storing {key}", lambda: self.inner.put(key, data, content_type))

    def get(self, key: str) -> bytes | None:
        data: bytes | None = self._retry(f"reading {key}", lambda: self.inner.get(key))
        return data

    def delete(self, key: str) -> None:
        self._retry(f"deleting {key}", lambda: self.inner.delete(key))

    def delete_prefix(self, prefix: str) -> int:
        count: int = self._retry(f"deleting {prefix}", lambda: self.inner.delete_prefix(prefix))
        return count

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        items: list[ObjectInfo] = self._retry(f"listing {prefix}", lambda: list(self.inner.list(prefix)))
        return iter(items)

    def presigned_url(self, key: str, expires_in_s: int) -> str | None:
        return self.inner.presigned_url(key, expires_in_s)

    def local_path(self, key: str) -> Path | None:
        return self.inner.local_path(key)

    def check(self) -> None:
        self.inner.check()


# --- the backend registry -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StorageBackend:
    """One way to store objects: ``scheme`` is the ``ENHANCE_STORAGE_URL`` scheme it answers (the empty
    scheme: no URL at all); ``open`` builds the store from the parsed URL and the settings."""

    name: str
    schemes: tuple[str, ...]
    open: Callable[[str, Settings], ObjectStore]


def _open_local(url: str, settings: Settings) -> ObjectStore:
    path = urlsplit(url).path if url else ""
    return LocalObjectStore(Path(path) if path else settings.data_dir)


def s3_client(endpoint_url: str | None, region: str | None = None) -> Any:
    """A boto3 S3 client: SigV4, path-style addressing when an endpoint is given (SeaweedFS, MinIO, ...).
    Credentials come from boto3's usual chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, profiles,
    instance roles)."""
    import boto3
    from botocore.config import Config

    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if endpoint_url else "auto"},
        retries={"max_attempts": 5, "mode": "standard"},
    )
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return boto3.client("s3", endpoint_url=endpoint_url or None, region_name=region, config=config)


def _open_s3(url: str, settings: Settings) -> ObjectStore:
    parts = urlsplit(url)
    bucket = parts.netloc
    if not bucket:
        raise StorageConfigError(f"ENHANCE_STORAGE_URL {url!r} names no bucket (expected s3://bucket/prefix)")
    client = s3_client(settings.s3_endpoint_url)
    presign = s3_client(settings.s3_public_endpoint_url) if settings.s3_public_endpoint_url else None
    store = S3ObjectStore(client, bucket, parts.path.strip("/"), presign_client=presign)
    _ensure_bucket(client, bucket, create=settings.s3_create_bucket)
    return store


def _ensure_bucket(client: Any, bucket: str, *, create: bool) -> None:
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=bucket)
        return
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status != 404 or not create:
            raise StorageConfigError(f"the bucket {bucket!r} cannot be used: {exc}") from exc
    logger.info("creating the bucket %s", bucket)
    client.create_bucket(Bucket=bucket)


STORAGE_BACKENDS: tuple[StorageBackend, ...] = (
    StorageBackend(name="local", schemes=("", "file"), open=_open_local),
    StorageBackend(name="s3", schemes=("s3",), open=_open_s3),
)


def _by_scheme(backends: tuple[StorageBackend, ...]) -> dict[str, StorageBackend]:
    table: dict[str, StorageBackend] = {}
    names: set[str] = set()
    for backend in backends:
        if backend.name in names:
            raise DuplicateStorageBackendError(f"storage backend {backend.name!r} is registered twice")
        names.add(backend.name)
        for scheme in backend.schemes:
            if scheme in table:
                raise DuplicateStorageBackendError(f"URL scheme {scheme!r} is registered twice")
            table[scheme] = backend
    return table


def storage_backend(url: str, backends: tuple[StorageBackend, ...] = STORAGE_BACKENDS) -> StorageBackend:
    """The backend for ``ENHANCE_STORAGE_URL`` = ``url``; :class:`StorageConfigError` for an unknown scheme."""
    scheme = urlsplit(url).scheme if url else ""
    backend = _by_scheme(backends).get(scheme)
    if backend is None:
        known = ", ".join(sorted(f"{s}://" for s in _by_scheme(backends) if s))
        raise StorageConfigError(f"ENHANCE_STORAGE_URL {url!r}: unknown scheme {scheme!r} (known: {known})")
    return backend


def open_object_store(settings: Settings) -> ObjectStore:
    """The store ``settings.storage_url`` names (the data dir when it is empty)."""
    url = settings.storage_url or ""
    return storage_backend(url).open(url, settings)
