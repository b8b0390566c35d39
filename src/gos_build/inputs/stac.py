"""Inputs from a STAC API: search the catalogue, read only the AOI's windows of the COG assets into a local cache.

``inputs.sentinel2`` / ``inputs.dem`` may be ``{stac: {api, collection, datetime, max_cloud, ids, sign}}``
instead of globs. The resolver

1. searches the API with pystac-client (the AOI's bbox, ``datetime``, ``eo:cloud_cover <= max_cloud``) or
   fetches the pinned ``ids``; Sentinel-2 items are taken least cloudy first until their footprints cover the
   AOI, DEM items wherever they touch it;
2. reads, through GDAL's ``/vsicurl/`` (HTTP range requests: only the COG tiles needed), the window of each
   asset over the AOI plus a margin of ``MARGIN_PX`` source pixels (what the stages' resampling and void
   filling reach), and writes it once into ``resources/<aoi>/cache/<collection>/<item>/<asset>.tif``
   (atomically; a cached window whose source and window match is not fetched again);
3. records item ids, datetimes, processing baselines, the item JSON, every cached file's size and sha256,
   the bytes fetched and the bytes of the whole assets in the manifest.

This module knows catalogues and windows only; the per-kind resolvers (:mod:`.sentinel2`, :mod:`.dem`) turn
items into products and import it -- never the other way round. Georeferencing comes from the files.
Timeouts, 5xx and dropped connections are retried with backoff (``RETRIES``); 404/403 stop with one line
naming the item and asset; an empty search stops with the query in words. Credentials come from the
environment (``GOS_BUILD_STAC_AUTHORIZATION``: an ``Authorization`` header value for the API and the
asset hosts) and never reach a log, the manifest or the datacard; URLs are recorded without their query
string (signed URLs carry tokens there).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ..errors import GosBuildError
from ..grid import Grid
from ..io import sha256_file

log = logging.getLogger(__name__)

MARGIN_PX = 72  # >= the DEM stage's FILL_DISTANCE + cubic kernel (67) and Sentinel-2's bilinear margin (3)
RETRIES = 4
BACKOFF_S = 0.5
AUTH_ENV = "GOS_BUILD_STAC_AUTHORIZATION"


def is_stac(value) -> bool:
    """Whether an ``inputs.<kind>`` value names a STAC API rather than globs."""
    return isinstance(value, dict) and "stac" in value


def public_url(url: str) -> str:
    """``url`` without its query string and user info: what may be logged or written down."""
    parts = urlsplit(url)
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else parts.netloc
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def auth_headers() -> dict:
    """HTTP headers for the API and the asset hosts: ``Authorization`` from the environment, if set."""
    auth = os.environ.get(AUTH_ENV)
    return {"Authorization": auth} if auth else {}


def _gdal_env() -> dict:
    """GDAL options for reading COGs over HTTP: range requests, no directory listing, retries with backoff."""
    env = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_HTTP_TIMEOUT": "60", "GDAL_HTTP_MAX_RETRY": "0",
           # a failed request must not be remembered: each retry asks the server again
           "CPL_VSIL_CURL_NON_CACHED": "/vsicurl/http://:/vsicurl/https://",
           "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF", "VSI_CACHE": "FALSE",
           "GDAL_HTTP_MULTIRANGE": "SINGLE_GET", "GDAL_INGESTED_BYTES_AT_OPEN": "32768"}
    if auth_headers():
        env["GDAL_HTTP_HEADERS"] = f"Authorization: {auth_headers()['Authorization']}"
    return env


def _client(api: str):
    from pystac_client import Client
    from pystac_client.stac_api_io import StacApiIO
    from urllib3 import Retry

    class LoggedRetry(Retry):
        def increment(self, method=None, url=None, response=None, error=None, *args, **kwargs):
            why = f"HTTP {response.status}" if response is not None else _short(error) if error else "failed"
            log.warning("STAC API %s: %s; retrying with backoff (%d left)", public_url(api), why,
                        max(0, (self.total or 0) - 1))
            return super().increment(method, url, response, error, *args, **kwargs)

    retry = LoggedRetry(total=RETRIES, backoff_factor=BACKOFF_S, status_forcelist=(429, 500, 502, 503, 504),
                        allowed_methods=None)
    io = StacApiIO(headers=auth_headers(), max_retries=retry, timeout=60)
    try:
        return Client.open(api, stac_io=io)
    except Exception as exc:  # pystac-client wraps connection and HTTP errors in several types
        raise GosBuildError(f"STAC API {public_url(api)}: cannot be opened ({_short(exc)})") from None


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def _when(value) -> str:
    return str(value) if value is not None else "any date"


def search(key: str, stac: dict, grid: Grid) -> list:
    """The items of ``inputs.<key>.stac`` over the AOI (pystac Items), least cloudy first, then by id."""
    api, collection = stac["api"], stac["collection"]
    client = _client(api)
    bbox = list(grid_bbox_ll(grid))
    kwargs = {"collections": [collection], "max_items": 500}
    if stac.get("ids"):
        kwargs["ids"] = list(stac["ids"])
    else:
        kwargs["bbox"] = bbox
        if stac.get("datetime"):
            kwargs["datetime"] = str(stac["datetime"])
        if stac.get("max_cloud") is not None:
            kwargs["query"] = {"eo:cloud_cover": {"lte": stac["max_cloud"]}}
    try:
        items = list(client.search(**kwargs).items())
    except Exception as exc:
        raise GosBuildError(f"inputs.{key}: STAC search at {public_url(api)} failed ({_short(exc)})") from None
    if stac.get("ids"):
        missing = sorted(set(stac["ids"]) - {i.id for i in items})
        if missing:
            raise GosBuildError(f"inputs.{key}: no {collection} item with id {', '.join(missing)} at {public_url(api)}")
    if not items:
        cloud = f" with cloud <= {stac['max_cloud']:g} %" if stac.get("max_cloud") is not None else ""
        raise GosBuildError(f"inputs.{key}: no {collection} item over the AOI on {_when(stac.get('datetime'))}"
                            f"{cloud} at {public_url(api)}")
    items.sort(key=lambda i: (i.properties.get("eo:cloud_cover", 0.0), i.id))
    if stac.get("sign") == "planetary-computer":
        import planetary_computer

        items = [planetary_computer.sign(i) for i in items]
    return items


def grid_bbox_ll(grid: Grid) -> tuple[float, float, float, float]:
    """The grid's bounds in WGS84 degrees (lon_min, lat_min, lon_max, lat_max), densified."""
    from rasterio.warp import transform_bounds

    return transform_bounds(grid.crs, "EPSG:4326", *grid.bounds, densify_pts=21)


