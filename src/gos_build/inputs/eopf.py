"""Sentinel-2 EOPF Zarr products (ESA's processing framework, Zarr format 2 or 3), read with zarr-python.

A product is a Zarr group tree (``S2A_MSIL2A_..._T32TQM_....zarr``, a folder, or the same zipped:
``....zarr.zip``). What gos-build reads of it, all from the product itself:

* bands ``measurements/reflectance/r10m/{b04,b03,b02}`` (uint16) with their CF attributes
  ``scale_factor`` and ``add_offset`` (reflectance = DN * scale + offset; for L2A baselines from 04.00 the
  BOA offset is already there, so no other offset is applied), ``_FillValue``/``fill_value`` and
  ``valid_min``/``valid_max``: a DN equal to the fill value or outside the valid range reads as 0, the
  pipeline's nodata;
* the scene classification ``conditions/mask/l2a_classification/r20m/scl`` (uint8, 20 m; L2A only);
* each resolution group's 1-D ``x`` and ``y`` arrays, the **pixel centres** (the corner is ``x[0] - res/2``);
* the CRS from the root attributes: ``other_metadata.horizontal_CRS_code`` (``EPSG:32632``), else
  ``stac_discovery.properties`` ``proj:code`` / ``proj:epsg``, else a band's own ``proj:epsg`` (products
  before processor 2.6);
* processing baseline (``eopf:baseline``, else the product name's ``N0511``), processor version
  (``processing:version`` when not empty), product type (``product:type``, ``S02MSIL2A``), cloud cover and
  sensing time from ``stac_discovery.properties``.

A band is named in the manifest as ``ZARR:"<product folder or zip>":/<array path>`` (the spelling of
GDAL's Zarr driver); :func:`open_raster` opens such a name -- or any GDAL path -- as a raster with the
part of rasterio's dataset interface the stages use (transform, crs, size, blocks, windowed reads).
"""

from __future__ import annotations

import math
import os
import re
import zipfile

import numpy as np

from ..errors import GosBuildError

REFLECTANCE = "measurements/reflectance"  # groups r10m, r20m, r60m: a band's array is its name in lower case
REFLECTANCE_10M = f"{REFLECTANCE}/r10m"
RESOLUTION_GROUPS = ("r10m", "r20m", "r60m")
SCL_20M = "conditions/mask/l2a_classification/r20m/scl"
REF_RE = re.compile(r'^ZARR:"(?P<store>[^"]+)":/(?P<array>.+)$')
SUFFIXES = (".zarr", ".zarr.zip")


def is_eopf(path: str) -> bool:
    """Whether a local path names an EOPF Zarr product (``.zarr`` folder or ``.zarr.zip`` file)."""
    return path.rstrip("/").lower().endswith(SUFFIXES)


def band_ref(store: str, array: str) -> str:
    """The manifest's name of one array of a product: ``ZARR:"<store>":/<array>``."""
    return f'ZARR:"{store}":/{array}'


