"""A deterministic corpus of hostile images for fuzzing decode → enhance.

Seeds are real photos from scikit-image (small crops, so that a decodable mutant costs little to
enhance) written in every supported format and flavour: baseline and progressive JPEG, CMYK JPEG,
EXIF-rotated and ICC-tagged JPEG, PNG (RGB, RGBA, 16-bit colour and gray, palette with and without
transparency, 1-bit, gray+alpha), WebP (lossy, lossless, animated), HEIC, AVIF, TIFF (deflate, JPEG
inside, 16-bit), BMP and GIF (animated). Mutators then truncate, flip bits, overwrite runs, perform
PNG chunk and JPEG marker surgery, declare huge or zero sizes, plant absurd EXIF and ICC blocks and
nest containers. ``corpus_case(i)`` is a pure function of ``i``: the same index always gives the same
bytes, so a failure is reproduced from its index alone and nothing is committed as files."""

from __future__ import annotations

import base64
import functools
import io
import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageCms
from skimage import data as skdata

CORPUS_SIZE = 10_240


@dataclass(frozen=True)
class Case:
    """One corpus input: ``payload`` is what goes in the request's ``image`` field."""

    index: int
    seed: str
    mutation: str
    payload: str


def _photo(name: str, box: tuple[int, int, int, int]) -> np.ndarray:
    image = getattr(skdata, name)()
    top, left, height, width = box
    return np.ascontiguousarray(image[top : top + height, left : left + width])


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _exif_with_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "fuzz camera"
    return exif.tobytes()


def _png16(array: np.ndarray) -> bytes:
    import imagecodecs

    return bytes(imagecodecs.png_encode(array))


@functools.cache
def seeds() -> tuple[tuple[str, bytes], ...]:
    """(name, file bytes) of every seed, built once per process."""
    rgb = Image.fromarray(_photo("astronaut", (60, 180, 48, 64)))
    cat = Image.fromarray(_photo("chelsea", (40, 150, 40, 56)))
    coffee = Image.fromarray(_photo("coffee", (100, 200, 44, 60)))
    gray = Image.fromarray(_photo("camera", (80, 200, 48, 48)))
    ramp = np.linspace(0, 255, rgb.width, dtype=np.uint8)[None, :].repeat(rgb.height, 0)
    rgba = rgb.copy()
    rgba.putalpha(Image.fromarray(ramp))
    srgb_icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    wide = (np.asarray(coffee, dtype=np.uint16) * 257 + 128).astype(np.uint16)
    frames = [cat, cat.transpose(Image.Transpose.FLIP_LEFT_RIGHT), cat.rotate(180)]
    palette = coffee.quantize(32)
    palette_key = palette.copy()
    palette_key.info["transparency"] = 0

    from pillow_heif import register_heif_opener

    register_heif_opener()
    built: list[tuple[str, bytes]] = [
        ("jpeg", _save(rgb, "JPEG", quality=85)),
        ("jpeg-progressive", _save(cat, "JPEG", quality=80, progressive=True)),
        ("jpeg-gray", _save(gray, "JPEG", quality=90)),
        ("jpeg-cmyk", _save(coffee.convert("CMYK"), "JPEG", quality=90)),
        ("jpeg-exif-rotated", _save(cat, "JPEG", quality=85, exif=_exif_with_orientation(6))),
        ("jpeg-icc", _save(rgb, "JPEG", quality=85, icc_profile=srgb_icc)),
        ("png", _save(cat, "PNG")),
        ("png-alpha", _save(rgba, "PNG")),
        ("png-16bit", _png16(wide)),
        ("png-16bit-gray", _save(Image.fromarray(np.asarray(gray, dtype=np.uint16) * 257), "PNG")),
        ("png-palette", _save(palette, "PNG")),
        ("png-palette-transparent", _save(palette_key, "PNG")),
        ("png-1bit", _save(gray.convert("1"), "PNG")),
        ("png-gray-alpha", _save(gray.convert("LA"), "PNG")),
        ("png-icc-exif", _save(rgb, "PNG", icc_profile=srgb_icc, exif=_exif_with_orientation(3))),
        ("webp-lossy", _save(rgb, "WEBP", quality=80)),
        ("webp-lossless", _save(rgba, "WEBP", lossless=True)),
        ("webp-animated", _save(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=80)),
        ("heic", _save(cat, "HEIF", quality=80)),
        ("avif", _save(coffee, "AVIF", quality=70)),
        ("tiff-deflate", _save(rgb, "TIFF", compression="tiff_adobe_deflate")),
        ("tiff-jpeg", _save(cat, "TIFF", compression="jpeg")),
        ("tiff-16bit-gray", _save(Image.fromarray(np.asarray(gray, dtype=np.uint16) * 257), "TIFF")),
        ("bmp", _save(coffee, "BMP")),
        ("gif-animated", _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)),
    ]
    return tuple(built)


