"""DEM inputs: SRTM ``.hgt`` / ``.hgt.zip`` tiles or GeoTIFF/COG DEMs -> the ``dem`` manifest.

Every file is opened once here: readable, georeferenced, not rotated, HGT of
a real size, not all nodata; all files in one CRS; together covering the AOI
(else the covered share and, for SRTM, the names of the missing 1-degree
tiles). ``.hgt.zip`` / ``.zip`` files become ``/vsizip/<zip>/<member>`` paths,
read in place. The manifest lists each file's GDAL path, size, CRS, transform,
shape, nodata and bounds: all the mosaic needs, without opening them again.
"""

from __future__ import annotations

import logging
import math
import os
import zipfile

import numpy as np
import rasterio
import shapely
from pyproj import Transformer
from rasterio.errors import RasterioIOError
from rasterio.warp import transform_bounds
from shapely.geometry import box

from ..errors import GosBuildError
from ..grid import Grid
from . import expand, file_facts

log = logging.getLogger(__name__)

SOURCE_NODATA = -32768.0  # SRTM voids; also the mosaic's nodata


def hgt_name(lat: int, lon: int) -> str:
    """SRTM tile name of the 1-degree cell whose south-west corner is (lat, lon): N43E128."""
    return f"{'N' if lat >= 0 else 'S'}{abs(lat):02d}{'E' if lon >= 0 else 'W'}{abs(lon):03d}.hgt"


def gdal_paths(patterns) -> list[str]:
    """GDAL paths of the files matched by ``inputs.dem`` globs (zips as ``/vsizip/`` paths), sorted per glob."""
    return [_gdal_path(hit, "dem") for hit in expand(patterns, "dem")]


def resolve(config: dict, grid: Grid) -> dict:
    """The ``dem`` manifest: every DEM file described once, checked to cover the AOI."""
    from .stac import is_stac

    stac = None
    if is_stac(config["inputs"]["dem"]):
        paths, stac = _from_stac(config, grid)
    else:
        paths = gdal_paths(config["inputs"]["dem"])
    if not paths:
        raise GosBuildError("inputs.dem: no DEM file given")
    srcs = [_describe_source(p) for p in paths]
    crs = srcs[0]["crs"]
    other = [s["path"] for s in srcs if s["crs"] != crs]
    if other:
        raise GosBuildError(f"inputs.dem: files are in different CRSs ({srcs[0]['path']}: {crs}; "
                            f"{other[0]}: another); reproject them to one CRS")
    fraction, missing = _coverage(srcs, crs, grid)
    if fraction < 0.9999:
        hint = f"; missing SRTM tiles: {', '.join(missing[:12])}" if missing else ""
        raise GosBuildError(f"inputs.dem: the DEM files cover {100 * fraction:.1f} % of the AOI{hint}")
    res = [min(abs(s["transform"].a) for s in srcs), min(abs(s["transform"].e) for s in srcs)]
    files = []
    for s in srcs:
        local = s["path"].split("/vsizip/")[-1]
        local = local[: local.lower().index(".zip") + 4] if s["path"].startswith("/vsizip/") else local
        facts = file_facts(local)
        files.append({"path": s["path"], "name": facts["name"], "bytes": facts["bytes"], "sha256": facts["sha256"],
                      "driver": s["driver"],
                      "crs_wkt": s["crs"].to_wkt(), "transform": list(s["transform"].to_gdal()),
                      "width": s["width"], "height": s["height"], "nodata": s["nodata"], "bounds": list(s["bounds"])})
    log.info("DEM inputs: %d file(s), %s, %.6g x %.6g, cover %.2f %% of the AOI", len(srcs), crs.to_string(),
             res[0], res[1], 100 * fraction)
    doc = {"sources": paths, "crs": crs.to_string(), "resolution": res, "aoi_covered": fraction, "files": files}
    if stac:
        doc["stac"] = stac
    return doc


def _gdal_path(path: str, key: str) -> str:
    if not path.lower().endswith(".zip"):
        return path
    try:
        with zipfile.ZipFile(path) as zf:
            members = [n for n in zf.namelist() if n.lower().endswith((".hgt", ".tif", ".tiff"))]
    except (zipfile.BadZipFile, OSError) as exc:
        raise GosBuildError(f"inputs.{key}: {path}: not a readable zip file ({exc})") from None
    if len(members) != 1:
        raise GosBuildError(f"inputs.{key}: {path}: expected one .hgt or .tif inside, found {len(members)}")
    return f"/vsizip/{os.path.abspath(path)}/{members[0]}"


