"""Output files on local disk, served through HMAC-signed, expiring URLs."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


class LocalFileStore:
    """Files under ``root``; a file's name starts with its expiry (unix seconds) so a sweep needs no index."""

    def __init__(self, root: Path, secret: bytes, ttl_s: int, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 32:
            raise ValueError("file signing secret must be at least 32 bytes")
        self.root = root
        self._secret = secret
        self._ttl_s = ttl_s
        self._clock = clock
        root.mkdir(parents=True, exist_ok=True)

    def _sign(self, name: str, expires: int) -> str:
        message = f"{name}:{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def save(self, data: bytes, extension: str) -> SignedFile:
        """Store ``data`` and return its signed handle, valid for the store's lifetime."""
        if extension not in MEDIA_TYPES:
            raise ValueError(f"unsupported extension {extension!r}")
        expires = int(self._clock()) + self._ttl_s
        name = f"{expires}-{secrets.token_urlsafe(18)}.{extension}"
        temporary = self.root / f".{name}.tmp"
        temporary.write_bytes(data)
        os.replace(temporary, self.root / name)
        return SignedFile(name=name, expires=expires, signature=self._sign(name, expires))

    def verify(self, name: str, expires: int, signature: str) -> Path | None:
        """The file's path when the signature matches and the link has not expired, else None."""
        match = _NAME.match(name)
        if match is None or int(match.group(1)) != expires:
            return None
        if not hmac.compare_digest(self._sign(name, expires), signature):
            return None
        if expires <= self._clock():
            return None
        return self.root / name

    def remove_expired(self) -> int:
        """Delete every file whose expiry has passed; returns how many were removed."""
        now = self._clock()
        removed = 0
        for path in self.root.iterdir():
            match = _NAME.match(path.name)
            if match is not None and int(match.group(1)) <= now:
                path.unlink(missing_ok=True)
                removed += 1
        return removed
