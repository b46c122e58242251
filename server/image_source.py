"""The API's ``image`` string to the image file's bytes: an http(s) URL (fetched by
:mod:`server.outbound`), a ``data:`` URL, or raw base64 — detected automatically.

* Detection order: ``http://``/``https://`` → fetch; ``data:...;base64,`` → payload (the media type is
  ignored, since content is sniffed); any other ``scheme:`` → :class:`~models.pipeline.ImageFetchError`
  (a colon never occurs in base64); else raw base64, with whitespace/newlines ignored, missing padding
  tolerated and the URL-safe alphabet accepted (not mixed with ``+``/``/``). Bad base64 →
  :class:`~models.pipeline.InvalidImageError` naming the first bad character and its position.
* ``FetchPolicy.max_bytes`` also bounds inline (base64) payloads.
"""

from __future__ import annotations

import binascii
import re
import urllib.parse

from models.pipeline import ImageFetchError, InvalidImageError
from server.outbound import FetchPolicy, fetch_url

_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_DATA_URL_RE = re.compile(r"data:([^,]*),", re.IGNORECASE | re.DOTALL)
_NOT_STANDARD_B64 = re.compile(r"[^A-Za-z0-9+/=]")
_WHITESPACE = {ord(c): None for c in " \t\r\n\f\v"}
_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")


def load_image_source(image: str, policy: FetchPolicy) -> bytes:
    """Turn the API's ``image`` string into the image file's bytes.

    Detection, in order (leading/trailing whitespace ignored):

    * ``http://`` / ``https://`` (any case): fetched with :func:`fetch_url` under ``policy``;
    * ``data:[<media type>][;...];base64,<payload>``: the payload is decoded as below (the media type is
      not trusted: the decoder sniffs the bytes; percent-escapes are undone);
    * any other ``scheme:`` prefix (``file:``, ``ftp:``, ``gopher:``, ...): refused — a colon never occurs
      in base64, so this cannot misread a payload;
    * otherwise raw base64: whitespace and newlines anywhere are ignored, missing ``=`` padding is
      tolerated, and the URL-safe alphabet (``-`` and ``_``) is accepted when not mixed with ``+``/``/``.

    Inline payloads are held to ``policy.max_bytes`` like fetched ones.

    Raises:
        InvalidImageError: empty input, bad base64 (the detail names the first bad character and its
            position, or the impossible length), a non-base64 data URL, or a payload over the byte limit.
        ImageFetchError: a URL with another scheme, or any failure of the fetch.
        TypeError: ``image`` is not a string.
    """
    if not isinstance(image, str):
        raise TypeError(f"image must be a str, got {type(image).__name__}")
    text = image.strip()
    if not text:
        raise InvalidImageError("image is empty")
    lowered = text[:8].lower()
    if lowered.startswith(("http://", "https://")):
        return fetch_url(text, policy)
    if lowered.startswith("data:"):
        return _decode_data_url(text, policy)
    scheme = _SCHEME_RE.match(text[:64])
    if scheme:
        raise ImageFetchError(
            f"URL scheme '{scheme.group(1).lower()}' is not allowed: only http and https URLs are fetched"
        )
    return decode_base64(text, max_bytes=policy.max_bytes)


def _decode_data_url(text: str, policy: FetchPolicy) -> bytes:
    """Decode a ``data:`` URL's base64 payload.

    Raises:
        InvalidImageError: not of the form ``data:...;base64,<payload>``, or its payload is bad base64.
    """
    match = _DATA_URL_RE.match(text)
    if match is None:
        raise InvalidImageError("data URL has no ',' separating its header from the payload")
    header = match.group(1).strip().lower()
    if not header.endswith(";base64"):
        raise InvalidImageError("data URL must be base64-encoded (its header lacks ';base64')")
    payload = text[match.end() :]
    if "%" in payload:
        payload = urllib.parse.unquote(payload)
    return decode_base64(payload, max_bytes=policy.max_bytes, what="data URL payload")


def decode_base64(payload: str, *, max_bytes: int, what: str = "image") -> bytes:
    """Decode lenient base64 (whitespace, missing padding, URL-safe alphabet) strictly otherwise.

    Raises:
        InvalidImageError: empty payload, a character outside the alphabet, padding in the middle, an
            impossible length, or a decoded size above ``max_bytes``.
    """
    compact = payload.translate(_WHITESPACE)
    if not compact:
        raise InvalidImageError(f"{what} is empty")
    has_urlsafe = "-" in compact or "_" in compact
    if has_urlsafe:
        if "+" in compact or "/" in compact:
            raise InvalidImageError(
                f"{what} is not valid base64: it mixes the standard (+/) and URL-safe (-_) alphabets"
            )
        compact = compact.translate(_URLSAFE_TO_STANDARD)
    bad = _NOT_STANDARD_B64.search(compact)
    if bad is not None:
        char = bad.group(0)
        raise InvalidImageError(
            f"{what} is neither an http(s) URL nor valid base64: "
            f"unexpected character {char!r} at position {bad.start()} (whitespace ignored)"
        )
    body = compact.rstrip("=")
    padding = len(compact) - len(body)
    inner_pad = body.find("=")
    if inner_pad != -1:
        raise InvalidImageError(f"{what} is not valid base64: padding '=' at position {inner_pad}, before the end")
    if padding > 2 or len(body) % 4 == 1:
        raise InvalidImageError(
            f"{what} is not valid base64: {len(body)} characters (plus {padding} '=') is not a possible length"
        )
    decoded_size = len(body) * 3 // 4
    if decoded_size > max_bytes:
        raise InvalidImageError(f"{what} decodes to {decoded_size} bytes, more than the {max_bytes}-byte limit")
    try:
        return binascii.a2b_base64(body + "=" * (-len(body) % 4), strict_mode=True)
    except binascii.Error as exc:
        raise InvalidImageError(f"{what} is not valid base64") from exc
