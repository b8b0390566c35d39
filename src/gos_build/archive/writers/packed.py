"""The packed store: the chips of each split as arrays, for training without opening 80 000 small files.

``dataset/packed/`` is a Zarr (format 2) group, readable by ``zarr`` and ``xarray`` without gos-build::

    packed/<split>/<layer>      [N, C, 64, 64]  rgb uint16 (C = 3), the eight elevation layers float32 (C = 1)
    packed/<split>/chip_id      [N]             chip ids (text), in the order of labels.txt
    packed/<split>/label        [N]             class index 0..K-1 in classes.txt's order (uint8)
    packed/<split>/class_id     [N]             class ids (uint8, as in classes.txt)
    packed/<split>/x_min, y_min [N]             south-west corner of each chip, metres, grid CRS
    packed/<split>/boundary_m   [N]             distance to the nearest class boundary, m (NaN: unknown)

Attributes of the group: classes, layers (bands, units, nodata), CRS and chip size. Chunks hold
``publish.chunk_chips`` chips of one layer (16 by default; Zstandard, level 3): a training epoch reads a few
hundred chunks, a random read decodes 16 chips. A province's store takes larger chunks (e.g. 512: a file
every 512 chips and layer instead of every 16; a random read then decodes 512).
Values are the chip GeoTIFFs' values, exactly: the tile jobs put the same arrays in their shards
(:func:`shard_members`: ``packed/<layer>.npy``, raw, one row per kept chip, in the order of
``packed/chips.txt``), the groups' jobs copy rows from there into the chunks (:func:`place`) -- nothing is
decoded -- and the last job writes the store's metadata (:func:`finish`).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from pathlib import Path

import numpy as np

from ...config import chunk_chips
from ...errors import GosBuildError
from ...io import write_new_file
from ...parallel import ordered
from ...layout import CLASS_ID, LABEL, LABEL_MEANING, SPLITS, label_of
from ...readers import PACKED as NAME

log = logging.getLogger(__name__)

WRITE_CHIPS = 512  # chips per task of a worker (whole chunks, at least one)


def _compressor():
    import numcodecs

    return numcodecs.Zstd(level=3)  # single-threaded and deterministic: same arrays, same bytes


SHARD_IDS = f"{NAME}/chips.txt"  # in the shard: the kept chips' ids, one a line, in the order of the rows


def _cf_scale(layer) -> dict:
    """CF's packing attributes of a scaled layer (xarray decodes ``v * scale_factor + add_offset`` in ``units``
    unless ``mask_and_scale=False``); none for a layer stored in its units."""
    return {"scale_factor": layer.scale, "add_offset": layer.offset} if layer.scaled else {}


def shard_array(layer: str) -> str:
    """Name in the shard of a layer's arrays of the tile's kept chips: ``packed/<layer>.npy``."""
    return f"{NAME}/{layer}.npy"


def shard_members(grid, kept, layers) -> list[tuple[str, bytes | tuple]]:
    """The tile's kept chips, per layer (of the registry ``layers``) one ``.npy`` (N, bands, size, size) in the
    layer's dtype, and their ids."""
    size = grid.chip_size
    out = [(SHARD_IDS, "".join(f"{record['id']}\n" for record, _ in kept).encode("ascii"))]
    for m, layer in layers.items():
        arr = np.empty((len(kept), len(layer.bands), size, size), dtype=layer.dtype)
        for i, (_, layers) in enumerate(kept):
            arr[i] = layers[m]
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(arr))
        out.append((shard_array(m), (header.getvalue(), arr)))  # an .npy file: its header, then the C-order bytes
    return out


def _rows(shards) -> dict[str, tuple[str, int]]:
    """Chip id -> (its shard's ``.npy`` folder, row in its arrays), for the shard folders ``shards``."""
    where = {}
    for shard in shards:
        path = Path(shard) / SHARD_IDS
        try:
            ids = path.read_text(encoding="ascii").split()
        except (OSError, UnicodeDecodeError) as exc:
            raise GosBuildError(f"{path}: cannot read the shard's chip ids ({exc})") from None
        where.update((cid, (str(shard), row)) for row, cid in enumerate(ids))
    return where


