"""Zips joined from segments: entries zipped by separate jobs, one zip made by copying their bytes.

A *segment* is a zip written by :func:`gos_build.io.write_zip` (``<stem>.zip``) with its index (``<stem>.idx``):
one line per entry, in the segment's order, saying where the entry's local header and data lie in the segment
and what the central directory says of it. :func:`join` writes a zip of entries taken from any segments, in
any order, by copying those bytes (``os.copy_file_range``: the kernel copies; nothing is read, checksummed or
deflated again) and writing the central directory. The bytes are those :func:`write_zip` writes for the same
members in the same order: a local entry does not depend on where it lies, only the central directory does
(with zipfile's zip64 records where zipfile writes them).
"""

from __future__ import annotations

import os
import struct
import tempfile
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from .io import ZIP_DATE, atomic_path, write_zip

_LOCAL = struct.Struct("<4s2B4HL2L2H")  # APPNOTE 4.3.7, zipfile's structFileHeader
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")  # APPNOTE 4.3.12, zipfile's structCentralDir
_END = struct.Struct("<4s4H2LH")  # end of central directory, APPNOTE 4.3.16
_END64 = struct.Struct("<4sQ2H2L4Q")  # zip64 end of central directory record, 4.3.14
_LOCATOR64 = struct.Struct("<4sLQL")  # zip64 end of central directory locator, 4.3.15
ZIP64_VERSION = 45
_DOS_TIME = ZIP_DATE[3] << 11 | ZIP_DATE[4] << 5 | ZIP_DATE[5] // 2
_DOS_DATE = (ZIP_DATE[0] - 1980) << 9 | ZIP_DATE[1] << 5 | ZIP_DATE[2]


class Entry(NamedTuple):
    """One member of a segment: its name, the segment (``source``) and the byte range of its local header and
    data there, and its central directory fields (CRC-32, compressed and file size in bytes, method, version
    needed, creator's system, external attributes, flag bits)."""

    name: str
    source: str
    offset: int
    length: int
    crc: int
    csize: int
    size: int
    method: int
    version: int
    system: int
    attr: int
    flags: int


def segment_files(stem: str | Path) -> tuple[Path, Path]:
    """The files of segment ``stem``: its zip, ``<stem>.zip``, and its index, ``<stem>.idx``."""
    stem = Path(stem)
    return stem.with_name(stem.name + ".zip"), stem.with_name(stem.name + ".idx")


def write_segment(stem: str | Path, members, deflate=lambda name: False) -> int:
    """Zip ``members`` (``(name, data)`` pairs, :func:`write_zip`) to ``<stem>.zip`` and write its index,
    ``<stem>.idx`` (each atomically). Returns the number of entries."""
    seg, index = segment_files(stem)
    write_zip(seg, members, deflate=deflate)
    n = 0
    with zipfile.ZipFile(seg) as zf, open(seg, "rb") as f, atomic_path(index) as tmp, \
            open(tmp, "w", encoding="utf-8") as idx:
        for info in zf.infolist():
            f.seek(info.header_offset)
            (_, version, _, flags, *_, name_len, extra_len) = _LOCAL.unpack(f.read(_LOCAL.size))
            length = _LOCAL.size + name_len + extra_len + info.compress_size
            if "\t" in info.filename or "\n" in info.filename:
                raise ValueError(f"{seg}: member name {info.filename!r} has a tab or a line break")
            idx.write(f"{info.header_offset}\t{length}\t{info.CRC}\t{info.compress_size}\t{info.file_size}\t"
                      f"{info.compress_type}\t{version}\t{info.create_system}\t{info.external_attr}\t{flags}\t"
                      f"{info.filename}\n")
            n += 1
    return n


def read_index(stem: str | Path) -> Iterator[Entry]:
    """The entries of segment ``stem`` (``<stem>.idx``), in its order, read a line at a time."""
    seg, index = segment_files(stem)
    source = str(seg)
    with open(index, encoding="utf-8") as idx:
        for line in idx:
            *numbers, name = line.rstrip("\n").split("\t")
            yield Entry(name, source, *map(int, numbers))


