"""Fuzz the readers of a dataset: mutate a small built dataset, run ``validate`` and the loaders on each case.

    python tests/fuzz_dataset.py DATASET [--cases 100000] [--seed 0] [--seconds 10] [--memory-mb 256]

Hypothesis draws each case: one to three mutations of the dataset's files -- chip GeoTIFFs (flipped bits,
truncation, directory entries with absurd counts, offsets and sizes, huge declared width/height, DEFLATE strips
that inflate far beyond their declared size), the text files (labels.txt, split lists, classes.txt,
MANIFEST.sha256, stats.json, chips.csv, STAC and Croissant JSON), the packed store's ``.zarray`` and chunks
(Zstandard frames that declare gigabytes), the Parquet shards and index -- or of the folder itself (a file
replaced by a link out of the dataset, removed, or made a folder). Then, on the mutated folder,
``validate_dataset`` and ``GOSDataset`` over the tree, the packed store and the Parquet shards must each end
with findings (a list of problems; for a loader, one ``GosBuildError``) or a clean result: any other exception
is a failure, as is a case running past ``--seconds`` (a per-case timer) or the harness's peak RSS growing more
than ``--memory-mb`` above what the first, unmutated, case needed. ``validate`` must also report at least one
problem whenever a listed file's bytes changed. The dataset is restored after every case (the harness works on
a copy). Prints the counts and every failure; exit 1 if there was one.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback
import warnings
import zlib
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from gos_build.archive.validate import validate_dataset
from gos_build.errors import GosBuildError
from gos_build.io import files_under

NASTY = ["..", "../../etc/passwd", "/etc/hostname", "\x00", "\udcff", "1e309", "-1", "NaN", "null", "9" * 40,
         "E0000000N0000000", "ü" * 50, "\t", " ", "#", "a" * 5000, "{", "]"]
JSONISH = [None, [], {}, "", "../x", "/etc/hostname", -1, 2 ** 63, 1e308, float("inf"), [[[[[]]]]], {"a": {"b": []}},
           "x" * 10000, True]


class Timeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise Timeout()


def kind_of(rel: str) -> str:
    if rel.endswith(".tif"):
        return "tif"
    if rel.startswith("packed/") and rel.endswith(".zarray"):
        return "zarray"
    if rel.startswith("packed/") and rel.split("/")[-1][0].isdigit():
        return "chunk"
    if rel.endswith(".parquet"):
        return "parquet"
    if rel.endswith((".json", ".geojson", ".zattrs", ".zgroup")):
        return "json"
    return "text"


# -- mutations: each takes the file's bytes and a Hypothesis data object, returns (new bytes, description) ---
def flip_bits(data: bytes, draw):
    if not data:
        return b"\x00", "empty -> one byte"
    b = bytearray(data)
    n = draw(st.integers(1, 8))
    where = []
    for _ in range(n):
        i = draw(st.integers(0, len(b) - 1))
        b[i] ^= 1 << draw(st.integers(0, 7))
        where.append(i)
    return bytes(b), f"flip bits at {where}"


def truncate(data: bytes, draw):
    n = draw(st.integers(0, max(0, len(data) - 1)))
    return data[:n], f"truncate to {n} bytes"


def overwrite_u32(data: bytes, draw):
    if len(data) < 4:
        return data + b"\xff\xff\xff\xff", "append 0xffffffff"
    i = draw(st.integers(0, len(data) - 4))
    v = draw(st.sampled_from([0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, len(data), len(data) * 1000])) & 0xFFFFFFFF
    return data[:i] + struct.pack("<I", v) + data[i + 4:], f"u32 {v:#x} at {i}"


def _ifd(data: bytes):
    """(offset of the first directory, its entries [(position, tag, type, count, value)]) of a classic TIFF."""
    if len(data) < 8 or data[:4] != b"II*\x00":
        return None, []
    ifd = struct.unpack_from("<I", data, 4)[0]
    if ifd + 2 > len(data):
        return None, []
    n = struct.unpack_from("<H", data, ifd)[0]
    out = []
    for k in range(n):
        pos = ifd + 2 + 12 * k
        if pos + 12 > len(data):
            break
        out.append((pos, *struct.unpack_from("<HHII", data, pos)))
    return ifd, out


def tiff_entry(data: bytes, draw):
    """An IFD entry's count or value set to an absurd figure, or the entry count itself."""
    ifd, entries = _ifd(data)
    if ifd is None or not entries:
        return flip_bits(data, draw)
    if draw(st.booleans()):
        v = draw(st.sampled_from([0, 0xFFFF, len(entries) + 1000]))
        return data[:ifd] + struct.pack("<H", v) + data[ifd + 2:], f"IFD entry count {v}"
    pos, tag, typ, count, value = draw(st.sampled_from(entries))
    field = draw(st.sampled_from(["count", "value", "type"]))
    v = draw(st.sampled_from([0, 1, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF, len(data) - 2, len(data) + 8]))
    at = {"type": (pos + 2, "<H", v & 0xFFFF), "count": (pos + 4, "<I", v), "value": (pos + 8, "<I", v)}[field]
    return data[:at[0]] + struct.pack(at[1], at[2]) + data[at[0] + struct.calcsize(at[1]):], \
        f"tag {tag} {field} = {at[2]:#x}"


