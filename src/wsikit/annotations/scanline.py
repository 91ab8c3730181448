"""Exact masks of polygons at pixel centres, many tiles at once, with numpy only.

Rule: a pixel is in the region when its centre lies inside it; a centre on the boundary is
not (shapely's ``contains_xy``). For each pixel row of a tile, every polygon edge that the
row's centre line crosses (half-open in y, so that a vertex on the line counts once) gives
the crossing's x; the pixel is inside when an odd number of crossings lie left of its
centre (even-odd rule; the region's pieces do not overlap, so even-odd is the union).

All rows of all tiles of a block are done together: each crossing becomes a toggle at a
position of the flattened (tiles, h, w) output, and the output is the parity of the
toggles before each position, made by one ``np.repeat`` of alternating runs. Crossings
left of the tile's pixels toggle at column 0 (an edge wholly left of the tile only flips
its rows' starting parity, through a difference array); crossings right of them are not
made: a row whose toggles are odd gets one more at its end. Where a crossing falls exactly on a pixel
centre, or a horizontal edge exactly on a row of centres (points on the boundary, which
floating point cannot place by parity), the row is redone with ``shapely.contains_xy``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .frames import TileFrames, centre, first_at_least, first_at_least_and_ties

if TYPE_CHECKING:
    from shapely import Geometry


def ring_edges(pieces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(edges, starts): (E, 4) float64 of every ring edge of every polygon in ``pieces``,
    as the scanline uses them: y_lo, y_hi (its span), x at y_lo, dx/dy (0 for a horizontal
    edge); and (len(pieces) + 1,) offsets: piece k's edges are edges[starts[k]:starts[k+1]]."""
    import shapely

    parts, part_of = shapely.get_parts(pieces, return_index=True)
    rings, ring_of = shapely.get_rings(parts, return_index=True)
    coords, coord_of = shapely.get_coordinates(rings, return_index=True)
    same_ring = coord_of[:-1] == coord_of[1:]
    (x0, y0), (x1, y1) = coords[:-1][same_ring].T, coords[1:][same_ring].T
    down = y0 <= y1
    y_lo, y_hi = np.where(down, y0, y1), np.where(down, y1, y0)
    x_lo = np.where(down, x0, x1)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(y0 == y1, 0.0, (x1 - x0) / (y1 - y0))
    owner = part_of[ring_of[coord_of[:-1][same_ring]]]  # the piece of each edge, ascending
    starts = np.searchsorted(owner, np.arange(len(pieces) + 1), side="left")
    return np.ascontiguousarray(np.stack([y_lo, y_hi, x_lo, slope], axis=1)), starts.astype(np.int64)


