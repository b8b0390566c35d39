"""Small GeoTIFFs without a GDAL dataset each: GDAL's own bytes, from a template.

GDAL spends about a millisecond creating and closing a GeoTIFF however small it
is; a dataset of ~9 000 chips x 9 layers pays that 80 000 times. This module
writes and reads the chip GeoTIFFs of gos-build (64 x 64 px, DEFLATE with a
predictor, no tiles: :func:`gos_build.io.geotiff_profile`) by themselves:

* :class:`Encoder` asks GDAL once for a template of one kind of chip (size,
  bands, dtype, CRS, nodata, band descriptions, pixel size) and learns its
  layout: the header, the directory libtiff wrote first (left in the file, as
  GDAL leaves it), the strips, the final directory and its values. A chip is
  then its rows through the TIFF predictor (numpy), each strip through
  libdeflate (the ``deflate`` package; libtiff compresses with the same
  library), the tiepoint, strip offsets and byte counts put in place.
  Before its first chip the encoder writes probe arrays both ways; unless the
  bytes are identical (another GDAL, libtiff or libdeflate), every chip goes
  through GDAL instead (:func:`gos_build.io.geotiff_bytes`), logged once.
* :func:`read_header` / :func:`read_array` parse such a file's directory and
  decode its strips (DEFLATE, predictor), for the gather, the figures and
  ``validate``; a file that is not of that kind raises :class:`NotAChip`, and
  :func:`read_files` hands it to GDAL.

Byte order is little-endian ("II"), classic TIFF (a chip is far below 4 GB).
"""

from __future__ import annotations

import functools
import logging
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .io import geotiff_bytes

log = logging.getLogger(__name__)

# TIFF tags used here
_WIDTH, _HEIGHT, _BITS, _COMPRESSION = 256, 257, 258, 259
_STRIP_OFFSETS, _SAMPLES, _ROWS_PER_STRIP, _STRIP_BYTES = 273, 277, 278, 279
_PLANAR, _PREDICTOR, _SAMPLE_FORMAT = 284, 317, 339
_PIXEL_SCALE, _TIEPOINT, _MODEL_TRANSFORM = 33550, 33922, 34264
_GEO_KEYS, _GEO_DOUBLES, _GEO_ASCII = 34735, 34736, 34737
_GDAL_METADATA = 42112  # GDAL's XML of band descriptions, scale, offset and unit type
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8}
_DEFLATE = (8, 32946)
_DTYPES = {(1, 8): "uint8", (1, 16): "uint16", (1, 32): "uint32", (2, 8): "int8", (2, 16): "int16",
           (2, 32): "int32", (3, 32): "float32", (3, 64): "float64"}


class NotAChip(ValueError):
    """The bytes are not a little-endian, strip-organised GeoTIFF of the kind gos-build writes."""


# what a chip may declare (a chip is 64 x 64 px, 1 band, rgb's 3, or s2's at most 13 -- every Sentinel-2 band):
# larger is not a chip, whatever its bytes say, so a hostile header cannot make a reader allocate more than
# MAX_SIDE^2 x MAX_BANDS x 8 bytes (32 MB)
MAX_SIDE = 512
MAX_BANDS = 16


# -- the directory --------------------------------------------------------------------------------------
class _Entry(NamedTuple):
    tag: int
    type: int
    count: int
    field: int  # position of the 4-byte value/offset field in the file
    offset: int | None  # where the value lies when it does not fit the field, else None


_ENTRY = struct.Struct("<HHII")


def _directory(data: bytes) -> tuple[int, dict[int, _Entry]]:
    """(offset of the first directory, its entries by tag) of a little-endian classic TIFF."""
    if len(data) < 8 or data[:4] != b"II*\x00":
        raise NotAChip("not a little-endian classic TIFF")
    ifd = struct.unpack_from("<I", data, 4)[0]
    if ifd + 2 > len(data):
        raise NotAChip("directory offset past the end of the file")
    n = struct.unpack_from("<H", data, ifd)[0]
    if ifd + 2 + 12 * n + 4 > len(data):
        raise NotAChip("directory runs past the end of the file")
    entries = {}
    size_of, end = _TYPE_SIZE.get, len(data)
    for tag, typ, count, value in _ENTRY.iter_unpack(data[ifd + 2 : ifd + 2 + 12 * n]):
        field = ifd + 2 + 12 * len(entries) + 8
        if size_of(typ, 1) * count > 4:
            if value + size_of(typ, 1) * count > end:
                raise NotAChip(f"value of tag {tag} past the end of the file")
            entries[tag] = _Entry(tag, typ, count, field, value)
        else:
            entries[tag] = _Entry(tag, typ, count, field, None)
    return ifd, entries


