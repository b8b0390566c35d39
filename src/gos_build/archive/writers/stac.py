"""A STAC catalogue of the chips: ``dataset/stac/collection.json`` and one Item per chip (pystac).

The Collection holds the AOI's extent, the date of the imagery, the licence, the providers, summaries of
classes and splits, and links to the datacard and the figures. Each Item is one chip: its footprint
(WGS84), its layers as assets (hrefs relative, so the folder can move), its class and split.
Written as the JSON pystac writes for such objects, without building them in pystac (see :func:`gather`).
Extensions: label, as the extension models a tile classification: ``label:type: vector``, and a label
asset ``labels`` (``stac/<chip_id>/labels.geojson``, a FeatureCollection of one Feature, the chip's
footprint, whose property ``class`` holds the class name; ``label:properties: [class]``,
``label:classes``); ml-aoi (``ml-aoi:split`` in the extension's words -- ``train``, ``validate``,
``test`` -- and ``ml-aoi:role`` feature or label on each asset); projection (code, shape, transform),
raster (data type, nodata, unit, scale), file (size, sha256 multihash) and eo (each Sentinel-2 band's common
name and wavelengths: rgb's red, green, blue, s2's and the periods' bands). The Items are written by the
groups' jobs after the GeoTIFF tree, from its files (:func:`place`); the Collection by the last
(:func:`finish`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
from pathlib import Path

from ...bands import eo_bands
from ...grid import chip_footprints_lonlat
from ...io import write_new_file
from ...parallel import ordered
from ...config import published_forms
from ...layout import SPLITS, chip_path

log = logging.getLogger(__name__)
_ENCODE_STR = json.encoder.encode_basestring_ascii  # json.dumps' own string encoder (ASCII, quoted)

NAME = "stac"
EXTENSIONS = {
    "label": "https://stac-extensions.github.io/label/v1.0.1/schema.json",
    "ml-aoi": "https://stac-extensions.github.io/ml-aoi/v0.2.0/schema.json",
    "proj": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "file": "https://stac-extensions.github.io/file/v2.1.0/schema.json",
}
# declared only by catalogues with a categorical layer (geomorphons): its class values and names
CLASSIFICATION = "https://stac-extensions.github.io/classification/v1.1.0/schema.json"
# declared only by catalogues with a layer of Sentinel-2 bands (s2): each band's name, common name and
# wavelengths (eo v1.1.0's eo:bands, beside raster v1.1.0's raster:bands)
EO = "https://stac-extensions.github.io/eo/v1.1.0/schema.json"
_DTYPES = {"uint16": "uint16", "float32": "float32", "uint8": "uint8"}
SPLIT_NAMES = {"train": "train", "val": "validate", "test": "test"}  # ml-aoi:split's enum, by dataset split
LABEL_ASSET = "labels"
LABEL_FILE = "labels.geojson"  # beside each item: stac/<chip_id>/labels.geojson
LABEL_PROPERTY = "class"
PARQUET_TYPE = "application/vnd.apache.parquet"
PARQUET_ROW, PARQUET_COLUMN = "gos_build:parquet_row", "gos_build:parquet_column"  # a tree-less dataset's assets
TREE = "tree"


def _classification(layer) -> dict:
    """The classification extension's fields of a categorical layer's asset (its classes), else none."""
    if not layer.classes:
        return {}
    return {"classification:classes": [{"value": v, "name": n, "description": f"{n} ({layer.name})",
                                        "color_hint": colour.lstrip("#").upper()} for v, n, colour in layer.classes]}


def item_path(chip_id: str) -> str:
    """The item of a chip, relative to the dataset folder."""
    return f"{NAME}/{chip_id}/{chip_id}.json"


def label_path(chip_id: str) -> str:
    """The label GeoJSON of a chip, relative to the dataset folder."""
    return f"{NAME}/{chip_id}/{LABEL_FILE}"


def label_geojson(chip_id: str, class_id: int, cls: dict, ring: list[list[float]]) -> bytes:
    """The label asset of one chip: a FeatureCollection of its footprint (``ring``: lon/lat, closed) with
    the class as feature properties (``class`` the name, as ``label:properties`` says)."""
    doc = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "id": chip_id, "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {LABEL_PROPERTY: cls["name"], "class_id": class_id, "class_zh": cls.get("name_zh", "")}}]}
    return (json.dumps(doc, ensure_ascii=False) + "\n").encode("utf-8")


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


def _json(doc: dict) -> str:
    """A STAC document as pystac writes it (``json.dumps``, indent 2, ASCII, no final newline)."""
    return json.dumps(doc, indent=2)


class _Slot(str):
    """A placeholder for one scalar of a :class:`_Template` (a string, so ``json.dumps`` carries it)."""


class _Template:
    """A JSON document whose scalars marked :class:`_Slot` change from one use to the next: rendered by
    ``json.dumps(indent=2)`` once, then filled -- the same text as ``_json`` of the filled document,
    without its pure-Python indenting encoder for every item (tested against it)."""

    def __init__(self, doc):
        marked = _json(doc)
        self.parts, self.slots = [], []
        pos = 0
        for m in re.finditer(r'"@@slot:([^"@]+)@@"', marked):
            self.parts.append(marked[pos : m.start()])
            self.slots.append(m.group(1))
            pos = m.end()
        self.parts.append(marked[pos:])

    @staticmethod
    def slot(name: str) -> _Slot:
        return _Slot(f"@@slot:{name}@@")

    def render(self, values: dict) -> str:
        out = [self.parts[0]]
        for name, part in zip(self.slots, self.parts[1:]):
            v = values[name]
            out.append(_ENCODE_STR(v) if isinstance(v, str) else "null" if v is None else repr(v))
            out.append(part)
        return "".join(out)


def _label_asset() -> dict:
    """The label asset of an Item: its chip's GeoJSON beside it (size and checksum per chip)."""
    from pystac import MediaType

    return {"href": f"./{LABEL_FILE}", "type": str(MediaType.GEOJSON),
            "title": "the chip's class: its footprint with the class name",
            "file:size": _Template.slot("size:labels"), "file:checksum": _Template.slot("sum:labels")}


