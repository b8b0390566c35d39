"""Small I/O helpers shared by every stage: atomic writes, deterministic GeoTIFFs."""

from __future__ import annotations

import errno
import glob
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import GosBuildError


_ENVIRONMENT_ERRNOS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
                       errno.EROFS: "read-only file system"}
FULL_BELOW_BYTES = 4 << 20  # a write that failed with less free space than this failed for lack of space


def _existing_folder(path: Path) -> Path:
    folder = path if path.is_dir() else path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def free_mb(path: str | Path) -> int:
    """Free space (MB) on the file system holding ``path`` (or its nearest existing parent)."""
    return shutil.disk_usage(_existing_folder(Path(path))).free // (1 << 20)


def write_failure(exc: BaseException, path: str | Path) -> str | None:
    """Why a write to ``path`` failed when the machine is the cause (full disk, quota, read-only file
    system), or None when ``exc`` is something else (then it stays a bug of ours).

    Python says why (``errno``); GDAL only says "Write failed", so for its errors the file system is asked.
    """
    path = Path(path)
    if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
        reason = _ENVIRONMENT_ERRNOS[exc.errno]
    elif isinstance(exc, OSError) or type(exc).__module__.startswith("rasterio"):
        folder = _existing_folder(path)
        try:
            stat = os.statvfs(folder)
        except OSError:
            return None
        if stat.f_flag & os.ST_RDONLY:
            reason = _ENVIRONMENT_ERRNOS[errno.EROFS]
        elif stat.f_bavail * stat.f_frsize < FULL_BELOW_BYTES:
            reason = _ENVIRONMENT_ERRNOS[errno.ENOSPC]
        else:
            return None
    else:
        return None
    return reason


def write_error(path: str | Path, reason: str) -> GosBuildError:
    """``<path>: no space left on device (<N> MB free)``: the one line a user sees."""
    return GosBuildError(f"{path}: {reason} ({free_mb(path)} MB free)")


@contextmanager
def writing(path: str | Path):
    """Turn a failed write to ``path`` caused by the machine into the one-line user error."""
    try:
        yield
    except GosBuildError:
        raise
    except Exception as exc:
        reason = write_failure(exc, path)
        if reason is None:
            raise
        raise write_error(path, reason) from None


def process_umask() -> int:
    """The process's umask (read without changing it where Linux says it; else set and restored at once)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode ``open()`` gives a new file: 0o666 less the umask (0o644 under umask 022)."""
    return 0o666 & ~process_umask()


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A write that fails for lack of space, quota or a read-only file system ends as a
    :class:`GosBuildError` naming ``path`` (:func:`write_failure`); nothing is left behind.
    """
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
    try:
        os.fchmod(fd, file_mode())  # mkstemp's 0600 would make published files private (a web server's 403)
    finally:
        os.close(fd)
    failure = None
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except GosBuildError:
        raise
    except Exception as exc:
        failure = write_failure(exc, path)  # judged while the partial file still takes its space
        if failure is None:
            raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if failure is not None:
        raise write_error(path, failure)


@contextmanager
def atomic_folder(path: str | Path):
    """Yield an empty temporary folder beside ``path``; it replaces ``path`` only if the block succeeds.

    Failures caused by the machine end as for :func:`atomic_path`; the temporary folder never stays.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp"
    try:
        shutil.rmtree(tmp, ignore_errors=True)  # a killed run's leftover
        tmp.mkdir(parents=True)
    except OSError as exc:
        raise GosBuildError(f"{path.parent}: cannot write here ({exc.strerror or exc})") from None
    failure = None
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except GosBuildError:
        raise
    except Exception as exc:
        failure = write_failure(exc, path)
        if failure is None:
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failure is not None:
        raise write_error(path, failure)


