"""JPEG quality: exact from the file's quantisation tables, or recovered from the pixels.

* From the bytes (the input *is* a JPEG): the luminance and chrominance tables are matched against
  the IJG (libjpeg) tables scaled for every quality 1..100; libjpeg, Pillow, OpenCV, browsers and
  most software use exactly those, so the match is exact. Other encoders (cameras, Photoshop) use
  their own tables: the nearest IJG quality is reported and ``standard_tables`` is False.
* From the pixels (a JPEG re-encoded losslessly, e.g. to PNG): JPEG leaves its 8×8 DCT coefficients
  on multiples of the quantisation step. For each low frequency, the step is the largest integer on
  whose multiples the non-zero coefficients of the luma fall (found on the aligned 8×8 grid, after
  looking for the grid's offset); the quality is the one whose IJG table best fits those steps. No
  such structure (never compressed, or resized since) gives ``None``. This is a sharper form of the
  usual blockiness measure: blocking is the visible trace of those same steps.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from models.analysis._common import as_tensor

# The example tables of the JPEG standard (ITU-T T.81 Annex K), natural (row-major) order: libjpeg
# scales them by quality.
_LUMA_BASE = np.array(
    [
        16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
        14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
        49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
    ],
    dtype=np.float64,
)  # fmt: skip
_CHROMA_BASE = np.array(
    [
        17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
        47, 66, 99, 99, 99, 99, 99, 99, *([99] * 32),
    ],
    dtype=np.float64,
)  # fmt: skip

# Frequencies (row, column of the 8×8 DCT) whose steps are recovered from pixels: the low ones,
# which keep enough non-zero coefficients even at low quality.
_PROBED = [(0, 1), (1, 0), (1, 1), (0, 2), (2, 0), (1, 2), (2, 1), (2, 2), (0, 3), (3, 0)]
_MAX_BLOCKS = 20_000
# Decoders round to 8 bits and use integer IDCTs: coefficients land within this of the lattice.
_LATTICE_TOLERANCE = 1.0


def ijg_table(base: np.ndarray, quality: int) -> np.ndarray:
    """libjpeg's ``jpeg_quality_scaling``: the table that quality ``quality`` (1..100) makes of ``base``."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality  # integer arithmetic, as libjpeg
    return np.clip((base.astype(np.int64) * scale + 50) // 100, 1, 255).astype(np.float64)


_QUALITIES = np.arange(1, 101)
_LUMA_TABLES = np.stack([ijg_table(_LUMA_BASE, int(q)) for q in _QUALITIES])
_CHROMA_TABLES = np.stack([ijg_table(_CHROMA_BASE, int(q)) for q in _QUALITIES])


@dataclass(frozen=True)
class JpegEstimate:
    """``quality``: IJG-equivalent quality 1..100, or None when the image shows no JPEG compression.
    ``source``: "tables" (read from the file) or "pixels" (recovered from the DCT coefficients).
    ``standard_tables``: the file's tables are exactly IJG tables (only meaningful for "tables")."""

    quality: int | None
    source: str
    standard_tables: bool


def quality_from_tables(tables: dict[int, list[int]]) -> tuple[int, bool]:
    """The IJG quality that best reproduces JPEG quantisation ``tables`` (Pillow's ``quantization``:
    index → 64 values, natural order) and whether the match is exact."""
    luma = np.asarray(tables[0], dtype=np.float64)
    error = np.abs(np.log(_LUMA_TABLES) - np.log(luma)).sum(axis=1)
    exact = (luma == _LUMA_TABLES).all(axis=1)
    if 1 in tables and len(tables[1]) == 64:
        chroma = np.asarray(tables[1], dtype=np.float64)
        error = error + np.abs(np.log(_CHROMA_TABLES) - np.log(chroma)).sum(axis=1)
        exact &= (chroma == _CHROMA_TABLES).all(axis=1)
    if exact.any():
        return int(_QUALITIES[np.argmax(exact)]), True
    return int(_QUALITIES[np.argmin(error)]), False


def jpeg_quality_from_bytes(data: bytes) -> JpegEstimate | None:
    """Read the quantisation tables of JPEG file bytes; ``None`` when ``data`` is not a readable JPEG."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in {"JPEG", "MPO"}:
                return None
            tables = getattr(image, "quantization", None)
    except Exception:  # any unreadable header simply means "no tables to read"
        return None
    if not tables or 0 not in tables:
        return None
    quality, standard = quality_from_tables({int(k): list(v) for k, v in tables.items()})
    return JpegEstimate(quality=quality, source="tables", standard_tables=standard)


def _dct_matrix() -> np.ndarray:
    k = np.arange(8)
    matrix = np.cos((2 * k[None, :] + 1) * k[:, None] * np.pi / 16) * np.sqrt(2 / 8)
    matrix[0] /= np.sqrt(2)
    return matrix


_DCT = _dct_matrix()


def _grid_offset(y: torch.Tensor) -> tuple[int, int]:
    """Offset (row, column) of the 8×8 block grid: where the jumps between neighbouring pixels are
    largest relative to the jumps one pixel further in."""
    dy = (y[1:] - y[:-1]).abs().mean(dim=1)
    dx = (y[:, 1:] - y[:, :-1]).abs().mean(dim=0)
    rows = torch.stack([dy[o::8].mean() for o in range(8)])
    cols = torch.stack([dx[o::8].mean() for o in range(8)])
    # A boundary after pixel 7 of a block is the difference at index 7 (mod 8) for an offset of 0.
    row, col = torch.stack([rows.argmax(), cols.argmax()]).tolist()
    return (int(row) + 1) % 8, (int(col) + 1) % 8


_STEPS = torch.arange(3, 101, dtype=torch.float64)


def _steps_of(coefficients: torch.Tensor) -> list[int]:
    """For each column of ``coefficients`` (N×F): the largest step ``q`` (3..100) on whose multiples its
    coefficients fall, 1 when none does, 0 when there are too few non-zero coefficients to tell."""
    if coefficients.shape[0] == 0:  # no whole block (a thin image): nothing to tell
        return [0] * coefficients.shape[1]
    steps = _STEPS.to(coefficients.device)
    found = []
    for f in range(coefficients.shape[1]):
        values = coefficients[:, f]
        used = values.abs() > 1.5
        count = used.sum()
        near = (values[:, None] - steps * torch.round(values[:, None] / steps)).abs() < _LATTICE_TOLERANCE
        on_lattice = (near & used[:, None]).sum(0).double() / count.clamp(min=1)
        # By chance a fraction 2·tolerance/q of values lies that close to a multiple of q.
        needed = torch.clamp(torch.clamp(2 * _LATTICE_TOLERANCE / steps, max=1.0) + 0.25, min=0.85)
        largest = torch.clamp(torch.floor(torch.where(used, values.abs(), 0.0).max()) + 1, max=100)
        fits = (on_lattice >= needed) & (steps <= largest)
        best = torch.where(fits, steps, torch.zeros_like(steps)).max()
        step = torch.where(count < 24, torch.zeros_like(best), torch.where(best > 0, best, torch.ones_like(best)))
        found.append(step)
    return [int(q) for q in torch.stack(found).tolist()]


def jpeg_quality_from_pixels(rgb: np.ndarray | torch.Tensor) -> JpegEstimate:
    """Recover the JPEG quality that ``rgb`` (float32 H×W×3 in [0, 1], sRGB; an array or a tensor on
    any device, where the work then runs) was last compressed at, from the lattice of its luma DCT
    coefficients; ``quality`` None when no JPEG traces are found."""
    image = as_tensor(rgb)
    if min(image.shape[:2]) < 32:
        return JpegEstimate(quality=None, source="pixels", standard_tables=False)
    values = image.double() * 255.0
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64, device=values.device)
    y = values @ weights - 128.0
    oy, ox = _grid_offset(y)
    y, values = y[oy:, ox:], values[oy:, ox:]
    h, w = (y.shape[0] // 8) * 8, (y.shape[1] // 8) * 8
    blocks = y[:h, :w].reshape(h // 8, 8, w // 8, 8).permute(0, 2, 1, 3).reshape(-1, 8, 8)
    colour_blocks = values[:h, :w].reshape(h // 8, 8, w // 8, 8, 3).permute(0, 2, 1, 3, 4).reshape(-1, 192)
    # Blocks where a channel touches 0 or 255 were clipped after decoding: their coefficients left the lattice.
    unclipped = (colour_blocks.amin(dim=1) > 0.5) & (colour_blocks.amax(dim=1) < 254.5)
    blocks = blocks[unclipped]
    if blocks.shape[0] > _MAX_BLOCKS:
        chosen = np.linspace(0, blocks.shape[0] - 1, _MAX_BLOCKS).astype(int)
        blocks = blocks[torch.from_numpy(chosen).to(blocks.device)]
    dct = torch.from_numpy(_DCT).to(blocks.device)
    coefficients = dct @ blocks @ dct.T
    probed = torch.tensor([u * 8 + v for u, v in _PROBED], device=blocks.device)
    step_list = _steps_of(coefficients.reshape(-1, 64)[:, probed])
    steps = dict(zip(_PROBED, step_list, strict=True))
    known = {k: q for k, q in steps.items() if q > 0}
    if len(known) < 3 or sum(q >= 2 for q in known.values()) < max(3, len(known) // 2 + 1):
        return JpegEstimate(quality=None, source="pixels", standard_tables=False)
    indices = [u * 8 + v for u, v in known]
    measured = np.log(np.array(list(known.values()), dtype=np.float64))
    error = np.abs(np.log(_LUMA_TABLES[:, indices]) - measured).sum(axis=1)
    # Neighbouring qualities often share their low-frequency steps: the highest of the tied ones wins.
    best = len(error) - 1 - int(np.argmin(error[::-1]))
    return JpegEstimate(quality=int(_QUALITIES[best]), source="pixels", standard_tables=False)