_FORMATS = {1: "B", 2: "s", 3: "H", 4: "I", 5: "II", 6: "b", 8: "h", 9: "i", 10: "ii", 11: "f", 12: "d", 16: "Q"}


def _values(data: bytes, e: _Entry) -> tuple:
    start = e.offset if e.offset is not None else e.field
    if e.type == 2:
        return (data[start : start + e.count].rstrip(b"\x00").decode("latin-1"),)
    fmt = _FORMATS.get(e.type)
    if fmt is None:
        raise NotAChip(f"tag {e.tag}: TIFF type {e.type}")
    try:
        return struct.unpack_from(f"<{e.count * len(fmt)}{fmt[0]}", data, start)
    except struct.error as exc:
        raise NotAChip(f"tag {e.tag}: {exc}") from None


@dataclass(frozen=True)
class Header:
    """What a chip's directory says: size, bands, dtype, georeferencing (bounds in the file's CRS)."""

    width: int
    height: int
    count: int
    dtype: str
    bounds: tuple[float, float, float, float]  # left, bottom, right, top
    crs_key: bytes  # the GeoTIFF keys, doubles and text that define the CRS: equal bytes, equal CRS
    metadata: bytes = b""  # GDAL_METADATA's XML as stored (empty when the file has none): see band_metadata


MAX_METADATA = 1 << 16  # a chip's band metadata is a few hundred bytes


def band_metadata(xml: bytes, count: int) -> list[dict]:
    """Per band, what GDAL's metadata says of it: ``{"description", "unit", "scale", "offset"}`` (GDAL's
    defaults where it says nothing: no description or unit, scale 1, offset 0). ValueError when the XML is
    not GDAL's metadata of ``count`` bands."""
    import xml.etree.ElementTree as ET

    out = [{"description": "", "unit": "", "scale": 1.0, "offset": 0.0} for _ in range(count)]
    if not xml:
        return out
    if len(xml) > MAX_METADATA or b"<!" in xml:  # no DTDs, no entities: a plain list of items
        raise ValueError("GDAL_METADATA larger than 64 kB or with a DTD")
    try:
        root = ET.fromstring(xml.rstrip(b"\x00"))
    except ET.ParseError as exc:  # a SyntaxError, not a ValueError: a damaged file's, said as the others are
        raise ValueError(f"GDAL_METADATA is not XML ({exc})") from None
    if root.tag != "GDALMetadata":
        raise ValueError(f"GDAL_METADATA's root is {root.tag}")
    keys = {"description": "description", "unittype": "unit", "scale": "scale", "offset": "offset"}
    for item in root.iter("Item"):
        role, sample = item.get("role"), item.get("sample")
        if role in keys and sample is not None:
            band = int(sample)
            if not 0 <= band < count:
                raise ValueError(f"GDAL_METADATA names band {band} of {count}")
            text = item.text or ""
            out[band][keys[role]] = float(text) if role in ("scale", "offset") else text
    return out


def _one(data: bytes, e: dict, tag: int, default):
    if tag not in e:
        return default
    values = _values(data, e[tag])
    if not values:
        raise NotAChip(f"tag {tag} holds no value")
    return values[0]


