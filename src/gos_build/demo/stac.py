"""The demo inputs as a STAC API: Earth-Search-v1-like items with Cloud-Optimized GeoTIFF assets, on 127.0.0.1.

:func:`write_catalogue` turns a demo-inputs folder into ``<out>/``::

    data/sentinel-2-l2a/<item id>/{B01,...,B12,SCL}.tif   COGs of the SAFE's bands (DN as in the JP2)
    data/cop-dem-glo-30/<item id>/DEM.tif                 COGs of the SRTM tiles (float32 metres)
    items/<collection>/<item id>.json                     STAC items, asset hrefs under {base}/data/...
    collections/<collection>.json
    polygons.gpkg                                         the interpretation polygons (not in the catalogue)

Sentinel-2 items look like Earth Search v1 ``sentinel-2-l2a``: assets ``red``
``green`` ``blue`` ``scl`` and the other bands' (``coastal``, ``rededge1``-``3``, ``nir`` = B08, ``nir08`` =
B8A, ``nir09``, ``swir16``, ``swir22``) with ``eo:bands`` and ``raster:bands`` (scale
0.0001, offset -0.1 from baseline 04.00 on, the DN left as in the product),
``s2:processing_baseline``, ``earthsearch:boa_offset_applied``,
``eo:cloud_cover``. DEM items look like ``cop-dem-glo-30`` (asset ``data``).

:class:`StacApi` serves such a folder: the STAC API landing page,
conformance, collections, ``/search`` (GET and POST: collections, ids, bbox,
datetime, ``query`` on ``eo:cloud_cover``) and the files with HTTP range
requests. It listens on 127.0.0.1 only, logs every request, stops after
``max_seconds``, and can inject faults (a status code for the first n
matching requests, or a connection dropped in the middle of a body) for tests.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import rasterio
from rasterio.shutil import copy as rio_copy

from ..bands import BANDS, needed_bands

S2_COLLECTION = "sentinel-2-l2a"
# EOPF Zarr items, as the EOPF Sentinel Zarr Samples Service lays them out: per-band assets (processor 2.x,
# Zarr format 2; ESA's id there is sentinel-2-l2a) and resolution-group assets (3.x, sentinel-2-l2a-zarr3)
EOPF_COLLECTIONS = {"sentinel2_zarr2": "eopf-sentinel-2-l2a", "sentinel2_zarr3": "eopf-sentinel-2-l2a-zarr3"}
DEM_COLLECTION = "cop-dem-glo-30"
_S2_ASSETS = {"red": ("B04", 10, "red", 0.665), "green": ("B03", 10, "green", 0.56),
              "blue": ("B02", 10, "blue", 0.49), "scl": ("SCL", 20, None, None),
              **{b.earth_search: (b.name, b.resolution, b.common_name, round(b.centre_nm / 1000, 3))
                 for b in BANDS.values() if b.earth_search and b.name not in ("B02", "B03", "B04")}}
L2A_BANDS = tuple(b for b in BANDS if b != "B10")  # what the demo's L2A products hold
BASE = "{base}"  # replaced by the server's address in every JSON it serves


def _cog(src_path: str | Path, dest: Path, dtype: str | None = None, nodata=None, scale_offset=None) -> None:
    """Copy one band to a COG (DEFLATE, 512 px blocks, overviews), optionally cast, with scale/offset tags."""
    with rasterio.open(src_path) as src:
        arr = src.read(1)
        profile = dict(driver="GTiff", width=src.width, height=src.height, count=1, crs=src.crs,
                       transform=src.transform, dtype=dtype or arr.dtype, nodata=nodata if nodata is not None
                       else src.nodata)
    tmp = dest.with_suffix(".src.tif")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.write(arr.astype(profile["dtype"]), 1)
        if scale_offset:
            dst.scales, dst.offsets = (scale_offset[0],), (scale_offset[1],)
    rio_copy(tmp, dest, driver="COG", compress="DEFLATE", blocksize=512, overview_resampling="nearest")
    tmp.unlink()


def _footprint_ll(path) -> tuple[dict, list[float]]:
    """(GeoJSON footprint in WGS84, its bbox) of a raster: a file, or an EOPF band (``ZARR:"...":/...``)."""
    from rasterio.warp import transform_geom

    from ..inputs.eopf import open_raster

    with open_raster(str(path)) as ds:
        b = ds.bounds
        ring = [[b.left, b.bottom], [b.right, b.bottom], [b.right, b.top], [b.left, b.top], [b.left, b.bottom]]
        geom = transform_geom(ds.crs, "EPSG:4326", {"type": "Polygon", "coordinates": [ring]}, precision=7)
    xs = [p[0] for p in geom["coordinates"][0]]
    ys = [p[1] for p in geom["coordinates"][0]]
    return geom, [min(xs), min(ys), max(xs), max(ys)]


def write_catalogue(demo: str | Path, out: str | Path) -> dict:
    """Write the STAC catalogue of a demo-inputs folder (see the module docstring); returns a summary."""
    from ..inputs.sentinel2 import discover

    demo, out = Path(demo), Path(out)
    if out.exists():
        shutil.rmtree(out)
    (out / "items").mkdir(parents=True)
    items = {S2_COLLECTION: [], DEM_COLLECTION: [], **{c: [] for c in EOPF_COLLECTIONS.values()}}
    for product in discover([str(p) for p in sorted((demo / "sentinel2").glob("*.SAFE"))], needed_bands(L2A_BANDS)):
        (granule,) = product.granules
        item_id = product.name.removesuffix(".SAFE")
        when = dt.datetime.strptime(item_id.split("_")[2], "%Y%m%dT%H%M%S").replace(tzinfo=dt.timezone.utc)
        offset = product.offsets["B04"] / product.quantification  # -0.1 from baseline 04.00 on, else 0
        assets = {}
        for key, (band, res, common, wavelength) in _S2_ASSETS.items():
            dest = out / "data" / S2_COLLECTION / item_id / f"{band}.tif"
            src = granule.scl if band == "SCL" else granule.bands[band]
            # the radiometry also in the files' own tags, so the same COGs given as local band files agree
            _cog(src, dest, nodata=0, scale_offset=None if band == "SCL" else (1 / product.quantification, offset))
            asset = {"href": f"{BASE}/data/{S2_COLLECTION}/{item_id}/{band}.tif",
                     "type": "image/tiff; application=geotiff; profile=cloud-optimized", "roles": ["data"],
                     "gsd": res, "file:size": dest.stat().st_size}
            if common:
                asset["eo:bands"] = [{"name": band, "common_name": common, "center_wavelength": wavelength}]
                asset["raster:bands"] = [{"nodata": 0, "data_type": "uint16", "bits_per_sample": 15,
                                          "spatial_resolution": res, "scale": 1 / product.quantification,
                                          "offset": offset}]
            else:
                asset["raster:bands"] = [{"nodata": 0, "data_type": "uint8", "spatial_resolution": res}]
            assets[key] = asset
        geom, bbox = _footprint_ll(out / "data" / S2_COLLECTION / item_id / "B04.tif")
        with rasterio.open(out / "data" / S2_COLLECTION / item_id / "B04.tif") as ds:
            epsg = ds.crs.to_epsg()
        items[S2_COLLECTION].append({
            "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": S2_COLLECTION,
            "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                                "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
                                "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
                                "https://stac-extensions.github.io/file/v2.1.0/schema.json"],
            "geometry": geom, "bbox": bbox,
            "properties": {"datetime": when.strftime("%Y-%m-%dT%H:%M:%S.000000Z"), "platform": "sentinel-2b",
                           "constellation": "sentinel-2", "eo:cloud_cover": product.cloud_percent,
                           "s2:processing_baseline": product.baseline, "proj:epsg": epsg,
                           "earthsearch:boa_offset_applied": bool(offset),
                           "s2:product_uri": product.name},
            "links": [], "assets": assets})
    for folder, collection in EOPF_COLLECTIONS.items():
        for product in discover([str(p) for p in sorted((demo / folder).glob("*.zarr"))]):
            items[collection].append(_eopf_item(product, collection, out))
    for hgt in sorted((demo / "srtm").glob("*.hgt")):
        lat, lon = int(hgt.stem[1:3]) * (1 if hgt.stem[0] == "N" else -1), int(hgt.stem[4:7]) * (
            1 if hgt.stem[3] == "E" else -1)
        item_id = (f"Copernicus_DSM_COG_10_{hgt.stem[0]}{abs(lat):02d}_00_{hgt.stem[3]}{abs(lon):03d}_00_DEM")
        dest = out / "data" / DEM_COLLECTION / item_id / "DEM.tif"
        _cog(hgt, dest, dtype="float32", nodata=-32768.0)
        geom, bbox = _footprint_ll(dest)
        items[DEM_COLLECTION].append({
            "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": DEM_COLLECTION,
            "stac_extensions": ["https://stac-extensions.github.io/file/v2.1.0/schema.json"],
            "geometry": geom, "bbox": bbox, "properties": {"datetime": "2021-04-22T00:00:00Z", "gsd": 30},
            "links": [], "assets": {"data": {"href": f"{BASE}/data/{DEM_COLLECTION}/{item_id}/DEM.tif",
                                             "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                                             "roles": ["data"], "file:size": dest.stat().st_size}}})
    for collection, feats in items.items():
        (out / "items" / collection).mkdir(parents=True, exist_ok=True)
        for item in feats:
            (out / "items" / collection / f"{item['id']}.json").write_text(json.dumps(item, indent=1),
                                                                          encoding="utf-8")
    (out / "collections").mkdir()
    for collection in items:
        (out / "collections" / f"{collection}.json").write_text(json.dumps(
            {"type": "Collection", "stac_version": "1.0.0", "id": collection, "description": f"demo {collection}",
             "license": "proprietary", "links": [],
             "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [[None, None]]}}}),
            encoding="utf-8")
    shutil.copy(demo / "polygons.gpkg", out / "polygons.gpkg")
    return {k: [i["id"] for i in v] for k, v in items.items()}


def _eopf_item(product, collection: str, out: Path) -> dict:
    """A STAC item of one demo EOPF product, copied under ``data/<collection>/``: per-band assets for the
    format-2 layout, resolution-group assets (and the whole ``product``) for format 3."""
    from ..inputs.eopf import REFLECTANCE, REFLECTANCE_10M, SCL_20M

    name = Path(product.source).name
    shutil.copytree(product.source, out / "data" / collection / name)
    base = f"{BASE}/data/{collection}/{name}"
    v3 = product.format.endswith("v3")
    mtype = "application/vnd.zarr; version=3" if v3 else "application/vnd+zarr"
    scale, offset = 1 / product.quantification, product.offsets["B04"] / product.quantification
    if v3:
        assets = {"SR_10m": {"href": f"{base}/{REFLECTANCE_10M}", "type": mtype, "roles": ["data", "reflectance"],
                             "gsd": 10},
                  **{f"SR_{r}m": {"href": f"{base}/{REFLECTANCE}/r{r}m", "type": mtype, "roles": ["data", "reflectance"],
                                  "gsd": r} for r in (20, 60)},
                  "SCL_20m": {"href": f"{base}/{SCL_20M}", "type": mtype, "roles": ["data"], "gsd": 20},
                  "product": {"href": base, "type": mtype, "roles": ["data", "metadata"], "zarr:consolidated": True}}
    else:
        assets = {f"{b}_10m": {"href": f"{base}/{REFLECTANCE_10M}/{b.lower()}", "type": mtype, "roles": ["data"],
                               "gsd": 10, "raster:bands": [{"scale": scale, "offset": offset, "nodata": 0}]}
                  for b in ("B02", "B03", "B04")}
        for band in L2A_BANDS:
            res = BANDS[band].resolution
            if res > 10:
                assets[f"{band}_{res}m"] = {"href": f"{base}/{REFLECTANCE}/r{res}m/{band.lower()}", "type": mtype,
                                            "roles": ["data"], "gsd": res,
                                            "raster:bands": [{"scale": scale, "offset": offset, "nodata": 0}]}
        assets["SCL_20m"] = {"href": f"{base}/{SCL_20M}", "type": mtype, "roles": ["data"], "gsd": 20}
    (granule,) = product.granules
    geom, bbox = _footprint_ll(granule.bands["B04"])
    when = dt.datetime.fromisoformat(product.datetime).astimezone(dt.timezone.utc)
    return {"type": "Feature", "stac_version": "1.0.0", "id": product.name, "collection": collection,
            "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                                "https://stac-extensions.github.io/projection/v1.1.0/schema.json"],
            "geometry": geom, "bbox": bbox,
            "properties": {"datetime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "eo:cloud_cover": product.cloud_percent,
                           "processing:version": product.processor_version, "product:type": "S02MSIL2A",
                           "proj:code": granule.crs, "platform": "sentinel-2b", "constellation": "sentinel-2"},
            "links": [{"rel": "via", "href": f"https://catalogue.dataspace.copernicus.eu/stac/collections/"
                                              f"SENTINEL-2/items/{product.name}.SAFE", "type": "application/json",
                       "title": "the same product's SAFE item (Copernicus Data Space)"}],
            "assets": assets}


def _in_time(value: str, item_time: str) -> bool:
    t = dt.datetime.fromisoformat(item_time.replace("Z", "+00:00"))
    if "/" in value:
        a, b = value.split("/")
        lo = dt.datetime.min.replace(tzinfo=dt.timezone.utc) if a in ("", "..") else _parse_time(a, False)
        hi = dt.datetime.max.replace(tzinfo=dt.timezone.utc) if b in ("", "..") else _parse_time(b, True)
        return lo <= t <= hi
    return _parse_time(value, False) <= t <= _parse_time(value, True)


def _parse_time(text: str, end: bool) -> dt.datetime:
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        day = dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)
        return day + dt.timedelta(days=1, microseconds=-1) if end else day
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


class StacApi:
    """A STAC API over a :func:`write_catalogue` folder, on 127.0.0.1 (see the module docstring).

    ``faults``: list of dicts ``{"path": regex, "status": 503 | 404 | ..., "times": n}`` or
    ``{"path": regex, "drop": True, "times": n}`` (send half the body, then close the connection).
    ``requests``: every request seen, as ``(client address, method, path, range header, bytes sent,
    Authorization header)``.
    """

    def __init__(self, root: str | Path, faults: list[dict] | None = None, max_seconds: float = 600,
                 max_requests: int = 20000):
        self.root = Path(root)
        self.faults = [dict(f, seen=0) for f in (faults or [])]
        self.requests: list[tuple] = []
        self.max_requests = max_requests
        self.items = {}
        for path in sorted((self.root / "items").glob("*/*.json")):
            self.items[(path.parent.name, path.stem)] = json.loads(path.read_text(encoding="utf-8"))  # ids are
            # unique per collection: the COG and the EOPF items of one product share it
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._timer = threading.Timer(max_seconds, self.stop)  # bounded lifetime, whatever the caller does
        self._timer.daemon = True

    def __enter__(self) -> "StacApi":
        self._thread.start()
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._timer.cancel()
        self.server.shutdown()
        self.server.server_close()

    # -- the API ------------------------------------------------------------------------------------------------
    def _json(self, obj) -> bytes:
        return json.dumps(obj).replace(BASE, self.url).encode("utf-8")

    def landing(self) -> dict:
        u = self.url
        return {"type": "Catalog", "stac_version": "1.0.0", "id": "gos-build-demo", "description": "demo STAC API",
                "conformsTo": ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search",
                               "https://api.stacspec.org/v1.0.0/item-search#query",
                               "https://api.stacspec.org/v1.0.0/collections"],
                "links": [{"rel": "self", "href": u + "/", "type": "application/json"},
                          {"rel": "root", "href": u + "/", "type": "application/json"},
                          {"rel": "conformance", "href": u + "/conformance", "type": "application/json"},
                          {"rel": "data", "href": u + "/collections", "type": "application/json"},
                          {"rel": "search", "href": u + "/search", "type": "application/geo+json", "method": "GET"},
                          {"rel": "search", "href": u + "/search", "type": "application/geo+json",
                           "method": "POST"}]}

    def search(self, params: dict) -> dict:
        out = []
        collections = params.get("collections")
        ids = params.get("ids")
        bbox = params.get("bbox")
        when = params.get("datetime")
        query = params.get("query") or {}
        for item in self.items.values():
            if collections and item["collection"] not in collections:
                continue
            if ids and item["id"] not in ids:
                continue
            if bbox:
                b = item["bbox"]
                if b[0] > bbox[2] or b[2] < bbox[0] or b[1] > bbox[3] or b[3] < bbox[1]:
                    continue
            if when and not _in_time(when, item["properties"]["datetime"]):
                continue
            ok = True
            for prop, ops in query.items():
                v = item["properties"].get(prop)
                for op, ref in ops.items():
                    ok &= v is not None and {"lte": v <= ref, "lt": v < ref, "gte": v >= ref, "gt": v > ref,
                                             "eq": v == ref}.get(op, False)
            if ok:
                out.append(item)
        out.sort(key=lambda i: (i["id"], i["collection"]))
        return {"type": "FeatureCollection", "features": out, "numberReturned": len(out),
                "links": [{"rel": "root", "href": self.url + "/"}]}

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet: requests are recorded in api.requests
                pass

            def _record(self, sent: int) -> None:
                with api._lock:
                    api.requests.append((self.client_address[0], self.command, self.path,
                                         self.headers.get("Range"), sent, self.headers.get("Authorization")))

            def _fault(self) -> dict | None:
                with api._lock:
                    if len(api.requests) >= api.max_requests:
                        return {"status": 429}
                    for f in api.faults:
                        if re.search(f["path"], self.path) and f["seen"] < f.get("times", 1):
                            f["seen"] += 1
                            return f
                return None

            def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None, drop=False) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command == "HEAD":
                    self._record(0)
                    return
                if drop:  # half the body, then the connection goes away
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self._record(len(body) // 2)
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)
                self._record(len(body))

            def _route(self, params: dict | None) -> None:
                fault = self._fault()
                if fault and "status" in fault:
                    self._send(fault["status"], b'{"code": "injected"}', "application/json",
                               {"Retry-After": "0"})
                    return
                drop = bool(fault and fault.get("drop"))
                url = urlparse(self.path)
                path = url.path.rstrip("/") or "/"
                if path == "/":
                    return self._send(200, api._json(api.landing()), "application/json", drop=drop)
                if path == "/conformance":
                    return self._send(200, api._json({"conformsTo": api.landing()["conformsTo"]}),
                                      "application/json")
                if path == "/collections":
                    cols = [json.loads(p.read_text()) for p in sorted((api.root / "collections").glob("*.json"))]
                    return self._send(200, api._json({"collections": cols, "links": []}), "application/json")
                m = re.fullmatch(r"/collections/([\w.-]+)", path)
                if m and (api.root / "collections" / f"{m.group(1)}.json").exists():
                    return self._send(200, (api.root / "collections" / f"{m.group(1)}.json").read_bytes(),
                                      "application/json")
                m = re.fullmatch(r"/collections/([\w.-]+)/items/([\w.-]+)", path)
                if m and (m.group(1), m.group(2)) in api.items:
                    return self._send(200, api._json(api.items[(m.group(1), m.group(2))]), "application/geo+json")
                if path == "/search":
                    if params is None:
                        q = parse_qs(url.query)
                        params = {k: v[0] for k, v in q.items()}
                        for key in ("collections", "ids"):
                            if key in params:
                                params[key] = params[key].split(",")
                        if "bbox" in params:
                            params["bbox"] = [float(v) for v in params["bbox"].split(",")]
                        if "query" in params:
                            params["query"] = json.loads(params["query"])
                    return self._send(200, api._json(api.search(params)), "application/geo+json", drop=drop)
                if path.startswith("/data/"):
                    f = (api.root / path.lstrip("/")).resolve()
                    if api.root.resolve() not in f.parents or not f.is_file():
                        return self._send(404, b"not found", "text/plain")
                    return self._file(f, drop)
                return self._send(404, b'{"code": "NotFound"}', "application/json")

            def _file(self, f: Path, drop: bool) -> None:
                size = f.stat().st_size
                rng = self.headers.get("Range")
                if rng:
                    m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
                    if not m:
                        return self._send(416, b"", "text/plain")
                    start = int(m.group(1))
                    end = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
                    if start >= size:
                        return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
                    with open(f, "rb") as fh:
                        fh.seek(start)
                        body = fh.read(end - start + 1)
                    return self._send(206, body, "image/tiff", {"Content-Range": f"bytes {start}-{end}/{size}",
                                                                "Accept-Ranges": "bytes"}, drop=drop)
                return self._send(200, f.read_bytes(), "image/tiff", {"Accept-Ranges": "bytes"}, drop=drop)

            def do_GET(self):
                self._route(None)

            def do_HEAD(self):
                self._route(None)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                try:
                    params = json.loads(self.rfile.read(n) or b"{}")
                except ValueError:
                    return self._send(400, b'{"code": "BadRequest"}', "application/json")
                self._route(params)

        return Handler


def write_demo_stac(bbox, out: str | Path, **demo_kwargs) -> dict:
    """``gos-build demo-inputs --format stac``: demo inputs for ``bbox``, then their STAC catalogue in ``out``."""
    from . import demo_inputs

    out = Path(out)
    raw = out / "raw"
    # every Sentinel-2 form: the catalogue serves COG items (from the SAFE) and EOPF Zarr items of both layouts
    demo_kwargs["sentinel2_formats"] = ("safe", "zarr2", "zarr3")
    demo_inputs(bbox, raw, **demo_kwargs)
    summary = write_catalogue(raw, out / "catalogue")
    return summary


__all__ = ["StacApi", "write_catalogue", "write_demo_stac", "S2_COLLECTION", "DEM_COLLECTION"]
