"""Readers of the published forms that train from them -- the packed Zarr store and the Parquet shards -- for
``gos_build.ml`` and ``gos-build validate`` alike, read as a stranger's files: every size a file declares is
checked against what the dataset says before anything is allocated or inflated, and no path leads out of
the dataset folder. Their writers (:mod:`gos_build.archive.writers`) import the forms' names from here.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .config import MAX_CHUNK_CHIPS
from .errors import GosBuildError
from .io import inside, links_out
from .layout import dataset_layers

PACKED = "packed"  # dataset/packed/: the Zarr store
PARQUET = "parquet"  # dataset/parquet/: the shards and the index
PARQUET_INDEX = f"{PARQUET}/chips.parquet"
# what a reader accepts from a stranger's shards: a chip layer's GeoTIFF is ~10-40 kB (64 x 64 px)
MAX_LAYER_BYTES = 4 << 20
MAX_GROUP_ROWS = 1024
SHARD_RE = re.compile(rf"{PARQUET}/(?P<split>train|val|test)-(?P<k>\d{{5}})-of-(?P<n>\d{{5}})\.parquet")
_UNREADABLE = (OSError, ValueError, KeyError, TypeError, IndexError, RuntimeError)  # pyarrow's errors on a bad file

def zstd_frame_size(data: bytes) -> int | None:
    """The content size a Zstandard frame declares in its header (RFC 8878, 3.1.1.1), or None if it declares none
    or the bytes are not one frame's."""
    if len(data) < 6 or data[:4] != b"\x28\xb5\x2f\xfd":
        return None
    fhd = data[4]
    fcs_flag, single, dict_flag = fhd >> 6, (fhd >> 5) & 1, fhd & 3
    pos = 5 + (0 if single else 1) + (0, 1, 2, 4)[dict_flag]
    width = (1 if single else 0, 2, 4, 8)[fcs_flag]
    if not width or len(data) < pos + width:
        return None
    value = int.from_bytes(data[pos : pos + width], "little")
    return value + 256 if width == 2 else value


# the largest chunk (chips) a store may declare is publish.chunk_chips' maximum (config.MAX_CHUNK_CHIPS): a chunk
# is decoded whole (1024 chips of a float32 layer: 16 MB), so a stranger's store cannot ask for more


