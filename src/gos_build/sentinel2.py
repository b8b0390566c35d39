"""Sentinel-2 products -> cloud-masked, radiometrically correct RGB on the grid, per tile.

Inputs (``inputs.sentinel2`` globs):

* L2A or L1C products as ``.SAFE`` folders or ``.SAFE.zip`` files, read in
  place (``/vsizip/``, never unpacked; a zip entry whose path leaves the
  product folder is refused);
* plain band GeoTIFFs/COGs (``*B04*.tif``, ``*B03*.tif``, ``*B02*.tif`` and
  optionally ``*SCL*.tif`` in one folder = one product); their radiometry
  comes from the files' scale/offset metadata, else reflectance = DN / 10000.

Radiometry: reflectance = (DN + offset) / quantification, both from the
product metadata (``BOA_ADD_OFFSET``/``BOA_QUANTIFICATION_VALUE`` for L2A,
``RADIO_ADD_OFFSET``/``QUANTIFICATION_VALUE`` for L1C; processing baselines
from 04.00 on must carry offsets). DN 0 is nodata.

Validity: L2A pixels whose scene classification (SCL, 20 m, taken by nearest
neighbour) is in ``invalid_scl`` (0 no data, 1 saturated, 3 cloud shadow,
8/9 cloud, 10 cirrus; 11 snow by config) are invalid; L1C and GeoTIFF bands
without SCL know nodata only.

Compositing: products are taken least cloudy first; for each grid pixel the
first product with a *valid* pixel wins, else the first with data (the pixel
then stays marked invalid). Reflectance is interpolated bilinearly from the
2 x 2 source pixels around the point, renormalised over the usable ones
(valid ones for a valid pixel), so neither nodata zeros nor masked pixels
bleed into a value; the mask itself is nearest-neighbour. Each grid pixel
depends only on its own position: tiles equal an untiled run.

Outputs per tile: ``rgb.tif`` (3 bands R G B = B04 B03 B02, uint16
reflectance x 10000, nodata 0) and ``valid.tif`` (uint8, 1 = valid).
"""

from __future__ import annotations

import glob
import json
import logging
import math
import os
import re
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import rasterio
import shapely
from pyproj import Transformer
from rasterio.errors import RasterioIOError
from rasterio.windows import Window
from shapely.geometry import box

from .errors import GosBuildError
from .grid import Grid
from .resample import nearest_indices, resample_points

log = logging.getLogger(__name__)

RGB = ("B04", "B03", "B02")
INVALID_SCL = (0, 1, 3, 8, 9, 10)
BAND_IDS = {"B01": 0, "B02": 1, "B03": 2, "B04": 3, "B05": 4, "B06": 5, "B07": 6, "B08": 7, "B8A": 8,
            "B09": 9, "B10": 10, "B11": 11, "B12": 12}


@dataclass
class Granule:
    """One granule (MGRS tile) of a product: GDAL paths of its bands, CRS, bounds."""

    name: str
    bands: dict[str, str]
    scl: str | None
    crs: str
    bounds: tuple[float, float, float, float]


@dataclass
class Product:
    """One Sentinel-2 product (or folder of band GeoTIFFs) and its radiometry."""

    name: str
    source: str
    level: str  # L2A, L1C or GeoTIFF
    baseline: str | None
    cloud_percent: float | None
    quantification: float
    offsets: dict[str, float]
    granules: list[Granule] = field(default_factory=list)


# -- discovery -------------------------------------------------------------------
def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse_mtd(text: bytes, where: str) -> dict:
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise GosBuildError(f"{where}: not valid XML ({exc})") from None
    out = {"image_files": [], "offsets": {}, "baseline": None, "quant": None, "cloud": None, "level": None}
    for el in root.iter():
        tag, txt = _local(el.tag), (el.text or "").strip()
        if tag == "IMAGE_FILE":
            out["image_files"].append(txt)
        elif tag == "PROCESSING_BASELINE":
            out["baseline"] = txt
        elif tag in ("BOA_QUANTIFICATION_VALUE", "QUANTIFICATION_VALUE"):
            out["quant"] = float(txt)
        elif tag in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET"):
            out["offsets"][int(el.get("band_id"))] = float(txt)
        elif tag == "Cloud_Coverage_Assessment":
            out["cloud"] = float(txt)
        elif tag == "PROCESSING_LEVEL":
            out["level"] = "L2A" if "2A" in txt else "L1C" if "1C" in txt else txt
    return out


