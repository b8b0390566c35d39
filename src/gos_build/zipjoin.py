"""Zips joined from segments: entries zipped by separate jobs, one zip made by copying their bytes.

A *segment* (:func:`write_segment`) is a zip, the bytes Python's ``zipfile`` writes for its members
(``<stem>.zip``; fixed date, mode 644), with its index (``<stem>.idx``): one line per entry, in the segment's
order, saying where the entry's local header and data lie in the segment and what the central directory says
of it. A stored file may be zipped *by reference*: its line holds its CRC-32 and size, the segment none of its
bytes (a publishing group's files are the dataset's own: a second copy of their bytes would only be copied
again).
:func:`join` writes a zip of entries taken from any segments, in any order, by copying those bytes (and a
by-reference entry's local header, then its file; ``os.copy_file_range``: the kernel copies, nothing is read,
checksummed or deflated again) and writing the central directory. The bytes are those zipfile writes for the
same members in the same order: a local entry does not depend on where it lies, only the central directory does
(with zipfile's zip64 records where zipfile writes them).
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
import tempfile
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from .errors import GosBuildError
from .io import atomic_path

_LOCAL = struct.Struct("<4s2B4HL2L2H")  # APPNOTE 4.3.7, zipfile's structFileHeader
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")  # APPNOTE 4.3.12, zipfile's structCentralDir
_END = struct.Struct("<4s4H2LH")  # end of central directory, APPNOTE 4.3.16
_END64 = struct.Struct("<4sQ2H2L4Q")  # zip64 end of central directory record, 4.3.14
_LOCATOR64 = struct.Struct("<4sLQL")  # zip64 end of central directory locator, 4.3.15
ZIP64_VERSION = 45
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can carry: no wall clock in the bytes
ZIP_READ_WHOLE = 16 << 20  # members up to this size are read whole, larger ones in 1 MB blocks
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


def _local(name: str, crc: int, csize: int, size: int, method: int) -> tuple[bytes, int, int]:
    """The local header zipfile writes for a member of ``size`` bytes (``ZipFile.writestr`` or ``open(info, "w")``
    on a seekable file, ``ZipInfo.FileHeader``): (header, version needed, flag bits). zip64's extra field where
    zipfile decides on it, from the size alone (``size * 1.05 > ZIP64_LIMIT``)."""
    try:
        encoded, flags = name.encode("ascii"), 0
    except UnicodeEncodeError:
        encoded, flags = name.encode("utf-8"), 0x800
    version, extra = zipfile.DEFAULT_VERSION, b""
    if size * 1.05 > zipfile.ZIP64_LIMIT:  # read at each call: the tests lower it
        extra = struct.pack("<HHQQ", 1, 16, size, csize)
        size = csize = 0xFFFFFFFF
        version = ZIP64_VERSION
    header = _LOCAL.pack(b"PK\003\004", version, 0, flags, method, _DOS_TIME, _DOS_DATE, crc, csize, size,
                         len(encoded), len(extra))
    return header + encoded + extra, version, flags


@contextlib.contextmanager
def _member(data):
    """(size in bytes, its blocks as zipfile reads them, whether it is a file, whether it is read whole) of a
    member's ``data`` (bytes or a file's path): bytes in one block, a file whole up to :data:`ZIP_READ_WHOLE`,
    else in 1 MB blocks (as ``zipfile`` is fed them: ``writestr`` whole, ``open(info, "w")`` in blocks, so that
    a deflated member is compressed in the same steps)."""
    if isinstance(data, (bytes, bytearray)):
        yield len(data), iter([bytes(data)]), False, True
        return
    with open(data, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        whole = size <= ZIP_READ_WHOLE  # read at each call: the tests lower it
        yield size, (iter([f.read()]) if whole else iter(lambda: f.read(1 << 20), b"")), True, whole


def write_segment(stem: str | Path, members, deflate=lambda name: False, by_reference: int | None = None) -> int:
    """Zip ``members`` (``(name, data)`` pairs, data bytes or a file's path, in the zip's order) into segment
    ``stem``: ``<stem>.zip``, the bytes ``zipfile`` writes for them (a test compares), and its index
    ``<stem>.idx``, a line per entry (each file atomically, the index last). ``deflate(name)``: whether a member
    is deflated.

    ``by_reference``: a stored file member of at least this many bytes is not copied into the segment -- its
    index line says so (offset -1), with its CRC-32 and size, and :func:`join` copies the file itself (found by
    its name under the ``root`` given to :func:`read_index`; a publishing group's files are the dataset's).
    None: every member in the segment. Memory does not grow with the members. Returns the number of entries."""
    seg, index = segment_files(stem)
    system, attr = (0 if sys.platform == "win32" else 3), 0o644 << 16  # zipfile's create_system; rw-r--r--
    n = 0
    with atomic_path(index) as tmp_idx:
        with atomic_path(seg) as tmp_seg, open(tmp_seg, "wb") as out, open(tmp_idx, "w", encoding="utf-8") as idx, \
                tempfile.TemporaryFile(dir=Path(tmp_seg).parent) as central:
            pos = count = 0
            for name, data in members:
                if "\t" in name or "\n" in name:
                    raise ValueError(f"{seg}: member name {name!r} has a tab or a line break")
                method = zipfile.ZIP_DEFLATED if deflate(name) else zipfile.ZIP_STORED
                crc = csize = 0
                with _member(data) as (size, blocks, is_file, read_whole):
                    if by_reference is not None and is_file and method == zipfile.ZIP_STORED and size >= by_reference:
                        for block in blocks:
                            crc = zlib.crc32(block, crc)
                        header, version, flags = _local(name, crc, size, size, method)
                        idx.write(f"-1\t{len(header) + size}\t{crc}\t{size}\t{size}\t{method}\t{version}\t"
                                  f"{system}\t{attr}\t{flags}\t{name}\n")
                        n += 1
                        continue
                    squeeze = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15) if method else None
                    whole = [] if read_whole else None  # else streamed: the header written after the data
                    if whole is None:
                        out.write(_local(name, 0, 0, size, method)[0])  # its length; its values once the data is in
                    emit = out.write if whole is None else whole.append
                    for block in blocks:  # zipfile's _ZipWriteFile: CRC-32 of the data, then compressed
                        crc = zlib.crc32(block, crc)
                        if squeeze:
                            block = squeeze.compress(block)
                        csize += len(block)
                        emit(block)
                    if squeeze:
                        block = squeeze.flush()
                        csize += len(block)
                        emit(block)
                header, version, flags = _local(name, crc, csize, size, method)
                if whole is None:
                    out.seek(pos)
                    out.write(header)
                    out.seek(0, os.SEEK_END)
                else:
                    out.write(header)
                    for block in whole:
                        out.write(block)
                e = Entry(name, str(seg), pos, len(header) + csize, crc, csize, size, method, version, system, attr,
                          flags)
                central.write(_central(e, pos))
                idx.write("\t".join(map(str, e[2:])) + f"\t{name}\n")
                pos += e.length
                count += 1
                n += 1
            size = central.tell()
            central.seek(0)
            for block in iter(lambda: central.read(1 << 20), b""):
                out.write(block)
            out.write(_end(count, pos, size))
    return n


def read_index(stem: str | Path, root: str | Path | None = None) -> Iterator[Entry]:
    """The entries of segment ``stem`` (``<stem>.idx``), in its order, read a line at a time; an entry written
    by reference (:func:`write_segment`) has its file, ``root / name``, as its source and offset -1."""
    seg, index = segment_files(stem)
    source = str(seg)
    folder = None if root is None else os.path.join(root, "")  # joined by hand: pathlib costs 10 us an entry
    with open(index, encoding="utf-8") as idx:
        for line in idx:
            *numbers, name = line.rstrip("\n").split("\t")
            offset, *rest = map(int, numbers)
            if offset >= 0:
                yield Entry(name, source, offset, *rest)
            elif folder is None:
                raise ValueError(f"{index}: {name} is zipped by reference: read_index needs the folder of the files")
            else:
                yield Entry(name, folder + name, -1, *rest)


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


def _copy_file(e: Entry, dst: int) -> None:
    """The data of entry ``e`` zipped by reference: its file, ``e.source``, appended at ``dst`` -- checked to be
    the size its index says (a file changed since its segment was written would make a zip with a wrong CRC)."""
    fd = os.open(e.source, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size != e.size:
            raise GosBuildError(f"zip: {e.source} is {size} bytes, {e.size} when its publishing group zipped it: "
                                "the dataset changed since (rerun: snakemake --forcerun publish_plan)")
        _copy(fd, dst, 0, size)
    finally:
        os.close(fd)


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
            if e.offset < 0:  # by reference: its local header, then the file itself
                if run:
                    _copy(sources.fd(run[0]), dst, run[1], run[2])
                    run = None
                header = _local(e.name, e.crc, e.csize, e.size, e.method)[0]
                _write(dst, header)
                _copy_file(e, dst)
                central.write(_central(e, pos))
                pos += len(header) + e.csize
                count += 1
                continue
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
