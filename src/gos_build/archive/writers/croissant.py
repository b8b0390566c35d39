"""GeoCroissant metadata: ``croissant.json`` (Croissant 1.1 + GeoCroissant 1.0) and the ``chips.csv`` it reads.

``chips.csv`` has one row per chip: id, class id and name, split, south-west corner (grid CRS, m) and
the relative path of each layer's GeoTIFF. ``croissant.json`` describes it as the record set
``chips`` and the chip GeoTIFFs as a FileSet, with the GeoCroissant fields a GeoAI loader needs:
CRS, spatial resolution, band configuration, sampling strategy. Load it with
``mlcroissant.Dataset("croissant.json").records("chips")``. No wall-clock time is written: the
dataset's date is the imagery's.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

from ...bands import BANDS, sentinel2_bands
from ...layout import CLASS_ID, CLASS_ID_MEANING, LABEL, LABEL_MEANING, chip_path, label_of


def spectral_bands(layers) -> list[tuple[str, str]]:
    """(``<layer>:<band>`` name, Sentinel-2 band) of every band of the layers that is a Sentinel-2 band, in the
    layers' order: rgb's red, green, blue (B04 B03 B02), then s2's and the periods' (:func:`sentinel2_bands`)."""
    out = []
    for m, layer in layers.items():
        out += [(f"{m}:{b}", s2) for b, s2 in zip(layer.bands, sentinel2_bands(layer.bands) or ())]
    return out
CSV_FILE = "chips.csv"
JSON_FILE = "croissant.json"

CONTEXT = {
    "@language": "en", "@vocab": "https://schema.org/", "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/", "geocr": "http://mlcommons.org/croissant/geo/",
    "rai": "http://mlcommons.org/croissant/RAI/", "dct": "http://purl.org/dc/terms/",
    "citeAs": "cr:citeAs", "column": "cr:column", "conformsTo": "dct:conformsTo", "data": {"@id": "cr:data",
    "@type": "@json"}, "dataType": {"@id": "cr:dataType", "@type": "@vocab"}, "examples": {"@id": "cr:examples",
    "@type": "@json"}, "extract": "cr:extract", "field": "cr:field", "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject", "fileSet": "cr:fileSet", "format": "cr:format", "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset", "jsonPath": "cr:jsonPath", "key": "cr:key", "md5": "cr:md5",
    "parentField": "cr:parentField", "path": "cr:path", "recordSet": "cr:recordSet", "references": "cr:references",
    "regex": "cr:regex", "repeated": "cr:repeated", "replace": "cr:replace", "separator": "cr:separator",
    "source": "cr:source", "subField": "cr:subField", "transform": "cr:transform",
    "samplingRate": "cr:samplingRate", "equivalentProperty": "cr:equivalentProperty",
}


def rows(chips: list[dict], classes: dict, layers):
    """``chips.csv``'s rows, the header first (a generator: one row in memory at a time)."""
    yield ["chip_id", LABEL, CLASS_ID, "class", "split", "x", "y", "boundary_m", *(f"{m}_path" for m in layers)]
    label = label_of(classes)
    for c in chips:
        name = classes[c["class_id"]]["name"]
        b = c.get("boundary_m")
        yield [c["id"], label[c["class_id"]], c["class_id"], name, c["split"], f"{c['x']:.0f}", f"{c['y']:.0f}",
               "" if b is None else f"{b:.2f}", *(chip_path(m, name, c["id"]) for m in layers)]


class _HashedFile:
    """Text in, UTF-8 bytes out to ``raw``, their sha256 kept (``sha256``): csv's writer's file."""

    def __init__(self, raw):
        self.raw, self.sha256 = raw, hashlib.sha256()

    def write(self, text: str) -> None:
        data = text.encode("utf-8")
        self.sha256.update(data)
        self.raw.write(data)


def finish(chips: list[dict], dest: Path, context: dict, notes: list) -> None:
    """Write ``chips.csv`` (a row at a time, hashed as it goes) and ``croissant.json`` into the dataset folder
    ``dest`` (in the last job)."""
    classes = context["classes"]
    with open(dest / CSV_FILE, "wb") as raw:
        sink = _HashedFile(raw)
        csv.writer(sink, lineterminator="\n").writerows(rows(chips, classes, context["layers"]))
    (dest / JSON_FILE).write_text(json.dumps(document(chips, context, sink.sha256.hexdigest()), indent=2,
                                             ensure_ascii=False) + "\n", encoding="utf-8")