# --- mutators: each takes (seed bytes, rng) and returns new bytes -----------------------------------


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(0, len(data))]


def _truncate_tail(data: bytes, rng: random.Random) -> bytes:
    return data[: max(0, len(data) - rng.randrange(1, 64))]


def _flip_bits(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randrange(1, 9)):
        position = rng.randrange(len(out))
        out[position] ^= 1 << rng.randrange(8)
    return bytes(out)


def _flip_header_bits(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        position = rng.randrange(min(len(out), 96))
        out[position] ^= 1 << rng.randrange(8)
    return bytes(out)


def _overwrite_run(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    start = rng.randrange(len(out))
    length = rng.randrange(1, 256)
    fill = rng.choice([0x00, 0xFF, rng.randrange(256)])
    out[start : start + length] = bytes([fill]) * len(out[start : start + length])
    return bytes(out)


def _huge_words(data: bytes, rng: random.Random) -> bytes:
    """Overwrite a 2- or 4-byte field near the start (where sizes live) with an extreme value."""
    out = bytearray(data)
    width = rng.choice([2, 4])
    position = rng.randrange(0, max(1, min(len(out), 256) - width))
    value = rng.choice([0, 1, 0xFFFF, 0x7FFF, 0xFFFFFFFF, 0x7FFFFFFF, 0x10000, 46341])
    order = rng.choice(["<", ">"])
    packed = struct.pack(order + ("H" if width == 2 else "I"), value & (0xFFFF if width == 2 else 0xFFFFFFFF))
    out[position : position + width] = packed
    return bytes(out)


def _insert_garbage(data: bytes, rng: random.Random) -> bytes:
    position = rng.randrange(len(data) + 1)
    garbage = rng.randbytes(rng.randrange(1, 512))
    return data[:position] + garbage + data[position:]


def _duplicate_slice(data: bytes, rng: random.Random) -> bytes:
    start = rng.randrange(len(data))
    end = min(len(data), start + rng.randrange(1, 4096))
    return data[:end] + data[start:end] * rng.randrange(1, 4) + data[end:]


# PNG chunk surgery (chunks re-checksummed, so the decoder must judge their content)


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]] | None:
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    chunks, position = [], 8
    while position + 8 <= len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        chunks.append((kind, data[position + 8 : position + 8 + length]))
        position += 12 + length
    return chunks


def _png_join(chunks: list[tuple[bytes, bytes]]) -> bytes:
    out = bytearray(b"\x89PNG\r\n\x1a\n")
    for kind, body in chunks:
        out += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    return bytes(out)


