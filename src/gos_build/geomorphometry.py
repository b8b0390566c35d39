"""Geomorphometry beyond GOS10m's seven parameters: the kinds of ``terrain.extra`` layers.

Every function takes elevation ``z`` (metres, NaN = nodata) on a square projected grid of
``res`` metres, padded by ``halo`` pixels of real neighbours on every side, and returns the
inner ``(H - 2 halo, W - 2 halo)`` part as float64 with NaN for nodata. A value depends on its
own position only -- never on where the array starts -- so tiled == untiled, bit for bit.

============================  ======================================================================
kind                          definition (reference the tests compare with)
============================  ======================================================================
``tri``                       Riley et al. (1999): sqrt(sum of (z_i - z_0)^2) over the 8 neighbours,
                              m -- ``gdaldem TRI`` (its default algorithm since GDAL 3.3, ``-alg Riley``)
``roughness``                 max - min of the 3 x 3 window, m -- ``gdaldem roughness``
``tpi`` (no ``radius_m``)     z_0 - mean of the 8 neighbours, m -- ``gdaldem TPI``
``tpi`` with ``radius_m``     z - mean over the cells whose centres lie within ``radius_m`` of the
                              cell's centre, the cell itself excluded, m -- brute force
``dev`` with ``radius_m``     (z - mean) / std over that disc, the cell included (Wilson & Gallant's
                              DEV); 0 where std = 0 -- brute force
``profile_curvature``         GRASS ``r.slope.aspect`` ``pcurvature`` (Mitasova & Hofierka 1993), 1/m
``tangential_curvature``      GRASS ``r.slope.aspect`` ``tcurvature``, 1/m
``geomorphons``               GRASS ``r.geomorphon -m`` (Jasiewicz & Stepinski 2013, ``comparison=
                              anglev1``): one of ten landform elements per cell, 1..10
============================  ======================================================================

Nodata: the 3 x 3 kinds and the curvatures are nodata where their 3 x 3 stencil touches nodata;
the disc kinds where their disc does; geomorphons only where the cell itself is nodata (as in
GRASS, a nodata cell on a line of sight is passed over, and a direction whose first neighbour
is nodata counts as neither higher nor lower).

Disc sums are exact: elevations are turned into integers of 2^-k m (k chosen from the disc's
cell count so no sum can overflow 64 bits) and summed along rows through prefix sums, which
integer arithmetic makes independent of where the row starts (float prefix sums are not).
Squares are summed the same way in units of 2^-k2 m^2 (at a 2 km radius 2^-17 m^2, 7.6e-6 m^2):
the variance is exact to that quantum, which is also the smallest standard deviation told
from a flat surface.
"""

from __future__ import annotations

import json
import math

import numpy as np

# -- geomorphons: the ten landform elements (GRASS r.geomorphon's FORMS, values 1..10) ------------
GEOMORPHONS = {1: "flat", 2: "peak", 3: "ridge", 4: "shoulder", 5: "spur", 6: "slope", 7: "hollow",
               8: "footslope", 9: "valley", 10: "pit"}
# r.geomorphon's own colours for its forms (write_form_cat_colors), the conventional legend
GEOMORPHON_COLOURS = {1: "#dcdcdc", 2: "#380000", 3: "#c80000", 4: "#ff5014", 5: "#fab4b4", 6: "#fff078",
                      7: "#b4e6fa", 8: "#3c5ab4", 9: "#0000ff", 10: "#000038"}
_FL, _PK, _RI, _SH, _SP, _SL, _HL, _FS, _VL, _PT = range(1, 11)
# the form of a cell from (number of lower directions, number of higher directions), Jasiewicz & Stepinski's
# look-up table as r.geomorphon's determine_form has it; 0 where the counts cannot occur (> 8 together)
_FORMS = np.array([
    [_FL, _FL, _FL, _FS, _FS, _VL, _VL, _VL, _PT],
    [_FL, _FL, _FS, _FS, _FS, _VL, _VL, _VL, 0],
    [_FL, _SH, _SL, _SL, _HL, _HL, _VL, 0, 0],
    [_SH, _SH, _SL, _SL, _SL, _HL, 0, 0, 0],
    [_SH, _SH, _SP, _SL, _SL, 0, 0, 0, 0],
    [_RI, _RI, _SP, _SP, 0, 0, 0, 0, 0],
    [_RI, _RI, _RI, 0, 0, 0, 0, 0, 0],
    [_RI, _RI, 0, 0, 0, 0, 0, 0, 0],
    [_PK, 0, 0, 0, 0, 0, 0, 0, 0],
], dtype=np.uint8)
_DIRECTIONS = ((-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1), (0, 1))  # (row, col) steps