def _safe_product(name: str, mtd: bytes, exists, root: str, where: str) -> Product:
    """A Product from a SAFE's main metadata; ``exists(rel)`` tells whether a file is in the product."""
    meta = _parse_mtd(mtd, where)
    level = meta["level"] or ("L2A" if "MSIL2A" in where else "L1C")
    if meta["quant"] is None:
        raise GosBuildError(f"{where}: no quantification value in the metadata")
    baseline = meta["baseline"]
    offsets = {}
    for band in RGB:
        bid = BAND_IDS[band]
        if bid in meta["offsets"]:
            offsets[band] = meta["offsets"][bid]
        elif baseline and baseline >= "04.00":
            key = "BOA_ADD_OFFSET" if level == "L2A" else "RADIO_ADD_OFFSET"
            raise GosBuildError(f"{where}: processing baseline {baseline} but no {key} for band {band} "
                                "(from baseline 04.00 on the offset is part of the radiometry)")
        else:
            offsets[band] = 0.0
    by_granule: dict[str, dict] = {}
    for rel in meta["image_files"]:
        parts = rel.split("/")
        if len(parts) < 2 or parts[0] != "GRANULE":
            continue
        g = by_granule.setdefault(parts[1], {})
        for band in RGB:
            if rel.endswith((f"_{band}_10m", f"_{band}")):
                g[band] = rel
        if rel.endswith("_SCL_20m"):
            g["SCL"] = rel
    if not by_granule:
        raise GosBuildError(f"{where}: the metadata lists no granule image")
    granules = []
    for gname, files in sorted(by_granule.items()):
        for band in RGB:
            if band not in files:
                raise GosBuildError(f"{where}: granule {gname} has no band {band} at 10 m")
        paths = {}
        for key, rel in files.items():
            if not exists(rel + ".jp2"):
                raise GosBuildError(f"{name}: {rel}.jp2 is missing from the product")
            paths[key] = f"{root}/{rel}.jp2"
        if level == "L2A" and "SCL" not in paths:
            raise GosBuildError(f"{where}: L2A granule {gname} has no SCL (scene classification) at 20 m")
        crs, bounds = _georef(paths["B04"], name)
        granules.append(Granule(gname, {b: paths[b] for b in RGB}, paths.get("SCL"), crs, bounds))
    return Product(name, root, level, baseline, meta["cloud"], meta["quant"], offsets, granules)


def _georef(path: str, product: str) -> tuple[str, tuple]:
    try:
        with rasterio.open(path) as ds:
            if ds.crs is None:
                raise GosBuildError(f"{product}: {path.rsplit('/', 1)[-1]} has no georeferencing")
            return ds.crs.to_string(), tuple(ds.bounds)
    except RasterioIOError as exc:
        raise GosBuildError(f"{product}: {path.rsplit('/', 1)[-1]} is not a readable JPEG 2000 ({exc})") from None


def _from_folder(path: str) -> Product:
    for mtd in ("MTD_MSIL2A.xml", "MTD_MSIL1C.xml"):
        p = os.path.join(path, mtd)
        if os.path.exists(p):
            with open(p, "rb") as f:
                text = f.read()
            return _safe_product(os.path.basename(path.rstrip("/")), text,
                                 lambda rel: os.path.exists(os.path.join(path, rel)), path.rstrip("/"), p)
    raise GosBuildError(f"inputs.sentinel2: {path}: no MTD_MSIL2A.xml or MTD_MSIL1C.xml in the folder")


