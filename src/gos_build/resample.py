"""Point-exact resampling: values of a source array at fractional pixel-centre indices.

The one place gos-build interpolates rasters onto its grid (DEM, Sentinel-2).
Each output value depends only on its own source indices and the source
pixels around them, never on how the output was cut into windows, so tiles
equal an untiled run bit for bit. GDAL's warper does not guarantee that (its
result for a pixel shifts with the destination window: chunking, approximate
transforms).

Kernels: ``nearest``; ``bilinear`` (2 x 2); ``cubic`` = Keys (1981) cubic
convolution with a = -0.5 (4 x 4), GDAL's ``cubic``.
"""

from __future__ import annotations

import numpy as np


def _keys_cubic(t: np.ndarray) -> list[np.ndarray]:
    """Keys (1981) cubic convolution weights (a = -0.5) for offsets -1, 0, 1, 2."""
    a = -0.5

    def k(d):
        d = np.abs(d)
        return np.where(d <= 1, (a + 2) * d**3 - (a + 3) * d**2 + 1,
                        np.where(d < 2, a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a, 0.0))

    return [k(t + 1), k(t), k(1 - t), k(2 - t)]


# name -> (offset of the first tap, weight function of the fractional part)
KERNELS = {"bilinear": (0, lambda t: [1.0 - t, t]), "cubic": (-1, _keys_cubic)}


def nearest_indices(r: np.ndarray, c: np.ndarray, shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row/col of the source pixel containing each point, and whether it lies inside ``shape``."""
    ri, ci = np.floor(r + 0.5).astype(np.int64), np.floor(c + 0.5).astype(np.int64)
    inside = (ri >= 0) & (ci >= 0) & (ri < shape[0]) & (ci < shape[1])
    return np.where(inside, ri, 0), np.where(inside, ci, 0), inside


def resample_points(z: np.ndarray, r: np.ndarray, c: np.ndarray, method: str, void=None,
                    valid: np.ndarray | None = None) -> np.ndarray:
    """Interpolate ``z`` at fractional pixel-centre indices (r, c); float32, NaN where undefined.

    Two ways to treat missing source pixels:

    * ``void``: a value marking missing pixels; a point whose whole kernel is
      not free of it is NaN (the DEM: no interpolation across voids);
    * ``valid``: a boolean mask; weights are renormalised over the valid
      pixels of the kernel, so invalid pixels never bleed into a value, and a
      point with no valid pixel (or zero total weight) is NaN (Sentinel-2).

    Points whose kernel reaches outside ``z`` are NaN.
    """
    first, weights = KERNELS[method]
    r0, c0 = np.floor(r).astype(np.int64), np.floor(c).astype(np.int64)
    wr, wc = weights(r - r0), weights(c - c0)
    n = len(wr)
    inside = (r0 + first >= 0) & (c0 + first >= 0) & (r0 + first + n <= z.shape[0]) & (c0 + first + n <= z.shape[1])
    rr, cc = np.where(inside, r0, -first), np.where(inside, c0, -first)
    out = np.zeros(r.shape, dtype=np.float64)
    wsum = np.zeros(r.shape, dtype=np.float64)
    bad = ~inside
    for i in range(n):
        for j in range(n):
            v = z[rr + first + i, cc + first + j].astype(np.float64)
            w = wr[i] * wc[j]
            if valid is not None:
                ok = valid[rr + first + i, cc + first + j]
                w = np.where(ok, w, 0.0)
                v = np.where(ok, v, 0.0)
            elif void is not None:
                bad |= v == void
            out += w * v
            wsum += w
    if valid is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            out = out / wsum
        bad |= ~(wsum > 1e-9)
    out[bad] = np.nan
    return out.astype(np.float32)