_MAX_ABS_Z = 2.0 ** 14  # m: elevations are within +-16 384 m (the integer sums' range rests on it)
_FLAT_VAR = 1e-8  # m^2: a variance below it is rounding noise of a flat surface (as GOS10m's std)


def _inner(a: np.ndarray, halo: int) -> np.ndarray:
    return a[halo : a.shape[0] - halo, halo : a.shape[1] - halo]


def _neighbours(z: np.ndarray, halo: int) -> list[np.ndarray]:
    """The 8 neighbours of every inner cell, as views (halo >= 1)."""
    h, w = z.shape[0] - 2 * halo, z.shape[1] - 2 * halo
    return [z[halo + dr : halo + dr + h, halo + dc : halo + dc + w]
            for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc]


def _touches_nodata_3x3(z: np.ndarray, halo: int) -> np.ndarray:
    bad = np.isnan(_inner(z, halo))
    for n in _neighbours(z, halo):
        bad |= np.isnan(n)
    return bad


def tri(z: np.ndarray, halo: int) -> np.ndarray:
    """Terrain ruggedness index after Riley et al. (1999), ``gdaldem TRI``'s default (m)."""
    z = z.astype(np.float64)
    c = _inner(z, halo)
    acc = np.zeros_like(c)
    for n in _neighbours(z, halo):
        acc += (n - c) ** 2
    return np.sqrt(acc)


def roughness(z: np.ndarray, halo: int) -> np.ndarray:
    """Largest minus smallest elevation of the 3 x 3 window, ``gdaldem roughness`` (m)."""
    z = z.astype(np.float64)
    c = _inner(z, halo)
    hi, lo = c.copy(), c.copy()
    for n in _neighbours(z, halo):
        np.maximum(hi, n, out=hi)
        np.minimum(lo, n, out=lo)
    return hi - lo


def tpi3(z: np.ndarray, halo: int) -> np.ndarray:
    """Topographic position index: the cell minus the mean of its 8 neighbours, ``gdaldem TPI`` (m)."""
    z = z.astype(np.float64)
    acc = np.zeros((z.shape[0] - 2 * halo, z.shape[1] - 2 * halo))
    for n in _neighbours(z, halo):
        acc += n
    return _inner(z, halo) - acc / 8.0


def curvatures(z: np.ndarray, halo: int, res: float) -> tuple[np.ndarray, np.ndarray]:
    """Profile and tangential curvature (1/m) as GRASS ``r.slope.aspect`` computes ``pcurvature`` and
    ``tcurvature`` (Mitasova & Hofierka 1993): its 3 x 3 first and second derivatives (its signs: x west,
    y south), 0 where the gradient is at most 0.001."""
    z = z.astype(np.float64)
    h, w = z.shape[0] - 2 * halo, z.shape[1] - 2 * halo

    def cell(dr, dc):
        return z[halo + dr : halo + dr + h, halo + dc : halo + dc + w]

    c1, c2, c3 = cell(-1, -1), cell(-1, 0), cell(-1, 1)
    c4, c5, c6 = cell(0, -1), cell(0, 0), cell(0, 1)
    c7, c8, c9 = cell(1, -1), cell(1, 0), cell(1, 1)
    big = res * 8.0  # r.slope.aspect's H and V: the weighted difference's run (zfactor 1, square cells)
    corners = c1 + c3 + c7 + c9
    west, east, north, south = c1 + c7, c3 + c9, c1 + c3, c7 + c9
    dx = (west + 2.0 * c4 - east - 2.0 * c6) / big
    dy = (south + 2.0 * c8 - north - 2.0 * c2) / big
    s4 = corners - 8.0 * c5
    dxx = -(s4 + 4.0 * (c4 + c6) - 2.0 * (c8 + c2)) / ((3.0 / 32.0) * big * big)
    dyy = -(s4 + 4.0 * (c8 + c2) - 2.0 * (c4 + c6)) / ((3.0 / 32.0) * big * big)
    dxy = -(c7 - c9 + c3 - c1) / ((1.0 / 16.0) * big * big)
    dx2, dy2 = dx * dx, dy * dy
    grad2 = dx2 + dy2
    flat = np.sqrt(grad2) <= 0.001
    dxy2 = 2.0 * dxy * dx * dy
    q = grad2 + 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        tcurv = (dxx * dy2 - dxy2 + dyy * dx2) / (grad2 * np.sqrt(q))
        pcurv = (dxx * dx2 + dxy2 + dyy * dy2) / (grad2 * q * np.sqrt(q))
    pcurv[flat] = 0.0
    tcurv[flat] = 0.0
    return pcurv, tcurv