def product_name(path: str) -> str:
    """The product id of a product path: its folder or file name without ``.zarr`` / ``.zarr.zip``."""
    name = os.path.basename(path.rstrip("/"))
    for suffix in (".zarr.zip", ".zarr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


# -- opening ------------------------------------------------------------------------------------------------
def _open_store(store: str, where: str):
    """(zarr store, path prefix of the product's root group inside it) of a local folder or zip."""
    import zarr.storage

    if os.path.isdir(store):
        return zarr.storage.LocalStore(store, read_only=True), ""
    if not zipfile.is_zipfile(store):
        raise GosBuildError(f"{where}: not a zip file (a zipped EOPF product must be a .zarr.zip archive)")
    with zipfile.ZipFile(store) as zf:
        names = zf.namelist()
    for n in names:
        parts = n.replace("\\", "/").split("/")
        if n.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", n):
            raise GosBuildError(f"{where}: zip entry '{n}' points outside the product; refusing the file")
    roots = {"zarr.json", ".zgroup"}
    if roots & set(names):
        prefix = ""
    else:  # the product folder zipped with its name: <name>.zarr/...
        tops = {n.split("/")[0] for n in names if "/" in n and n.split("/", 1)[1] in roots}
        if len(tops) != 1:
            raise GosBuildError(f"{where}: no Zarr product inside (no zarr.json or .zgroup at its root or in one "
                                "<product>.zarr/ folder)")
        prefix = tops.pop()
    return zarr.storage.ZipStore(store, mode="r"), prefix


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def open_root(store: str, where: str):
    """(the product's root group, its path inside the store) of a local folder or zip."""
    import zarr

    st, prefix = _open_store(store, where)
    try:
        return zarr.open_group(st, mode="r", path=prefix or None), prefix
    except (FileNotFoundError, KeyError, ValueError, zarr.errors.GroupNotFoundError) as exc:
        raise GosBuildError(f"{where}: no Zarr group at the product's root ({type(exc).__name__})") from None


def member(group, path: str, where: str, what: str):
    """``group[path]`` (an array or group), or one line naming the product and the missing piece."""
    try:
        return group[path]
    except KeyError:
        raise GosBuildError(f"{where}: no {path} in the product ({what})") from None


def _has(group, path: str) -> bool:
    try:
        group[path]
    except KeyError:
        return False
    return True


# -- what a product says about itself ---------------------------------------------------------------------
def root_properties(attrs: dict) -> dict:
    """``stac_discovery.properties`` of the root attributes (empty if absent)."""
    return ((attrs.get("stac_discovery") or {}).get("properties") or {}) if isinstance(attrs, dict) else {}


def crs_of(attrs: dict, band_attrs: dict, where: str) -> str:
    """The product's CRS as ``EPSG:<code>`` (see the module docstring for where it is looked up)."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    props = root_properties(attrs)
    candidates = [("other_metadata.horizontal_CRS_code", (attrs.get("other_metadata") or {}).get("horizontal_CRS_code")),
                  ("stac_discovery.properties.proj:code", props.get("proj:code")),
                  ("stac_discovery.properties.proj:epsg", props.get("proj:epsg")),
                  ("the band's proj:epsg", band_attrs.get("proj:epsg"))]
    for key, value in candidates:
        if value in (None, ""):
            continue
        text = f"EPSG:{value}" if isinstance(value, int) or str(value).isdigit() else str(value)
        try:
            epsg = CRS.from_user_input(text).to_epsg()
        except CRSError:
            epsg = None
        if epsg is None:
            raise GosBuildError(f"{where}: {key} is '{value}', not a CRS with an EPSG code")
        return f"EPSG:{epsg}"
    raise GosBuildError(f"{where}: no CRS in the product (none of other_metadata.horizontal_CRS_code, "
                        "stac_discovery.properties proj:code / proj:epsg, or the band's proj:epsg)")


def lattice(group, shape: tuple[int, int], where: str, path: str):
    """(Affine transform of the pixel corners, (height, width)) of an array of ``shape`` in ``group`` from the
    group's 1-D ``x``/``y`` pixel-centre coordinates."""
    from affine import Affine

    coords = {}
    for axis in ("x", "y"):
        arr = member(group, axis, where, f"the pixel-centre coordinates of {path}")
        v = np.asarray(arr[:], dtype=np.float64)
        if v.ndim != 1 or len(v) < 2:
            raise GosBuildError(f"{where}: {path}/{axis} is not a 1-D coordinate array of at least 2 values")
        step = np.diff(v)
        if not np.allclose(step, step[0], rtol=0, atol=abs(step[0]) * 1e-9) or step[0] == 0:
            raise GosBuildError(f"{where}: {path}/{axis} is not regularly spaced (a pixel grid needs one step)")
        coords[axis] = v
    x, y = coords["x"], coords["y"]
    if (len(y), len(x)) != tuple(shape):
        raise GosBuildError(f"{where}: {path}: x/y have {len(x)} x {len(y)} values for an array of "
                            f"{shape[1]} x {shape[0]} px")
    rx, ry = x[1] - x[0], y[1] - y[0]
    if rx <= 0 or ry >= 0:
        raise GosBuildError(f"{where}: {path}: x must increase and y decrease (a north-up grid)")
    return Affine(rx, 0.0, x[0] - rx / 2, 0.0, ry, y[0] - ry / 2)


def radiometry(attrs: dict, where: str, path: str) -> tuple[float, float]:
    """(quantification, offset), reflectance = (DN + offset) / quantification, from a band's CF attributes."""
    scale, offset = attrs.get("scale_factor"), attrs.get("add_offset")
    if scale in (None, 0) or offset is None:
        raise GosBuildError(f"{where}: {path} has no scale_factor / add_offset attributes (the radiometry)")
    return round(1.0 / float(scale), 6), round(float(offset) / float(scale), 6)


# -- a band as a raster -------------------------------------------------------------------------------------
class EopfBand:
    """One 2-D array of an EOPF product, with the part of rasterio's dataset interface the stages use:
    ``crs``, ``transform``, ``width``, ``height``, ``bounds``, ``dtypes``, ``block_shapes`` (the chunks),
    ``nodata``, ``tags()`` and ``read(1, window=..., boundless=..., fill_value=...)``. Reads decode only the
    chunks under the window. DNs equal to the fill value or outside ``valid_min``..``valid_max`` read as 0."""

    def __init__(self, ref: str):
        m = REF_RE.match(ref)
        if not m:
            raise GosBuildError(f"{ref}: not a Zarr array name (ZARR:\"<product>\":/<array>)")
        store, path = m.group("store"), m.group("array")
        where = f"{product_name(store)} ({store})"
        root, prefix = open_root(store, where)
        path = path[len(prefix) + 1:] if prefix and path.startswith(prefix + "/") else path
        self._setup(root, path, where, ref)

    @classmethod
    def in_group(cls, root, path: str, where: str) -> "EopfBand":
        """The array ``path`` of an open product root group (e.g. one read over HTTP)."""
        band = cls.__new__(cls)
        band._setup(root, path, where, f"{where}:/{path}")
        return band

    def _setup(self, root, path: str, where: str, ref: str) -> None:
        from rasterio.crs import CRS
        from rasterio.coords import BoundingBox

        self._store = root.store
        self.array = member(root, path, where, "a band")
        if self.array.ndim != 2:
            raise GosBuildError(f"{where}: {path} is not a 2-D raster")
        attrs = dict(self.array.attrs)
        parent = member(root, path.rsplit("/", 1)[0], where, "a resolution group") if "/" in path else root
        self.crs = CRS.from_string(crs_of(dict(root.attrs), attrs, where))
        self.height, self.width = self.array.shape
        self.transform = lattice(parent, self.array.shape, where, path.rsplit("/", 1)[0])
        t = self.transform
        self.bounds = BoundingBox(t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f)
        self.dtypes = (str(self.array.dtype),)
        self.block_shapes = [tuple(int(c) for c in self.array.chunks)]
        fill = attrs.get("_FillValue", attrs.get("fill_value"))
        self.nodata = None if fill is None else fill
        self._fill = fill
        self._range = (attrs.get("valid_min"), attrs.get("valid_max"))
        self.path = ref

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self.array = None
        self._store.close()

    def tags(self) -> dict:
        return {}

    def read(self, indexes=1, window=None, boundless: bool = False, fill_value=0) -> np.ndarray:
        """Band 1 over ``window`` (rasterio Window; whole array if None); beyond the array ``fill_value``
        (boundless) or an error."""
        if indexes != 1:
            raise ValueError("an EOPF band has one band")
        if window is None:
            c0, r0, w, h = 0, 0, self.width, self.height
        else:
            c0, r0 = int(math.floor(window.col_off)), int(math.floor(window.row_off))
            w, h = int(round(window.width)), int(round(window.height))
        out = np.full((h, w), fill_value, dtype=self.array.dtype)
        a0, b0 = max(r0, 0), max(c0, 0)
        a1, b1 = min(r0 + h, self.height), min(c0 + w, self.width)
        if not boundless and (a0 != r0 or b0 != c0 or a1 != r0 + h or b1 != c0 + w):
            raise GosBuildError(f"{self.path}: window {window} leaves the array")
        if a1 > a0 and b1 > b0:
            block = np.asarray(self.array[a0:a1, b0:b1])
            bad = np.zeros(block.shape, dtype=bool)
            if self._fill is not None:
                bad |= block == self._fill
            lo, hi = self._range
            if lo is not None:
                bad |= block < lo
            if hi is not None:
                bad |= block > hi
            out[a0 - r0:a1 - r0, b0 - c0:b1 - c0] = np.where(bad, 0, block)
        return out


def open_raster(path: str):
    """A band for reading: an EOPF array (``ZARR:"...":/...``) as :class:`EopfBand`, anything else with rasterio."""
    if path.startswith('ZARR:"'):
        return EopfBand(path)
    import rasterio

    return rasterio.open(path)


# -- a product ----------------------------------------------------------------------------------------------
def read_product(path: str, bands=("B04", "B03", "B02")) -> dict:
    """What the resolver needs of one local EOPF product (folder or zip): the fields of a
    :class:`gos_build.inputs.sentinel2.Product` and its one granule's band names, CRS and bounds. ``bands``: the
    rgb layer's (10 m), then those of ``sentinel2.bands``, each from its finest resolution group."""
    where = f"inputs.sentinel2: {path}"
    path = os.path.abspath(path)
    root, prefix = open_root(path, where)
    name = product_name(path)
    attrs = dict(root.attrs)
    props = root_properties(attrs)
    zarr_format = int(root.metadata.zarr_format)
    ptype = str(props.get("product:type") or "")
    level = "L2A" if "L2A" in ptype else "L1C" if "L1C" in ptype else str(props.get("processing:level") or "")
    if level not in ("L2A", "L1C"):
        level = "L2A" if "MSIL2A" in name else "L1C" if "MSIL1C" in name else level
    member(root, REFLECTANCE_10M, where, "the 10 m reflectance bands")
    refs, quant_offsets = {}, {}
    for i, band in enumerate(bands):
        groups = RESOLUTION_GROUPS[:1] if i < 3 else RESOLUTION_GROUPS  # rgb: the 10 m bands
        arr_path = next((f"{REFLECTANCE}/{g}/{band.lower()}" for g in groups
                         if _has(root, f"{REFLECTANCE}/{g}/{band.lower()}")), None)
        if arr_path is None:
            if i < 3:
                member(root, f"{REFLECTANCE_10M}/{band.lower()}", where, f"band {band}")  # its one-line error
            raise GosBuildError(f"inputs.sentinel2: {name}: no band {band} in {REFLECTANCE}/{{"
                                f"{','.join(RESOLUTION_GROUPS)}}}, which sentinel2.bands asks for")
        arr = member(root, arr_path, where, f"band {band}")
        quant_offsets[band] = radiometry(dict(arr.attrs), where, arr_path)
        refs[band] = band_ref(path, _join(prefix, arr_path))
    quants = {q for q, _ in quant_offsets.values()}
    if len(quants) != 1:
        raise GosBuildError(f"{where}: bands with different scale_factor {sorted(quants)}")
    scl = None
    if level == "L2A":
        member(root, SCL_20M, where, "the scene classification an L2A product carries")
        scl = band_ref(path, _join(prefix, SCL_20M))
    with EopfBand(refs["B04"]) as b04:
        crs, bounds = b04.crs.to_string(), tuple(b04.bounds)
    baseline = props.get("eopf:baseline") or name_baseline(name)
    version = props.get("processing:version") or None
    cloud = props.get("eo:cloud_cover")
    when = props.get("start_datetime") or props.get("datetime")
    return {"name": name, "source": path, "level": level, "baseline": str(baseline) if baseline else None,
            "cloud_percent": float(cloud) if cloud is not None else None, "quantification": quants.pop(),
            "offsets": {b: o for b, (_, o) in quant_offsets.items()}, "format": f"EOPF Zarr v{zarr_format}",
            "processor_version": str(version) if version else None, "datetime": str(when) if when else None,
            "granule": {"name": name, "bands": refs, "scl": scl, "crs": crs, "bounds": bounds}}


def name_baseline(name: str) -> str | None:
    """The processing baseline in a product name (``..._N0511_...`` -> ``05.11``), or None."""
    m = re.search(r"_N(\d{2})(\d{2})_", name)
    return f"{m.group(1)}.{m.group(2)}" if m else None



# -- over HTTP (STAC items of the EOPF Sentinel Zarr Samples Service) ----------------------------------------
# the two collection layouts: per-band assets (processor 2.x, Zarr format 2) and resolution-group assets (3.x)
BAND_ASSETS = {"B04": "B04_10m", "B03": "B03_10m", "B02": "B02_10m", "SCL": "SCL_20m"}
GROUP_ASSETS = {"B04": ("SR_10m", "b04"), "B03": ("SR_10m", "b03"), "B02": ("SR_10m", "b02"), "SCL": ("SCL_20m", "")}


def item_arrays(item, bands=("B04", "B03", "B02")) -> dict[str, tuple[str, str, str]] | None:
    """For an EOPF STAC item: band -> (asset key, product URL ending in ``.zarr``, array path inside it) for
    ``bands`` (the rgb layer's first) and SCL; None for an item of another kind (COGs). Per-band assets
    (``B04_10m``, ``B05_20m`` ...: the finest the item has) name the arrays; group assets (``SR_10m``,
    ``SR_20m``, ``SR_60m``, media type ``application/vnd.zarr; version=3``: the band's native resolution's)
    the groups holding them."""
    from ..bands import BANDS

    assets = item.assets
    if all(k in assets for k in BAND_ASSETS.values()):
        def where(band):
            return next(((f"{band}_{r}m", "") for r in (10, 20, 60) if f"{band}_{r}m" in assets), None)
    elif all(k in assets for k, _ in GROUP_ASSETS.values()):
        def where(band):
            key = f"SR_{BANDS[band].resolution}m"
            return (key, band.lower()) if key in assets else None
    else:
        return None
    out = {}
    for band in (*bands, "SCL"):
        found = where(band) if band != "SCL" else (
            (BAND_ASSETS["SCL"], "") if BAND_ASSETS["SCL"] in assets else GROUP_ASSETS["SCL"])
        if found is None:
            raise GosBuildError(f"inputs.sentinel2: item {item.id} has no asset for band {band}, which "
                                f"sentinel2.bands asks for (assets: {', '.join(sorted(assets))})")
        key, leaf = found
        href = assets[key].href
        if "zarr" not in (assets[key].media_type or "") and ".zarr/" not in href:
            return None
        i = href.find(".zarr/")
        if i < 0:
            raise GosBuildError(f"inputs.sentinel2: item {item.id} asset '{key}': {href.split('?')[0]} does not lie "
                                "inside a .zarr product")
        out[band] = (key, href[: i + 5], _join(href[i + 6:].split("?")[0], leaf))
    return out


def _remote_root(url: str, where: str, counter: list):
    """The root group of a product over HTTP(S), through fsspec (aiohttp), counting the bytes fetched."""
    import zarr
    from zarr.storage import FsspecStore, WrapperStore

    from .stac import auth_headers

    class Counting(WrapperStore):
        async def get(self, key, prototype, byte_range=None):
            buf = await self._store.get(key, prototype, byte_range)
            if buf is not None:
                counter[0] += len(buf)
            return buf

    store = FsspecStore.from_url(url, storage_options={"headers": auth_headers()},
                                 read_only=True)
    try:
        return zarr.open_group(Counting(store), mode="r")
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError) as exc:
        raise GosBuildError(f"{where}: no Zarr group at the product's root ({type(exc).__name__})") from None