def _parse(data: bytes) -> tuple[Header, dict[int, _Entry]]:
    """The :class:`Header` and the directory entries of a chip GeoTIFF's bytes."""
    _, e = _directory(data)
    for tag in (_WIDTH, _HEIGHT, _STRIP_OFFSETS, _STRIP_BYTES):
        if tag not in e:
            raise NotAChip(f"no TIFF tag {tag}")
    if _PIXEL_SCALE not in e or _TIEPOINT not in e:
        raise NotAChip("not georeferenced by pixel scale and tiepoint")
    width, height = _one(data, e, _WIDTH, 0), _one(data, e, _HEIGHT, 0)
    count, bits = _one(data, e, _SAMPLES, 1), _one(data, e, _BITS, 1)
    fmt = _one(data, e, _SAMPLE_FORMAT, 1)
    dtype = _DTYPES.get((fmt, bits))
    if dtype is None:
        raise NotAChip(f"sample format {fmt}, {bits} bits")
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE and 0 < count <= MAX_BANDS):
        raise NotAChip(f"{width} x {height} px, {count} band(s): not the size of a chip")
    sx, sy = _values(data, e[_PIXEL_SCALE])[:2]
    tie = _values(data, e[_TIEPOINT])
    if len(tie) != 6 or tie[0] != 0 or tie[1] != 0:
        raise NotAChip("tiepoint not at pixel (0, 0)")
    left, top = tie[3], tie[4]
    if _MODEL_TRANSFORM in e or _raster_type(data, e) != 1:
        raise NotAChip("georeferenced by a model transformation or by pixel centres (PixelIsPoint)")
    if any(x.type not in _TYPE_SIZE for t in (_GEO_KEYS, _GEO_DOUBLES, _GEO_ASCII) if (x := e.get(t))):
        raise NotAChip("a GeoTIFF key directory of an unknown TIFF type")
    crs = b"".join(data[x.offset : x.offset + _TYPE_SIZE[x.type] * x.count] if x.offset is not None
                   else data[x.field : x.field + 4] for t in (_GEO_KEYS, _GEO_DOUBLES, _GEO_ASCII) if (x := e.get(t)))
    meta = e.get(_GDAL_METADATA)
    if meta is not None and (meta.type != 2 or meta.count > MAX_METADATA):
        raise NotAChip("GDAL_METADATA not ASCII or larger than 64 kB")
    metadata = b"" if meta is None else (data[meta.offset : meta.offset + meta.count] if meta.offset is not None
                                         else data[meta.field : meta.field + meta.count])
    return Header(width, height, count, dtype, (left, top - height * sy, left + width * sx, top), crs,
                  metadata), e


def _raster_type(data: bytes, e: dict) -> int:
    """GTRasterTypeGeoKey (1025): 1 = PixelIsArea (GDAL's default), 2 = PixelIsPoint; 1 if absent."""
    if _GEO_KEYS not in e:
        return 1
    keys = _values(data, e[_GEO_KEYS])
    for i in range(4, len(keys) - 3, 4):
        if keys[i] == 1025 and keys[i + 1] == 0:
            return keys[i + 3]
    return 1


# what a damaged directory trips on (ValueError: a tag with fewer values than it must have); NotAChip, itself a
# ValueError, passes through with its own words
_DAMAGED = (struct.error, KeyError, IndexError, TypeError, ZeroDivisionError, OverflowError, ValueError)


def read_header(data: bytes) -> Header:
    """The :class:`Header` of a chip GeoTIFF's bytes (its directory only; strips are not read)."""
    try:
        return _parse(data)[0]
    except NotAChip:
        raise
    except _DAMAGED as exc:  # whatever a damaged directory trips on: not a chip, never a crash
        raise NotAChip(f"a damaged TIFF directory ({type(exc).__name__}: {exc})") from None


def read_array(data: bytes) -> np.ndarray:
    """The bands of a chip GeoTIFF's bytes, (count, height, width), decoded here (DEFLATE, TIFF predictor)."""
    return read_arrays([data])[0]


def read_arrays(datas: list[bytes]) -> np.ndarray:
    """The bands of chip GeoTIFFs of one kind (size, bands, dtype, predictor), (N, count, height, width).

    Each file's strips are inflated alone; the predictor is undone for all of them in one pass.
    """
    kind, raws = None, []
    for data in datas:
        try:
            k, raw = _strips(data)
        except NotAChip:
            raise
        except _DAMAGED as exc:
            raise NotAChip(f"a damaged TIFF directory ({type(exc).__name__}: {exc})") from None
        if kind is None:
            kind = k
        elif k != kind:
            raise NotAChip(f"chips of different kinds: {k} and {kind}")
        raws.append(raw)
    if kind is None:
        raise ValueError("no chip to read")
    count, height, width, dtype, predictor = kind
    rows = np.frombuffer(b"".join(raws), np.uint8).reshape(len(raws) * count * height, -1)
    return _unpredict(rows, predictor, dtype).reshape(len(raws), count, height, width)


