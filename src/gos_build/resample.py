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


def _keys_inner(d):
    """Keys' cubic for 0 <= d <= 1 (a = -0.5)."""
    a = -0.5
    return (a + 2) * d**3 - (a + 3) * d**2 + 1


def _keys_outer(d):
    """Keys' cubic for 1 <= d <= 2; 0 at both ends, so it also serves d = 1 and d = 2 exactly."""
    a = -0.5
    return a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a


def _keys_cubic(t: np.ndarray) -> list[np.ndarray]:
    """Keys (1981) cubic convolution weights (a = -0.5) for offsets -1, 0, 1, 2 of t in [0, 1).

    The taps' distances t + 1, t, 1 - t, 2 - t fall in [1, 2], [0, 1), (0, 1], [1, 2]: each tap
    needs one branch of the kernel only (both give 0.0 at d = 1 and d = 2).
    """
    return [_keys_outer(t + 1), _keys_inner(t), _keys_inner(1 - t), _keys_outer(2 - t)]


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
    # the kernel's first tap as a flat index; tap (i, j) is that + i * width + j
    width = z.shape[1]
    base = (rr + first) * width + (cc + first)
    z64 = np.ascontiguousarray(z, dtype=np.float64).ravel()
    ok_flat = None if valid is None else np.ascontiguousarray(valid).ravel()
    out = np.zeros(r.shape, dtype=np.float64)
    wsum = np.zeros(r.shape, dtype=np.float64)
    bad = ~inside
    # one buffer per temporary, reused by every tap: the same products and sums, in the same order, as
    # ``out += (wr[i] * wc[j]) * z[tap]`` written plainly, without allocating them 16 times
    idx = np.empty(base.shape, dtype=base.dtype)
    v, w, wv = (np.empty(r.shape, dtype=np.float64) for _ in range(3))
    for i in range(n):
        for j in range(n):
            np.add(base, i * width + j, out=idx)
            np.take(z64, idx, out=v, mode="clip")  # every index is inside z: clip checks nothing
            np.multiply(wr[i], wc[j], out=w)
            if ok_flat is not None:
                off = ~np.take(ok_flat, idx, mode="clip")
                np.copyto(w, 0.0, where=off)
                np.copyto(v, 0.0, where=off)
            elif void is not None:
                bad |= v == void
            np.multiply(w, v, out=wv)
            out += wv
            wsum += w
    if valid is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            out = out / wsum
        bad |= ~(wsum > 1e-9)
    out[bad] = np.nan
    return out.astype(np.float32)


def frac_index(inv, x, y):
    """Fractional pixel indices (col, row) of points (x, y) under the inverse geotransform ``inv``;
    0.0 = the centre of pixel 0."""
    return inv.a * x + inv.b * y + inv.c - 0.5, inv.d * x + inv.e * y + inv.f - 0.5
