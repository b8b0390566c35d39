"""Sentinel-2 inputs: SAFE products (folder or zip), EOPF Zarr products and band GeoTIFFs -> the ``sentinel2``
manifest.

* L2A or L1C products as ``.SAFE`` folders or ``.SAFE.zip`` files, read in
  place (``/vsizip/``, never unpacked; a zip entry whose path leaves the
  product folder is refused);
* EOPF Zarr products (Zarr format 2 or 3) as ``.zarr`` folders or ``.zarr.zip``
  files (:mod:`.eopf`: radiometry, fill value, CRS and pixel-centre coordinates
  from the product's own attributes);
* plain band GeoTIFFs/COGs (``*B04*.tif``, ``*B03*.tif``, ``*B02*.tif`` and
  optionally ``*SCL*.tif`` in one folder = one product); their radiometry
  comes from the files' scale/offset metadata, else reflectance = DN / 10000.

Radiometry: reflectance = (DN + offset) / quantification, both from the
product metadata (``BOA_ADD_OFFSET``/``BOA_QUANTIFICATION_VALUE`` for L2A,
``RADIO_ADD_OFFSET``/``QUANTIFICATION_VALUE`` for L1C; processing baselines
from 04.00 on must carry offsets). DN 0 is nodata.

The manifest lists the products least cloudy first, with their granules (GDAL
paths of B04 B03 B02 and SCL, CRS, bounds), radiometry and sizes; the share of
the AOI they cover (must be all of it) and an estimate of the share that is
valid (must not be zero), with the SCL classes counted as invalid.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import zipfile
from dataclasses import asdict, dataclass, field
from xml.etree import ElementTree

import numpy as np
import rasterio
from rasterio.windows import Window
import shapely
from rasterio.errors import RasterioIOError

from ..bands import BANDS, L1C_ONLY, RGB_BANDS, band_ids, needed_bands
from ..config import period_bounds
from ..errors import GosBuildError
from ..grid import Grid
from . import expand, file_facts
from . import eopf
from .eopf import is_eopf, open_raster

log = logging.getLogger(__name__)

INVALID_SCL = (0, 1, 3, 8, 9, 10)
BAND_IDS = band_ids()


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
    format: str | None = None  # FORMATS
    processor_version: str | None = None  # EOPF products: stac_discovery processing:version
    datetime: str | None = None  # sensing start, ISO 8601 UTC


FORMATS = ("SAFE", "EOPF Zarr v2", "EOPF Zarr v3", "COG", "GeoTIFF")


# -- discovery -------------------------------------------------------------------
def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse_mtd(text: bytes, where: str) -> dict:
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise GosBuildError(f"{where}: not valid XML ({exc})") from None
    out = {"image_files": [], "offsets": {}, "baseline": None, "quant": None, "cloud": None, "level": None,
           "start": None}
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
        elif tag == "PRODUCT_START_TIME":
            out["start"] = txt
        elif tag == "PROCESSING_LEVEL":
            out["level"] = "L2A" if "2A" in txt else "L1C" if "1C" in txt else txt
    return out


def _missing_band(product: str, band: str, level: str, have) -> GosBuildError:
    """The one line for a band of ``sentinel2.bands`` a product lacks."""
    why = " (the cirrus band is in L1C products only)" if band in L1C_ONLY and level != "L1C" else ""
    return GosBuildError(f"inputs.sentinel2: {product}: no band {band}{why}, which sentinel2.bands asks for "
                         f"(the product has {', '.join(sorted(have)) or 'none'})")


_IMAGE_BAND_RE = re.compile(r"_(B0[1-9]|B1[0-2]|B8A)(?:_(10|20|60)m)?$")  # a SAFE's IMAGE_FILE of a band


def _safe_product(name: str, mtd: bytes, exists, root: str, where: str, bands=RGB_BANDS) -> Product:
    """A Product from a SAFE's main metadata; ``exists(rel)`` tells whether a file is in the product. ``bands``:
    those to read (the rgb layer's first), each from its finest resolution in the product (L2A's ``R10m``,
    ``R20m``, ``R60m``; L1C's one ``IMG_DATA``)."""
    meta = _parse_mtd(mtd, where)
    level = meta["level"] or ("L2A" if "MSIL2A" in where else "L1C")
    if meta["quant"] is None:
        raise GosBuildError(f"{where}: no quantification value in the metadata")
    baseline = meta["baseline"]
    offsets = {}
    for band in bands:
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
        hit = _IMAGE_BAND_RE.search(rel)  # ..._B05_20m (L2A), ..._B05 (L1C: the band's own resolution, 0 here)
        if hit and hit[1] in bands:
            band, res = hit[1], int(hit[2] or 0)
            if (band not in RGB_BANDS or res <= 10) and (band not in g or res < g[band][1]):  # rgb: 10 m; finest
                g[band] = (rel, res)
        if rel.endswith("_SCL_20m"):
            g["SCL"] = (rel, 0)
    if not by_granule:
        raise GosBuildError(f"{where}: the metadata lists no granule image")
    granules = []
    for gname, found in sorted(by_granule.items()):
        files = {k: rel for k, (rel, _) in found.items()}
        for band in RGB_BANDS:
            if band not in files:
                raise GosBuildError(f"{where}: granule {gname} has no band {band} at 10 m")
        for band in bands:
            if band not in files:
                raise _missing_band(name, band, level, [b for b in files if b != "SCL"])
        paths = {}
        for key, rel in files.items():
            if not exists(rel + ".jp2"):
                raise GosBuildError(f"{name}: {rel}.jp2 is missing from the product")
            paths[key] = f"{root}/{rel}.jp2"
        if level == "L2A" and "SCL" not in paths:
            raise GosBuildError(f"{where}: L2A granule {gname} has no SCL (scene classification) at 20 m")
        crs, bounds = _georef(paths["B04"], name)
        granules.append(Granule(gname, {b: paths[b] for b in bands}, paths.get("SCL"), crs, bounds))
    return Product(name, root, level, baseline, meta["cloud"], meta["quant"], offsets, granules, format="SAFE",
                   datetime=meta["start"])


def _georef(path: str, product: str) -> tuple[str, tuple]:
    try:
        with open_raster(path) as ds:
            if ds.crs is None:
                raise GosBuildError(f"{product}: {path.rsplit('/', 1)[-1]} has no georeferencing")
            return ds.crs.to_string(), tuple(ds.bounds)
    except RasterioIOError as exc:
        raise GosBuildError(f"{product}: {path.rsplit('/', 1)[-1]} is not a readable JPEG 2000 ({exc})") from None


def _from_folder(path: str, bands=RGB_BANDS) -> Product:
    for mtd in ("MTD_MSIL2A.xml", "MTD_MSIL1C.xml"):
        p = os.path.join(path, mtd)
        if os.path.exists(p):
            with open(p, "rb") as f:
                text = f.read()
            return _safe_product(os.path.basename(path.rstrip("/")), text,
                                 lambda rel: os.path.exists(os.path.join(path, rel)), path.rstrip("/"), p, bands)
    # not a SAFE: a folder of band GeoTIFFs is one product (docs/pipeline.md: "in one folder = one product")
    tifs = sorted(f for f in glob.glob(os.path.join(glob.escape(path), "*"))
                  if f.lower().endswith((".tif", ".tiff")) and os.path.isfile(f))
    if tifs:
        return _from_geotiffs(path, tifs, bands)
    raise GosBuildError(f"inputs.sentinel2: {path}: neither a SAFE product (no MTD_MSIL2A.xml or MTD_MSIL1C.xml) "
                        "nor a folder of band GeoTIFFs (*B04*.tif, *B03*.tif, *B02*.tif)")


def _from_zip(path: str, bands=RGB_BANDS) -> Product:
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
    return _safe_product(safe, text, lambda rel: f"{safe}/{rel}" in members, root, f"{path}:{mtds[0]}", bands)


_BAND_FILE_RE = re.compile(r"(?<![A-Za-z0-9])(B0[1-9]|B1[0-2]|B8A|SCL)(?![0-9A-Za-z])", re.IGNORECASE)


def _from_geotiffs(folder: str, files: list[str], wanted=RGB_BANDS) -> Product:
    """One product of band GeoTIFFs in a folder (``*B04*.tif`` ...): each band's radiometry from its own
    file's scale/offset metadata, else reflectance = DN / 10000."""
    bands: dict[str, str] = {}
    for f in files:
        m = _BAND_FILE_RE.search(os.path.basename(f))
        if m:
            bands[m.group(1).upper()] = f
    missing = [b for b in RGB_BANDS if b not in bands]
    if missing:
        raise GosBuildError(f"inputs.sentinel2: {folder}: band GeoTIFFs for {', '.join(missing)} are missing")
    name = os.path.basename(folder.rstrip("/")) or folder
    for band in wanted:
        if band not in bands:
            raise _missing_band(name, band, "GeoTIFF", [b for b in bands if b != "SCL"])
    quant_offsets = {}
    for band in wanted:
        with rasterio.open(bands[band]) as ds:
            scale, offset = ds.scales[0], ds.offsets[0]
        quant_offsets[band] = (1.0 / scale, offset / scale) if scale not in (None, 1.0) else (10000.0, 0.0)
    quant = _one_quantification(name, quant_offsets, "scales")
    crs, bounds = _georef(bands["B04"], folder)
    granule = Granule(name, {b: bands[b] for b in wanted}, bands.get("SCL"), crs, bounds)
    return Product(name, folder, "GeoTIFF", None, None, quant, {b: o for b, (_, o) in quant_offsets.items()},
                   [granule], format="GeoTIFF")


def _one_quantification(name: str, quant_offsets: dict, what: str) -> float:
    """The quantification shared by a product's bands ((quantification, offset) by band); bands with
    different ones stop the run naming the product."""
    quants = {q for q, _ in quant_offsets.values()}
    if len(quants) != 1:
        raise GosBuildError(f"inputs.sentinel2: {name}: bands with different {what} {sorted(quants)}")
    return quants.pop()


def _from_eopf(path: str, bands=RGB_BANDS) -> Product:
    from .eopf import read_product

    doc = read_product(path, bands)
    g = doc.pop("granule")
    return Product(**doc, granules=[Granule(g["name"], g["bands"], g["scl"], g["crs"], tuple(g["bounds"]))])


def discover(patterns, bands=RGB_BANDS) -> list[Product]:
    """Products matched by the config globs, least cloudy first (then by name), with ``bands`` (the rgb layer's
    first: :func:`gos_build.bands.needed_bands`)."""
    products, tif_groups = [], {}
    for hit in expand(patterns, "sentinel2"):
        if is_eopf(hit):
            products.append(_from_eopf(hit, bands))
        elif os.path.isdir(hit):
            products.append(_from_folder(hit, bands))
        elif hit.lower().endswith(".zip"):
            products.append(_from_zip(hit, bands))
        elif hit.lower().endswith((".tif", ".tiff")):
            tif_groups.setdefault(os.path.dirname(hit), []).append(hit)
        else:
            raise GosBuildError(f"inputs.sentinel2: {hit}: not a .SAFE folder, .zip, .zarr product or GeoTIFF")
    for folder, files in sorted(tif_groups.items()):
        products.append(_from_geotiffs(folder, files, bands))
    names = [p.name for p in products]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise GosBuildError(f"inputs.sentinel2: product {sorted(dup)[0]} is given twice")
    return sorted(products, key=lambda p: (p.cloud_percent if p.cloud_percent is not None else 100.0, p.name))


SAMPLE_ROWS = 128  # rows of the sample taken at a time: ~26 km of the AOI, a band of each granule read for them


def _valid_fraction(products: list[Product], grid: Grid, invalid_scl) -> float:
    """Share of the AOI with a valid pixel in some product, from a coarse (~ 200 m) sample, taken in bands of
    :data:`SAMPLE_ROWS` rows: memory does not grow with the AOI."""
    from pyproj import Transformer

    step = 20
    rows = np.arange(step // 2, grid.height, step)
    cols = np.arange(step // 2, grid.width, step)
    to_granule = {}
    inside_n = ok_n = 0
    for first in range(0, len(rows), SAMPLE_ROWS):
        cc, rr = np.meshgrid(cols, rows[first : first + SAMPLE_ROWS])
        x = grid.x_min + (cc + 0.5) * grid.resolution
        y = grid.y_max - (rr + 0.5) * grid.resolution
        inside = shapely.contains_xy(grid.aoi, x, y)
        x, y = x[inside], y[inside]
        if not x.size:
            continue
        ok = np.zeros(x.shape, dtype=bool)
        for p in products:
            for g in p.granules:
                if g.crs not in to_granule:
                    to_granule[g.crs] = Transformer.from_crs(grid.crs, g.crs, always_xy=True)
                gx, gy = to_granule[g.crs].transform(x, y)
                src = g.scl if g.scl else g.bands["B04"]
                with open_raster(src) as ds:  # opened again for each band: held open, the granules' cached
                    # blocks add up (19 000 km2: 129 -> 178 MB for 0.1 s saved)
                    # the pixel under each point (rasterio's sample(), without its Python loop): one read of
                    # the window holding them
                    r, c = rasterio.transform.rowcol(ds.transform, gx, gy)
                    r, c = np.asarray(r), np.asarray(c)
                    within = (r >= 0) & (c >= 0) & (r < ds.height) & (c < ds.width)
                    vals = np.zeros(r.shape, dtype=ds.dtypes[0])
                    if within.any():
                        r0, c0 = int(r[within].min()), int(c[within].min())
                        block = ds.read(1, window=Window(c0, r0, int(c[within].max()) - c0 + 1,
                                                         int(r[within].max()) - r0 + 1))
                        vals[within] = block[r[within] - r0, c[within] - c0]
                good = within & (~np.isin(vals, invalid_scl) if g.scl else vals != 0)
                ok |= good
        inside_n += int(ok.size)
        ok_n += int(ok.sum())
    return ok_n / inside_n if inside_n else 1.0



# -- from a STAC API ----------------------------------------------------------------
def _asset_keys(band: str) -> tuple[str, ...]:
    """Asset keys of a band (or SCL) in a Sentinel-2 item: Earth Search v1's (``red``, ``nir08`` ...), then the
    band's name (``B04``, ``B8A``)."""
    if band == "SCL":
        return ("scl", "SCL")
    return tuple(k for k in (BANDS[band].earth_search, band) if k)


def asset_key(item, band: str) -> str:
    """The asset of ``band`` (B01 ... B12, B8A, or SCL) in a Sentinel-2 item: by key, then by eo:bands name, then
    by common name where only this band has it (not the three red-edge bands')."""
    for key in _asset_keys(band):
        if key in item.assets:
            return key
    common = BANDS[band].common_name if band in BANDS else None
    if sum(b.common_name == common for b in BANDS.values()) != 1:
        common = None
    for key, asset in item.assets.items():
        for b in asset.extra_fields.get("eo:bands", []) or []:
            if b.get("name") == band or (common and b.get("common_name") == common):
                return key
    raise GosBuildError(f"inputs.sentinel2: item {item.id} has no asset for band {band} "
                        f"(assets: {', '.join(sorted(item.assets))})")


def radiometry(item, asset) -> tuple[float, float]:
    """(quantification, offset) with reflectance = (DN + offset) / quantification, as the SAFE route has it.

    ``raster:bands`` scale/offset describe the file's DN when present (Earth Search v1: scale 0.0001,
    offset -0.1 from processing baseline 04.00 on, DN as in the product). Without an offset there, the
    processing baseline decides: from 04.00 on the DN still carry the +1000 of the product unless the item
    says the offset was applied to the pixels (``earthsearch:boa_offset_applied``), so -1000 is applied here
    exactly once; before 04.00 there is none.
    """
    bands = asset.extra_fields.get("raster:bands") or [{}]
    scale = bands[0].get("scale")
    offset = bands[0].get("offset")
    if scale:
        quant = round(1.0 / scale, 6)
        if offset:
            return quant, round(offset / scale, 6)
    else:
        quant = 10000.0
    baseline = str(item.properties.get("s2:processing_baseline") or "")
    applied = item.properties.get("earthsearch:boa_offset_applied")
    if baseline >= "04.00" and not applied:
        return quant, -1000.0
    return quant, 0.0


def _from_stac(config: dict, grid: Grid, bands=RGB_BANDS) -> tuple[list[Product], dict]:
    """(products of the STAC items over the AOI, the ``stac`` section of the manifest): the least cloudy items
    covering the AOI (every item in the date range for the median composite), their windows fetched."""
    from .stac import MARGIN_PX, asset_size, cache_dir, covering, fetch_window, public_url, search, stac_section

    stac = config["inputs"]["sentinel2"]["stac"]
    items = search("sentinel2", stac, grid)
    if config.get("sentinel2", {}).get("composite", "mosaic") == "median":
        covering(items, grid, "sentinel2")  # the AOI must be covered; the median takes every item in the range
    else:
        items = covering(items, grid, "sentinel2")
    root = cache_dir(config) / stac["collection"]
    products, records = [], []
    for item in items:
        arrays = eopf.item_arrays(item, bands)
        if arrays is not None:
            products.append(_from_eopf_item(item, arrays, grid, root / item.id, records))
            continue
        paths = {}
        quant_offsets = {}
        for band in (*bands, "SCL"):
            key = asset_key(item, band)
            href = item.assets[key].href
            rec = fetch_window(f"inputs.sentinel2: item {item.id} asset '{key}'", href, grid,
                               root / item.id / f"{band}.tif",
                               margin_px=MARGIN_PX // 2 if band == "SCL" else MARGIN_PX)
            rec.update(item=item.id, asset=key, band=band, whole_bytes=asset_size(item, key))
            records.append(rec)
            paths[band] = rec["path"]
            if band != "SCL":
                quant_offsets[band] = radiometry(item, item.assets[key])
        quant = _one_quantification(f"item {item.id}", quant_offsets, "scales")
        with rasterio.open(paths["B04"]) as ds:
            crs, bounds = ds.crs.to_string(), tuple(ds.bounds)
        granule = Granule(item.id, {b: paths[b] for b in bands}, paths["SCL"], crs, bounds)
        products.append(Product(item.id, public_url(item.get_self_href() or stac["api"]), "L2A",
                                item.properties.get("s2:processing_baseline"), item.properties.get("eo:cloud_cover"),
                                quant, {b: o for b, (_, o) in quant_offsets.items()}, [granule], format="COG",
                                datetime=item.properties.get("datetime")))
    return products, stac_section(stac, items, records)


def _from_eopf_item(item, arrays: dict, grid: Grid, folder, records: list) -> Product:
    """One EOPF Zarr item: the windows of its bands (``arrays``: B04 B03 B02, those of ``sentinel2.bands``, SCL)
    read from the product over HTTP (only the chunks under the AOI) into ``folder``; radiometry, CRS, baseline
    and processor version from the product itself."""
    from .stac import MARGIN_PX, public_url

    paths, quant_offsets, facts = {}, {}, {}
    bands = [b for b in arrays if b != "SCL"]
    for band in (*bands, "SCL"):
        key, url, path = arrays[band]
        what = f"inputs.sentinel2: item {item.id} asset '{key}' ({path})"
        rec, facts = eopf.fetch_window(what, url, path, grid, folder / f"{band}.tif",
                                       MARGIN_PX // 2 if band == "SCL" else MARGIN_PX)
        rec.update(item=item.id, asset=key, band=band, whole_bytes=None)
        records.append(rec)
        paths[band] = rec["path"]
        if band != "SCL":
            quant_offsets[band] = eopf.radiometry(facts["array"], what, path)
    quant = _one_quantification(f"item {item.id}", quant_offsets, "scale_factor")
    props = eopf.root_properties(facts["root"])
    with rasterio.open(paths["B04"]) as ds:
        crs, bounds = ds.crs.to_string(), tuple(ds.bounds)
    name = eopf.product_name(arrays["B04"][1])
    baseline = (props.get("eopf:baseline") or item.properties.get("s2:processing_baseline")
                or eopf.name_baseline(name))
    granule = Granule(name, {b: paths[b] for b in bands}, paths["SCL"], crs, bounds)
    return Product(item.id, public_url(arrays["B04"][1]), "L2A", str(baseline) if baseline else None,
                   props.get("eo:cloud_cover", item.properties.get("eo:cloud_cover")), quant,
                   {b: o for b, (_, o) in quant_offsets.items()}, [granule], format=f"EOPF Zarr v{facts['zarr_format']}",
                   processor_version=str(props.get("processing:version") or "") or None,
                   datetime=props.get("start_datetime") or item.properties.get("datetime"))


def sensed_in(p: Product, span: str) -> bool:
    """Whether a product's sensing time lies in the period ``span`` (:func:`period_bounds`)."""
    import datetime as dt

    start, end = period_bounds(span)
    t = dt.datetime.fromisoformat(p.datetime.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return start <= t <= end


def _period_search(config: dict, name: str, span: str) -> dict:
    """The config of one period's search: ``inputs.sentinel2.stac`` with the period's range as ``datetime`` and,
    where ``stac.period_ids`` pins the period, its ids instead of the main search's."""
    stac = {k: v for k, v in config["inputs"]["sentinel2"]["stac"].items() if k not in ("ids", "period_ids")}
    pinned = (config["inputs"]["sentinel2"]["stac"].get("period_ids") or {}).get(name)
    stac = {**stac, "datetime": span, **({"ids": list(pinned)} if pinned else {})}
    return {**config, "inputs": {**config["inputs"], "sentinel2": {"stac": stac}}}


def _period_products(products: list[Product], name: str, span: str, grid: Grid) -> list[int]:
    """Indices of the products sensed in a period; one line where a product has no sensing time, none lies in
    the period, or those that do do not cover the AOI."""
    for p in products:
        if not p.datetime:
            raise GosBuildError(f"sentinel2.periods: product {p.name} has no sensing time (band GeoTIFFs carry none): "
                                "it cannot be placed in a period")
    idx = [i for i, p in enumerate(products) if sensed_in(p, span)]
    if not idx:
        sensed = ", ".join(sorted({p.datetime[:10] for p in products}))
        raise GosBuildError(f"sentinel2.periods.{name}: no product sensed in {span} (the products were sensed "
                            f"on {sensed})")
    covered = grid.aoi_covered_by(grid.footprint(g.bounds, g.crs, 32) for i in idx for g in products[i].granules)
    if covered < 0.9999:
        raise GosBuildError(f"sentinel2.periods.{name}: the products sensed in {span} cover {100 * covered:.1f} % "
                            f"of the AOI ({', '.join(products[i].name for i in idx)})")
    log.info("sentinel2: period %s (%s): %d product(s): %s", name, span, len(idx),
             ", ".join(products[i].name for i in idx))
    return idx


def invalid_scl_classes(mask_snow: bool = False) -> tuple[int, ...]:
    """SCL classes whose pixels are invalid (config ``sentinel2.mask_snow`` adds 11, snow/ice)."""
    return tuple(INVALID_SCL) + ((11,) if mask_snow else ())


def resolve(config: dict, grid: Grid) -> dict:
    """The ``sentinel2`` manifest: products over the AOI, their coverage and valid share."""
    from .stac import is_stac

    stac = None
    extra = config.get("sentinel2", {}).get("bands")
    periods = dict(sorted((config.get("sentinel2", {}).get("periods") or {}).items()))
    bands = needed_bands(extra or ())
    main = None  # with STAC periods: how many of the products are the main search's (rgb's); the rest, periods'
    if is_stac(config["inputs"]["sentinel2"]):
        products, stac = _from_stac(config, grid, bands)
        main = len(products)
        for name, span in periods.items():  # one search per period; an item found twice is one product
            try:
                more, section = _from_stac(_period_search(config, name, span), grid, bands)
            except GosBuildError as exc:
                raise GosBuildError(f"sentinel2.periods.{name}: {exc}") from None
            have = {p.name for p in products}
            products += [p for p in more if p.name not in have]
            stac.setdefault("periods", {})[name] = {"datetime": span, "items": [i["id"] for i in section["items"]]}
            stac["cache"] += [r for r in section["cache"] if r["path"] not in {c["path"] for c in stac["cache"]}]
    else:
        products = discover(config["inputs"]["sentinel2"], bands)
    invalid_scl = invalid_scl_classes(config.get("sentinel2", {}).get("mask_snow", False))
    composite = config.get("sentinel2", {}).get("composite", "mosaic")
    covered = grid.aoi_covered_by(grid.footprint(g.bounds, g.crs, 32) for p in products for g in p.granules)
    if covered < 0.9999:
        raise GosBuildError(f"inputs.sentinel2: the products cover {100 * covered:.1f} % of the AOI "
                            f"({', '.join(p.name for p in products)})")
    valid = _valid_fraction(products, grid, invalid_scl)
    if valid == 0.0:
        raise GosBuildError(f"inputs.sentinel2: no valid pixel over the AOI: every pixel is cloud, shadow, "
                            f"cirrus or nodata in {', '.join(p.name for p in products)}")
    for p in products:
        log.info("sentinel2: %s (%s, baseline %s, cloud %s %%, quantification %g, offsets %s, %d granule(s))",
                 p.name, p.level, p.baseline, p.cloud_percent, p.quantification, p.offsets, len(p.granules))
    log.info("sentinel2: products cover %.2f %% of the AOI; about %.1f %% of it is valid", 100 * covered, 100 * valid)
    if composite == "median":
        log.info("sentinel2: median composite of %d product(s) (%s)", len(products),
                 ", ".join(p.datetime or p.name for p in sorted(products, key=lambda p: p.name)))
    doc = {"composite": composite, "invalid_scl": list(invalid_scl), "aoi_covered": covered, "aoi_valid_estimate": valid,
           "products": [{**asdict(p), **_product_facts(p)} for p in products]}
    if extra:  # the s2 layer's bands, in its order (the granules' bands hold them and the rgb layer's)
        doc["bands"] = list(extra)
    if periods:
        if main is not None and main < len(products):
            doc["rgb"] = list(range(main))  # rgb's products: the main search's; the others are periods' only
        doc["periods"] = {name: {"datetime": span, "products": _period_products(products, name, span, grid)}
                          for name, span in periods.items()}
    if stac:
        doc["stac"] = stac
    return doc


PRODUCT_FACTS = ("bytes", "sha256", "file")  # what a manifest's product holds beyond the Product fields


def _product_facts(p: Product) -> dict:
    """``bytes`` of a product's local files (a SAFE folder or zip, band files, or cached STAC windows) and, for
    a local product, ``sha256`` and ``file`` (its file or folder name): :func:`gos_build.inputs.file_facts`."""
    if os.path.exists(_local_path(p.source)):
        facts = file_facts(_local_path(p.source))
        return {"bytes": facts["bytes"], "sha256": facts["sha256"], "file": facts["name"]}
    files = {f for g in p.granules for f in (*g.bands.values(), g.scl) if f}
    return {"bytes": sum(os.path.getsize(f) for f in files if os.path.exists(f))}


def _local_path(source: str) -> str:
    """The local file or folder behind a product source (a ``/vsizip/<zip>/<member>`` path -> the zip)."""
    if source.startswith("/vsizip/"):
        path = source[len("/vsizip/"):]
        return path[: path.lower().index(".zip") + 4]
    return source


def products_from_manifest(doc: dict) -> list[Product]:
    """The products of a ``sentinel2`` manifest, in its order (least cloudy first)."""
    products = []
    for p in doc["products"]:
        p = {k: v for k, v in p.items() if k not in PRODUCT_FACTS}
        grans = [Granule(g["name"], g["bands"], g["scl"], g["crs"], tuple(g["bounds"])) for g in p.pop("granules")]
        products.append(Product(**p, granules=grans))
    return products
