"""The GeoTIFF tree: ``<layer>/<class>/<chip_id>.tif``, one georeferenced GeoTIFF per chip and layer.

Chip GeoTIFFs are encoded in the tile jobs (:func:`shard_members`: DEFLATE,
predictor, no timestamps -- equal arrays, equal bytes; GDAL's bytes, assembled
by :mod:`gos_build.gtiff` without a GDAL dataset per file) and unpacked into the
dataset by :func:`gather`, for the chips the split keeps.
"""

from __future__ import annotations

import hashlib
import logging
import zipfile
from pathlib import Path

from rasterio.windows import Window

from ...errors import GosBuildError
from ...gtiff import encoder
from ...parallel import ordered
from ...layout import LAYERS, band_descriptions, chip_path, parse_chip_path

log = logging.getLogger(__name__)


def shard_members(grid, kept) -> list[tuple[str, bytes]]:
    """``(chip path, GeoTIFF bytes)`` of every layer of every kept chip of a tile, sorted by path."""
    size = grid.chip_size
    out = []
    for record, layers in kept:
        transform = grid.window_transform(Window(record["col"], record["row"], size, size))
        for name, arr in layers.items():
            layer = LAYERS[name]
            enc = encoder(arr.shape, str(arr.dtype), grid.crs, layer.nodata, tuple(band_descriptions(layer)),
                          float(grid.resolution))
            out.append((chip_path(name, record["class"], record["id"]), enc.encode(arr, transform)))
    return sorted(out)


def gather(shard_zips: list[str | Path], chips: list[dict], dest: Path, context: dict) -> int:
    """Unpack the chip GeoTIFFs of ``chips`` (those the split keeps) from the shards into ``dest``; the count.

    Shards are unpacked by the gather's worker processes (``context["pool"]``), each file's sha256 taken
    from the bytes in hand into ``context["digests"]`` (the manifest and the STAC writer need no second read).
    """
    keep = frozenset(c["id"] for c in chips)
    n = 0
    tasks = [(str(z), keep, str(dest)) for z in shard_zips]
    for i, (zpath, (count, sums)) in enumerate(zip(shard_zips, ordered(context["pool"], _unpack, tasks)),
                                               start=1):
        log.info("dataset: shard %d/%d %s: %d files", i, len(shard_zips), zpath, count)
        n += count
        context["digests"].update(sums)
    return n


def _unpack(task) -> tuple[int, dict[str, str]]:
    """Write one shard's files of the kept chips under ``dest``: (count, path -> sha256)."""
    zpath, keep, dest = task
    dest = Path(dest)
    folders, sums = set(), {}
    with zipfile.ZipFile(zpath) as zf:
        for name in zf.namelist():
            try:
                layer, class_name, chip_id = parse_chip_path(name)
            except ValueError:
                raise GosBuildError(f"{zpath}: unexpected entry '{name}'") from None
            if chip_id not in keep:
                continue
            if (layer, class_name) not in folders:
                (dest / layer / class_name).mkdir(parents=True, exist_ok=True)
                folders.add((layer, class_name))
            data = zf.read(name)
            with open(dest / name, "wb") as f:
                f.write(data)
            sums[name] = hashlib.sha256(data).hexdigest()
    return len(sums), sums