def tiff_huge(data: bytes, draw):
    """Width or height (tags 256/257) declared huge."""
    ifd, entries = _ifd(data)
    sizes = [e for e in entries if e[1] in (256, 257)]
    if not sizes:
        return flip_bits(data, draw)
    pos, tag, typ, count, value = draw(st.sampled_from(sizes))
    v = draw(st.sampled_from([65535, 100000, 0x7FFFFFFF, 0xFFFFFFFF, 0]))
    fmt = "<H" if typ == 3 else "<I"
    return data[:pos + 8] + struct.pack(fmt, v & (0xFFFF if typ == 3 else 0xFFFFFFFF)).ljust(4, b"\x00") + \
        data[pos + 12:], f"tag {tag} = {v}"


def deflate_bomb(data: bytes, draw):
    """Every strip replaced by one DEFLATE stream of many megabytes of zeros (appended; offsets and counts
    pointed at it): it inflates far beyond the strip's declared size."""
    ifd, entries = _ifd(data)
    by_tag = {e[1]: e for e in entries}
    if 273 not in by_tag or 279 not in by_tag:
        return flip_bits(data, draw)
    mb = draw(st.sampled_from([8, 64, 512]))
    bomb = _zeros_stream(mb)
    out = bytearray(data + bomb)
    start = len(data)
    for tag, value in ((273, start), (279, len(bomb))):
        pos, _, typ, count, field = by_tag[tag]
        width = 2 if typ == 3 else 4
        if count > 64 or (count * width > 4 and field + count * width > len(data)):
            return flip_bits(data, draw)  # a directory damaged by an earlier mutation of this case
        if count * width <= 4:
            struct.pack_into("<H" if width == 2 else "<I", out, pos + 8, value & (0xFFFF if width == 2 else 0xFFFFFFFF))
        else:
            for k in range(count):
                struct.pack_into("<H" if width == 2 else "<I", out, field + k * width,
                                 value & (0xFFFF if width == 2 else 0xFFFFFFFF))
    return bytes(out), f"deflate bomb of {mb} MB in every strip"


_ZEROS: dict = {}


def _zeros_stream(mb: int) -> bytes:
    """A zlib stream of ``mb`` MB of zeros, made once (compressing 512 MB takes seconds)."""
    if mb not in _ZEROS:
        c = zlib.compressobj(9)
        block = b"\x00" * (1 << 20)
        _ZEROS[mb] = b"".join(c.compress(block) for _ in range(mb)) + c.flush()
    return _ZEROS[mb]


def zstd_bomb(data: bytes, draw):
    """A Zstandard frame whose header declares gigabytes (or nothing) in place of a chunk."""
    size = draw(st.sampled_from([1 << 30, 1 << 40, (1 << 64) - 1, None]))
    mb = draw(st.sampled_from([1, 64, 1024]))
    # RLE blocks (RFC 8878 3.1.1.2): 128 KiB of zeros each in 4 bytes; the last one marked last
    n = mb * 8
    blocks = b"".join(struct.pack("<I", ((128 << 10) << 3) | (1 << 1) | (k == n - 1))[:3] + b"\x00" for k in range(n))
    if size is None:  # no content size: a streaming frame, window 128 KiB, that inflates to mb MB
        return b"\x28\xb5\x2f\xfd\x00\x38" + blocks, f"zstd frame of {mb} MB declaring no size"
    # frame header descriptor: 8-byte content size, single segment
    return b"\x28\xb5\x2f\xfd" + bytes([0b11100000]) + struct.pack("<Q", size) + blocks, \
        f"zstd frame of {mb} MB declaring {size} bytes"