def read_files(paths) -> np.ndarray:
    """Chip GeoTIFF files of one kind, (N, count, height, width): decoded here, or by GDAL when they are
    not of the kind gos-build writes (another tool's GeoTIFF, another compression)."""
    datas = [Path(p).read_bytes() for p in paths]
    try:
        return read_arrays(datas)
    except NotAChip:
        from rasterio.errors import RasterioError
        from rasterio.io import MemoryFile

        out = []
        for path, data in zip(paths, datas):
            try:
                with MemoryFile(data) as mem, mem.open() as ds:
                    # GDAL reads what the file declares: bound it as for our own chips before reading
                    if not (ds.width <= MAX_SIDE and ds.height <= MAX_SIDE and ds.count <= MAX_BANDS):
                        raise NotAChip(f"{path}: {ds.width} x {ds.height} px, {ds.count} band(s): not a chip")
                    out.append(ds.read())
            except (RasterioError, ValueError) as exc:  # ValueError: rasterio's for an empty file
                raise NotAChip(f"{path}: not a readable GeoTIFF ({exc})") from None
        if len({(a.shape, a.dtype) for a in out}) > 1:
            raise NotAChip(f"chips of different kinds: {sorted({(a.shape, str(a.dtype)) for a in out})}")
        return np.stack(out)


def _strips(data: bytes) -> tuple[tuple, bytes]:
    """((count, height, width, dtype, predictor), the inflated strips of every band back to back)."""
    h, e = _parse(data)
    compression = _one(data, e, _COMPRESSION, 1)
    predictor = _one(data, e, _PREDICTOR, 1)
    planar = _one(data, e, _PLANAR, 1)
    rows = _one(data, e, _ROWS_PER_STRIP, h.height)
    if not isinstance(rows, int) or rows < 1:
        raise NotAChip(f"{rows} rows per strip")
    if compression not in (1, *_DEFLATE) or predictor not in (1, 2, 3) or (planar != 2 and h.count > 1):
        raise NotAChip(f"compression {compression}, predictor {predictor}, planar configuration {planar}")
    offsets, sizes = _values(data, e[_STRIP_OFFSETS]), _values(data, e[_STRIP_BYTES])
    per_band = -(-h.height // rows)
    if len(offsets) != per_band * h.count or len(sizes) != len(offsets):
        raise NotAChip("strip count does not match the image")
    dtype = np.dtype(h.dtype).newbyteorder("<")
    row_bytes = h.width * dtype.itemsize
    strips = []
    for i, (off, size) in enumerate(zip(offsets, sizes)):
        n = min(rows, h.height - (i % per_band) * rows)
        raw = data[off : off + size]
        if compression in _DEFLATE:
            try:
                raw = _decompress(raw, n * row_bytes)
            except Exception as exc:  # zlib.error, deflate.DeflateError
                raise NotAChip(f"strip {i}: {exc}") from None
        if len(raw) != n * row_bytes:
            raise NotAChip(f"strip {i}: {len(raw)} bytes, expected {n * row_bytes}")
        strips.append(raw)
    return (h.count, h.height, h.width, dtype, predictor), b"".join(strips)


def _decompress(raw: bytes, size: int) -> bytes:
    """Inflate a strip into at most ``size`` bytes (a stream that expands further is refused, not followed)."""
    try:
        import deflate
    except ImportError:
        d = zlib.decompressobj()
        out = d.decompress(raw, size)
        if d.unconsumed_tail:
            raise NotAChip(f"inflates beyond the {size} bytes declared")
        return out
    return deflate.zlib_decompress(raw, size)


# -- the predictor (TIFF 6.0 horizontal differencing; Adobe's floating-point predictor, technical note 3) ----
def _predict(rows: np.ndarray, predictor: int) -> bytes:
    """Bytes of a strip's rows (n, width) after the TIFF predictor, little-endian as libtiff writes them."""
    a = np.ascontiguousarray(rows, dtype=rows.dtype.newbyteorder("<"))
    if predictor == 1:
        return a.tobytes()
    if predictor == 2:
        d = a.copy()
        d[:, 1:] -= a[:, :-1]  # modulo 2^bits, as libtiff's integer arithmetic
        return d.tobytes()
    # 3: per row, the bytes of every sample in planes from the most significant one, then byte differences
    n, w = a.shape
    k = a.dtype.itemsize
    planes = a.view(np.uint8).reshape(n, w, k)[:, :, ::-1].transpose(0, 2, 1).reshape(n, w * k)
    d = planes.copy()
    d[:, 1:] -= planes[:, :-1]
    return d.tobytes()


def _unpredict(raw: np.ndarray, predictor: int, dtype: np.dtype) -> np.ndarray:
    """Inverse of :func:`_predict` on rows of bytes (n, width * itemsize) -> (n, width) of ``dtype``."""
    n = raw.shape[0]
    if predictor == 1:
        return raw.view(dtype).reshape(n, -1)
    if predictor == 2:
        return np.cumsum(raw.view(dtype), axis=1, dtype=dtype)
    k = dtype.itemsize
    sums = np.cumsum(raw, axis=1, dtype=np.uint8).reshape(n, k, -1)  # [row, plane, col]
    out = np.empty((n, sums.shape[2], k), np.uint8)
    for plane in range(k):  # the most significant byte first -> little-endian bytes of each sample
        out[:, :, k - 1 - plane] = sums[:, plane]
    return out.view(dtype).reshape(n, -1)


# -- the encoder --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def encoder(shape: tuple[int, int, int], dtype: str, crs: str, nodata, descriptions: tuple[str, ...],
            resolution: float, units: tuple | None = None) -> "Encoder":
    """The :class:`Encoder` of one kind of chip, learnt once per process (``units``: ``(unit, scale, offset)``
    of every band, GDAL's band metadata)."""
    return Encoder(shape, dtype, crs, nodata, list(descriptions), resolution, units)