def _from_zip(path: str) -> Product:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise GosBuildError(f"inputs.sentinel2: {path}: not a readable zip file ({exc})") from None
    with zf:
        names = zf.namelist()
        for n in names:
            parts = n.replace("\\", "/").split("/")
            if n.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", n):
                raise GosBuildError(f"inputs.sentinel2: {path}: zip entry '{n}' points outside the product folder; "
                                    "refusing the file")
        mtds = [n for n in names if re.fullmatch(r"[^/]+\.SAFE/MTD_MSIL(2A|1C)\.xml", n)]
        if len(mtds) != 1:
            raise GosBuildError(f"inputs.sentinel2: {path}: expected one <product>.SAFE/MTD_MSIL2A.xml "
                                f"(or MTD_MSIL1C.xml) inside, found {len(mtds)}")
        text = zf.read(mtds[0])
    safe = mtds[0].split("/")[0]
    members = set(names)
    root = f"/vsizip/{os.path.abspath(path)}/{safe}"
    return _safe_product(safe, text, lambda rel: f"{safe}/{rel}" in members, root, f"{path}:{mtds[0]}")


def _from_geotiffs(folder: str, files: list[str]) -> Product:
    bands: dict[str, str] = {}
    for f in files:
        m = re.search(r"(?<![A-Za-z0-9])(B0[2-4]|SCL)(?![0-9])", os.path.basename(f), re.IGNORECASE)
        if m:
            bands[m.group(1).upper()] = f
    missing = [b for b in RGB if b not in bands]
    if missing:
        raise GosBuildError(f"inputs.sentinel2: {folder}: band GeoTIFFs for {', '.join(missing)} are missing")
    with rasterio.open(bands["B04"]) as ds:
        scale, offset = ds.scales[0], ds.offsets[0]
    quant, off = (1.0 / scale, offset / scale) if scale not in (None, 1.0) else (10000.0, 0.0)
    crs, bounds = _georef(bands["B04"], folder)
    name = os.path.basename(folder.rstrip("/")) or folder
    granule = Granule(name, {b: bands[b] for b in RGB}, bands.get("SCL"), crs, bounds)
    return Product(name, folder, "GeoTIFF", None, None, quant, {b: off for b in RGB}, [granule])


def discover(patterns) -> list[Product]:
    """Products matched by the config globs, least cloudy first (then by name)."""
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    products, tif_groups = [], {}
    for pattern in patterns:
        hits = sorted(glob.glob(pattern))
        if not hits:
            raise GosBuildError(f"inputs.sentinel2: '{pattern}' matches no file")
        for hit in hits:
            if os.path.isdir(hit):
                products.append(_from_folder(hit))
            elif hit.lower().endswith(".zip"):
                products.append(_from_zip(hit))
            elif hit.lower().endswith((".tif", ".tiff")):
                tif_groups.setdefault(os.path.dirname(hit), []).append(hit)
            else:
                raise GosBuildError(f"inputs.sentinel2: {hit}: not a .SAFE folder, .zip or GeoTIFF")
    for folder, files in sorted(tif_groups.items()):
        products.append(_from_geotiffs(folder, files))
    names = [p.name for p in products]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise GosBuildError(f"inputs.sentinel2: product {sorted(dup)[0]} is given twice")
    return sorted(products, key=lambda p: (p.cloud_percent if p.cloud_percent is not None else 100.0, p.name))


