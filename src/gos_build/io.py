"""Small I/O helpers shared by every stage: atomic writes, deterministic GeoTIFFs."""

from __future__ import annotations

import glob
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import GosBuildError


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # a run killed with SIGKILL never reached `finally`: sweep its leftovers of this target
        for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp*"):
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + "".join(path.suffixes[-1:]),
                                   dir=path.parent)
    except OSError as exc:
        raise GosBuildError(f"{path.parent}: cannot write here ({exc.strerror or exc})") from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def geotiff_profile(width: int, height: int, count: int, dtype: str, crs, transform, nodata) -> dict:
    """Profile of every GeoTIFF gos-build writes: tiled, DEFLATE, predictor, no timestamps.

    GDAL writes no TIFFTAG_DATETIME unless asked, so equal arrays give equal bytes.
    """
    floating = str(dtype).startswith("float")
    profile = dict(driver="GTiff", width=width, height=height, count=count, dtype=dtype, crs=crs,
                   transform=transform, nodata=nodata, compress="deflate", zlevel=6,
                   predictor=3 if floating else 2, interleave="band", bigtiff="if_safer")
    if width >= 256 and height >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    return profile


def _bands(arr) -> list:
    """A 2-D array is one band; a 3-D array or a list holds one 2-D array per band."""
    return [arr] if getattr(arr, "ndim", None) == 2 else list(arr)


def _fill(dst, bands: list, descriptions, tags) -> None:
    for i, band in enumerate(bands, start=1):
        dst.write(band, i)
        dst.set_band_description(i, descriptions[i - 1])
        if tags:
            dst.update_tags(i, **tags[i - 1])


def write_geotiff(path: str | Path, arr, crs, transform, nodata, descriptions: list[str],
                  tags: list[dict] | None = None) -> None:
    """Write bands (see :func:`_bands`) as a gos-build GeoTIFF at ``path``, atomically."""
    import rasterio

    bands = _bands(arr)
    h, w = bands[0].shape
    profile = geotiff_profile(w, h, len(bands), str(bands[0].dtype), crs, transform, nodata)
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            _fill(dst, bands, descriptions, tags)


def geotiff_bytes(arr, crs, transform, nodata, descriptions: list[str]) -> bytes:
    """The bytes of the GeoTIFF :func:`write_geotiff` would write (in memory, for archive members)."""
    from rasterio.io import MemoryFile

    bands = _bands(arr)
    h, w = bands[0].shape
    profile = geotiff_profile(w, h, len(bands), str(bands[0].dtype), crs, transform, nodata)
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            _fill(dst, bands, descriptions, None)
        return bytes(mem.read())


ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can carry: no wall clock in the bytes


def write_zip(path: str | Path, members, deflate=lambda name: False) -> None:
    """Write a deterministic zip at ``path``, atomically.

    ``members``: ``(name, data)`` pairs in the order to store them, ``data``
    being bytes or a file path (streamed, never held whole in memory).
    Entries carry a fixed date and mode; ``deflate(name)`` says which to compress.
    """
    import shutil
    import zipfile

    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w") as zf:
            for name, data in members:
                info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED if deflate(name) else zipfile.ZIP_STORED
                if isinstance(data, (bytes, bytearray)):
                    zf.writestr(info, data)
                else:
                    info.file_size = os.path.getsize(data)
                    with open(data, "rb") as src, zf.open(info, "w") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
