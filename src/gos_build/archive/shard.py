"""One tile's shard: its chips cut and judged, encoded by the per-tile writers.

``tiles/<id>/shard/`` holds the writers' per-tile files (each writer's under its own names, see
:mod:`gos_build.archive.writers`); ``tiles/<id>/chips.json`` the tile's record (see
:func:`gos_build.chips.cut_tile`), which the gather reads instead of the chips.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from ..chips import cut_tile
from ..grid import Grid
from ..io import atomic_write_text, write_folder
from ..layout import layers_from_config, parse_chip_path
from .writers import tree, writers_of


def write_tile_shard(grid: Grid, tile_id: str, read, config: dict, out_shard: str | Path, out_json: str | Path,
                     polygons: str | Path | None = None) -> dict:
    """Cut one tile's chips with the config's ``chips``/``grid``/``classes``; write its shard folder and record.
    ``read``: the reader of the tile's layers (:func:`gos_build.chips.files_reader` or ``arrays_reader``);
    ``polygons``: the prepared polygons, for each chip's distance to the nearest class boundary."""
    chips_cfg = config["chips"]
    layers = layers_from_config(config)
    doc, kept = cut_tile(grid, tile_id, read, config["classes"], config["grid"]["stride"], chips_cfg["min_purity"],
                         chips_cfg["max_nodata"], chips_cfg["max_cloud"], polygons,
                         chips_cfg.get("min_boundary_distance_m", 0.0), layers, chips_cfg.get("max_period_nodata"))
    members = []
    # the tree's files always: the Parquet shards take their bytes, the STAC Items their sizes and sums, the
    # plan their sizes (in the tile's scratch shard; in the dataset only where publish.forms has the tree)
    for writer in {"tree": tree, **writers_of(config)}.values():
        if hasattr(writer, "shard_members"):
            members += writer.shard_members(grid, kept, layers)
    sizes = Counter()  # each chip's GeoTIFF bytes: the plan cuts the Parquet shards by them
    for rel, data in members:
        try:
            _, _, chip_id = parse_chip_path(rel)
        except ValueError:
            continue
        sizes[chip_id] += len(data)
    for record in doc["chips"]:
        record["bytes"] = sizes[record["id"]]
    write_folder(out_shard, sorted(members))
    atomic_write_text(out_json, json.dumps(doc, sort_keys=True) + "\n")
    return doc