def write_new_file(path: str, *parts) -> None:
    """Create ``path`` (it must not exist; mode 0666 less the umask, as ``open()`` gives) holding the bytes-like
    ``parts`` one after the other. ``os.open``: a third of the cost of ``open()``, which counts for thousands of
    small files."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        for part in parts:
            view = memoryview(part)
            if not view.nbytes:  # (an empty array: nothing to write, and a view with a 0 in its shape cannot cast)
                continue
            view = view.cast("B")
            while view:
                view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def write_folder(path: str | Path, members) -> None:
    """Write ``(relative posix path, data)`` members as the files of the folder ``path``, atomically; ``data``
    is bytes-like or a tuple of bytes-like parts written one after the other."""
    with atomic_folder(path) as tmp:
        made = set()
        for rel, data in members:
            target = os.path.join(tmp, rel)
            parent = os.path.dirname(target)
            if parent not in made:
                os.makedirs(parent, exist_ok=True)
                made.add(parent)
            write_new_file(target, *(data if isinstance(data, tuple) else (data,)))


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def geotiff_profile(width: int, height: int, count: int, dtype: str, crs, transform, nodata,
                    compress: str = "deflate") -> dict:
    """Profile of every GeoTIFF gos-build writes: tiled, DEFLATE with a predictor (or ``compress="zstd"``,
    level 1, or ``"none"``), no timestamps.

    GDAL writes no TIFFTAG_DATETIME unless asked, so equal arrays give equal bytes.
    """
    floating = str(dtype).startswith("float")
    coding = {"deflate": {"zlevel": 6}, "zstd": {"zstd_level": 1}, "none": {}}[compress]
    if compress != "none":
        coding.update(compress=compress, predictor=3 if floating else 2)
    profile = dict(driver="GTiff", width=width, height=height, count=count, dtype=dtype, crs=crs,
                   transform=transform, nodata=nodata, **coding, interleave="band", bigtiff="if_safer")
    if width >= 256 and height >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    return profile


def _bands(arr) -> list:
    """A 2-D array is one band; a 3-D array or a list holds one 2-D array per band."""
    return [arr] if getattr(arr, "ndim", None) == 2 else list(arr)


def _fill(dst, bands: list, descriptions, tags, units=None) -> None:
    for i, band in enumerate(bands, start=1):
        dst.write(band, i)
        dst.set_band_description(i, descriptions[i - 1])
        if tags:
            dst.update_tags(i, **tags[i - 1])
    if units is not None:  # GDAL's unit type, scale and offset of every band: value x scale + offset in unit
        unit, scale, offset = units
        dst.units = (unit,) * len(bands)
        if (scale, offset) != (1.0, 0.0):
            dst.scales, dst.offsets = (scale,) * len(bands), (offset,) * len(bands)


def write_geotiff(path: str | Path, arr, crs, transform, nodata, descriptions: list[str],
                  tags: list[dict] | None = None, compress: str = "deflate") -> None:
    """Write bands (see :func:`_bands`) as a gos-build GeoTIFF at ``path``, atomically (``compress``: see
    :func:`geotiff_profile`; the per-tile layers are written by :func:`gos_build.tiles.write_tile`)."""
    import rasterio

    bands = _bands(arr)
    h, w = bands[0].shape
    profile = geotiff_profile(w, h, len(bands), str(bands[0].dtype), crs, transform, nodata, compress)
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            _fill(dst, bands, descriptions, tags)


def geotiff_bytes(arr, crs, transform, nodata, descriptions: list[str], units: tuple | None = None) -> bytes:
    """The bytes of the GeoTIFF :func:`write_geotiff` would write (in memory, for archive members); ``units``:
    ``(unit, scale, offset)`` of every band (GDAL's band metadata), or None for none."""
    from rasterio.io import MemoryFile

    bands = _bands(arr)
    h, w = bands[0].shape
    profile = geotiff_profile(w, h, len(bands), str(bands[0].dtype), crs, transform, nodata)
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            _fill(dst, bands, descriptions, None, units)
        return bytes(mem.read())


def inside(root: str | Path, rel: str, links: list[str] | None = None) -> Path | None:
    """``root/rel`` when ``rel`` names a place inside the folder ``root`` -- relative, no ``..`` out of it,
    no symbolic link on the way that leads out -- else None (then it must not be opened). For the readers of
    datasets from strangers: a manifest line, an href or a link can point anywhere.

    ``links``: :func:`links_out` of ``root``, when the caller has it: then no file system call is made (a path
    is out when it escapes by ``..`` or passes through one of those links), where otherwise each call resolves
    the path (a ``stat`` per component)."""
    if leads_out(rel, links if links is not None else ()):
        return None
    norm = os.path.normpath(rel)
    if links is not None:
        return Path(root) / norm
    top = os.path.realpath(root)
    try:
        real = os.path.realpath(os.path.join(top, norm))
    except (OSError, ValueError):
        return None
    if real != top and not real.startswith(top + os.sep):
        return None
    return Path(root) / norm


def leads_out(rel, links=()) -> bool:
    """Whether the relative path ``rel`` is not one to open inside its folder, by path arithmetic alone: not a
    string, empty, absolute, with a NUL or backslash, out by ``..``, or through one of ``links`` (the folder's
    :func:`links_out`)."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or rel[0] == "/" or "\\" in rel:
        return True
    norm = os.path.normpath(rel)
    if norm == ".." or norm.startswith("../"):
        return True
    return any(norm == link or norm.startswith(link + "/") for link in links)


def links_out(folder: str | Path) -> list[str]:
    """Symbolic links under ``folder`` (files or folders, posix paths relative to it) that resolve outside it."""
    top = os.path.realpath(folder)
    out = []
    for here, dirs, names in os.walk(folder):
        rel = os.path.relpath(here, folder)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        for n in dirs + names:
            path = os.path.join(here, n)
            if os.path.islink(path):
                real = os.path.realpath(path)
                if real != top and not real.startswith(top + os.sep):
                    out.append(prefix + n)
    return sorted(out)


def files_under(folder: str | Path) -> list[str]:
    """Every file under ``folder``, as posix paths relative to it, in the order of their path components
    (that of sorted ``Path`` objects: ``a/b`` before ``a-b``). ``os.walk``: no Path object per file."""
    out = []
    for top, _, names in os.walk(folder):
        rel = os.path.relpath(top, folder)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        out += [prefix + n for n in names]
    return sorted(out, key=lambda rel: rel.split("/"))


# errors of os.link that mean "not here" (another file system, no hard links, too many links): copy instead
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EACCES}


def link_or_copy(src: str, dst: str, link: list[bool],
                 missing: str = "missing (expected from an earlier job)") -> None:
    """Hard-link ``src`` at ``dst`` (which must not exist), or copy it where the file system makes no link;
    ``link``: ``[True]`` shared by a run of calls, set to False at the first refusal (the rest are copied).
    GosBuildError naming ``src`` when it is missing (``src: <missing>``), and ``dst`` when it exists already."""
    try:
        if link[0]:
            try:
                os.link(src, dst)
                return
            except OSError as exc:
                if exc.errno not in _NO_LINK:
                    raise
                link[0] = False
        if os.path.exists(dst):
            raise FileExistsError(errno.EEXIST, "exists", dst)
        shutil.copyfile(src, dst)
    except FileNotFoundError:
        raise GosBuildError(f"{src}: {missing}") from None
    except FileExistsError:
        raise GosBuildError(f"{dst}: written twice (two writers of one path)") from None


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MB blocks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