def _require(ok: bool, what: str) -> None:
    """A check of GDAL's template: the encoder knows this layout, else it leaves every chip to GDAL."""
    if not ok:
        raise NotAChip(what)


class Encoder:
    """GeoTIFFs of one kind of chip -- ``(count, height, width)`` arrays of one dtype, one CRS, nodata, band
    descriptions and pixel size -- byte for byte what :func:`gos_build.io.geotiff_bytes` (GDAL) writes."""

    LEVELS = (7, 6, 8, 9, 5, 4, 3, 2, 1, 10, 11, 12)  # libdeflate levels to try against libtiff's bytes

    def __init__(self, shape: tuple[int, int, int], dtype: str, crs, nodata, descriptions: list[str],
                 resolution: float, units: tuple | None = None):
        self.shape, self.dtype, self.crs, self.nodata = tuple(shape), np.dtype(dtype), crs, nodata
        self.descriptions, self.resolution, self.units = list(descriptions), float(resolution), units
        self.level = None  # libdeflate level; None: every chip through GDAL
        try:
            self._learn()
        except (NotAChip, ImportError) as exc:
            log.info("chip GeoTIFFs %s %s through GDAL (%s)", self.shape, self.dtype, exc)

    def _transform(self, x: float, y: float):
        from affine import Affine

        return Affine(self.resolution, 0.0, x, 0.0, -self.resolution, y)

    def _learn(self) -> None:
        import deflate

        count, height, width = self.shape
        rng = np.random.default_rng(0)
        if self.dtype.kind == "f":
            probe = (rng.standard_normal(self.shape) * 300).astype(self.dtype)
        else:
            probe = rng.integers(0, np.iinfo(self.dtype).max, self.shape, endpoint=True).astype(self.dtype)
        if self.nodata is not None:
            probe[:, :3, :5] = self.nodata
        x0, y0 = 123456.0 * self.resolution, 765432.0 * self.resolution  # odd values: found, not confused
        ref = geotiff_bytes(probe, self.crs, self._transform(x0, y0), self.nodata, self.descriptions, self.units)
        _parse(ref)  # a chip of the kind the reader knows
        ifd, e = _directory(ref)
        offsets, sizes = _values(ref, e[_STRIP_OFFSETS]), _values(ref, e[_STRIP_BYTES])
        rows = _one(ref, e, _ROWS_PER_STRIP, height)
        compression = _one(ref, e, _COMPRESSION, 1)
        _require(compression in _DEFLATE, f"compression {compression}")
        _require(_one(ref, e, _SAMPLES, 1) == count, "band count")
        _require(count == 1 or _one(ref, e, _PLANAR, 1) == 2, "pixel-interleaved bands")
        _require(len(offsets) == count * -(-height // rows), "strip count")
        # strips back to back from the end of the first directory, then the final directory on a word boundary
        for i in range(1, len(offsets)):
            _require(offsets[i] == offsets[i - 1] + sizes[i - 1], "strips not contiguous")
        end = offsets[-1] + sizes[-1]
        _require(ifd == end + (end & 1), "directory not right after the strips")
        _require(all(x.offset is None or x.offset >= ifd for x in e.values()), "values before the directory")
        tie = struct.pack("<6d", *_values(ref, e[_TIEPOINT]))
        _require(_values(ref, e[_TIEPOINT])[3:5] == (x0, y0), "tiepoint")
        self._head = bytearray(ref[: offsets[0]])
        self._head_ties = [i for i in range(len(self._head) - 47) if self._head[i : i + 48] == tie]
        self._tail = bytearray(ref[ifd:])
        self._tail_tie = e[_TIEPOINT].offset - ifd
        self._fields = [(x.field - ifd, x.offset - ifd) for x in e.values() if x.offset is not None]
        self._strips = [(x.field - ifd, x.offset - ifd if x.offset is not None else None, x.count)
                        for x in (e[_STRIP_OFFSETS], e[_STRIP_BYTES])]
        self._rows = rows
        self._predictor = _one(ref, e, _PREDICTOR, 1)
        self._compress = deflate.zlib_compress
        # the level libtiff asked of libdeflate: the one whose strips are libtiff's
        first = ref[offsets[0] : offsets[0] + sizes[0]]
        data = _predict(probe[0, : min(rows, height)], self._predictor)
        level = next((lv for lv in self.LEVELS if self._compress(data, lv) == first), None)
        _require(level is not None, "libdeflate does not give libtiff's bytes")
        self.level = level
        # the proof: other arrays, another place, byte for byte
        for arr, x, y in ((probe[:, ::-1].copy(), x0 + 640.0, y0 - 1280.0),
                          (np.full(self.shape, self.nodata if self.nodata is not None else 0, self.dtype), 0.0, 0.0)):
            if self.encode(arr, self._transform(x, y)) != geotiff_bytes(
                    arr, self.crs, self._transform(x, y), self.nodata, self.descriptions, self.units):
                self.level = None
                raise NotAChip("assembled bytes differ from GDAL's")

    def encode(self, arr: np.ndarray, transform) -> bytes:
        """The GeoTIFF bytes of ``arr`` (count, height, width) with its top-left corner at ``transform``."""
        if self.level is None or arr.shape != self.shape or arr.dtype != self.dtype or (
                transform.a, transform.b, transform.d, transform.e) != (self.resolution, 0.0, 0.0, -self.resolution):
            return geotiff_bytes(arr, self.crs, transform, self.nodata, self.descriptions, self.units)
        height = self.shape[1]
        strips = [self._compress(_predict(band[r0 : r0 + self._rows], self._predictor), self.level)
                  for band in arr for r0 in range(0, height, self._rows)]
        tie = struct.pack("<6d", 0.0, 0.0, 0.0, float(transform.c), float(transform.f), 0.0)
        head = bytearray(self._head)
        for i in self._head_ties:
            head[i : i + 48] = tie
        offsets, pos = [], len(head)
        for s in strips:
            offsets.append(pos)
            pos += len(s)
        ifd = pos + (pos & 1)
        struct.pack_into("<I", head, 4, ifd)
        tail = bytearray(self._tail)
        for field, value in self._fields:  # value offsets: relative to the directory, which moved
            struct.pack_into("<I", tail, field, value + ifd)
        for (field, value, count), numbers in zip(self._strips, (offsets, [len(s) for s in strips])):
            struct.pack_into(f"<{count}I", tail, value if value is not None else field, *numbers)
        tail[self._tail_tie : self._tail_tie + 48] = tie
        return b"".join((head, *strips, b"\x00" * (ifd - pos), tail))
