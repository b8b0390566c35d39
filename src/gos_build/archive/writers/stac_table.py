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
from pathlib import Path

from ...layout import CLASS_ID, LABEL, label_of
from ...parallel import ordered
from .parquet import write_footprints
from .stac import LABEL_PROPERTY, PARQUET_TYPE, ItemTemplates, _json, merge_extremes, render_items

log = logging.getLogger(__name__)

NAME = "stac-geoparquet"
ITEMS_FILE = "items.parquet"
LABELS_FILE = "labels.parquet"


def prepare(chips: list[dict], dest: Path, context: dict) -> None:
    """In the plan (before the groups, whose Items carry its size and checksum): ``dest/stac-geoparquet/
    labels.parquet``."""
    (Path(dest) / NAME).mkdir(parents=True, exist_ok=True)
    _write_labels(Path(dest) / NAME / LABELS_FILE, chips, context)


def _items(dest: Path, context: dict, labels: Path) -> ItemTemplates:
    data = labels.read_bytes()
    label = {"href": f"./{LABELS_FILE}", "type": PARQUET_TYPE,
             "title": "every chip's class: its footprint with the class name (the row of its chip_id)",
             "file:size": len(data), "file:checksum": "1220" + hashlib.sha256(data).hexdigest()}
    return ItemTemplates(dest, context, to_root="../", collection_href="./collection.json", label=label)


def place(chips: list[dict], dest: Path, context: dict) -> dict:
    """A group's Items as Arrow tables (parsed by ``stac-geoparquet``, :data:`CHUNK_ITEMS` a file) in the group's
    parts folder, for the last job; their extent and the files' names."""
    import pyarrow.parquet as pq
    import stac_geoparquet.arrow

    items = _items(dest, context, Path(context["part"]["plan_files"]) / NAME / LABELS_FILE)
    extremes: list[tuple] = []

    def dicts():
        first = {split: start for split, (start, _) in context["part"]["range"].items()}
        for e, rendered in ordered(context["pool"], render_items, items.tasks(chips, first)):
            extremes.append(e)
            for _, _, text in rendered:
                yield json.loads(text)

    folder = Path(context["parts_dir"]) / NAME
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for k, chunk in enumerate(_batched(dicts(), CHUNK_ITEMS)):  # memory: one chunk of Items
        files.append(f"{NAME}/{k:07d}.parquet")
        pq.write_table(stac_geoparquet.arrow.parse_stac_items_to_arrow(chunk, schema="FullFile").read_all(),
                       Path(context["parts_dir"]) / files[-1])
    return {"extent": merge_extremes(extremes), "files": files}


def finish(chips: list[dict], dest: Path, context: dict, notes: list) -> None:
    """Write ``dest/stac-geoparquet/items.parquet`` from the groups' tables -- their schemas unified (a property
    null in one table, a boundary distance, and a number in the next), re-cut into batches of
    :data:`CHUNK_ITEMS` Items whatever the groups -- and its ``collection.json``."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import stac_geoparquet.arrow

    root = Path(dest) / NAME
    root.mkdir(parents=True, exist_ok=True)
    paths = [Path(g) / f for g, note in zip(context["group_parts"], notes) for f in note["files"]]
    schema = None
    for path in paths:  # the schemas alone: the tables' footers
        part = pq.read_schema(path)
        schema = part if schema is None else pa.unify_schemas([schema, part], promote_options="permissive")

    def batches():
        held, rows = [], 0
        for path in paths:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK_ITEMS):
                held.append(pa.Table.from_batches([batch]).cast(schema))
                rows += batch.num_rows
                while rows >= CHUNK_ITEMS:
                    table = pa.concat_tables(held)
                    yield from table.slice(0, CHUNK_ITEMS).combine_chunks().to_batches()
                    held, rows = [table.slice(CHUNK_ITEMS)], rows - CHUNK_ITEMS
        if rows:
            yield from pa.concat_tables(held).combine_chunks().to_batches()

    reader = pa.RecordBatchReader.from_batches(schema, batches())  # the dataset has chips: a schema
    stac_geoparquet.arrow.to_parquet(reader, root / ITEMS_FILE, compression="zstd", write_statistics=False)
    items = _items(dest, context, root / LABELS_FILE)
    asset = {"items": {"href": f"./{ITEMS_FILE}", "type": PARQUET_TYPE, "title": "every Item of the collection, "
                       "one row each (stac-geoparquet)", "roles": ["data", "collection-mirror"]}}
    extent = merge_extremes([note["extent"] for note in notes])
    (root / "collection.json").write_text(_json(items.collection(chips, [extent] if extent else [], [], asset)),
                                          encoding="utf-8")
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


def _write_labels(path: Path, chips: list[dict], context: dict) -> None:
    """``labels.parquet``: GeoParquet 1.1, one row per chip (chip_id, class, class_id, label, split, its
    footprint as WKB in lon/lat)."""
    import pyarrow as pa

    classes = context["classes"]
    index = label_of(classes)
    def columns(start, part):
        return {"chip_id": pa.array([c["id"] for c in part], pa.string()),
                LABEL_PROPERTY: pa.array([classes[c["class_id"]]["name"] for c in part], pa.string()),
                CLASS_ID: pa.array([c["class_id"] for c in part], pa.int64()),
                LABEL: pa.array([index[c["class_id"]] for c in part], pa.int64()),
                "split": pa.array([c["split"] for c in part], pa.string())}

    write_footprints(path, chips, context["crs"], context["chip_size"] * context.get("resolution", 10.0), columns)