def text_edit(data: bytes, draw):
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    op = draw(st.sampled_from(["drop", "dup", "insert", "replace_token", "swap"]))
    i = draw(st.integers(0, max(0, len(lines) - 1)))
    if op == "drop" and lines:
        del lines[i]
    elif op == "dup" and lines:
        lines.insert(i, lines[i])
    elif op == "insert":
        lines.insert(i, " ".join(draw(st.lists(st.sampled_from(NASTY), min_size=1, max_size=6))))
    elif op == "swap" and len(lines) > 1:
        j = draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
    elif lines:
        words = lines[i].split(" ")
        k = draw(st.integers(0, max(0, len(words) - 1)))
        words[k] = draw(st.sampled_from(NASTY))
        lines[i] = " ".join(words)
    return "\n".join(lines).encode("utf-8", errors="surrogateescape"), f"text {op} at line {i}"


def json_edit(data: bytes, draw):
    try:
        doc = json.loads(data)
    except ValueError:
        return text_edit(data, draw)
    paths = []

    def walk(node, path):
        paths.append(path)
        if len(paths) > 2000:
            return
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, path + [k])
        elif isinstance(node, list):
            for k, v in enumerate(node[:50]):
                walk(v, path + [k])

    walk(doc, [])
    path = draw(st.sampled_from(paths))
    value = draw(st.sampled_from(JSONISH))
    if not path:
        doc = value
    else:
        node = doc
        for k in path[:-1]:
            node = node[k]
        if draw(st.booleans()) or not isinstance(node, dict):
            node[path[-1]] = value
        else:
            del node[path[-1]]
    return json.dumps(doc).encode("utf-8"), f"json {path[:6]} = {str(value)[:40]}"


def parquet_footer(data: bytes, draw):
    """The footer length (the 4 bytes before the closing PAR1) or the footer's bytes."""
    if len(data) < 12:
        return flip_bits(data, draw)
    if draw(st.booleans()):
        v = draw(st.sampled_from([0, 1, len(data), 0x7FFFFFFF, 0xFFFFFFFF]))
        return data[:-8] + struct.pack("<I", v) + data[-4:], f"footer length {v:#x}"
    n = struct.unpack_from("<I", data, len(data) - 8)[0]
    start = max(4, len(data) - 8 - n)
    b = bytearray(data)
    for _ in range(draw(st.integers(1, 16))):
        i = draw(st.integers(start, len(data) - 9))
        b[i] = draw(st.integers(0, 255))
    return bytes(b), "footer bytes"


BY_KIND = {
    "tif": [flip_bits, truncate, tiff_entry, tiff_huge, deflate_bomb, overwrite_u32],
    "zarray": [json_edit, truncate, flip_bits],
    "chunk": [zstd_bomb, flip_bits, truncate, overwrite_u32],
    "parquet": [flip_bits, truncate, parquet_footer, overwrite_u32],
    "json": [json_edit, text_edit, truncate, flip_bits],
    "text": [text_edit, truncate, flip_bits],
}