def _central(e: Entry, header_offset: int) -> bytes:
    """The central directory record of ``e`` with its local header at ``header_offset``: zipfile's own
    (``ZipFile._write_end_record``), zip64 fields and all."""
    limit = zipfile.ZIP64_LIMIT  # read at each call: the tests lower it to reach zip64 with small files
    extra = []
    size, csize = e.size, e.csize
    if size > limit or csize > limit:
        extra += [size, csize]
        size = csize = 0xFFFFFFFF
    if header_offset > limit:
        extra.append(header_offset)
        header_offset = 0xFFFFFFFF
    extra_data, version = b"", e.version
    if extra:
        extra_data = struct.pack("<HH" + "Q" * len(extra), 1, 8 * len(extra), *extra)
        version = max(ZIP64_VERSION, version)
    name = e.name.encode("utf-8" if e.flags & 0x800 else "ascii")
    return _CENTRAL.pack(b"PK\001\002", version, e.system, version, 0, e.flags, e.method, _DOS_TIME, _DOS_DATE,
                         e.crc, csize, size, len(name), len(extra_data), 0, 0, 0, e.attr,
                         header_offset) + name + extra_data


def _end(count: int, start: int, size: int) -> bytes:
    """The end records of a zip whose central directory of ``count`` records starts at byte ``start`` and holds
    ``size`` bytes (zip64's record and locator where zipfile writes them)."""
    out = b""
    if count > zipfile.ZIP_FILECOUNT_LIMIT or start > zipfile.ZIP64_LIMIT or size > zipfile.ZIP64_LIMIT:
        out = _END64.pack(b"PK\006\006", 44, 45, 45, 0, 0, count, count, size, start) + \
            _LOCATOR64.pack(b"PK\006\007", 0, start + size, 1)
        count, size, start = min(count, 0xFFFF), min(size, 0xFFFFFFFF), min(start, 0xFFFFFFFF)
    return out + _END.pack(b"PK\005\006", 0, 0, count, count, size, start, 0)


def _copy(src: int, dst: int, offset: int, length: int) -> None:
    """``length`` bytes of file ``src`` from ``offset`` appended at ``dst``'s position: in the kernel where it
    can (``copy_file_range``), else read and written."""
    while length > 0:
        try:
            n = os.copy_file_range(src, dst, length, offset)
        except (AttributeError, OSError):  # not Linux, or a file system that cannot (EXDEV, ENOSYS, EINVAL ...)
            n = 0
        if n == 0:
            data = os.pread(src, min(length, 1 << 20), offset)
            if not data:
                raise OSError(f"file {src} ends before byte {offset + length}")
            _write(dst, data)
            n = len(data)
        offset += n
        length -= n


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class _Sources(OrderedDict):
    """Open segments by path, the least recently used closed beyond ``keep``."""

    def __init__(self, keep: int = 32):
        super().__init__()
        self.keep = keep

    def fd(self, path: str) -> int:
        if path in self:
            self.move_to_end(path)
            return self[path]
        if len(self) >= self.keep:
            os.close(self.popitem(last=False)[1])
        self[path] = os.open(path, os.O_RDONLY)
        return self[path]

    def close(self) -> None:
        while self:
            os.close(self.popitem()[1])


def join(path: str | Path, entries: Iterable[Entry]) -> int:
    """Write the zip ``path`` (atomically) of ``entries``, in their order, copied from their segments; runs of
    entries lying one after the other in a segment are copied at once. Returns the number of entries. Memory
    does not grow with the entries: their central directory records wait in a temporary file."""
    sources = _Sources()
    count = 0
    with atomic_path(path) as tmp, open(tmp, "wb", buffering=0) as out, \
            tempfile.TemporaryFile(dir=Path(tmp).parent) as central:
        dst = out.fileno()
        pos = 0
        run = None  # [source, offset, length] of the entries not yet copied
        for e in entries:
            if run and run[0] == e.source and run[1] + run[2] == e.offset:
                run[2] += e.length
            else:
                if run:
                    _copy(sources.fd(run[0]), dst, run[1], run[2])
                run = [e.source, e.offset, e.length]
            central.write(_central(e, pos))
            pos += e.length
            count += 1
        if run:
            _copy(sources.fd(run[0]), dst, run[1], run[2])
        sources.close()
        size = central.tell()
        central.seek(0)
        while True:
            block = central.read(1 << 20)
            if not block:
                break
            _write(dst, block)
        _write(dst, _end(count, pos, size))
    return count