def _png_surgery(data: bytes, rng: random.Random) -> bytes:
    chunks = _png_chunks(data)
    if not chunks:
        return _flip_bits(data, rng)
    operation = rng.randrange(9)
    chunks = list(chunks)
    if operation == 0:  # drop a chunk
        del chunks[rng.randrange(len(chunks))]
    elif operation == 1:  # duplicate a chunk
        index = rng.randrange(len(chunks))
        chunks.insert(index, chunks[index])
    elif operation == 2:  # swap two chunks
        i, j = rng.randrange(len(chunks)), rng.randrange(len(chunks))
        chunks[i], chunks[j] = chunks[j], chunks[i]
    elif operation in (3, 4):  # huge or zero declared size, valid CRC
        kind, body = chunks[0]
        width = rng.choice([0, 1, 65535, 100_000, 2**31 - 1, 0xFFFFFFFF])
        height = rng.choice([0, 1, 65535, 100_000, 2**31 - 1, 0xFFFFFFFF])
        chunks[0] = (kind, struct.pack(">II", width, height) + body[8:])
    elif operation == 5:  # an impossible bit depth / colour type pair
        kind, body = chunks[0]
        chunks[0] = (
            kind,
            body[:8] + bytes([rng.choice([0, 3, 7, 16, 32, 255]), rng.choice([0, 1, 5, 7, 255])]) + body[10:],
        )
    elif operation == 6:  # an absurd or truncated ICC profile
        body = b"fuzz\x00\x00" + zlib.compress(_absurd_icc(rng))
        chunks.insert(1, (b"iCCP", body))
    elif operation == 7:  # an absurd EXIF block
        chunks.insert(1, (b"eXIf", _absurd_exif(rng)[6:]))
    else:  # IDAT that inflates far beyond the declared image (a zlib bomb inside a tiny image)
        index = next((i for i, (kind, _) in enumerate(chunks) if kind == b"IDAT"), 1)
        chunks.insert(index, (b"IDAT", zlib.compress(b"\x00" * rng.choice([10**5, 10**6, 8 * 10**6]), 9)))
    return _png_join(chunks)


# JPEG marker surgery


def _jpeg_segments(data: bytes) -> list[tuple[int, int]] | None:
    """(offset, length incl. marker) of each marker segment before the scan data."""
    if not data.startswith(b"\xff\xd8"):
        return None
    segments, position = [], 2
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        segments.append((position, length + 2))
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        position += length + 2
    return segments


def _jpeg_surgery(data: bytes, rng: random.Random) -> bytes:
    segments = _jpeg_segments(data)
    if not segments:
        return _flip_bits(data, rng)
    operation = rng.randrange(8)
    offset, length = segments[rng.randrange(len(segments))]
    if operation == 0:  # drop a segment (a quantisation or Huffman table, the frame header, ...)
        return data[:offset] + data[offset + length :]
    if operation == 1:  # duplicate a segment
        return data[: offset + length] + data[offset : offset + length] + data[offset + length :]
    if operation == 2:  # lie about a segment's length
        value = rng.choice([0, 1, 2, 0xFFFF, length + rng.randrange(1, 64)])
        return data[: offset + 2] + struct.pack(">H", value) + data[offset + 4 :]
    if operation in (3, 4):  # frame header with huge or zero dimensions
        sof = next((o for o, _ in segments if data[o + 1] in (0xC0, 0xC1, 0xC2)), None)
        if sof is None:
            return _flip_bits(data, rng)
        height = rng.choice([0, 1, 0xFFFF, 30000])
        width = rng.choice([0, 1, 0xFFFF, 30000])
        return data[: sof + 5] + struct.pack(">HH", height, width) + data[sof + 9 :]
    if operation == 5:  # an absurd EXIF block in APP1
        block = _absurd_exif(rng)
        return data[:2] + b"\xff\xe1" + struct.pack(">H", len(block) + 2) + block + data[2:]
    if operation == 6:  # an absurd ICC profile in APP2 (possibly split over bogus chunk counts)
        icc = _absurd_icc(rng)
        count = rng.choice([1, 2, 255])
        sequence = rng.choice([0, 1, 2, 255])
        body = b"ICC_PROFILE\x00" + bytes([sequence, count]) + icc[:65000]
        return data[:2] + b"\xff\xe2" + struct.pack(">H", len(body) + 2) + body + data[2:]
    # remove the end-of-image marker and append another image's scan
    return data.rstrip(b"\xff\xd9")[: len(data) - rng.randrange(2, 200)] + b"\xff\xd9"