def place(chips: list[dict], dest: Path, context: dict) -> dict:
    """Write the Items of a group's ``chips`` and their label GeoJSONs under ``dest/stac`` (the tree's GeoTIFFs
    are already in ``dest``); their lon/lat ``extent``, for the Collection's (None without chips).

    The Items are written as the dicts pystac would serialise (the tests read them back with pystac and check
    them against its bundled schemas): building ~10 000 pystac Items in one Collection costs minutes (its link
    lookups grow with the collection), writing dicts seconds.
    """
    items = ItemTemplates(dest, context, to_root="../../", collection_href="../collection.json",
                          label=_label_asset())
    extremes = []
    first = {split: start for split, (start, _) in context["part"]["range"].items()}
    for e, item_sums in ordered(context["pool"], _write_items, items.tasks(chips, first)):
        extremes.append(e)
        context["digests"].update(item_sums)  # the manifest's sha256 of each item, from the text in hand
    return {"extent": merge_extremes(extremes)}


def merge_extremes(extremes: list) -> list[float] | None:
    """[lon min, lat min, lon max, lat max] around ``extremes`` (such boxes; None: a part without chips, left
    out); None when there is none."""
    got = [e for e in extremes if e]
    if not got:
        return None
    return [min(e[0] for e in got), min(e[1] for e in got), max(e[2] for e in got), max(e[3] for e in got)]


def finish(chips: list[dict], dest: Path, context: dict, notes: list) -> None:
    """Write ``dest/stac/collection.json``: every chip's Item linked, the extent from the groups' ``notes``."""
    items = ItemTemplates(dest, context, to_root="../../", collection_href="../collection.json",
                          label=_label_asset())
    root = Path(dest) / NAME
    root.mkdir(parents=True, exist_ok=True)
    extent = merge_extremes([note["extent"] for note in notes])
    doc = items.collection(chips, [extent] if extent else [], [])
    write_with_item_links(root / "collection.json", doc, (f"./{c['id']}/{c['id']}.json" for c in chips))
    log.info("stac: collection with %d items -> %s", len(chips), root)