# -- discs ---------------------------------------------------------------------------------------
def disc_rows(radius_m: float, res: float) -> list[tuple[int, int]]:
    """The disc of ``radius_m`` as (row offset, half width in cells) pairs: the cells whose centres lie
    within ``radius_m`` of the centre cell's (a relative tolerance of 1e-9 keeps cells exactly on the
    circle, e.g. the diagonal neighbours at 10 sqrt(2) m)."""
    r = radius_m / res
    reach = int(math.floor(r * (1 + 1e-9)))
    out = []
    for dy in range(-reach, reach + 1):
        half = int(math.floor(math.sqrt(max(r * r * (1 + 2e-9) - dy * dy, 0.0))))
        out.append((dy, half))
    return out


def disc_halo(radius_m: float, res: float) -> int:
    return max(abs(dy) for dy, _ in disc_rows(radius_m, res))


def _disc_sum(q: np.ndarray, rows: list[tuple[int, int]], halo: int) -> np.ndarray:
    """Sum of the int64 array ``q`` over the disc around every inner cell, exact (wrapping integer
    arithmetic: only the final sums must fit in 64 bits)."""
    H, W = q.shape
    h, w = H - 2 * halo, W - 2 * halo
    prefix = np.zeros((H, W + 1), np.int64)
    np.cumsum(q, axis=1, out=prefix[:, 1:])
    out = np.zeros((h, w), np.int64)
    for dy, half in rows:
        r = prefix[halo + dy : halo + dy + h]
        out += r[:, halo + half + 1 : halo + half + 1 + w]
        out -= r[:, halo - half : halo - half + w]
    return out


def disc_stats(z: np.ndarray, halo: int, radius_m: float, res: float, squares: bool):
    """(cell count, sum, sum of squares or None, nodata) over the disc of every inner cell; sums in metres
    (float64 from exact integer sums), ``nodata`` where the disc touches nodata."""
    rows = disc_rows(radius_m, res)
    if max(abs(dy) for dy, _ in rows) > halo:
        raise ValueError(f"halo {halo} is smaller than the disc of {radius_m} m needs")
    n = sum(2 * half + 1 for _, half in rows)
    bits = math.ceil(math.log2(n))
    k1 = 62 - bits - 14  # |z| < 2^14 m
    invalid = np.isnan(z)
    zc = np.clip(np.where(invalid, 0.0, z.astype(np.float64)), -_MAX_ABS_Z, _MAX_ABS_Z)
    total = _disc_sum(np.rint(np.ldexp(zc, k1)).astype(np.int64), rows, halo)
    s1 = np.ldexp(total.astype(np.float64), -k1)
    s2 = None
    if squares:
        k2 = 62 - bits - 28  # z^2 < 2^28 m^2
        s2 = np.ldexp(_disc_sum(np.rint(np.ldexp(zc * zc, k2)).astype(np.int64), rows, halo).astype(np.float64),
                      -k2)
    bad = np.isnan(_inner(z, halo))
    if invalid.any():
        bad |= _disc_sum(invalid.astype(np.int64), rows, halo) > 0
    return n, s1, s2, bad, k1