def _absurd_exif(rng: random.Random) -> bytes:
    """An EXIF block (``Exif\\0\\0`` + TIFF) with absurd counts, offsets, loops or orientation."""
    little = rng.random() < 0.5
    order = "<" if little else ">"
    header = (b"II" if little else b"MM") + struct.pack(order + "HI", 42, 8)
    kind = rng.randrange(5)
    entries: list[bytes] = []
    if kind == 0:  # orientation out of range
        entries.append(struct.pack(order + "HHIHH", 0x0112, 3, 1, rng.choice([0, 9, 255, 65535]), 0))
    elif kind == 1:  # a count that claims gigabytes
        entries.append(struct.pack(order + "HHII", 0x010F, 2, 0xFFFFFFF0, 8))
    elif kind == 2:  # an Exif IFD pointer back at the first IFD (a loop)
        entries.append(struct.pack(order + "HHII", 0x8769, 4, 1, 8))
    elif kind == 3:  # a GPS IFD pointer past the end
        entries.append(struct.pack(order + "HHII", 0x8825, 4, 1, 0x7FFFFFFF))
    else:  # many entries of unknown type
        entries.extend(
            struct.pack(order + "HHII", 0x9000 + i, rng.randrange(0, 65536), rng.randrange(2**32), 0)
            for i in range(200)
        )
    count = rng.choice([len(entries), 0xFFFF]) if kind != 4 else len(entries)
    ifd = struct.pack(order + "H", count) + b"".join(entries) + struct.pack(order + "I", rng.choice([0, 8]))
    return b"Exif\x00\x00" + header + ifd


def _absurd_icc(rng: random.Random) -> bytes:
    """An ICC profile that is truncated, lies about its size, or has a garbage tag table."""
    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile(rng.choice(["sRGB", "LAB", "XYZ"]))).tobytes())
    kind = rng.randrange(5)
    if kind == 0:
        struct.pack_into(">I", profile, 0, rng.choice([0, 4, 0xFFFFFFFF]))
    elif kind == 1:
        profile = profile[: rng.randrange(0, len(profile))]
    elif kind == 2:
        struct.pack_into(">I", profile, 128, 0xFFFF)  # tag count
    elif kind == 3:
        profile[16:20] = rng.choice([b"CMYK", b"GRAY", b"\x00\x00\x00\x00", b"Lab "])  # colour space
    else:
        profile[128:] = rng.randbytes(len(profile) - 128)
    return bytes(profile)


def _swap_format_magic(data: bytes, rng: random.Random) -> bytes:
    """The start of one format glued to the body of another (sniffing must not trust the magic alone)."""
    other = rng.choice(seeds())[1]
    cut = rng.randrange(2, 32)
    return other[:cut] + data[cut:]


