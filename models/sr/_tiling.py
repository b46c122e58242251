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


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def padded_side(length: int, quantum: int) -> int:
    """The side a tile of ``length`` pixels is padded to before the network: the next multiple of
    ``quantum`` (tiles of similar sizes then share one shape, so they batch together)."""
    return _round_up(length, max(1, quantum))


def _axis_spans(length: int, tile: int, overlap: int, quantum: int) -> list[tuple[int, int]]:
    """(start, end) spans along one axis: tiles of one size (so they batch together) of at most
    ``tile`` pixels, at least ``overlap`` between neighbours, covering ``length`` with the fewest
    network pixels once every tile is padded to a multiple of ``quantum``."""
    if length <= tile:
        return [(0, length)]
    fewest = -(-(length - overlap) // (tile - overlap))  # ceil
    best: tuple[int, int] | None = None  # (cost along the axis, tile size)
    for count in range(fewest, fewest + 3):
        size = _round_up(-(-(length + (count - 1) * overlap) // count), max(1, quantum))
        if size > tile or size > length:
            size = -(-(length + (count - 1) * overlap) // count)
            if size > tile:
                continue
        # Smaller tiles run less efficiently: each extra tile is charged one quantum of pixels.
        cost = count * (padded_side(size, quantum) + quantum)
        if best is None or cost < best[0]:
            best = (cost, size)
    assert best is not None  # count == fewest always fits: its fitted size is at most ``tile``
    size = best[1]
    count = max(2, -(-(length - overlap) // (size - overlap)))
    span = length - size
    starts = [round(i * span / (count - 1)) for i in range(count)]
    return [(start, start + size) for start in starts]


def plan_tiles(height: int, width: int, tile: int, overlap: int, quantum: int = 1) -> list[Tile]:
    """Cover an ``height`` x ``width`` image with tiles of at most ``tile`` pixels a side.

    Neighbouring tiles overlap by at least ``overlap`` pixels; the overlap is where outputs are
    cross-faded. With ``quantum`` > 1 the tile size is chosen so that, once each tile is padded to a
    multiple of ``quantum`` (:func:`padded_side`), the network runs the fewest pixels. Raises
    ``ValueError`` when the overlap leaves no stride.
    """
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    if tile < 1 or overlap < 0 or (overlap >= tile and (height > tile or width > tile)):
        raise ValueError(f"tile {tile} with overlap {overlap} leaves no stride")
    ys = _axis_spans(height, tile, overlap, quantum)
    xs = _axis_spans(width, tile, overlap, quantum)
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
