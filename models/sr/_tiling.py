"""Pure tiling arithmetic: where the tiles go and how their outputs are feathered back together.

Nothing here holds state between calls: a plan is computed from the image size alone, and blending
uses only the plan and the tile outputs (a shared model object never sees per-image state).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Tile:
    """One tile of an input image, in input pixels: rows ``y0:y1`` and columns ``x0:x1``.

    ``feather_*`` tell which edges border a neighbouring tile (and so get a blending ramp) rather
    than the image border (which keeps full weight).
    """

    y0: int
    y1: int
    x0: int
    x1: int
    feather_top: bool
    feather_bottom: bool
    feather_left: bool
    feather_right: bool

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0


def _axis_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """(start, end) spans along one axis: as few as cover ``length`` with tiles of at most ``tile``
    pixels and at least ``overlap`` between neighbours, all of one size (so they batch together) and
    no larger than needed (so no work is wasted on excess overlap)."""
    if length <= tile:
        return [(0, length)]
    count = -(-(length - overlap) // (tile - overlap))  # ceil
    size = min(tile, -(-(length + (count - 1) * overlap) // count))
    span = length - size
    starts = [round(i * span / (count - 1)) for i in range(count)]
    return [(start, start + size) for start in starts]


def plan_tiles(height: int, width: int, tile: int, overlap: int) -> list[Tile]:
    """Cover an ``height`` x ``width`` image with tiles of at most ``tile`` pixels a side.

    Neighbouring tiles overlap by at least ``overlap`` pixels; the overlap is where outputs are
    cross-faded. Raises ``ValueError`` when the overlap leaves no stride.
    """
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    if tile < 1 or overlap < 0 or (overlap >= tile and (height > tile or width > tile)):
        raise ValueError(f"tile {tile} with overlap {overlap} leaves no stride")
    ys = _axis_spans(height, tile, overlap)
    xs = _axis_spans(width, tile, overlap)
    tiles = []
    for iy, (y0, y1) in enumerate(ys):
        for ix, (x0, x1) in enumerate(xs):
            tiles.append(
                Tile(
                    y0=y0,
                    y1=y1,
                    x0=x0,
                    x1=x1,
                    feather_top=iy > 0,
                    feather_bottom=iy < len(ys) - 1,
                    feather_left=ix > 0,
                    feather_right=ix < len(xs) - 1,
                )
            )
    return tiles


def _ramp(length: int, ramp: int, rise: bool, fall: bool, device: torch.device) -> torch.Tensor:
    weights = torch.ones(length, dtype=torch.float32, device=device)
    ramp = min(ramp, length // 2)
    if ramp > 0:
        # Values strictly inside (0, 1) so that an output pixel never ends up with zero total weight.
        edge = (torch.arange(ramp, dtype=torch.float32, device=device) + 0.5) / ramp
        if rise:
            weights[:ramp] = edge
        if fall:
            weights[length - ramp :] = edge.flip(0)
    return weights


def feather_mask(tile: Tile, scale: int, overlap: int, device: torch.device) -> torch.Tensor:
    """Blending weights for one tile's output, shape ``(1, 1, tile.height*scale, tile.width*scale)``.

    Linear ramps across ``overlap * scale`` output pixels on the edges that border another tile;
    1.0 elsewhere. float32 on ``device``.
    """
    ramp = overlap * scale
    wy = _ramp(tile.height * scale, ramp, tile.feather_top, tile.feather_bottom, device)
    wx = _ramp(tile.width * scale, ramp, tile.feather_left, tile.feather_right, device)
    return (wy[:, None] * wx[None, :])[None, None]