def covering(items: list, grid: Grid, key: str) -> list:
    """The least cloudy items whose footprints together cover the AOI (all of them if they never do)."""
    import shapely
    from shapely.geometry import shape

    aoi = grid.aoi
    taken, union = [], None
    for item in items:
        poly = grid.project(shape(item.geometry), "EPSG:4326")
        if union is not None and union.contains(aoi):
            break
        if union is not None and not poly.intersection(aoi).difference(union).area > 0:
            continue
        taken.append(item)
        union = poly if union is None else shapely.union(union, poly)
    covered = aoi.intersection(union).area / aoi.area if union is not None else 0.0
    if covered < 0.9999:
        raise GosBuildError(f"inputs.{key}: the STAC items cover {100 * covered:.1f} % of the AOI "
                            f"({', '.join(i.id for i in items)})")
    return taken


def _http_status(exc: Exception) -> int | None:
    """The HTTP status behind a read error (GDAL's message, or aiohttp's ClientResponseError)."""
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return status
    text = str(exc)
    return next((c for c in (404, 403, 401) if f"HTTP response code: {c}" in text or f" {c}" in text[:80]), None)


def retrying(what: str, url: str, fn):
    """Call ``fn()``; retry timeouts, 5xx and dropped connections with backoff; 404/403/401 -> one line."""
    import asyncio

    from rasterio.errors import RasterioIOError

    transient: tuple = (RasterioIOError, asyncio.TimeoutError, ConnectionError, TimeoutError)
    try:
        import aiohttp

        transient += (aiohttp.ClientError,)
    except ImportError:  # pragma: no cover - aiohttp comes with fsspec[http]
        pass
    delay = BACKOFF_S
    for attempt in range(RETRIES + 1):
        try:
            return fn()
        except transient as exc:
            code = _http_status(exc)
            if code in (404, 403, 401):
                reason = {404: "not found", 403: "forbidden", 401: "unauthorized"}[code]
                raise GosBuildError(f"{what}: HTTP {code} ({reason}) at {public_url(url)}") from None
            if attempt == RETRIES:
                raise GosBuildError(f"{what}: cannot be read from {public_url(url)} after {RETRIES + 1} tries "
                                    f"({_short(exc)})") from None
            log.warning("%s: %s; retrying in %.1f s (%d/%d)", what, _short(exc), delay, attempt + 1, RETRIES)
            time.sleep(delay)
            delay *= 2