def tpi_disc(z: np.ndarray, halo: int, radius_m: float, res: float) -> np.ndarray:
    """z minus the mean over the disc of ``radius_m``, the cell itself excluded (m); NaN where the disc
    touches nodata."""
    n, s1, _, bad, k1 = disc_stats(z, halo, radius_m, res, squares=False)
    centre = _inner(z, halo).astype(np.float64)
    # the centre's own quantised value leaves the sum exactly as it entered it
    own = np.ldexp(np.rint(np.ldexp(np.clip(np.nan_to_num(centre), -_MAX_ABS_Z, _MAX_ABS_Z), k1)), -k1)
    out = centre - (s1 - own) / (n - 1)
    out[bad] = np.nan
    return out


def dev_disc(z: np.ndarray, halo: int, radius_m: float, res: float) -> np.ndarray:
    """(z - mean) / std over the disc of ``radius_m``, the cell included (population std); 0 where the std
    is 0 (a variance below 1e-8 m^2 or the squares' quantum); NaN where the disc touches nodata."""
    n, s1, s2, bad, _ = disc_stats(z, halo, radius_m, res, squares=True)
    k2 = 62 - math.ceil(math.log2(n)) - 28
    mean = s1 / n
    var = s2 / n - mean * mean
    flat = var < max(_FLAT_VAR, 2.0 ** -k2)
    std = np.sqrt(np.where(flat, 1.0, var))
    out = np.where(flat, 0.0, (_inner(z, halo).astype(np.float64) - mean) / std)
    out[bad] = np.nan
    return out


# -- geomorphons ---------------------------------------------------------------------------------
def geomorphon_steps(search_m: float, skip_m: float, res: float) -> tuple[int, int]:
    """(first step, halo) of r.geomorphon -m's lines of sight: steps start at skip cells + 1 and go on while
    the distance to the cell's centre is below ``search_m`` (diagonals: sqrt(2) res per step)."""
    first = int(skip_m / res) + 1
    last = first
    while (last + 1) * res < search_m:
        last += 1
    return first, max(last, 1)


def geomorphons(z: np.ndarray, halo: int, res: float, search_m: float, skip_m: float = 0.0,
                flat_deg: float = 1.0) -> np.ndarray:
    """Geomorphons (1..10, float64; NaN where the cell is nodata) as GRASS ``r.geomorphon -m`` with
    ``search=search_m skip=skip_m flat=flat_deg dist=0 comparison=anglev1``.

    Along each of the 8 directions the steps ``skip + 1, skip + 2, ...`` while their distance is below
    ``search_m``: the largest (zenith) and smallest (nadir) elevation angle atan(dz / distance); the
    direction is higher (+) when either angle's magnitude exceeds the flatness threshold and the zenith's
    is the larger, lower (-) when the nadir's is; the counts of lower and higher directions give the form.
    """
    first, need = geomorphon_steps(search_m, skip_m, res)
    if need > halo:
        raise ValueError(f"halo {halo} is smaller than the {need} cells the search of {search_m} m needs")
    z = z.astype(np.float64)
    centre = _inner(z, halo)
    h, w = centre.shape
    flat = math.radians(flat_deg)
    n_plus = np.zeros((h, w), np.uint8)
    n_minus = np.zeros((h, w), np.uint8)
    for dr, dc in _DIRECTIONS:
        step_m = res * math.hypot(dr, dc)
        hi = np.full((h, w), -np.inf)
        lo = np.full((h, w), np.inf)
        j = first
        while j * step_m < search_m:
            if j > halo:
                break
            ahead = z[halo + j * dr : halo + j * dr + h, halo + j * dc : halo + j * dc + w]
            ratio = (ahead - centre) / (j * step_m)
            np.fmax(hi, ratio, out=hi)  # NaN (nodata on the line) is passed over
            np.fmin(lo, ratio, out=lo)
            j += 1
        zenith, nadir = np.abs(np.arctan(hi)), np.abs(np.arctan(lo))
        seen = np.isfinite(z[halo + dr : halo + dr + h, halo + dc : halo + dc + w])  # first neighbour
        steep = seen & ((zenith > flat) | (nadir > flat))
        n_plus += steep & (nadir < zenith)
        n_minus += steep & (nadir > zenith)
    out = _FORMS[n_minus, n_plus].astype(np.float64)
    out[np.isnan(centre)] = np.nan
    return out


