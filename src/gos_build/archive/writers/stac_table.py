"""The STAC Items as one table: ``dataset/stac-geoparquet/`` (form ``stac-geoparquet`` of ``publish.forms``).

For catalogues too large for a JSON file per chip (the STAC community's stac-geoparquet specification, read by
the ``stac-geoparquet`` and ``rustac`` packages): ``items.parquet`` holds every Item of the ``stac`` form --
the same properties, assets, extensions and geometry -- one row per chip, written by ``stac-geoparquet``;
``collection.json`` is the same Collection, its Items reached through its ``items`` asset (role
``collection-mirror``) instead of an item link each. Hrefs lead from this folder (``../rgb/...``). The label
asset of every Item is one shared GeoParquet file, ``labels.parquet``: each chip's footprint (lon/lat) with
its ``class`` (the name, as ``label:properties`` says), ``class_id``, ``label`` and ``split``, instead of a
GeoJSON file a chip.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from pathlib import Path

from ...layout import CLASS_ID, LABEL, label_of
from ...parallel import ordered
from .parquet import write_footprints
from .stac import LABEL_PROPERTY, ItemTemplates, _json, render_items

log = logging.getLogger(__name__)

NAME = "stac-geoparquet"
ITEMS_FILE = "items.parquet"
LABELS_FILE = "labels.parquet"
PARQUET_TYPE = "application/vnd.apache.parquet"


def gather(shards, chips: list[dict], dest: Path, context: dict) -> None:
    """Write ``dest/stac-geoparquet`` for ``chips`` (the tree's GeoTIFFs are already in ``dest``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import stac_geoparquet.arrow

    root = Path(dest) / NAME
    root.mkdir(parents=True, exist_ok=True)
    digests = context["digests"]
    labels = _write_labels(root / LABELS_FILE, chips, context)
    digests[f"{NAME}/{LABELS_FILE}"] = hashlib.sha256(labels).hexdigest()
    label = {"href": f"./{LABELS_FILE}", "type": PARQUET_TYPE,
             "title": "every chip's class: its footprint with the class name (the row of its chip_id)",
             "file:size": len(labels), "file:checksum": "1220" + digests[f"{NAME}/{LABELS_FILE}"]}
    items = ItemTemplates(chips, dest, context, to_root="../", collection_href="./collection.json", label=label)
    extremes: list[tuple] = []

    def dicts():
        for e, rendered in ordered(context["pool"], render_items, items.tasks(chips)):
            extremes.append(e)
            for _, _, text in rendered:
                yield json.loads(text)

    # in chunks through the disk (memory: one chunk of items), the schemas of the chunks unified -- a
    # property null in one chunk (a boundary distance) and a number in the next -- then written in order
    # (the chunks in the dataset's own temporary folder: gone before its manifest, and with it if killed)
    with tempfile.TemporaryDirectory(prefix=".stac-geoparquet-", dir=dest) as tmp:
        paths, schema = [], None
        for k, chunk in enumerate(_batched(dicts(), CHUNK_ITEMS)):
            part = stac_geoparquet.arrow.parse_stac_items_to_arrow(chunk, schema="FullFile").read_all()
            schema = part.schema if schema is None else pa.unify_schemas([schema, part.schema],
                                                                          promote_options="permissive")
            paths.append(Path(tmp) / f"{k:07d}.parquet")
            pq.write_table(part, paths[-1])

        def batches():
            for path in paths:
                yield from pq.read_table(path).cast(schema).to_batches()

        reader = pa.RecordBatchReader.from_batches(schema, batches())  # the gather has chips: a schema
        stac_geoparquet.arrow.to_parquet(reader, root / ITEMS_FILE, compression="zstd", write_statistics=False)
    digests[f"{NAME}/{ITEMS_FILE}"] = hashlib.sha256((root / ITEMS_FILE).read_bytes()).hexdigest()
    asset = {"items": {"href": f"./{ITEMS_FILE}", "type": PARQUET_TYPE, "title": "every Item of the collection, "
                       "one row each (stac-geoparquet)", "roles": ["data", "collection-mirror"]}}
    (root / "collection.json").write_text(_json(items.collection(chips, extremes, [], asset)), encoding="utf-8")
    log.info("stac-geoparquet: %d items -> %s", len(chips), root / ITEMS_FILE)


CHUNK_ITEMS = 4096  # Items parsed to Arrow at a time


def _batched(iterable, n: int):
    chunk = []
    for x in iterable:
        chunk.append(x)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _write_labels(path: Path, chips: list[dict], context: dict) -> bytes:
    """``labels.parquet``: GeoParquet 1.1, one row per chip (chip_id, class, class_id, label, split, its
    footprint as WKB in lon/lat); its bytes."""
    import pyarrow as pa

    classes = context["classes"]
    index = label_of(classes)
    write_footprints(path, chips, context["crs"], context["chip_size"] * context.get("resolution", 10.0), {
        "chip_id": pa.array([c["id"] for c in chips], pa.string()),
        LABEL_PROPERTY: pa.array([classes[c["class_id"]]["name"] for c in chips], pa.string()),
        CLASS_ID: pa.array([c["class_id"] for c in chips], pa.int64()),
        LABEL: pa.array([index[c["class_id"]] for c in chips], pa.int64()),
        "split": pa.array([c["split"] for c in chips], pa.string())})
    return path.read_bytes()
