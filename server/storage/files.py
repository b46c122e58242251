"""Output files in the object store, downloaded through expiring URLs: the service's own HMAC-signed
``/v1/phota/files/...`` links for a local folder, presigned GET URLs of the store for S3."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from server.storage.objects import LocalObjectStore, ObjectStore

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{10,})-([A-Za-z0-9_-]{16,64})\.(png|jpg)$")
MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg"}


@dataclass(frozen=True)
class SignedFile:
    """A stored file: its name (which embeds the expiry time), expiry and signature."""

    name: str
    expires: int
    signature: str

    @property
    def query(self) -> str:
        return f"expires={self.expires}&signature={self.signature}"


class OutputFiles:
    """Output images under ``files/`` in ``objects``; a file's name starts with its expiry (unix seconds)
    so the sweep needs no index. ``objects`` may also be a folder (a local store rooted there)."""

    FOLDER = "files/"

    def __init__(
        self,
        objects: ObjectStore | Path,
        secret: bytes,
        ttl_s: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < 32:
            raise ValueError("file signing secret must be at least 32 bytes")
        self.objects: ObjectStore = LocalObjectStore(objects) if isinstance(objects, Path) else objects
        self._secret = secret
        self._ttl_s = ttl_s
        self._clock = clock

    def _sign(self, name: str, expires: int) -> str:
        message = f"{name}:{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def save(self, data: bytes, extension: str) -> SignedFile:
        """Store ``data`` and return its signed handle, valid for the store's lifetime."""
        if extension not in MEDIA_TYPES:
            raise ValueError(f"unsupported extension {extension!r}")
        expires = int(self._clock()) + self._ttl_s
        name = f"{expires}-{secrets.token_urlsafe(18)}.{extension}"
        self.objects.put(self.FOLDER + name, data, content_type=MEDIA_TYPES[extension])
        return SignedFile(name=name, expires=expires, signature=self._sign(name, expires))

    def remove(self, stored: SignedFile) -> None:
        """Delete a stored file before its expiry (an answer that could not be completed)."""
        self.objects.delete(self.FOLDER + stored.name)

    def download_url(self, stored: SignedFile, base_url: str) -> str:
        """Where a client downloads ``stored``: a presigned URL of the store, valid until the file expires,
        or else this service's signed link under ``base_url``."""
        presigned = self.objects.presigned_url(self.FOLDER + stored.name, stored.expires - int(self._clock()))
        if presigned is not None:
            return presigned
        return f"{base_url.rstrip('/')}/v1/phota/files/{stored.name}?{stored.query}"

    def verify(self, name: str, expires: int, signature: str) -> str | None:
        """The file's name when the signature matches and the link has not expired, else None."""
        match = _NAME.match(name)
        if match is None or int(match.group(1)) != expires:
            return None
        if not hmac.compare_digest(self._sign(name, expires), signature):
            return None
        if expires <= self._clock():
            return None
        return name

    def local_path(self, name: str) -> Path | None:
        """The file on local disk (a local store), or None (another store, or no such file)."""
        return self.objects.local_path(self.FOLDER + name)

    def read(self, name: str) -> bytes | None:
        return self.objects.get(self.FOLDER + name)

    def remove_expired(self, now: float | None = None) -> int:
        """Delete every file whose expiry has passed (at ``now``, default the store's clock); returns how
        many were removed."""
        now = self._clock() if now is None else now
        removed = 0
        for item in list(self.objects.list(self.FOLDER)):
            match = _NAME.match(item.key.rsplit("/", 1)[-1])
            if match is not None and int(match.group(1)) <= now:
                self.objects.delete(item.key)
                removed += 1
        return removed


# The name this class had while files could only live on local disk.
LocalFileStore = OutputFiles