def aoi_window(grid: Grid, ds, margin_px: int, what: str):
    """The window of a raster (anything with ``crs``, ``transform``, ``width``, ``height``) over the grid's
    bounds plus ``margin_px`` of its own pixels, clipped to it; one line if it misses the AOI."""
    from rasterio.warp import transform_bounds
    from rasterio.windows import Window, from_bounds

    b = transform_bounds(grid.crs, ds.crs, *grid.bounds, densify_pts=21)
    win = from_bounds(*b, transform=ds.transform)
    c0, r0 = max(0, math.floor(win.col_off) - margin_px), max(0, math.floor(win.row_off) - margin_px)
    c1 = min(ds.width, math.ceil(win.col_off + win.width) + margin_px)
    r1 = min(ds.height, math.ceil(win.row_off + win.height) + margin_px)
    if c1 <= c0 or r1 <= r0:
        raise GosBuildError(f"{what}: the asset does not overlap the AOI")
    return Window(c0, r0, c1 - c0, r1 - r0)


def fetch_window(what: str, href: str, grid: Grid, dest: Path, margin_px: int = MARGIN_PX) -> dict:
    """Read the window of a COG over the grid (+ ``margin_px`` of its own pixels) into ``dest`` (GeoTIFF).

    Returns the cache record: path, bytes, sha256, source URL (public), window, bytes fetched (the COG tiles
    read) and the whole asset's size. A cached file whose record matches is kept without a request.
    """
    import numpy as np
    import rasterio

    url = "/vsicurl/" + href
    with rasterio.Env(**_gdal_env()):
        def read():
            with rasterio.open(url) as ds:
                window = aoi_window(grid, ds, margin_px, what)
                c0, r0 = int(window.col_off), int(window.row_off)
                c1, r1 = c0 + int(window.width), r0 + int(window.height)
                key = {"source": public_url(href), "window": [c0, r0, c1 - c0, r1 - r0]}
                old = cached_record(dest, key)
                if old is not None:
                    return None, old, None
                bh, bw = ds.block_shapes[0]
                fetched = sum(ds.block_size(1, i, j) for i in range(r0 // bh, (r1 - 1) // bh + 1)
                              for j in range(c0 // bw, (c1 - 1) // bw + 1))
                data = ds.read(1, window=window)
                meta = dict(crs=ds.crs, transform=ds.window_transform(window), nodata=ds.nodata,
                            scale=ds.scales[0], offset=ds.offsets[0], lattice=ds.transform, width=ds.width,
                            height=ds.height, dtype=ds.dtypes[0], window=(c0, r0))
                return data, dict(key, fetched_bytes=int(fetched)), meta

        data, record, meta = retrying(what, href, read)
    if data is None:
        log.info("%s: cached %s", what, dest)
        return dict(record, cached=True)
    return store_window(what, dest, np.asarray(data), meta, record)


def cached_record(dest: Path, key: dict) -> dict | None:
    """The cache record of ``dest`` if its window, its VRT and its record are there and the record's ``key``
    fields (source, window) and sha256 match; else None (fetch it)."""
    record_path = dest.with_suffix(".json")
    if record_path.exists() and dest.exists() and dest.with_suffix(".vrt").exists():
        old = json.loads(record_path.read_text(encoding="utf-8"))
        if {k: old.get(k) for k in key} == key and old.get("sha256") == sha256_file(dest):
            return old
    return None


def store_window(what: str, dest: Path, data, meta: dict, record: dict) -> dict:
    """Write a fetched window: ``dest`` (GeoTIFF; scale/offset tags if ``meta`` has them), the lattice VRT
    beside it (:func:`lattice_vrt`) and the cache record (``record`` + path, bytes, sha256), atomically."""
    import rasterio

    from ..io import atomic_path, write_geotiff

    write_geotiff(dest, data, meta["crs"], meta["transform"], meta["nodata"], [what])
    if meta.get("scale") not in (None, 1.0) or meta.get("offset") not in (None, 0.0):
        with rasterio.open(dest, "r+") as ds:
            ds.scales, ds.offsets = (meta["scale"],), (meta["offset"],)
    view = dest.with_suffix(".vrt")
    with atomic_path(view) as tmp:
        Path(tmp).write_text(lattice_vrt(dest.name, data.shape, meta), encoding="utf-8")
    record = dict(record, path=str(view), data=str(dest), bytes=dest.stat().st_size, sha256=sha256_file(dest))
    with atomic_path(dest.with_suffix(".json")) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=1, sort_keys=True), encoding="utf-8")
    log.info("%s: %d x %d px window, %.1f kB fetched -> %s", what, data.shape[1], data.shape[0],
             record["fetched_bytes"] / 1024, dest)
    return dict(record, cached=False)


def lattice_vrt(data_name: str, shape: tuple[int, int], meta: dict) -> str:
    """A VRT showing the cached window where it lies in the whole asset: the asset's own size and
    geotransform (to the last bit), nodata elsewhere. Reading through it gives the stages the same pixel
    coordinates, hence the same resampled values, as reading the asset itself."""
    from xml.sax.saxutils import escape

    t = meta["lattice"]
    gdal_type = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "float32": "Float32", "float64": "Float64",
                 "int32": "Int32", "uint32": "UInt32"}[meta["dtype"]]
    nodata = f"    <NoDataValue>{meta['nodata']!r}</NoDataValue>\n" if meta["nodata"] is not None else ""
    h, w = shape
    c0, r0 = meta["window"]
    return (f'<VRTDataset rasterXSize="{meta["width"]}" rasterYSize="{meta["height"]}">\n'
            f"  <SRS>{escape(meta['crs'].to_wkt())}</SRS>\n"
            f"  <GeoTransform>{t.c!r}, {t.a!r}, {t.b!r}, {t.f!r}, {t.d!r}, {t.e!r}</GeoTransform>\n"
            f'  <VRTRasterBand dataType="{gdal_type}" band="1">\n{nodata}'
            f"    <SimpleSource>\n"
            f'      <SourceFilename relativeToVRT="1">{escape(data_name)}</SourceFilename>\n'
            f"      <SourceBand>1</SourceBand>\n"
            f'      <SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>\n'
            f'      <DstRect xOff="{c0}" yOff="{r0}" xSize="{w}" ySize="{h}"/>\n'
            f"    </SimpleSource>\n  </VRTRasterBand>\n</VRTDataset>\n")


