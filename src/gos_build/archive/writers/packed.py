"""The packed store: the chips of each split as arrays, for training without opening 80 000 small files.

``dataset/packed/`` is a Zarr (format 2) group, readable by ``zarr`` and ``xarray`` without gos-build::

    packed/<split>/<layer>      [N, C, 64, 64]  rgb uint16 (C = 3), the eight elevation layers float32 (C = 1)
    packed/<split>/chip_id      [N]             chip ids (text), in the order of labels.txt
    packed/<split>/label        [N]             class ids (uint8, as in classes.txt)
    packed/<split>/x_min, y_min [N]             south-west corner of each chip, metres, grid CRS

Attributes of the group: classes, layers (bands, units, nodata), CRS and chip size. Chunks hold
``CHUNK_CHIPS`` chips of one layer (Zstandard, level 3): a training epoch reads a few hundred chunks.
Values are the chip GeoTIFFs' values, exactly (the tree writer runs first; this one reads its files).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from ...gtiff import read_files
from ...parallel import ordered
from ...layout import LAYERS, MODALITIES, SPLITS, chip_path

log = logging.getLogger(__name__)

NAME = "packed"
CHUNK_CHIPS = 16
WRITE_CHUNKS = 32  # chunks per task of a worker


def _compressor():
    import numcodecs

    return numcodecs.Zstd(level=3)  # single-threaded and deterministic: same arrays, same bytes


def gather(shard_zips, chips: list[dict], dest: Path, context: dict) -> None:
    """Write ``dest/packed`` from the chip GeoTIFFs of the tree already in ``dest``."""
    import zarr

    size = context["chip_size"]
    root = zarr.open_group(str(dest / NAME), mode="w", zarr_format=2)
    root.attrs.update({"classes": {str(k): v for k, v in context["classes"].items()}, "crs": context["crs"],
                       "chip_size": size, "layers": {m: {"bands": list(LAYERS[m].bands), "dtype": LAYERS[m].dtype,
                                                         "units": LAYERS[m].units, "nodata": LAYERS[m].nodata}
                                                     for m in MODALITIES},
                       "description": "gos-build packed chips: <split>/<layer> [N, C, H, W], chip_id, label, x, y"})
    for split in SPLITS:
        mine = [c for c in chips if c["split"] == split]
        g = root.create_group(split)
        n = len(mine)
        g.create_array("chip_id", shape=(n,), dtype="<U16", chunks=(max(n, 1),), compressors=_compressor())
        g.create_array("label", shape=(n,), dtype="uint8", chunks=(max(n, 1),), compressors=_compressor())
        for axis in ("x_min", "y_min"):
            g.create_array(axis, shape=(n,), dtype="float64", chunks=(max(n, 1),), compressors=_compressor())
        for name in ("chip_id", "label", "x_min", "y_min"):
            g[name].attrs["_ARRAY_DIMENSIONS"] = ["chip"]  # xarray's dimension names
        if n:
            g["chip_id"][:] = np.array([c["id"] for c in mine], dtype="<U16")
            g["label"][:] = np.array([c["label"] for c in mine], dtype="uint8")
            g["x_min"][:] = np.array([c["x"] for c in mine])
            g["y_min"][:] = np.array([c["y"] for c in mine])
        for m in MODALITIES:
            layer = LAYERS[m]
            arr = g.create_array(m, shape=(n, len(layer.bands), size, size), dtype=layer.dtype,
                                 chunks=(CHUNK_CHIPS, len(layer.bands), size, size), fill_value=layer.nodata,
                                 compressors=_compressor())
            arr.attrs.update({"_ARRAY_DIMENSIONS": ["chip", f"{m}_band" if len(layer.bands) > 1 else "band", "row",
                                                    "col"], "units": layer.units, "bands": list(layer.bands)})
            # the chunks, by the gather's workers: each decodes a run of chunks' chips and writes the chunk
            # files zarr would write (the chunk's C-order bytes, padded with the fill value, through the
            # array's own compressor; none for a chunk of fill values only, zarr's write_empty_chunks=False)
            if arr.metadata.dimension_separator != ".":  # the chunk file names below are "<i>.0.0.0"
                raise RuntimeError(f"zarr chose chunk keys with '{arr.metadata.dimension_separator}'")
            step = CHUNK_CHIPS * WRITE_CHUNKS
            folder = dest / NAME / split / m
            tasks = [([dest / chip_path(m, c["class"], c["id"]) for c in mine[start : start + step]], start // CHUNK_CHIPS,
                      (CHUNK_CHIPS, len(layer.bands), size, size), layer.dtype, layer.nodata, str(folder))
                     for start in range(0, n, step)]
            for sums in ordered(context["pool"], _write_chunks, tasks):  # sha256 from the bytes in hand
                context["digests"].update({f"{NAME}/{split}/{m}/{name}": d for name, d in sums.items()})
        log.info("packed: %s: %d chips", split, n)


def _write_chunks(task) -> dict[str, str]:
    """Decode a run of chips and write their chunk files ``<first chunk + i>.0.0.0``: file name -> sha256."""
    paths, first, shape, dtype, fill, folder = task
    block = read_files(paths).astype(dtype, copy=False)
    codec, written = _compressor(), {}
    for i in range(0, len(paths), shape[0]):
        chunk = np.full(shape, fill, dtype=np.dtype(dtype).newbyteorder("<"))
        part = block[i : i + shape[0]]
        chunk[: len(part)] = part
        if np.all(chunk == fill):
            continue
        name = ".".join([str(first + i // shape[0])] + ["0"] * (len(shape) - 1))
        data = codec.encode(chunk)
        with open(Path(folder) / name, "wb") as f:
            f.write(data)
        written[name] = hashlib.sha256(data).hexdigest()
    return written