# -- inventory (once per AOI) -----------------------------------------------------------
def inventory(patterns, grid: Grid, out_json: str | Path, invalid_scl=INVALID_SCL) -> dict:
    """Discover, check coverage and validity over the AOI, write the inventory the tile jobs read."""
    from .io import atomic_write_text

    products = discover(patterns)
    aoi = grid.aoi
    foot = []
    for p in products:
        for g in p.granules:
            to_grid = Transformer.from_crs(g.crs, grid.crs, always_xy=True)
            poly = shapely.segmentize(box(*g.bounds), max((g.bounds[2] - g.bounds[0]) / 16, 1.0))
            foot.append(shapely.transform(poly, lambda xy, t=to_grid: np.column_stack(t.transform(xy[:, 0], xy[:, 1]))))
    covered = aoi.intersection(shapely.union_all(foot)).area / aoi.area
    if covered < 0.9999:
        raise GosBuildError(f"inputs.sentinel2: the products cover {100 * covered:.1f} % of the AOI "
                            f"({', '.join(p.name for p in products)})")
    valid = _valid_fraction(products, grid, invalid_scl)
    if valid == 0.0:
        raise GosBuildError(f"inputs.sentinel2: no valid pixel over the AOI: every pixel is cloud, shadow, "
                            f"cirrus or nodata in {', '.join(p.name for p in products)}")
    doc = {"invalid_scl": list(invalid_scl), "aoi_covered": covered, "aoi_valid_estimate": valid,
           "products": [asdict(p) for p in products]}
    atomic_write_text(out_json, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    for p in products:
        log.info("sentinel2: %s (%s, baseline %s, cloud %s %%, quantification %g, offsets %s, %d granule(s))",
                 p.name, p.level, p.baseline, p.cloud_percent, p.quantification, p.offsets, len(p.granules))
    log.info("sentinel2: products cover %.2f %% of the AOI; about %.1f %% of it is valid", 100 * covered, 100 * valid)
    return doc


def _valid_fraction(products: list[Product], grid: Grid, invalid_scl) -> float:
    """Share of the AOI with a valid pixel in some product, from a coarse (~ 200 m) sample."""
    step = 20
    rows = np.arange(step // 2, grid.height, step)
    cols = np.arange(step // 2, grid.width, step)
    cc, rr = np.meshgrid(cols, rows)
    x = grid.x_min + (cc + 0.5) * grid.resolution
    y = grid.y_max - (rr + 0.5) * grid.resolution
    inside = shapely.contains_xy(grid.aoi, x, y)
    if not inside.any():
        return 1.0
    x, y = x[inside], y[inside]
    ok = np.zeros(x.shape, dtype=bool)
    for p in products:
        for g in p.granules:
            gx, gy = Transformer.from_crs(grid.crs, g.crs, always_xy=True).transform(x, y)
            src = g.scl if g.scl else g.bands["B04"]
            with rasterio.open(src) as ds:
                vals = np.array([v[0] for v in ds.sample(zip(gx, gy), masked=False)])
                r, c = rasterio.transform.rowcol(ds.transform, gx, gy)
                r, c = np.asarray(r), np.asarray(c)
                within = (r >= 0) & (c >= 0) & (r < ds.height) & (c < ds.width)
            good = within & (~np.isin(vals, invalid_scl) if g.scl else vals != 0)
            ok |= good
    return float(ok.mean())


def load_inventory(path: str | Path) -> tuple[list[Product], tuple[int, ...]]:
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    products = []
    for p in doc["products"]:
        grans = [Granule(g["name"], g["bands"], g["scl"], g["crs"], tuple(g["bounds"])) for g in p.pop("granules")]
        products.append(Product(**p, granules=grans))
    return products, tuple(doc["invalid_scl"])


# -- one tile ----------------------------------------------------------------------------
def composite_window(products: list[Product], grid: Grid, window: Window, invalid_scl=INVALID_SCL):
    """(reflectance float32 (3, h, w) NaN = nodata, valid bool (h, w)) on a grid window."""
    h, w = int(window.height), int(window.width)
    rows, cols = np.mgrid[0:h, 0:w]
    x = grid.x_min + (window.col_off + cols + 0.5) * grid.resolution
    y = grid.y_max - (window.row_off + rows + 0.5) * grid.resolution
    refl = np.full((3, h, w), np.nan, dtype=np.float32)
    have = np.zeros((h, w), dtype=bool)
    valid = np.zeros((h, w), dtype=bool)
    for p in products:
        for g in p.granules:
            if g.crs == grid.crs:
                gx, gy = x, y
            else:
                gx, gy = Transformer.from_crs(grid.crs, g.crs, always_xy=True).transform(x, y)
            if not box(*g.bounds).intersects(box(gx.min(), gy.min(), gx.max(), gy.max())):
                continue
            got = _granule_values(p, g, gx, gy, invalid_scl)
            if got is None:
                continue
            vals, nn_data, nn_valid = got
            take = (nn_data & ~have) | (nn_valid & ~valid)
            refl[:, take] = vals[:, take]
            have |= nn_data
            valid |= nn_valid
            if valid.all():
                return refl, valid
    return refl, valid


def _granule_values(p: Product, g: Granule, gx, gy, invalid_scl):
    """Reflectance (3, h, w), has-data and valid masks (nearest) of one granule at points (gx, gy)."""
    with rasterio.open(g.bands["B04"]) as ds:
        inv = ~ds.transform
        fc = inv.a * gx + inv.b * gy + inv.c - 0.5
        fr = inv.d * gx + inv.e * gy + inv.f - 0.5
        c0, r0 = int(math.floor(fc.min())) - 2, int(math.floor(fr.min())) - 2
        c1, r1 = int(math.ceil(fc.max())) + 3, int(math.ceil(fr.max())) + 3
        if c1 <= 0 or r1 <= 0 or c0 >= ds.width or r0 >= ds.height:
            return None
        win = Window(c0, r0, c1 - c0, r1 - r0)
        src_transform = ds.window_transform(win)
    dn = np.stack([_read(g.bands[b], win, p.name) for b in RGB])
    data = np.all(dn != 0, axis=0)
    usable = data
    if g.scl:
        with rasterio.open(g.scl) as ds:
            # SCL (20 m) at each 10 m source pixel centre, nearest neighbour
            sr, sc = np.mgrid[0 : win.height, 0 : win.width]
            sx = src_transform.c + (sc + 0.5) * src_transform.a
            sy = src_transform.f + (sr + 0.5) * src_transform.e
            sinv = ~ds.transform
            fsc, fsr = sinv.a * sx + sinv.c - 0.5, sinv.e * sy + sinv.f - 0.5
            q0, p0 = int(math.floor(fsc.min())) - 1, int(math.floor(fsr.min())) - 1
            q1, p1 = int(math.ceil(fsc.max())) + 2, int(math.ceil(fsr.max())) + 2
            scl = _read(g.scl, Window(q0, p0, q1 - q0, p1 - p0), p.name, ds=ds)
        ri, ci, inside = nearest_indices(fsr - p0, fsc - q0, scl.shape)
        scl10 = np.where(inside, scl[ri, ci], 0)
        usable = data & ~np.isin(scl10, invalid_scl)
    r, c = fr - r0, fc - c0
    ri, ci, inside = nearest_indices(r, c, data.shape)
    nn_data = inside & data[ri, ci]
    nn_valid = inside & usable[ri, ci]
    vals = np.empty((3,) + gx.shape, dtype=np.float32)
    for i, band in enumerate(RGB):
        z = (dn[i].astype(np.float64) + p.offsets[band]) / p.quantification
        v_valid = resample_points(z, r, c, "bilinear", valid=usable)
        v_data = resample_points(z, r, c, "bilinear", valid=data)
        vals[i] = np.where(nn_valid, v_valid, v_data)
    return vals, nn_data, nn_valid


def _read(path: str, win: Window, product: str, ds=None) -> np.ndarray:
    try:
        if ds is not None:
            return ds.read(1, window=win, boundless=True, fill_value=0)
        with rasterio.open(path) as src:
            return src.read(1, window=win, boundless=True, fill_value=0)
    except RasterioIOError as exc:
        raise GosBuildError(f"{product}: {path.rsplit('/', 1)[-1]}: cannot be read ({exc})") from None


def s2_tile(inventory_json: str | Path, grid: Grid, tile_id: str, out_rgb: str | Path, out_valid: str | Path) -> dict:
    """Write one tile's ``rgb`` (uint16 x 10000, nodata 0) and ``valid`` (uint8) GeoTIFFs."""
    from .io import write_geotiff

    products, invalid_scl = load_inventory(inventory_json)
    tile = grid.tile(tile_id)
    refl = np.empty((3, tile.height, tile.width), dtype=np.float32)
    valid = np.empty((tile.height, tile.width), dtype=bool)
    # 256 rows at a time keeps memory bounded; each pixel depends on its own position only
    for r0 in range(0, tile.height, 256):
        n = min(256, tile.height - r0)
        win = Window(tile.col_off, tile.row_off + r0, tile.width, n)
        refl[:, r0 : r0 + n], valid[r0 : r0 + n] = composite_window(products, grid, win, invalid_scl)
    have = ~np.isnan(refl).any(axis=0)
    rgb = np.where(have, np.clip(np.round(np.nan_to_num(refl) * 10000.0), 1, 65535), 0).astype(np.uint16)
    mask = (valid & have).astype(np.uint8)
    transform = grid.window_transform(tile.window)
    write_geotiff(out_rgb, rgb, grid.crs, transform, 0,
                  [f"{name} ({band}) reflectance x 10000" for band, name in zip(RGB, ("red", "green", "blue"))])
    write_geotiff(out_valid, mask, grid.crs, transform, None, ["valid (1) / cloud, shadow, cirrus or nodata (0)"])
    stats = {"pixels": int(mask.size), "nodata": int((~have).sum()), "invalid": int((have & ~valid).sum())}
    log.info("sentinel2 tile %s: %d px, %d nodata, %d invalid (cloud/shadow/cirrus)", tile_id, stats["pixels"],
             stats["nodata"], stats["invalid"])
    return stats


def visual_preview(grid: Grid, rgb_tiles: dict[str, str | Path], out: str | Path, max_size: int = 4096) -> None:
    """8-bit RGB preview of the whole AOI (2-98 % stretch over valid data) as a COG, decimated to max_size."""
    from rasterio.enums import Resampling
    from rasterio.shutil import copy as rio_copy

    from .io import atomic_path

    factor = max(1, math.ceil(max(grid.width, grid.height) / max_size))
    W, H = math.ceil(grid.width / factor), math.ceil(grid.height / factor)
    img = np.zeros((3, H, W), dtype=np.uint16)
    for t in grid.tiles():
        oh, ow = math.ceil(t.height / factor), math.ceil(t.width / factor)
        with rasterio.open(rgb_tiles[t.id]) as ds:
            part = ds.read(out_shape=(3, oh, ow), resampling=Resampling.nearest)
        r0, c0 = t.row_off // factor, t.col_off // factor
        img[:, r0 : r0 + oh, c0 : c0 + ow] = part[:, : H - r0, : W - c0]
    data = img[0] > 0
    out8 = np.zeros((3, H, W), dtype=np.uint8)
    for b in range(3):
        if data.any():
            lo, hi = np.percentile(img[b][data], [2, 98])
            scaled = (img[b].astype(np.float64) - lo) / max(hi - lo, 1.0)
            out8[b] = np.where(data, np.clip(np.round(1 + 254 * scaled), 1, 255), 0)
    transform = grid.transform @ rasterio.Affine.scale(factor)
    with atomic_path(out) as tmp:
        mem = Path(str(tmp) + ".src.tif")
        try:
            with rasterio.open(mem, "w", driver="GTiff", width=W, height=H, count=3, dtype="uint8", crs=grid.crs,
                               transform=transform, nodata=0, photometric="RGB") as dst:
                dst.write(out8)
            rio_copy(mem, tmp, driver="COG", compress="deflate", overview_resampling="average")
        finally:
            mem.unlink(missing_ok=True)
    log.info("sentinel2: visual preview %d x %d px (1:%d) -> %s", W, H, factor, out)