def write_with_item_links(path: Path, doc: dict, hrefs) -> None:
    """Write the Collection ``doc`` with an item link for each of ``hrefs`` appended to its links -- the text
    ``_json`` gives for the whole document, streamed: a link's text is rendered once, around two marks, and
    repeated (a province's collection is a million links: its list of dicts and the encoder's pieces would
    take more memory than the rest of the last job)."""
    from pystac import MediaType

    def link(href):
        return {"rel": "item", "href": href, "type": str(MediaType.GEOJSON)}

    marks = ("@@item-0@@", "@@item-1@@")
    text = _json(dict(doc, links=doc["links"] + [link(m) for m in marks]))
    a, b = (text.index(_ENCODE_STR(m)) for m in marks)
    head, mid, tail = text[:a], text[a + len(_ENCODE_STR(marks[0])) : b], text[b + len(_ENCODE_STR(marks[1])):]
    hrefs = iter(hrefs)
    first = next(hrefs, None)
    with open(path, "w", encoding="utf-8") as f:
        if first is None:
            f.write(_json(doc))
            return
        f.write(head + _ENCODE_STR(first))
        for href in hrefs:
            f.write(mid + _ENCODE_STR(href))
        f.write(tail)


class ItemTemplates:
    """The Items of a dataset's chips, one template a class, placed where the catalogue keeps them: ``to_root``
    leads from there to the dataset folder (the assets' hrefs), ``collection_href`` to the Collection;
    ``label``: the label asset's fields (href, type, title, size and checksum, slots where per chip)."""

    def __init__(self, dest: Path, context: dict, to_root: str, collection_href: str, label: dict):
        from pystac import MediaType, get_stac_version
        from pystac.utils import datetime_to_str

        classes = self.classes = context["classes"]
        crs = self.crs = context["crs"]
        size = self.size = context["chip_size"]
        res = self.res = context.get("resolution", 10.0)
        cfg = context.get("config", {})
        self.name = cfg.get("aoi", {}).get("name", "dataset")
        self.when = when = datetime_to_str(sensing_datetime(context.get("provenance", {})))
        self.digests, self.dest, self.to_root = context["digests"], str(dest), to_root
        self.version = version = get_stac_version()
        self.collection_id = collection_id = f"gos-build-{self.name}"
        self.title = f"gos-build {self.name}"
        up = [{"rel": rel, "href": collection_href, "type": str(MediaType.JSON), "title": self.title}
              for rel in ("root", "collection", "parent")]
        self.label_classes = label_classes = [{"name": LABEL_PROPERTY,
                                               "classes": [c["name"] for _, c in sorted(classes.items())]}]
        layers = self.layers = context["layers"]
        self.tree = TREE in published_forms(cfg)
        self.cut = context.get("parquet")
        bands_of, eo_of = {}, {}
        for m, layer in layers.items():
            scaling = {"scale": layer.scale, "offset": layer.offset} if layer.scaled else {}  # value x scale + offset
            bands_of[m] = [{"name": b, "data_type": _DTYPES[layer.dtype], "nodata": layer.nodata,
                            "unit": layer.units, **scaling} for b in layer.bands]
            eo = eo_bands(layer.bands)  # Sentinel-2's bands (rgb's red, green, blue too): their wavelengths
            eo_of[m] = {"eo:bands": eo} if eo else {}
        extensions = list(EXTENSIONS.values()) + ([CLASSIFICATION] if any(ly.classes for ly in layers.values())
                                                  else []) + ([EO] if any(eo_of.values()) else [])
        slot = _Template.slot
        self.templates = {}  # class id -> the Item of a chip of that class, its chip-dependent scalars as slots
        for cid, cls in classes.items():
            cname = cls["name"]
            if self.tree:  # each layer's GeoTIFF in the tree
                assets = {m: {"href": slot(f"href:{m}"), "type": str(MediaType.GEOTIFF), "title": layer.description,
                              "raster:bands": bands_of[m], **eo_of[m], "file:size": slot(f"size:{m}"),
                              "file:checksum": slot(f"sum:{m}"), "ml-aoi:role": "feature", "roles": ["data"],
                              **_classification(layer)}
                          for m, layer in layers.items()}
            else:  # no tree: the Parquet shard holding the chip, its row, the layer's column (the GeoTIFF's bytes)
                assets = {m: {"href": slot("href:parquet"), "type": PARQUET_TYPE,
                              "title": f"{layer.description}: a GeoTIFF in column {m} of row "
                                       f"{PARQUET_ROW} of this Parquet shard", "raster:bands": bands_of[m], **eo_of[m],
                              PARQUET_ROW: slot("row"), PARQUET_COLUMN: m, "ml-aoi:role": "feature",
                              "roles": ["data"], **_classification(layer)}
                          for m, layer in layers.items()}
            assets[LABEL_ASSET] = {**label, "ml-aoi:role": "label", "roles": ["labels", "labels-vector"]}
            self.templates[cid] = _Template({
                "type": "Feature", "stac_version": version, "stac_extensions": extensions,
                "id": slot("id"),
                "geometry": {"type": "Polygon", "coordinates": [[[slot(f"lon{i}"), slot(f"lat{i}")]
                                                                 for i in range(5)]]},
                "bbox": [slot("bbox0"), slot("bbox1"), slot("bbox2"), slot("bbox3")],
                "properties": {"label:description": "genesis class of the chip (majority of the interpretation "
                                                    "polygons)",
                               "label:type": "vector", "label:properties": [LABEL_PROPERTY],
                               "label:tasks": ["classification"],
                               "label:classes": label_classes, "ml-aoi:split": slot("split"),
                               "gos_build:class": cname, "gos_build:class_id": cid,
                               "gos_build:class_zh": cls.get("name_zh", ""),
                               "gos_build:boundary_distance_m": slot("boundary"),
                               "proj:code": crs, "proj:shape": [size, size],
                               "proj:transform": [res, 0.0, slot("x0"), 0.0, -res, slot("y1")], "datetime": when},
                "links": up, "assets": assets, "collection": collection_id})

    def tasks(self, chips: list[dict], first: dict | None = None, step: int = 512) -> list[tuple]:
        """The work of the workers, in slices of ``step`` chips (:func:`render_items`): with each slice the sha256
        of its chips' tree files, or without the tree the (shard, row) of each chip (``first``: the index in its
        split of the first chip of each split among ``chips``)."""
        layers = self.layers
        if not self.tree:
            from .parquet import rows_of

            where = [{c["id"]: w} for c, w in zip(chips, rows_of(chips, self.cut, first))]
            return [(self.templates, self.classes, self.crs, self.size, self.res, self.dest, chips[i : i + step],
                     {k: v for d in where[i : i + step] for k, v in d.items()}, layers.names, self.to_root, False)
                    for i in range(0, len(chips), step)]
        names = {cid: c["name"] for cid, c in self.classes.items()}
        rels = [chip_path(m, names[c["class_id"]], c["id"]) for c in chips for m in layers]
        sums = {rel: self.digests[rel] for rel in rels}
        return [(self.templates, self.classes, self.crs, self.size, self.res, self.dest, chips[i : i + step],
                 {rel: sums[rel] for rel in rels[i * len(layers) : (i + step) * len(layers)]}, layers.names,
                 self.to_root, True)
                for i in range(0, len(chips), step)]

    def collection(self, chips: list[dict], extremes: list[tuple], links: list[dict], assets: dict | None = None) -> dict:
        """The Collection of the items: extent from the slices' ``extremes``, ``links`` after root and datacard."""
        from pystac import MediaType

        counts = {s: sum(1 for c in chips if c["split"] == s) for s in SPLITS}
        aoi_bbox = ([min(e[0] for e in extremes), min(e[1] for e in extremes), max(e[2] for e in extremes),
                     max(e[3] for e in extremes)] if chips else [0, 0, 0, 0])
        doc = {
            "type": "Collection", "id": self.collection_id, "stac_version": self.version,
            "description": (f"GOS10m-style geomorphology scene-classification chips of '{self.name}': {self.size} x "
                            f"{self.size} px at {self.res:g} m, layers {', '.join(self.layers)}; one Item per chip."),
            "links": [{"rel": "root", "href": "./collection.json", "type": str(MediaType.JSON), "title": self.title},
                      {"rel": "describedby", "href": "../datacard.md", "type": "text/markdown",
                       "title": "datacard: provenance, counts, statistics"}] + links,
            "stac_extensions": [EXTENSIONS["label"], EXTENSIONS["ml-aoi"]],
            "title": self.title,
            "extent": {"spatial": {"bbox": [aoi_bbox]}, "temporal": {"interval": [[self.when, self.when]]}},
            "license": "CC-BY-4.0",
            "providers": [{"name": "European Space Agency (Copernicus Sentinel-2)", "roles": ["producer", "licensor"]},
                          {"name": "NASA / USGS (SRTM) or the DEM's producer", "roles": ["producer"]},
                          {"name": "gos-build", "roles": ["processor"]}],
            "summaries": {"label:classes": self.label_classes, "ml-aoi:split": [SPLIT_NAMES[s] for s in SPLITS],
                          "gos_build:chips_per_split": [counts],
                          "gos_build:classes": [{"id": k, **{kk: v for kk, v in c.items() if kk != "values"}}
                                                for k, c in sorted(self.classes.items())]},
        }
        if assets:
            doc["assets"] = assets
        return doc


