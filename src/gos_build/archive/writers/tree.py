"""The GeoTIFF tree: ``<layer>/<class>/<chip_id>.tif``, one georeferenced GeoTIFF per chip and layer.

Chip GeoTIFFs are encoded in the tile jobs (:func:`shard_members`: DEFLATE,
predictor, no timestamps -- equal arrays, equal bytes; GDAL's bytes, assembled
by :mod:`gos_build.gtiff` without a GDAL dataset per file), with their sha256
(``tree.sha256`` in the shard), and linked into the dataset
for the chips the split keeps by each group's job (:func:`place`): a hard link where the file system
allows one, a copy elsewhere -- no chip is read again.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from rasterio.windows import Window

from ...errors import GosBuildError
from ...gtiff import encoder
from ...io import link_or_copy
from ...parallel import ordered
from ...layout import band_descriptions, chip_path, parse_chip_path

log = logging.getLogger(__name__)

SUMS_FILE = "tree.sha256"  # in the shard: "<sha256>  <chip path>" of every chip file of the tile


def shard_members(grid, kept, layers) -> list[tuple[str, bytes]]:
    """``(chip path, GeoTIFF bytes)`` of every layer of every kept chip of a tile, and their sha256 list
    (``layers``: the registry)."""
    size = grid.chip_size
    out = []
    for record, arrays in kept:
        transform = grid.window_transform(Window(record["col"], record["row"], size, size))
        for name, arr in arrays.items():
            layer = layers[name]
            enc = encoder(arr.shape, str(arr.dtype), grid.crs, layer.nodata, tuple(band_descriptions(layer)),
                          float(grid.resolution), layer.gdal_units)
            out.append((chip_path(name, record["class"], record["id"]), enc.encode(arr, transform)))
    out.sort()
    sums = "".join(f"{hashlib.sha256(data).hexdigest()}  {rel}\n" for rel, data in out)
    return out + [(SUMS_FILE, sums.encode("ascii"))]


def place(chips: list[dict], dest: Path, context: dict) -> None:
    """Link (or copy) the chip GeoTIFFs of a group's ``chips`` (those the split keeps) from their tiles' shards
    into ``dest``. Their sha256 come from the shards' lists into ``context["digests"]``."""
    keep = frozenset(c["id"] for c in chips)
    shard_of = context["part"]["shard_of"]
    shards = [shard_of[t] for t in sorted({c["tile"] for c in chips})]
    tasks = [(s, keep, str(dest)) for s in shards]
    for i, (shard, (count, sums)) in enumerate(zip(shards, ordered(context["pool"], _place, tasks)), start=1):
        log.info("publish: shard %d/%d %s: %d files", i, len(shards), shard, count)
        context["digests"].update(sums)


def _place(task) -> tuple[int, dict[str, str]]:
    """Put one shard's files of the kept chips under ``dest``: (count, path -> sha256)."""
    shard, keep, dest = task  # str paths: pathlib costs more than the links here (80 000 files)
    folders, sums = set(), {}
    listed = os.path.join(shard, SUMS_FILE)
    try:
        with open(listed, encoding="ascii") as f:
            listing = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise GosBuildError(f"{listed}: cannot read the shard's chip list ({exc})") from None
    link = [True]
    for line in listing:
        digest, _, name = line.partition("  ")
        try:
            layer, class_name, chip_id = parse_chip_path(name)
        except ValueError:
            raise GosBuildError(f"{listed}: unexpected entry '{name}'") from None
        if chip_id not in keep:
            continue
        if (layer, class_name) not in folders:
            os.makedirs(os.path.join(dest, layer, class_name), exist_ok=True)
            folders.add((layer, class_name))
        link_or_copy(os.path.join(shard, name), os.path.join(dest, name), link,
                     missing=f"listed in {SUMS_FILE} but missing from the shard")
        sums[name] = digest
    return len(sums), sums