def _describe_source(path: str) -> dict:
    try:
        with rasterio.open(path) as ds:
            if ds.crs is None:
                raise GosBuildError(f"{path}: the DEM has no CRS")
            if ds.transform.b or ds.transform.d:
                raise GosBuildError(f"{path}: rotated rasters are not supported")
            if ds.driver == "SRTMHGT" and ds.width not in (1201, 3601):
                raise GosBuildError(f"{path}: an HGT tile must be 1201 or 3601 posts square, got {ds.width}")
            # a decimated read is enough to tell an all-nodata file
            step = max(1, min(ds.width, ds.height) // 256)
            sample = ds.read(1, out_shape=(max(1, ds.height // step), max(1, ds.width // step)), masked=True)
            if sample.mask.all() or (ds.nodata is None and np.all(sample == SOURCE_NODATA)):
                raise GosBuildError(f"{path.split('/vsizip/')[-1]}: every pixel of the DEM is nodata")
            return dict(path=path, crs=ds.crs, transform=ds.transform, width=ds.width, height=ds.height,
                        nodata=ds.nodata, bounds=tuple(ds.bounds), driver=ds.driver)
    except RasterioIOError as exc:
        name = path.split("/vsizip/")[-1]
        if path.lower().endswith(".hgt") and os.path.exists(name):
            size = os.path.getsize(name)
            raise GosBuildError(f"{name}: not an SRTM HGT tile ({size} bytes; SRTM1 has 25934402, SRTM3 2884802)") from None
        raise GosBuildError(f"{name}: not a readable raster ({exc})") from None


def _coverage(srcs, crs, grid: Grid) -> tuple[float, list[str]]:
    """Fraction of the AOI inside the union of the sources' footprints, and missing SRTM tile names."""
    fraction = grid.aoi_covered_by(grid.footprint(s["bounds"], crs, 32) for s in srcs)
    aoi = grid.aoi
    missing: list[str] = []
    if fraction < 0.9999 and all(s["driver"] == "SRTMHGT" for s in srcs):
        lon0, lat0, lon1, lat1 = transform_bounds(grid.crs, "EPSG:4326", *aoi.bounds, densify_pts=21)
        to_ll = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
        aoi_ll = shapely.transform(aoi, lambda xy: np.column_stack(to_ll.transform(xy[:, 0], xy[:, 1])))
        have = {os.path.basename(s["path"]).split(".")[0].upper() for s in srcs}
        for lat in range(math.floor(lat0), math.ceil(lat1)):
            for lon in range(math.floor(lon0), math.ceil(lon1)):
                name = hgt_name(lat, lon)
                if name[:-4] not in have and aoi_ll.intersects(box(lon, lat, lon + 1, lat + 1)):
                    missing.append(name)
    return fraction, missing


DEM_ASSET_KEYS = ("data", "elevation", "dem", "DEM")  # asset keys of a DEM item


def _from_stac(config: dict, grid: Grid) -> tuple[list[str], dict]:
    """(local paths of the cached DEM windows, the ``stac`` section of the manifest)."""
    from ..geomorphometry import reach_m
    from .stac import MARGIN_PX, asset_size, cache_dir, fetch_window, search, stac_section

    stac = config["inputs"]["dem"]["stac"]
    # the extra terrain layers' discs and lines of sight reach past the AOI: as far again of the DEM (in source
    # pixels of at least 10 m, so never too little)
    reach_px = math.ceil(reach_m((config.get("terrain") or {}).get("extra") or {}, grid.resolution) / 10.0)
    items = search("dem", stac, grid)
    root = cache_dir(config) / stac["collection"]
    paths, records = [], []
    for item in items:
        key = next((k for k in DEM_ASSET_KEYS if k in item.assets), None)
        if key is None:
            raise GosBuildError(f"inputs.dem: item {item.id} has no DEM asset ({', '.join(DEM_ASSET_KEYS)}); "
                                f"assets: {', '.join(sorted(item.assets))}")
        rec = fetch_window(f"inputs.dem: item {item.id} asset '{key}'", item.assets[key].href, grid,
                           root / item.id / "DEM.tif", margin_px=MARGIN_PX + reach_px)
        rec.update(item=item.id, asset=key, whole_bytes=asset_size(item, key))
        records.append(rec)
        paths.append(rec["path"])
    return paths, stac_section(stac, items, records)
