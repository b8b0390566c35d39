"""The GeoTIFF tree: ``<layer>/<class>/<chip_id>.tif``, one georeferenced GeoTIFF per chip and layer.

Chip GeoTIFFs are encoded in the tile jobs (:func:`shard_members`: DEFLATE,
predictor, no timestamps -- equal arrays, equal bytes; GDAL's bytes, assembled
by :mod:`gos_build.gtiff` without a GDAL dataset per file), with their sha256
(``tree.sha256`` in the shard), and linked into the dataset by :func:`gather`
for the chips the split keeps: a hard link where the file system allows one,
a copy elsewhere -- no chip is read again.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
from pathlib import Path

from rasterio.windows import Window

from ...errors import GosBuildError
from ...gtiff import encoder
from ...parallel import ordered
from ...layout import band_descriptions, chip_path, parse_chip_path

log = logging.getLogger(__name__)

SUMS_FILE = "tree.sha256"  # in the shard: "<sha256>  <chip path>" of every chip file of the tile
# errors of os.link that mean "not here" (another file system, no hard links, too many links): copy instead
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EACCES}


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


def gather(shards: list[str | Path], chips: list[dict], dest: Path, context: dict) -> int:
    """Link (or copy) the chip GeoTIFFs of ``chips`` (those the split keeps) from the shards into ``dest``;
    the count. Their sha256 come from the shards' lists into ``context["digests"]``."""
    keep = frozenset(c["id"] for c in chips)
    n = 0
    tasks = [(str(s), keep, str(dest)) for s in shards]
    for i, (shard, (count, sums)) in enumerate(zip(shards, ordered(context["pool"], _place, tasks)), start=1):
        log.info("dataset: shard %d/%d %s: %d files", i, len(shards), shard, count)
        n += count
        context["digests"].update(sums)
    return n


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
    link = True
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
        src, dst = os.path.join(shard, name), os.path.join(dest, name)
        try:
            if link:
                try:
                    os.link(src, dst)
                except OSError as exc:
                    if exc.errno not in _NO_LINK:
                        raise
                    link = False
            if not link:
                shutil.copyfile(src, dst)
        except FileNotFoundError:
            raise GosBuildError(f"{src}: listed in {SUMS_FILE} but missing from the shard") from None
        sums[name] = digest
    return len(sums), sums
