"""Demo SRTM1 tiles: 1 arc-second HGT files (3601 x 3601, big-endian int16 metres, WGS84) with a few voids."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..inputs.dem import hgt_name
from .landscape import Landscape

_FULL_DETAIL_MARGIN_DEG = 0.05
_HGT_SIZE = 3601


def write_hgt_tiles(land: Landscape, bbox, out: Path, seed: int) -> list[Path]:
    """SRTM1 HGT tiles covering ``bbox`` (plus the full-detail margin); returns their paths."""
    lon0, lat0, lon1, lat1 = bbox
    m = _FULL_DETAIL_MARGIN_DEG
    paths = []
    for lat in range(math.floor(lat0 - m), math.ceil(lat1 + m)):
        for lon in range(math.floor(lon0 - m), math.ceil(lon1 + m)):
            z = _hgt_elevation(land, lat, lon, (lon0 - m, lat0 - m, lon1 + m, lat1 + m))
            _add_voids(z, lat, lon, bbox, seed)
            path = out / hgt_name(lat, lon)
            path.parent.mkdir(parents=True, exist_ok=True)
            z.astype(">i2").tofile(path)
            paths.append(path)
    return paths


def _hgt_elevation(land: Landscape, lat: int, lon: int, detail_bbox) -> np.ndarray:
    """int16 elevations of one SRTM1 tile; full 1" detail inside ``detail_bbox``, 6" elsewhere."""
    n = _HGT_SIZE
    coarse = np.linspace(0.0, 1.0, (n - 1) // 6 + 1)  # every 6th post
    clon, clat = np.meshgrid(lon + coarse, lat + 1.0 - coarse)
    # zoom with grid_mode=False maps first/last posts onto first/last posts
    z = ndimage.zoom(land.elevation(clon, clat), n / coarse.size, order=1)
    assert z.shape == (n, n), z.shape
    d0, d1, d2, d3 = detail_bbox
    c0 = max(0, int(math.floor((d0 - lon) * 3600)))
    c1 = min(n, int(math.ceil((d2 - lon) * 3600)) + 1)
    r0 = max(0, int(math.floor((lat + 1 - d3) * 3600)))
    r1 = min(n, int(math.ceil((lat + 1 - d1) * 3600)) + 1)
    if c1 > c0 and r1 > r0:
        cols = lon + np.arange(c0, c1) / 3600.0
        for rs in range(r0, r1, 256):  # row blocks keep memory small
            re_ = min(r1, rs + 256)
            rows = lat + 1.0 - np.arange(rs, re_) / 3600.0
            glon, glat = np.meshgrid(cols, rows)
            z[rs:re_, c0:c1] = land.elevation(glon, glat)
    # SRTM's own noise (~1 m here): without it a smooth plateau becomes clean 1 m terraces once rounded.
    # Keyed on the global post index, so neighbouring tiles agree on their shared edge row/column.
    from .landscape import _hash01

    post_x, post_y = np.meshgrid(lon * 3600 + np.arange(n, dtype=np.int64), (lat + 1) * 3600 - np.arange(n, dtype=np.int64))
    noise = (_hash01(post_x, post_y, land.seed * 1000 + 97) + _hash01(post_x, post_y, land.seed * 1000 + 98) - 1.0) * 2.5
    return np.round(z + noise).astype(np.int16)


def _add_voids(z: np.ndarray, lat: int, lon: int, bbox, seed: int) -> None:
    """Punch a few small -32768 voids (radius 1-4 px) where the tile meets the bbox."""
    lon0, lat0, lon1, lat1 = bbox
    a0, a1 = max(lon0, lon), min(lon1, lon + 1)
    b0, b1 = max(lat0, lat), min(lat1, lat + 1)
    if a1 <= a0 or b1 <= b0:
        return
    rng = np.random.default_rng([seed, lat + 90, lon + 180, 7])
    rr, cc = np.mgrid[-4:5, -4:5]
    for _ in range(5):
        col = int((rng.uniform(a0, a1) - lon) * 3600)
        row = int((lat + 1 - rng.uniform(b0, b1)) * 3600)
        radius = rng.uniform(1.0, 4.0)
        disk = rr**2 + cc**2 <= radius**2
        r_idx, c_idx = np.clip(row + rr[disk], 0, _HGT_SIZE - 1), np.clip(col + cc[disk], 0, _HGT_SIZE - 1)
        z[r_idx, c_idx] = -32768