def render_items(task):
    """The Items of a slice of chips from the class templates: ((lon min, lat min, lon max, lat max), [(chip,
    its label GeoJSON bytes, its Item JSON text)]) -- the label asset's size and checksum those of the GeoJSON
    where the template has slots for them."""
    templates, classes, crs, size, res, dest, chips, sums, layer_names, to_root, tree = task
    rings, _ = chip_footprints_lonlat(crs, [(c["x"], c["y"]) for c in chips], size * res)
    lon_all, lat_all, out = [], [], []
    for c, ring in zip(chips, rings):
        x0, y0 = c["x"], c["y"]
        y1 = y0 + size * res
        lon, lat = [p[0] for p in ring], [p[1] for p in ring]
        lon_all += lon
        lat_all += lat
        values = {"id": c["id"], "split": SPLIT_NAMES[c["split"]], "x0": x0, "y1": y1, "bbox0": min(lon),
                  "boundary": c.get("boundary_m"),
                  "bbox1": min(lat), "bbox2": max(lon), "bbox3": max(lat)}
        for i in range(5):
            values[f"lon{i}"], values[f"lat{i}"] = lon[i], lat[i]
        if not tree:  # sums: chip id -> (shard, row)
            values["href:parquet"], values["row"] = f"{to_root}{sums[c['id']][0]}", sums[c["id"]][1]
        for m in layer_names if tree else ():
            rel = chip_path(m, classes[c["class_id"]]["name"], c["id"])
            values[f"href:{m}"] = f"{to_root}{rel}"
            values[f"size:{m}"] = os.stat(os.path.join(dest, rel)).st_size
            values[f"sum:{m}"] = "1220" + sums[rel]  # multihash: sha2-256 (0x12), 32 bytes (0x20)
        label = label_geojson(c["id"], c["class_id"], classes[c["class_id"]], [list(p) for p in ring])
        values["size:labels"], values["sum:labels"] = len(label), "1220" + hashlib.sha256(label).hexdigest()
        out.append((c, label, templates[c["class_id"]].render(values)))
    extremes = (min(lon_all), min(lat_all), max(lon_all), max(lat_all)) if chips else (0, 0, 0, 0)
    return extremes, out


def _write_items(task) -> tuple[tuple[float, float, float, float], dict[str, str]]:
    """Write the Items (and their label GeoJSON) of a slice of chips: (lon/lat extremes, item path in the
    dataset -> sha256)."""
    dest = task[5]
    extremes, rendered = render_items(task)
    written = {}
    for c, label, text in rendered:
        os.makedirs(os.path.join(dest, NAME, c["id"]), exist_ok=True)
        write_new_file(os.path.join(dest, label_path(c["id"])), label)
        written[label_path(c["id"])] = hashlib.sha256(label).hexdigest()
        data = text.encode("utf-8")
        write_new_file(os.path.join(dest, item_path(c["id"])), data)
        written[item_path(c["id"])] = hashlib.sha256(data).hexdigest()
    return extremes, written