# -- the kinds of terrain.extra: their parameters, units, halo and computation ---------------------
# kind -> (units, dtype, description of the layer given its parameters, colour map)
KINDS = {
    "tpi": ("m", "float32", lambda p: (f"topographic position index: z minus the mean over a disc of {p['radius_m']:g} m, "
                                       "centre excluded" if "radius_m" in p else
                                       "topographic position index: z minus the mean of the 8 neighbours (gdaldem TPI)"),
            "RdBu_r"),
    "dev": ("1", "float32", lambda p: f"deviation from mean elevation, (z - mean) / std over a disc of {p['radius_m']:g} m "
                                      "(Wilson & Gallant)", "RdBu_r"),
    "tri": ("m", "float32", lambda p: "terrain ruggedness index, Riley et al. 1999 (gdaldem TRI)", "viridis"),
    "roughness": ("m", "float32", lambda p: "roughness: largest minus smallest elevation of the 3 x 3 window "
                                            "(gdaldem roughness)", "viridis"),
    "profile_curvature": ("1/m", "float32", lambda p: "profile curvature (GRASS r.slope.aspect pcurvature)", "RdBu_r"),
    "tangential_curvature": ("1/m", "float32", lambda p: "tangential curvature (GRASS r.slope.aspect tcurvature)",
                             "RdBu_r"),
    "geomorphons": ("class", "uint8", lambda p: (f"geomorphons, ten landform elements (GRASS r.geomorphon -m, search "
                                                 f"{p['search_m']:g} m, skip {p.get('skip_m', 0):g} m, flat "
                                                 f"{p.get('flat_deg', 1.0):g} deg)"), "geomorphons"),
}
GEOMORPHON_NODATA = 0  # uint8: no class


def extra_layer(name: str, spec: dict, tile_file: str, tile_band: int):
    """The registry entry of one ``terrain.extra`` layer (``spec``: its validated config entry)."""
    from .layout import TERRAIN_NODATA, Layer

    units, dtype, describe, cmap = KINDS[spec["kind"]]
    classes = ()
    nodata = TERRAIN_NODATA
    if spec["kind"] == "geomorphons":
        classes = tuple((v, n, GEOMORPHON_COLOURS[v]) for v, n in GEOMORPHONS.items())
        nodata = GEOMORPHON_NODATA
    params = json.dumps(dict(sorted(spec.items())), sort_keys=True)
    return Layer(name, (name,), dtype, units, nodata, tile_file, tile_band, describe(spec), (cmap, None), classes,
                 params)


def halo_px(spec: dict, res: float) -> int:
    """Pixels of real neighbours every side a kind needs."""
    kind = spec["kind"]
    if kind in ("tpi", "dev") and "radius_m" in spec:
        return disc_halo(spec["radius_m"], res)
    if kind == "geomorphons":
        return geomorphon_steps(spec["search_m"], spec.get("skip_m", 0.0), res)[1]
    return 1


def reach_m(extra: dict, res: float) -> float:
    """How far (m) past a window the extra layers ``extra`` read the DEM: the largest halo, in metres."""
    return max([halo_px(spec, res) * res for spec in extra.values()] + [0.0])