class Harness:
    def __init__(self, dataset: Path, seconds: float, memory_mb: int):
        self.src = Path(dataset)
        self.tmp = Path(tempfile.mkdtemp(prefix="gos-fuzz-"))
        self.work = self.tmp / "dataset"
        shutil.copytree(self.src, self.work, symlinks=True)
        self.files = files_under(self.work)
        self.listed = {line.partition("  ")[2] for line in (self.work / "MANIFEST.sha256").read_text().splitlines()}
        self.outside = self.tmp / "outside.txt"
        self.outside.write_text("outside the dataset\n")
        self.seconds, self.memory_mb = seconds, memory_mb
        self.counts: Counter = Counter()
        self.failures: list[str] = []
        self.baseline_kb = None
        self.peak_kb = 0
        self.progress = False
        signal.signal(signal.SIGALRM, _on_alarm)
        warnings.simplefilter("ignore")  # hostile statistics overflow float32: numpy says so, at every case

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def restore(self, changed: list[str]):
        for rel in changed:
            path = self.work / rel
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.is_dir():
                shutil.rmtree(path)
            shutil.copy2(self.src / rel, path)

    def readers(self) -> list[str]:
        """Run validate and the loaders; what each said (findings) -- raises on anything else."""
        said = []
        problems = validate_dataset(self.work)
        assert isinstance(problems, list) and all(isinstance(p, str) for p in problems)
        said.append(f"validate: {len(problems)} problem(s)")
        from gos_build.ml import GOSDataset

        for source in ("tree", "packed", "parquet"):
            try:
                ds = GOSDataset(self.work, split="all", source=source, normalize=True)
                for i in range(len(ds)):
                    ds[i]
                said.append(f"{source}: clean")
            except GosBuildError as exc:
                said.append(f"{source}: {str(exc)[:80]}")
        return said, problems

    def case(self, data) -> None:
        draw = data.draw
        changed, what = [], []
        try:
            self._mutate(draw, changed, what)
            label = "; ".join(what)
            # a changed listed file must be found -- unless the manifest was changed too (then a file and its
            # line may both be gone: a consistent, smaller dataset)
            differs = "MANIFEST.sha256" not in changed and any(r in self.listed and
                          (not (self.work / r).is_file() or (self.work / r).is_symlink() or
                           (self.work / r).read_bytes() != (self.src / r).read_bytes()) for r in changed)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
            try:
                said, problems = self.readers()
                if differs and not problems:
                    self._fail(f"{label}: validate says OK although a listed file changed")
                    self.counts["undetected"] += 1
                else:
                    self.counts["findings" if problems else "clean"] += 1
            except Timeout:
                self._fail(f"{label}: ran past {self.seconds} s")
                self.counts["timeout"] += 1
            except Exception as exc:  # the point of the harness: anything but findings is a failure
                self._fail(f"{label}: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-6)}")
                self.counts["traceback"] += 1
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            self.restore(changed)  # whatever happened: the next case starts from the same bytes
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if peak - self.baseline_kb > self.memory_mb * 1024:
            self._fail(f"{label}: peak RSS {peak / 1024:.0f} MB, {(peak - self.baseline_kb) / 1024:.0f} MB "
                                 f"above the unmutated case's")
            self.counts["memory"] += 1
            self.baseline_kb = peak  # report each growth once
        self.peak_kb = max(self.peak_kb, peak)
        self.counts["cases"] += 1

    def _mutate(self, draw, changed: list, what: list) -> None:
        for _ in range(draw(st.integers(1, 3))):
            rel = draw(st.sampled_from(self.files))
            path = self.work / rel
            if rel not in changed:
                changed.append(rel)
            if draw(st.integers(0, 19)) == 0:  # the folder itself
                op = draw(st.sampled_from(["link out", "remove", "folder"]))
                if path.is_symlink() or path.is_file():
                    path.unlink()
                elif path.is_dir():
                    shutil.rmtree(path)
                if op == "link out":
                    path.symlink_to(self.outside)
                elif op == "folder":
                    path.mkdir()
                what.append(f"{rel}: {op}")
                continue
            if not path.is_file() or path.is_symlink():
                continue
            mutate = draw(st.sampled_from(BY_KIND[kind_of(rel)]))
            new, desc = mutate(path.read_bytes(), draw)
            path.write_bytes(new)
            what.append(f"{rel}: {mutate.__name__}: {desc}")

    def _fail(self, text: str) -> None:
        self.failures.append(text)
        if self.progress:
            print("FAILURE", text, file=sys.stderr, flush=True)

    def run(self, cases: int, seed_value: int, progress: bool = False) -> None:
        self.progress = progress
        said, problems = self.readers()  # the unmutated dataset: clean, and the memory baseline
        if problems:
            raise SystemExit(f"{self.src}: not a clean dataset to fuzz: {problems[:3]}")
        self.baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.monotonic()

        @seed(seed_value)
        @settings(max_examples=cases, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(st.data())
        def one(data):
            self.case(data)
            n = self.counts["cases"]
            if progress and n % 1000 == 0:
                print(f"{n} cases, {time.monotonic() - t0:.0f} s, {dict(self.counts)}", file=sys.stderr, flush=True)

        one()
        self.seconds_total = time.monotonic() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=10.0, help="time limit of one case")
    ap.add_argument("--memory-mb", type=int, default=256, help="peak RSS allowed above the unmutated case's")
    args = ap.parse_args(argv)
    h = Harness(Path(args.dataset), args.seconds, args.memory_mb)
    try:
        h.run(args.cases, args.seed, progress=True)
    finally:
        h.close()
    print(f"{h.counts['cases']} cases in {h.seconds_total:.0f} s: {dict(h.counts)}; peak RSS {h.peak_kb / 1024:.0f} MB "
          f"({(h.peak_kb - h.baseline_kb) / 1024:.0f} MB above the unmutated case's)")
    for f in h.failures[:50]:
        print("FAILURE", f)
    return 1 if h.failures else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