class PackedReader:
    """The packed store of a dataset folder, read without trusting it: each array's ``.zarray`` must say what
    gos-build writes for the number of chips the dataset's ``labels.txt`` gives (shape, chunks, dtype, Zstandard,
    no filters), and each chunk's frame must declare the chunk's size before it is inflated -- so a hostile
    store costs at most one chunk (16 chips of one layer, <= 1 MB) of memory. Raises GosBuildError naming the
    array or chunk. Chunks are decoded here with numcodecs (the codec zarr uses), the bytes zarr would give."""

    def __init__(self, dataset: str | Path, chip_size: int = 64, links: list[str] | None = None):
        self.dataset, self.size = Path(dataset), chip_size
        self.links = links_out(self.dataset) if links is None else links  # then every path check is arithmetic
        if inside(self.dataset, PACKED, self.links) is None:
            raise GosBuildError(f"{self.dataset / PACKED}: leads outside the dataset folder (not opened)")
        self.registry = dataset_layers(self.dataset)  # the dataset's layers (layers.json, or GOS10m's nine)
        self._meta: dict = {}

    def _path(self, rel: str) -> Path:
        path = inside(self.dataset, f"{PACKED}/{rel}", self.links)
        if path is None:
            raise GosBuildError(f"{PACKED}/{rel}: leads outside the dataset folder (not opened)")
        return path

    def meta(self, split: str, name: str, n: int) -> dict:
        """The checked ``.zarray`` of ``packed/<split>/<name>`` for ``n`` chips (a layer, chip_id or label)."""
        key = (split, name)
        if key in self._meta:
            return self._meta[key]
        import json

        rel = f"{split}/{name}/.zarray"
        path = self._path(rel)
        try:
            with open(path, "rb") as f:
                doc = json.loads(f.read(1 << 16))
        except (OSError, ValueError) as exc:
            raise GosBuildError(f"{PACKED}/{rel}: cannot be read ({exc})") from None
        if name in self.registry:
            layer = self.registry[name]
            dims = [len(layer.bands), self.size, self.size]
            want = {"shape": [n, *dims], "dtype": np.dtype(layer.dtype).newbyteorder("<").str}
            chunks = doc.get("chunks") if isinstance(doc, dict) else None
            ok_chunks = isinstance(chunks, list) and len(chunks) == 4 and chunks[1:] == dims and \
                isinstance(chunks[0], int) and 0 < chunks[0] <= MAX_CHUNK_CHIPS
        else:
            want = {"shape": [n], "dtype": {"chip_id": "<U16", "label": "|u1", "class_id": "|u1"}.get(name)}
            if name in ("x_min", "y_min", "boundary_m"):
                want["dtype"] = "<f8"
            chunks = doc.get("chunks") if isinstance(doc, dict) else None
            ok_chunks = chunks == [max(n, 1)]
        def ints(v) -> bool:  # JSON's true equals 1 in Python: the types too
            return isinstance(v, list) and all(type(x) is int for x in v)

        if not isinstance(doc, dict) or not ints(doc.get("shape")) or not ints(doc.get("chunks")) or \
                want["dtype"] is None or doc.get("shape") != want["shape"] or \
                doc.get("dtype") != want["dtype"] or not ok_chunks or doc.get("order") != "C" or \
                doc.get("filters") is not None or doc.get("dimension_separator", ".") != "." or \
                not isinstance(doc.get("compressor"), dict) or doc["compressor"].get("id") != "zstd":
            raise GosBuildError(f"{PACKED}/{rel}: not the array gos-build writes for {n} chips "
                                f"(shape {doc.get('shape') if isinstance(doc, dict) else '?'})")
        self._meta[key] = doc
        return doc

    def chunk(self, split: str, name: str, n: int, k: int) -> np.ndarray:
        """Chunk ``k`` (along the chips) of ``packed/<split>/<name>``, decoded; the fill value where zarr wrote
        none (a chunk of fill values only)."""
        import numcodecs

        doc = self.meta(split, name, n)
        chunks = doc["chunks"]
        dtype = np.dtype(doc["dtype"])
        expected = int(np.prod(chunks)) * dtype.itemsize
        if not 0 <= k < max(1, -(-n // chunks[0])):
            raise GosBuildError(f"{PACKED}/{split}/{name}: no chunk {k} for {n} chips")
        rel = f"{split}/{name}/" + ".".join([str(k)] + ["0"] * (len(chunks) - 1))
        path = self._path(rel)
        if not path.exists():
            try:
                return np.full(chunks, doc.get("fill_value") or 0, dtype=dtype)
            except (TypeError, ValueError, OverflowError):
                raise GosBuildError(f"{PACKED}/{split}/{name}/.zarray: fill value {doc.get('fill_value')!r}") from None
        try:
            with open(path, "rb") as f:
                data = f.read(expected + (1 << 16) + 1)
        except OSError as exc:
            raise GosBuildError(f"{PACKED}/{rel}: cannot be read ({exc.strerror})") from None
        if len(data) > expected + (1 << 16) or zstd_frame_size(data) != expected:
            raise GosBuildError(f"{PACKED}/{rel}: not a Zstandard chunk of {expected} bytes")
        try:
            raw = numcodecs.Zstd().decode(data)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise GosBuildError(f"{PACKED}/{rel}: cannot be decoded ({exc})") from None
        if len(raw) != expected:
            raise GosBuildError(f"{PACKED}/{rel}: {len(raw)} bytes decoded, expected {expected}")
        return np.frombuffer(raw, dtype=dtype).reshape(chunks)

    def column(self, split: str, name: str, n: int) -> np.ndarray:
        """A one-chunk array (chip_id, label, x_min, y_min) of ``n`` chips."""
        return self.chunk(split, name, n, 0)[:n] if n else np.empty(0, np.dtype(self.meta(split, name, n)["dtype"]))


def check_row_group(f, g: int, path):
    """Row group ``g``'s metadata of the ParquetFile ``f``, or GosBuildError when it declares more rows or bytes
    than a gos-build shard's group holds (so reading it cannot allocate what a hostile footer asks for)."""

    meta = f.metadata.row_group(g)
    if meta.num_rows > MAX_GROUP_ROWS or any(meta.column(c).total_uncompressed_size > MAX_GROUP_ROWS * MAX_LAYER_BYTES
                                             for c in range(meta.num_columns)):
        raise GosBuildError(f"{path}: row group {g} is larger than a shard of gos-build holds")
    return meta


class ParquetReader:
    """Chips' GeoTIFF bytes from a dataset's Parquet form, found through ``parquet/chips.parquet`` and read as a
    stranger's files: the index may name shards of this dataset only, each row group is checked (rows, column
    sizes) before it is read, and a layer's bytes are at most :data:`MAX_LAYER_BYTES`. Raises GosBuildError naming
    the file. One row group per shard is kept decoded (random access reads one group, an epoch each group once)."""

    def __init__(self, dataset: str | Path, links: list[str] | None = None):
        import pyarrow.parquet as pq

        self.dataset = Path(dataset)
        self.links = links_out(self.dataset) if links is None else links
        path = inside(self.dataset, PARQUET_INDEX, self.links)
        if path is None:
            raise GosBuildError(f"{self.dataset / PARQUET_INDEX}: leads outside the dataset folder (not opened)")
        try:
            table = pq.read_table(path, columns=["chip_id", "parquet_file", "parquet_row"])
            cols = [table.column(k).to_pylist() for k in ("chip_id", "parquet_file", "parquet_row")]
        except _UNREADABLE as exc:
            raise GosBuildError(f"{path}: not a readable Parquet index ({type(exc).__name__}: {exc})") from None
        self.where = {}
        for cid, rel, row in zip(*cols):
            if not isinstance(rel, str) or not SHARD_RE.fullmatch(rel) or not isinstance(row, int) or row < 0:
                raise GosBuildError(f"{path}: chip {cid}: parquet_file {str(rel)[:100]!r}, row {row}: not a shard row")
            self.where[cid] = (rel, row)
        self.registry = dataset_layers(self.dataset)  # the dataset's layers (layers.json, or GOS10m's nine)
        self._files: dict = {}
        self._groups: dict = {}

    def _file(self, rel: str):
        import pyarrow.parquet as pq

        if rel not in self._files:
            path = inside(self.dataset, rel, self.links)
            if path is None:
                raise GosBuildError(f"{self.dataset / rel}: leads outside the dataset folder (not opened)")
            try:
                f = pq.ParquetFile(path)
                starts, n = [], 0
                for g in range(f.num_row_groups):
                    meta = check_row_group(f, g, path)
                    starts.append(n)
                    n += meta.num_rows
            except _UNREADABLE as exc:
                raise GosBuildError(f"{path}: not a readable Parquet shard ({type(exc).__name__}: {exc})") from None
            self._files[rel] = (f, starts, n)
        return self._files[rel]

    def layers(self, chip_id: str) -> dict[str, bytes]:
        """Layer name -> the chip's GeoTIFF bytes."""
        import bisect

        if chip_id not in self.where:
            raise GosBuildError(f"{self.dataset / PARQUET_INDEX}: no chip {chip_id}")
        rel, row = self.where[chip_id]
        f, starts, n = self._file(rel)
        if row >= n:
            raise GosBuildError(f"{self.dataset / rel}: no row {row} (chip {chip_id})")
        g = bisect.bisect_right(starts, row) - 1
        if self._groups.get(rel, (None,))[0] != g:
            try:
                names = ("chip_id", *self.registry)
                table = f.read_row_group(g, columns=list(names))
                self._groups[rel] = (g, {k: table.column(k) for k in names})
            except _UNREADABLE as exc:
                raise GosBuildError(f"{self.dataset / rel}: row group {g} cannot be read ({type(exc).__name__}: "
                                    f"{exc})") from None
        cols = self._groups[rel][1]
        i = row - starts[g]
        try:
            held = cols["chip_id"][i].as_py()
            values = {m: cols[m][i].as_py() for m in self.registry}
        except _UNREADABLE as exc:  # a string that is not UTF-8, a column of another type
            raise GosBuildError(f"{self.dataset / rel}: row {row} cannot be read ({type(exc).__name__})") from None
        if held != chip_id:
            raise GosBuildError(f"{self.dataset / rel}: row {row} holds {str(held)[:40]!r}, not {chip_id}")
        for m, data in values.items():
            if not isinstance(data, bytes) or len(data) > MAX_LAYER_BYTES:
                raise GosBuildError(f"{self.dataset / rel}: row {row} {m}: not the bytes of a chip GeoTIFF")
        return values