def cache_dir(config: dict) -> Path:
    """``resources/<aoi>/cache``: where fetched windows are kept (relative to the working directory)."""
    return Path("resources") / config["aoi"]["name"] / "cache"


def item_record(item) -> dict:
    d = item.to_dict(transform_hrefs=False)
    for asset in d.get("assets", {}).values():
        asset["href"] = public_url(asset["href"])
    d["links"] = [dict(link, href=public_url(link["href"])) for link in d.get("links", []) if "href" in link]
    return d


def asset_size(item, key: str) -> int | None:
    size = item.assets[key].extra_fields.get("file:size")
    return int(size) if size is not None else None


def stac_section(stac: dict, items: list, records: list[dict]) -> dict:
    fetched = sum(r.get("fetched_bytes", 0) for r in records if not r.get("cached"))
    whole = sum(r.get("whole_bytes") or 0 for r in records)
    log.info("STAC %s: %d item(s), %.2f MB of COG tiles fetched (whole assets: %.2f MB)", stac["collection"],
             len(items), fetched / 1e6, whole / 1e6)
    return {"api": public_url(stac["api"]), "collection": stac["collection"],
            "query": {k: stac.get(k) for k in ("datetime", "max_cloud", "ids") if stac.get(k) is not None},
            "items": [{"id": i.id, "datetime": i.properties.get("datetime"),
                       "processing_baseline": i.properties.get("s2:processing_baseline"),
                       "cloud_cover": i.properties.get("eo:cloud_cover")} for i in items],
            "item_json": [item_record(i) for i in items], "cache": records,
            "fetched_bytes": fetched, "whole_asset_bytes": whole}