def document(chips: list[dict], context: dict, csv_sha256: str) -> dict:
    cfg = context.get("config", {})
    aoi = cfg.get("aoi", {})
    prov = context.get("provenance", {})
    name = aoi.get("name", "dataset")
    classes = context["classes"]
    res = context.get("resolution", 10)
    size = context.get("chip_size", 64)
    products = (prov.get("sentinel2") or {}).get("products", [])
    date = _sensing_date(products)
    split = cfg.get("split", {})
    fields = [("chip_id", "sc:Text", "chip id: its south-west corner in the grid CRS, metres"),
              (LABEL, "sc:Integer", LABEL_MEANING), (CLASS_ID, "sc:Integer", CLASS_ID_MEANING),
              ("class", "sc:Text", "class name"),
              ("split", "sc:Text", "train, val or test"), ("x", "sc:Float", "south-west corner x, m"),
              ("y", "sc:Float", "south-west corner y, m"),
              ("boundary_m", "sc:Float", "distance from the chip to the nearest class boundary of the interpretation "
               "polygons, m (0: the chip crosses one)")]
    layers = context["layers"]
    fields += [(f"{m}_path", "sc:Text", f"{layer.description} ({layer.units_text()}"
                + (": " + ", ".join(f"{v} {n}" for v, n, _ in layer.classes) if layer.classes else "")
                + "): GeoTIFF path in the dataset") for m, layer in layers.items()]
    doc = {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "name": f"gos-build-{name}",
        "description": (f"GOS10m-style multimodal geomorphology scene-classification chips of the AOI '{name}': "
                        f"{size} x {size} px at {res:g} m, {len(chips)} chips, {len(classes)} genesis classes "
                        f"({', '.join(c['name'] for _, c in sorted(classes.items()))}); layers "
                        f"{', '.join(layers)}. Built by gos-build from Sentinel-2 L2A and a DEM."),
        "conformsTo": ["http://mlcommons.org/croissant/1.1", "http://mlcommons.org/croissant/geo/1.0"],
        "license": "https://creativecommons.org/licenses/by/4.0/",
        "url": "https://github.com/gos-build/gos-build",
        "version": "1.0.0",
        "citeAs": "Ouyang & Chen (2024), GOS10m: a multimodal dataset for geomorphological scene classification; "
                  "chips regenerated with gos-build.",
        "keywords": ["geomorphology", "scene classification", "Sentinel-2", "DEM", "terrain parameters"],
        "geocr:coordinateReferenceSystem": context.get("crs"),
        "geocr:spatialResolution": {"@type": "QuantitativeValue", "value": res, "unitText": "m"},
        "geocr:bandConfiguration": {"@type": "geocr:BandConfiguration",
                                    "geocr:totalBands": sum(len(layer.bands) for layer in layers.values()),
                                    "geocr:bandNamesList": [f"{m}:{b}" if len(layer.bands) > 1 else m
                                                           for m, layer in layers.items() for b in layer.bands]},
        "geocr:spectralBandMetadata": [
            {"@type": "geocr:SpectralBand", "name": name,
             "geocr:centerWavelength": {"@type": "QuantitativeValue", "value": BANDS[band].centre_nm, "unitText": "nm"},
             "geocr:bandwidth": {"@type": "QuantitativeValue", "value": BANDS[band].fwhm_nm, "unitText": "nm"}}
            for name, band in spectral_bands(layers)],
        "geocr:samplingStrategy": (f"every {size} x {size} px cell of a global chip lattice fully inside the AOI, "
                                   f"kept if purity >= {cfg.get('chips', {}).get('min_purity')}, nodata <= "
                                   f"{cfg.get('chips', {}).get('max_nodata')}, cloud <= "
                                   f"{cfg.get('chips', {}).get('max_cloud')}; split by "
                                   f"{split.get('method')} of {split.get('block_chips')} x "
                                   f"{split.get('block_chips')} chips (seed {split.get('seed')})"),
        "distribution": [
            {"@type": "cr:FileObject", "@id": "chips-index", "name": "chips-index", "contentUrl": CSV_FILE,
             "encodingFormat": "text/csv", "sha256": csv_sha256, "description": "one row per chip"},
            {"@type": "cr:FileSet", "@id": "chip-geotiffs", "name": "chip-geotiffs", "encodingFormat": "image/tiff",
             "includes": "*/*/*.tif", "description": "one GeoTIFF per chip and layer: <layer>/<class>/<chip_id>.tif"},
        ],
        "recordSet": [{
            "@type": "cr:RecordSet", "@id": "chips", "name": "chips", "key": {"@id": "chips/chip_id"},
            "description": "the chips: id, class, split and the GeoTIFF of each layer",
            "field": [{"@type": "cr:Field", "@id": f"chips/{f}", "name": f, "description": d, "dataType": t,
                       "source": {"fileObject": {"@id": "chips-index"}, "extract": {"column": f}}}
                      for f, t, d in fields]}],
    }
    if date:
        doc["datePublished"] = date
        doc["temporalCoverage"] = date
    bbox = aoi.get("bbox")
    if bbox:
        doc["spatialCoverage"] = {"@type": "Place", "geo": {"@type": "GeoShape",
                                                            "box": f"{bbox[1]} {bbox[0]} {bbox[3]} {bbox[2]}"}}
    return doc


def _sensing_date(products: list[dict]) -> str | None:
    """The imagery's date (YYYY-MM-DD) from the product names (..._MSIL2A_20201026T...), if any."""
    import re

    for p in products:
        m = re.search(r"_(\d{8})T\d{6}", p.get("name", ""))
        if m:
            d = m.group(1)
            return f"{d[:4]}-{d[4:6]}-{d[6:]}"
    return None