def fetch_window(what: str, url: str, path: str, grid, dest, margin_px: int) -> tuple[dict, dict]:
    """Read the window of one array of a remote product over the grid (+ ``margin_px`` of its pixels) into
    ``dest`` (GeoTIFF, DN as the stages read them: fill and out-of-range values 0) with a lattice VRT beside
    it, as :func:`gos_build.inputs.stac.fetch_window` does for a COG; only the chunks under the window are
    fetched. Returns (the cache record, facts of the product: attributes of the root and of the array)."""
    from pathlib import Path

    import rasterio

    from .stac import aoi_window, cached_record, public_url, retrying, store_window

    dest = Path(dest)

    def read():
        counter = [0]
        root = _remote_root(url, what, counter)
        band = EopfBand.in_group(root, path, what)
        window = aoi_window(grid, band, margin_px, what)
        c0, r0 = int(window.col_off), int(window.row_off)
        facts = {"root": dict(root.attrs), "array": dict(band.array.attrs), "zarr_format": int(root.metadata.zarr_format)}
        key = {"source": public_url(url) + "/" + path, "window": [c0, r0, int(window.width), int(window.height)]}
        old = cached_record(dest, key)
        if old is not None:
            return None, old, facts, 0  # cached: only the metadata was read
        data = band.read(1, window=window)
        meta = dict(crs=band.crs, transform=rasterio.windows.transform(window, band.transform), nodata=0,
                    lattice=band.transform, width=band.width, height=band.height, dtype=band.dtypes[0], window=(c0, r0))
        return data, dict(key, fetched_bytes=counter[0]), facts, meta

    data, record, facts, meta = retrying(what, url, read)
    if data is None:
        return dict(record, cached=True), facts
    return store_window(what, dest, np.asarray(data), meta, record), facts