def place(chips: list[dict], dest: Path, context: dict) -> None:
    """Write the chunk files of ``dest/packed`` that start with a chip of the group (a chunk's first chip
    decides; the rest of its chips may lie in the next group's tiles), from the arrays in the tile shards."""
    part = context["part"]
    size = context["chip_size"]
    layers = context["layers"]
    per = chunk_chips(context["config"])
    chunked = {}  # per split: the first chunk starting in the group, and the chips of its chunks
    for split in SPLITS:
        start, end = part["range"][split]
        first = -(-start // per) * per
        if first < end:
            at = first - part["offset"][split]  # the group's run of chips starts at this one of the split
            chunked[split] = first, part["runs"][split][at : at + -(-(end - first) // per) * per]
    where = _rows(sorted({part["shard_of"][c["tile"]] for _, mine in chunked.values() for c in mine}))
    for split, (first, mine) in chunked.items():
        missing = [c["id"] for c in mine if c["id"] not in where]
        if missing:
            raise GosBuildError(f"packed: {len(missing)} chips are in no shard's {SHARD_IDS} (first: {missing[0]})")
        for m, layer in layers.items():
            # the chunks, by the workers: each reads a run of chunks' chips and writes the chunk files zarr
            # would write (the chunk's C-order bytes, padded with the fill value, through the array's own
            # compressor; none for a chunk of fill values only, zarr's write_empty_chunks=False)
            step = per * max(1, WRITE_CHIPS // per)
            folder = dest / NAME / split / m
            folder.mkdir(parents=True, exist_ok=True)
            tasks = [([(os.path.join(where[c["id"]][0], shard_array(m)), where[c["id"]][1])
                       for c in mine[i : i + step]],
                      (first + i) // per,
                      (per, len(layer.bands), size, size), layer.dtype, layer.nodata, str(folder))
                     for i in range(0, len(mine), step)]
            for sums in ordered(context["pool"], _write_chunks, tasks):  # sha256 from the bytes in hand
                context["digests"].update({f"{NAME}/{split}/{m}/{name}": d for name, d in sums.items()})
        log.info("packed: %s: chips %d..%d", split, first, first + len(mine))


def finish(chips: list[dict], dest: Path, context: dict, notes: list) -> None:
    """Write the store's metadata and its one-chunk arrays (ids, labels, corners): the groups' chunk files go
    into its layers' folders."""
    import zarr

    size = context["chip_size"]
    layers = context["layers"]
    label = label_of(context["classes"])
    root = zarr.open_group(str(dest / NAME), mode="w", zarr_format=2)
    root.attrs.update({"classes": {str(k): v for k, v in context["classes"].items()}, "crs": context["crs"],
                       "chip_size": size, "layers": {m: {"bands": list(layer.bands), "dtype": layer.dtype,
                                                         "units": layer.units, "nodata": layer.nodata,
                                                         **_cf_scale(layer)}
                                                     for m, layer in layers.items()},
                       "description": "gos-build packed chips: <split>/<layer> [N, C, H, W], chip_id, label (" + LABEL_MEANING
                       + "), class_id, x_min, y_min, boundary_m"})
    for split in SPLITS:
        mine = [c for c in chips if c["split"] == split]
        g = root.create_group(split)
        n = len(mine)
        g.create_array("chip_id", shape=(n,), dtype="<U16", chunks=(max(n, 1),), compressors=_compressor())
        for name in (LABEL, CLASS_ID):
            g.create_array(name, shape=(n,), dtype="uint8", chunks=(max(n, 1),), compressors=_compressor())
        for axis in ("x_min", "y_min", "boundary_m"):
            g.create_array(axis, shape=(n,), dtype="float64", chunks=(max(n, 1),), compressors=_compressor())
        for name in ("chip_id", LABEL, CLASS_ID, "x_min", "y_min", "boundary_m"):
            g[name].attrs["_ARRAY_DIMENSIONS"] = ["chip"]  # xarray's dimension names
        if n:
            g["chip_id"][:] = np.array([c["id"] for c in mine], dtype="<U16")
            g[LABEL][:] = np.array([label[c["class_id"]] for c in mine], dtype="uint8")
            g[CLASS_ID][:] = np.array([c["class_id"] for c in mine], dtype="uint8")
            g["x_min"][:] = np.array([c["x"] for c in mine])
            g["y_min"][:] = np.array([c["y"] for c in mine])
            g["boundary_m"][:] = np.array([np.nan if c.get("boundary_m") is None else c["boundary_m"] for c in mine])
        for m, layer in layers.items():
            arr = g.create_array(m, shape=(n, len(layer.bands), size, size), dtype=layer.dtype,
                                 chunks=(chunk_chips(context["config"]), len(layer.bands), size, size),
                                 fill_value=layer.nodata,
                                 compressors=_compressor())
            arr.attrs.update({"_ARRAY_DIMENSIONS": ["chip", f"{m}_band" if len(layer.bands) > 1 else "band", "row",
                                                    "col"], "units": layer.units, "bands": list(layer.bands),
                              **_cf_scale(layer)})
            if arr.metadata.dimension_separator != ".":  # the groups' chunk file names are "<i>.0.0.0"
                raise RuntimeError(f"zarr chose chunk keys with '{arr.metadata.dimension_separator}'")
        log.info("packed: %s: %d chips", split, n)


def _open_npy(path: str, shape: tuple, dtype: str) -> tuple[int, int]:
    """(file descriptor, byte offset of row 0) of a shard's ``.npy``, checked to hold rows of ``shape``/``dtype``."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in read_header:
                raise ValueError(f"npy format {version}")
            rows_shape, fortran, got = read_header[version](f)
            offset = f.tell()
    except (OSError, ValueError) as exc:
        raise GosBuildError(f"{path}: cannot read the shard's arrays ({exc})") from None
    if tuple(rows_shape[1:]) != tuple(shape) or got != np.dtype(dtype) or fortran:
        raise GosBuildError(f"{path}: arrays of shape {tuple(rows_shape[1:])} {got}, expected {tuple(shape)} {dtype}")
    return os.open(path, os.O_RDONLY), offset


def _write_chunks(task) -> dict[str, str]:
    """Read a run of chips' rows from the shards' arrays and write their chunk files ``<first chunk + i>.0.0.0``:
    file name -> sha256. Each row is one positioned read into the block (no memory map: its page faults cost
    more than the copy)."""
    rows, first, shape, dtype, fill, folder = task
    block = np.empty((len(rows), *shape[1:]), dtype=dtype)
    row_bytes = block[0].nbytes if len(rows) else 0
    files = {}
    try:
        for i, (path, row) in enumerate(rows):
            if path not in files:
                files[path] = _open_npy(path, shape[1:], dtype)
            fd, offset = files[path]
            if os.preadv(fd, [memoryview(block[i]).cast("B")], offset + row * row_bytes) != row_bytes:
                raise GosBuildError(f"{path}: row {row} is missing (the shard's arrays end early)")
    finally:
        for fd, _ in files.values():
            os.close(fd)
    codec, written = _compressor(), {}
    for i in range(0, len(rows), shape[0]):
        chunk = np.full(shape, fill, dtype=np.dtype(dtype).newbyteorder("<"))
        part = block[i : i + shape[0]]
        chunk[: len(part)] = part
        if np.all(chunk == fill):
            continue
        name = ".".join([str(first + i // shape[0])] + ["0"] * (len(shape) - 1))
        data = codec.encode(chunk)
        write_new_file(os.path.join(folder, name), data)
        written[name] = hashlib.sha256(data).hexdigest()
    return written