def _polyglot(data: bytes, rng: random.Random) -> bytes:
    """Containers nested in containers: an image appended to, or embedded in, another image."""
    other = rng.choice(seeds())[1]
    kind = rng.randrange(3)
    if kind == 0:
        return data + other
    if kind == 1 and data.startswith(b"\xff\xd8"):  # another image inside an APP segment
        inner = other[:65000]
        return data[:2] + b"\xff\xe3" + struct.pack(">H", len(inner) + 2) + inner + data[2:]
    if kind == 1 and data.startswith(b"\x89PNG"):
        chunks = _png_chunks(data) or []
        chunks.insert(1, (b"zzZz", other))
        return _png_join(chunks)
    return other[: len(other) // 2] + data


Mutator = Callable[[bytes, random.Random], bytes]
MUTATORS: tuple[tuple[str, Mutator], ...] = (
    ("truncate", _truncate),
    ("truncate-tail", _truncate_tail),
    ("flip-bits", _flip_bits),
    ("flip-header-bits", _flip_header_bits),
    ("overwrite-run", _overwrite_run),
    ("huge-words", _huge_words),
    ("insert-garbage", _insert_garbage),
    ("duplicate-slice", _duplicate_slice),
    ("png-surgery", _png_surgery),
    ("jpeg-surgery", _jpeg_surgery),
    ("swap-magic", _swap_format_magic),
    ("nested", _polyglot),
)


def _wrap(data: bytes, rng: random.Random, index: int) -> tuple[str, str]:
    """The request's ``image`` string: raw base64 mostly, sometimes a data URL (or nested ones)."""
    encoded = base64.b64encode(data).decode("ascii")
    choice = index % 16
    if choice == 0:
        return f"data:image/png;base64,{encoded}", "data-url"
    if choice == 1:
        inner = f"data:image/jpeg;base64,{encoded}"
        return "data:image/png;base64," + base64.b64encode(inner.encode()).decode("ascii"), "nested-data-url"
    if choice == 2:
        return encoded[: len(encoded) - rng.randrange(1, 4)], "bad-base64-padding"
    return encoded, "base64"


def corpus_case(index: int) -> Case:
    """Corpus input ``index`` (0 ≤ index < CORPUS_SIZE; any index works): the seeds themselves first,
    then mutants (one to three mutations of a seed), each from its own seeded generator."""
    all_seeds = seeds()
    rng = random.Random(f"corpus-{index}")
    if index < len(all_seeds):
        name, data = all_seeds[index]
        return Case(index, name, "none", base64.b64encode(data).decode("ascii"))
    name, data = all_seeds[index % len(all_seeds)]
    steps = []
    for _ in range(1 + (rng.random() < 0.3) + (rng.random() < 0.1)):
        label, mutate = MUTATORS[rng.randrange(len(MUTATORS))]
        data = mutate(data, rng) if data else data
        steps.append(label)
    payload, wrapping = _wrap(data, rng, index)
    return Case(index, name, "+".join(steps) + ("" if wrapping == "base64" else f"+{wrapping}"), payload)


# --- judging an answer ------------------------------------------------------------------------------

# The 4xx answers the contract documents for a bad image (docs/api.md's error table), with their codes.
DOCUMENTED_REFUSALS = {400: {"INVALID_IMAGE", "UNSUPPORTED_FORMAT", "BAD_REQUEST"}, 413: {"PAYLOAD_TOO_LARGE"}}


@dataclass(frozen=True)
class Outcome:
    """What the service answered to one case, and whether that is acceptable."""

    index: int
    status: int
    code: str
    detail: str
    seconds: float
    ok: bool
    problem: str


def judge(index: int, status: int, body: object, seconds: float, num_outputs: int = 1) -> Outcome:
    """Acceptable: a 200 with ``num_outputs`` decodable images, or a documented refusal (400/413 with a
    known ``code`` and a non-empty ``detail``). Anything else (500, 503, 504, a body of the wrong shape)
    is a failure, described in ``problem``."""
    if not isinstance(body, dict):
        return Outcome(index, status, "", "", seconds, False, "the body is not a JSON object")
    code = str(body.get("code", ""))
    detail = body.get("detail")
    detail_text = detail if isinstance(detail, str) else repr(detail)
    if status == 200:
        images = body.get("images")
        if not isinstance(images, list) or len(images) != num_outputs:
            return Outcome(index, status, code, "", seconds, False, "200 without the requested images")
        try:
            for image in images:
                Image.open(io.BytesIO(base64.b64decode(image))).verify()
        except Exception as exc:
            return Outcome(index, status, code, "", seconds, False, f"200 with an undecodable output: {exc}")
        return Outcome(index, status, "OK", "", seconds, True, "")
    allowed = DOCUMENTED_REFUSALS.get(status)
    if allowed is None:
        return Outcome(index, status, code, detail_text, seconds, False, f"undocumented status {status}")
    if code not in allowed:
        return Outcome(
            index, status, code, detail_text, seconds, False, f"code {code!r} is not documented for {status}"
        )
    if not isinstance(detail, str) or len(detail.strip()) < 10:
        return Outcome(index, status, code, detail_text, seconds, False, "the detail is missing or says nothing")
    return Outcome(index, status, code, detail, seconds, True, "")