def compute_many(specs: dict, z: np.ndarray, halo: int, res: float) -> dict[str, np.ndarray]:
    """Several extra layers (name -> spec) for the inner part of ``z`` (float, NaN nodata, padded by ``halo`` >=
    each :func:`halo_px`): float64 with NaN for nodata; the 3 x 3 kinds are nodata where their stencil touches
    nodata. The two curvatures, which come from the same derivatives, are computed once."""
    out: dict[str, np.ndarray] = {}
    framed = z[halo - 1 : z.shape[0] - halo + 1, halo - 1 : z.shape[1] - halo + 1]  # the 3 x 3 kinds' frame
    bad = pair = None
    for name, spec in specs.items():
        kind = spec["kind"]
        if kind == "geomorphons":
            out[name] = geomorphons(z, halo, res, spec["search_m"], spec.get("skip_m", 0.0), spec.get("flat_deg", 1.0))
            continue
        if kind == "tpi" and "radius_m" in spec:
            out[name] = tpi_disc(z, halo, spec["radius_m"], res)
            continue
        if kind == "dev":
            out[name] = dev_disc(z, halo, spec["radius_m"], res)
            continue
        if bad is None:
            bad = _touches_nodata_3x3(framed, 1)
        if kind in ("profile_curvature", "tangential_curvature"):
            if pair is None:
                pair = curvatures(framed, 1, res)
                for a in pair:
                    a[bad] = np.nan
            out[name] = pair[0] if kind == "profile_curvature" else pair[1]
            continue
        a = {"tri": tri, "roughness": roughness, "tpi": tpi3}[kind](framed, 1)
        a[bad] = np.nan
        out[name] = a
    return out


def compute(spec: dict, z: np.ndarray, halo: int, res: float) -> np.ndarray:
    """One extra layer: :func:`compute_many` of ``spec`` alone."""
    return compute_many({"layer": spec}, z, halo, res)["layer"]


# which parameters each kind takes: (required, optional)
_PARAMS = {"tpi": ((), ("radius_m",)), "dev": (("radius_m",), ()), "tri": ((), ()), "roughness": ((), ()),
           "profile_curvature": ((), ()), "tangential_curvature": ((), ()),
           "geomorphons": (("search_m",), ("skip_m", "flat_deg"))}
# other layers' and files' names, and the Parquet form's columns
RESERVED_NAMES = ("s2", "valid", "labels", "observations", "terrain", "packed", "parquet", "stac", "label", "class_id",
                  "class_name", "chip_id", "split", "fold", "x", "y", "crs", "lon", "lat", "purity", "boundary_m",
                  "thumbnail")


def extra_problems(extra: dict, resolution: float, taken: tuple[str, ...]) -> list[str]:
    """What is wrong with ``terrain.extra`` beyond its schema (one line each, naming the key): a name that
    clashes with another layer (``taken``) or a reserved one, parameters the kind does not take or lacks, a
    radius below one cell."""
    from .layout import is_period  # layout's registry imports this module

    out = []
    for name, spec in extra.items():
        key = f"terrain.extra.{name}"
        if name in taken or name in RESERVED_NAMES or is_period(name):
            out.append(f"config key '{key}': the name '{name}' is taken by another layer or file "
                       f"({', '.join(taken)}, s2, s2_<period>, ...); choose another")
        if not isinstance(spec, dict) or spec.get("kind") not in _PARAMS:
            continue  # the schema says what is wrong
        required, optional = _PARAMS[spec["kind"]]
        for p in required:
            if p not in spec:
                out.append(f"config key '{key}.{p}': missing (kind {spec['kind']} needs it)")
        for p in spec:
            if p != "kind" and p not in required + optional:
                takes = ", ".join(required + optional) or "no parameter"
                out.append(f"config key '{key}.{p}': kind {spec['kind']} takes {takes}")
        for p in ("radius_m", "search_m"):
            v = spec.get(p)
            if isinstance(v, (int, float)) and 0 < v < resolution:
                out.append(f"config key '{key}.{p}': {v:g} m is below one cell ({resolution:g} m)")
        if spec["kind"] == "geomorphons" and isinstance(spec.get("search_m"), (int, float)) \
                and isinstance(spec.get("skip_m"), (int, float)) and spec["skip_m"] >= spec["search_m"]:
            out.append(f"config key '{key}.skip_m': must be below search_m ({spec['search_m']:g} m)")
    return out


def scale_problems(extra: dict, width_m: float, height_m: float) -> list[str]:
    """A radius (or search) larger than the AOI: one line each, with the AOI's size."""
    out = []
    for name, spec in extra.items():
        for p in ("radius_m", "search_m"):
            v = spec.get(p)
            if v is not None and v > max(width_m, height_m):
                out.append(f"config key 'terrain.extra.{name}.{p}': {v:g} m is larger than the AOI "
                           f"({width_m / 1000:.2f} x {height_m / 1000:.2f} km)")
    return out