def fill(edges: np.ndarray, starts: np.ndarray, pair_piece: np.ndarray, pair_slot: np.ndarray,
         slot_tile: np.ndarray, frames: TileFrames, slot_geometry: list[Geometry]) -> np.ndarray:
    """(slots, h, w) bool masks: slot s is tile ``slot_tile[s]`` of ``frames`` inside the union
    of the pieces paired with it (``pair_piece[k]`` belongs to slot ``pair_slot[k]``);
    ``slot_geometry[s]`` is the whole region, used for rows with points on its boundary."""
    import shapely

    h, w = frames.shape
    (si, sj), read = frames.scale, frames.read
    # Tiles read at their own size (level tiling) take the cheaper form of the centre formula.
    row_size: np.ndarray | None = None if (read[:, 2] == h).all() else read[:, 2]
    col_size: np.ndarray | None = None if (read[:, 3] == w).all() else read[:, 3]
    top, bottom = read[:, 0] * si, (read[:, 0] + read[:, 2]) * si
    n_slots = len(slot_tile)
    counts = starts[pair_piece + 1] - starts[pair_piece]
    total = int(counts.sum())
    index = np.repeat(starts[pair_piece] - (np.cumsum(counts) - counts), counts) + np.arange(total)
    slot = np.repeat(pair_slot, counts)
    tile = slot_tile[slot]
    y_lo, y_hi = edges[index, 0], edges[index, 1]
    spans = (y_hi > top[tile]) & (y_lo < bottom[tile])  # edges that reach some of the tile's rows
    redo: list[np.ndarray] = []  # (slot, row) pairs recomputed exactly

    flat = spans & (y_lo == y_hi)
    if flat.any():  # a horizontal edge in the tile, perhaps exactly on a row of centres
        t = tile[flat]
        rows, on = first_at_least_and_ties(read[t, 0], None if row_size is None else row_size[t], h, si, y_lo[flat])
        if on.any():
            redo.append(np.stack([slot[flat][on], rows[on]], axis=1))
    keep = np.flatnonzero(spans & (y_lo != y_hi))
    index, slot, tile, y_lo, y_hi = index[keep], slot[keep], tile[keep], y_lo[keep], y_hi[keep]
    row_start, sizes = read[tile, 0], None if row_size is None else row_size[tile]
    row_lo = first_at_least(row_start, sizes, h, si, y_lo)
    crossings = first_at_least(row_start, sizes, h, si, y_hi) - row_lo
    line_lo = slot * h + row_lo  # rows of all slots, flattened

    # An edge wholly left of the tile's first column of centres toggles each of its rows at
    # column 0, one wholly right of the last toggles none inside: neither needs its crossings,
    # only (left) which rows it flips. The margin keeps rounding out of that judgement.
    e = edges[index]
    x_far = e[:, 2] + (y_hi - y_lo) * e[:, 3]
    x_min, x_max = np.minimum(e[:, 2], x_far), np.maximum(e[:, 2], x_far)
    col_start, col_sizes = read[tile, 1], None if col_size is None else col_size[tile]
    first_x = centre(col_start, col_sizes, w, sj, np.zeros(1))
    last_x = centre(col_start, col_sizes, w, sj, np.full(1, w - 1))
    left = x_max < first_x - 1e-6 * (1 + np.abs(first_x))
    middle = np.flatnonzero(~left & (x_min <= last_x + 1e-6 * (1 + np.abs(last_x))) & (crossings > 0))
    flips = np.bincount(np.concatenate([line_lo[left], line_lo[left] + crossings[left]]),
                        minlength=n_slots * h + 1)[:n_slots * h]
    left_parity = (np.cumsum(flips) & 1).astype(bool)  # per row: odd crossings left of the tile

    crossings, row_lo, line_lo = crossings[middle], row_lo[middle], line_lo[middle]
    tile, row_start = tile[middle], row_start[middle]
    # Per edge first, then per crossing: gathering three 1-D columns is quicker than (n, 4) rows.
    edge_y, edge_x, edge_slope = (np.ascontiguousarray(e[middle, c]) for c in (0, 2, 3))
    sizes = None if sizes is None else sizes[middle]
    n = int(crossings.sum())
    of = np.repeat(np.arange(len(crossings)), crossings)
    step = np.arange(n) - np.repeat(np.cumsum(crossings) - crossings, crossings)  # row within the edge
    row = row_lo[of] + step
    t = tile[of]
    y = centre(row_start[of], None if sizes is None else sizes[of], h, si, row)
    x = edge_x[of] + (y - edge_y[of]) * edge_slope[of]
    col, on = first_at_least_and_ties(read[t, 1], None if col_size is None else col_size[t], w, sj, x)
    line = line_lo[of] + step
    if on.any():
        redo.append(np.stack([line[on] // h, line[on] % h], axis=1))

    # Toggles inside the rows; a row left odd is reset at its end, so that parity does not
    # run on into the next row (crossings right of the tile were never made).
    inside = col < w
    line, col = line[inside], col[inside]
    odd = (np.bincount(line, minlength=n_slots * h) & 1).astype(bool) ^ left_parity
    starts_odd = np.flatnonzero(left_parity) * w
    resets = (np.flatnonzero(odd) + 1) * w
    # Each edge's crossings come in ascending runs (rows go down): a merge sort of runs is quickest.
    positions = np.sort(np.concatenate([line * w + col, starts_odd, resets]), kind="stable")
    runs = np.diff(positions, prepend=0, append=n_slots * h * w)
    parity = (np.arange(len(runs)) & 1).astype(bool)
    masks = np.repeat(parity, runs).reshape(n_slots, h, w)

    if redo:
        for s, r in np.unique(np.concatenate(redo), axis=0).tolist():
            tiles = np.array([slot_tile[s]])
            ys = frames.row_centres(tiles, np.array([r]))[0]
            xs = frames.column_centres(np.repeat(tiles, w), np.arange(w))
            masks[s, r] = shapely.contains_xy(slot_geometry[s], xs, ys)
    return masks
