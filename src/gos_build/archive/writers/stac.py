"""A STAC catalogue of the chips: ``dataset/stac/collection.json`` and one Item per chip (pystac).

The Collection holds the AOI's extent, the date of the imagery, the licence, the providers, summaries of
classes and splits, and links to the datacard and the figures. Each Item is one chip: its footprint
(WGS84), its nine layers as assets (hrefs relative, so the folder can move), its class and split.
Extensions: label (``label:tasks: [classification]``, ``label:classes`` with English and Chinese names),
ml-aoi (``ml-aoi:split``, asset ``ml-aoi:role``), projection (code, shape, transform), raster (data type,
nodata, unit, scale) and file (size, sha256 multihash). Written after the GeoTIFF tree, from its files.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path

from ...io import sha256_file
from ...layout import LAYERS, MODALITIES, SPLITS, chip_path

log = logging.getLogger(__name__)

NAME = "stac"
EXTENSIONS = {
    "label": "https://stac-extensions.github.io/label/v1.0.1/schema.json",
    "ml-aoi": "https://stac-extensions.github.io/ml-aoi/v0.2.0/schema.json",
    "proj": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "file": "https://stac-extensions.github.io/file/v2.1.0/schema.json",
}
_DTYPES = {"uint16": "uint16", "float32": "float32", "uint8": "uint8"}


def _sha256_multihash(path: Path, digest=sha256_file) -> str:
    return "1220" + digest(path)  # multihash: sha2-256 (0x12), 32 bytes (0x20)


def sensing_datetime(provenance: dict) -> dt.datetime:
    """The imagery's acquisition time (from the product or STAC item); 1970-01-01 if none is known."""
    s2 = provenance.get("sentinel2") or {}
    for item in (s2.get("stac") or {}).get("items", []):
        if item.get("datetime"):
            return dt.datetime.fromisoformat(item["datetime"].replace("Z", "+00:00"))
    for p in s2.get("products", []):
        m = re.search(r"_(\d{8}T\d{6})", p.get("name", ""))
        if m:
            return dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=dt.timezone.utc)
    return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def gather(shard_zips, chips: list[dict], dest: Path, context: dict) -> None:
    """Write ``dest/stac`` for ``chips`` (the tree's GeoTIFFs are already in ``dest``)."""
    import pystac
    from pyproj import Transformer

    classes = context["classes"]
    crs = context["crs"]
    size = context["chip_size"]
    res = context.get("resolution", 10.0)
    cfg = context.get("config", {})
    name = cfg.get("aoi", {}).get("name", "dataset")
    when = sensing_datetime(context.get("provenance", {}))
    to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    dest = Path(dest).resolve()  # pystac makes hrefs relative from absolute paths
    root = dest / NAME
    items = []
    lon_all, lat_all = [], []
    label_classes = [{"name": "class", "classes": [c["name"] for _, c in sorted(classes.items())]}]
    for c in chips:
        x0, y0 = c["x"], c["y"]
        x1, y1 = x0 + size * res, y0 + size * res
        lon, lat = to_ll.transform([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0])
        lon, lat = [round(v, 7) for v in lon], [round(v, 7) for v in lat]
        lon_all += lon
        lat_all += lat
        cname = classes[c["label"]]["name"]
        item = pystac.Item(
            id=c["id"], geometry={"type": "Polygon", "coordinates": [list(map(list, zip(lon, lat)))]},
            bbox=[min(lon), min(lat), max(lon), max(lat)], datetime=when,
            properties={"label:description": "genesis class of the chip (majority of the interpretation polygons)",
                        "label:type": "raster", "label:properties": None, "label:tasks": ["classification"],
                        "label:classes": label_classes, "ml-aoi:split": c["split"],
                        "gos_build:class": cname, "gos_build:class_id": c["label"],
                        "gos_build:class_zh": classes[c["label"]].get("name_zh", ""),
                        "proj:code": crs, "proj:shape": [size, size],
                        "proj:transform": [res, 0.0, x0, 0.0, -res, y1]},
            stac_extensions=list(EXTENSIONS.values()))
        for m in MODALITIES:
            layer = LAYERS[m]
            rel = chip_path(m, cname, c["id"])
            path = dest / rel
            bands = [{"name": b, "data_type": _DTYPES[layer.dtype], "nodata": layer.nodata, "unit": layer.units}
                     for b in layer.bands]
            if m == "rgb":
                for b in bands:
                    b["scale"] = 0.0001  # reflectance = DN x 0.0001
            item.add_asset(m, pystac.Asset(
                href=str(path), media_type=pystac.MediaType.GEOTIFF, roles=["data"], title=layer.description,
                extra_fields={"raster:bands": bands, "file:size": path.stat().st_size,
                              "file:checksum": _sha256_multihash(path, context.get("digest", sha256_file)),
                              "ml-aoi:role": "feature"}))
        items.append(item)
    counts = {s: sum(1 for c in chips if c["split"] == s) for s in SPLITS}
    aoi_bbox = [min(lon_all), min(lat_all), max(lon_all), max(lat_all)] if chips else [0, 0, 0, 0]
    collection = pystac.Collection(
        id=f"gos-build-{name}",
        description=(f"GOS10m-style geomorphology scene-classification chips of '{name}': {size} x {size} px at "
                     f"{res:g} m, layers {', '.join(MODALITIES)}; one Item per chip."),
        extent=pystac.Extent(pystac.SpatialExtent([aoi_bbox]), pystac.TemporalExtent([[when, when]])),
        license="CC-BY-4.0", title=f"gos-build {name}",
        providers=[pystac.Provider("European Space Agency (Copernicus Sentinel-2)", roles=["producer", "licensor"]),
                   pystac.Provider("NASA / USGS (SRTM) or the DEM's producer", roles=["producer"]),
                   pystac.Provider("gos-build", roles=["processor"])],
        summaries=pystac.Summaries({"label:classes": label_classes, "ml-aoi:split": list(SPLITS),
                                    "gos_build:chips_per_split": [counts],
                                    "gos_build:classes": [{"id": k, **{kk: v for kk, v in c.items() if kk != "values"}}
                                                          for k, c in sorted(classes.items())]}),
        stac_extensions=[EXTENSIONS["label"], EXTENSIONS["ml-aoi"]])
    collection.add_link(pystac.Link("describedby", "../datacard.md", media_type="text/markdown",
                                    title="datacard: provenance, counts, statistics"))
    collection.add_link(pystac.Link("preview", "../../figures/overview.png", media_type="image/png",
                                    title="AOI overview"))
    collection.add_items(items)
    collection.normalize_hrefs(str(root))
    collection.make_all_asset_hrefs_relative()
    collection.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    log.info("stac: collection with %d items -> %s", len(items), root)
