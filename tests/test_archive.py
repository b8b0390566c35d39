"""The archive's gather: refusals and what it writes, from hand-made tile records."""

from __future__ import annotations

import json

import pytest

from gos_build.archive.gather import publish
from gos_build.errors import GosBuildError
from gos_build.grid import build_grid
from helpers import zipfile_zip

# a grid over the hand-made chips below (UTM 52N, x 399 360..412 160, y 4 797 440..4 810 240): one tile
GRID = build_grid(bbox=[127.7, 43.3, 128.0, 43.5], crs="EPSG:32652", tile_chips=256)
(TILE,) = (t.id for t in GRID.tiles())
CLASSES = {1: {"name": "tectonic", "name_zh": "构造地貌", "values": ["tectonic"]},
           2: {"name": "volcanic", "name_zh": "火山熔岩地貌", "values": ["volcanic"]},
           3: {"name": "fluvial", "name_zh": "流水地貌", "values": ["fluvial"]}}


def _chip(x: float, y: float, label: int) -> dict:
    """A hand-made chip record (south-west corner x, y in the grid's metres; class ``label``) as a tile job
    writes it."""
    return {"id": f"E{int(x):07d}N{int(y):07d}", "class_id": label, "class": CLASSES[label]["name"],
            "purity": 1.0, "x": float(x), "y": float(y), "cloud": 0.0, "stats": {}, "bytes": 0}


def _records(path, chips: list[dict], tile: str = TILE):
    """Write a tile's record (``tiles/<id>/chips.json``) holding ``chips``, all kept: ``path``."""
    path.write_text(json.dumps({"candidates": len(chips), "partial_aoi": 0, "kept": len(chips), "chips": chips,
                                "tile": tile, "rejected": {"purity": 0, "cloud": 0, "nodata": 0, "unlabelled": 0}}))
    return path


def test_no_chip_passing_the_filters(tmp_path):
    j = tmp_path / "t.json"
    j.write_text(json.dumps({"candidates": 12, "partial_aoi": 0, "kept": 0, "chips": [], "tile": TILE,
                             "rejected": {"purity": 9, "cloud": 3, "nodata": 0, "unlabelled": 0}}))
    z = tmp_path / "shard"
    z.mkdir()
    with pytest.raises(GosBuildError, match=r"no chip passed the filters \(12 candidates; rejected: cloud 3, "
                                            r"nodata 0, purity 9, unlabelled 0\)"):
        publish([j], [z], {"classes": CLASSES, "split": {"method": "block", "block_chips": 4, "seed": 1,
                "ratios": {"train": 0.7, "val": 0.1, "test": 0.2}}}, GRID, {}, tmp_path / "ds", tmp_path / "work")
    assert not (tmp_path / "ds").exists() and not (tmp_path / "work" / "plan").exists()


def test_folds_and_class_balance_in_the_datacard(tmp_path):
    """Hand-made tile records (no chip files: only the tree writer, ``publish.forms: [tree]``, which links what
    the shards hold): 20 x 20 chips, class 3 in only two blocks; split.folds: 3."""
    from gos_build.archive.writers import tree

    chips = [_chip(399360 + i * 640, 4797440 + j * 640,
                   3 if (i // 4, j // 4) in ((0, 0), (4, 4)) else 1 if i < 10 else 2)
             for i in range(20) for j in range(20)]
    j = _records(tmp_path / "t.json", chips)
    z = tmp_path / TILE / "shard"
    z.mkdir(parents=True)
    (z / tree.SUMS_FILE).write_text("")
    cfg = {"classes": CLASSES, "split": {"method": "block", "block_chips": 4, "seed": 1, "folds": 3,
                                         "ratios": {"train": 0.7, "val": 0.1, "test": 0.2}},
           "publish": {"forms": ["tree"]}}
    publish([j], [z], cfg, GRID, {}, tmp_path / "ds", tmp_path / "work")
    from gos_build.layout import read_folds

    folds = read_folds(tmp_path / "ds")
    assert set(folds) == {c["id"] for c in chips} and set(folds.values()) == {1, 2, 3}
    for f in (1, 2, 3):  # classes 1 and 2 (many blocks) in every fold; class 3 in two folds (two blocks)
        assert {c["class_id"] for c in chips if folds[c["id"]] == f} >= {1, 2}
    assert len({folds[c["id"]] for c in chips if c["class_id"] == 3}) == 2
    card = (tmp_path / "ds" / "datacard.md").read_text(encoding="utf-8")
    assert "### Class shares per split" in card and "### Class shares per spatial fold" in card
    assert "- fluvial: 2 blocks, absent from " in card
    assert "folds.txt" in (tmp_path / "ds" / "MANIFEST.sha256").read_text()


def test_package_refuses_a_dataset_that_is_not_its_manifest(tmp_path):
    """`gos-build package` as the workflow runs it, on a dataset published from hand-made records (the tree form,
    no chip files): a file added to the dataset, one taken away, and a group's file the manifest does not list
    are each one message naming the folder, with no dist/ left; the dataset as published packages, its zips
    holding exactly the manifest's files (read by zipfile)."""
    import zipfile

    from gos_build.archive.writers import tree
    from helpers import run_cli

    chips = [_chip(399360 + i * 640, 4797440 + j * 640, 1 + (i + j) % 3) for i in range(8) for j in range(8)]
    records = _records(tmp_path / "t.json", chips)
    shard = tmp_path / TILE / "shard"
    shard.mkdir(parents=True)
    (shard / tree.SUMS_FILE).write_text("")
    cfg = {"classes": CLASSES, "split": {"method": "block", "block_chips": 4, "seed": 1,
                                         "ratios": {"train": 0.7, "val": 0.1, "test": 0.2}},
           "publish": {"forms": ["tree"], "zips": {"part_gb": 4}}}
    ds, work, dist = tmp_path / "ds", tmp_path / "work", tmp_path / "dist"
    publish([records], [shard], cfg, GRID, {}, ds, work)
    groups = sorted(str(g) for g in (work / "groups").iterdir())
    listed = [line[66:] for line in (ds / "MANIFEST.sha256").read_text(encoding="utf-8").splitlines()]

    def package():
        return run_cli("package", "--dataset", str(ds), "--dist", str(dist), "--aoi", "hand", "--part-gb", "4",
                       *groups)

    (ds / "notes.txt").write_text("mine\n")
    res = package()
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"{ds} holds {len(listed) + 1} files besides MANIFEST.sha256, which lists {len(listed)}" in res.stderr
    assert not dist.exists()
    (ds / "notes.txt").unlink()
    kept = (ds / "labels.txt").read_bytes()
    (ds / "labels.txt").unlink()
    res = package()
    assert res.returncode == 2 and f"{ds} holds {len(listed) - 1} files" in res.stderr and not dist.exists()
    (ds / "labels.txt").write_bytes(kept)
    sums = work / "groups" / "0" / "sums.txt"
    theirs = sums.read_text(encoding="utf-8")
    sums.write_text(theirs + f"{'0' * 64}  zz/stray.tif\n", encoding="utf-8")
    res = package()
    assert res.returncode == 2 and f"zz/stray.tif of a publishing group is not in {ds / 'MANIFEST.sha256'}" in \
        res.stderr and not dist.exists()
    sums.write_text(theirs, encoding="utf-8")
    res = package()
    assert res.returncode == 0, res.stderr
    names = []
    for z in sorted(dist.glob("*.zip")):
        with zipfile.ZipFile(z) as zf:
            assert zf.testzip() is None
            names += zf.namelist()
    assert sorted(set(names) - {"MANIFEST.sha256"}) == sorted(set(listed)) and "MANIFEST.sha256" in names


def test_zips_are_the_same_whatever_segments_are_left(tmp_path, monkeypatch):
    """Hand-made tiles of 8 x 8 chips (their shards' GeoTIFF bytes made up: the tree form links them), a group a
    tile column: the package joins each zip from the groups' segments and removes them zip by zip (when a zip
    is joined, no segment of a zip joined before it is left). A second package of the same dataset with one
    group's segments gone and another's of one zip gone, and a third with no groups at all (every file zipped
    by the package job), write the same zips, byte for byte, in parts -- the groups' larger files zipped by
    reference, the smaller into their segments."""
    import hashlib
    import shutil
    import zipfile

    from gos_build import zipjoin
    from gos_build.archive import package as package_module
    from gos_build.archive.package import SEGMENTS_DIR, package
    from gos_build.archive.writers import tree

    monkeypatch.setattr(package_module, "REFERENCE_BYTES", 1400)  # of the files (1 280-1 472 B), some by reference

    grid = build_grid(bbox=[127.7, 43.3, 128.0, 43.5], crs="EPSG:32652", tile_chips=8)
    span = grid.chip_span
    x0, y0, x1, y1 = grid.bounds
    records, shards = [], []
    for t in grid.tiles():
        tx, ty = x0 + t.col_off * grid.resolution, y1 - (t.row_off + t.height) * grid.resolution
        chips, listing = [], []
        shard = tmp_path / t.id / "shard"
        for i in range(t.width // grid.chip_size):
            for j in range(t.height // grid.chip_size):
                x, y = tx + i * span, ty + j * span
                chip = _chip(x, y, 1 + (int(x // span) + int(y // span)) % 3)
                for layer in ("dem", "rgb"):
                    rel = f"{layer}/{chip['class']}/{chip['id']}.tif"
                    data = hashlib.sha256(rel.encode()).digest() * (40 + len(chips) % 7)
                    (shard / rel).parent.mkdir(parents=True, exist_ok=True)
                    (shard / rel).write_bytes(data)
                    listing.append(f"{hashlib.sha256(data).hexdigest()}  {rel}\n")
                    chip["bytes"] += len(data)
                chips.append(chip)
        (shard / tree.SUMS_FILE).write_text("".join(sorted(listing, key=lambda line: line[66:])))
        records.append(_records(tmp_path / f"{t.id}.json", chips, t.id))
        shards.append(shard)
    cfg = {"classes": CLASSES, "split": {"method": "block", "block_chips": 4, "seed": 1,
                                         "ratios": {"train": 0.7, "val": 0.1, "test": 0.2}},
           "publish": {"forms": ["tree"], "zips": {"part_gb": 4}, "group_tiles": 1}}
    ds, work = tmp_path / "ds", tmp_path / "work"
    publish(records, shards, cfg, grid, {}, ds, work)
    groups = sorted((work / "groups").iterdir(), key=lambda g: int(g.name))
    assert len(groups) >= 3 and all((g / SEGMENTS_DIR / "rgb.idx").is_file() for g in groups)
    offsets = [line.split("\t")[0] for g in groups for line in (g / SEGMENTS_DIR / "rgb.idx").open()]
    assert "-1" in offsets and len(set(offsets)) > 2  # both ways
    other = tmp_path / "other"
    shutil.copytree(work / "groups", other)
    others = [other / g.name for g in groups]
    shutil.rmtree(others[0] / SEGMENTS_DIR)
    (others[1] / SEGMENTS_DIR / "rgb.idx").unlink()

    joined, real_join = [], zipjoin.join

    def zip_name(path):  # hand_rgb.part02-of-19.zip -> rgb
        return path.name.split(".")[0].removeprefix("hand_")

    def join(out, entries):
        done = {zip_name(p) for p in joined} - {zip_name(out)}
        joined.append(out)
        for g in groups:
            if (g / SEGMENTS_DIR).is_dir():
                left = {p.name.split(".")[0] for p in (g / SEGMENTS_DIR).iterdir()}
                assert not left & done, (out.name, left, done)
        return real_join(out, entries)

    monkeypatch.setattr(zipjoin, "join", join)
    part = 120_000  # bytes: the rgb and dem zips in parts
    made = {}
    for name, folders in (("all", groups), ("some", others), ("none", [])):
        dist = tmp_path / f"dist_{name}"
        package(ds, dist, "hand", part, folders)
        made[name] = {z.name: z.read_bytes() for z in sorted(dist.glob("*.zip"))}
    assert {zip_name(p) for p in joined} >= {"dem", "rgb"}
    assert any(".part" in n for n in made["all"])
    assert made["all"] == made["some"] == made["none"]
    assert not any((g / SEGMENTS_DIR).exists() for g in groups + others)
    names = []
    for data in made["all"].values():
        zf = zipfile.ZipFile(__import__("io").BytesIO(data))
        assert zf.testzip() is None
        names += zf.namelist()
    listed = {line[66:] for line in (ds / "MANIFEST.sha256").read_text().splitlines()} | {"MANIFEST.sha256"}
    assert set(names) == listed


def test_zip_parts_hold_whole_files_within_the_limit():
    """Parts cut by hand: members of 100 B budget 100 + 140 + 2 x len(name) each (+ 98 for the zip's end)."""
    from gos_build.archive.package import ZIP_END, cut_parts, package_path

    files = [("a/1.tif", 100), ("a/2.tif", 100), ("a/3.tif", 5000), ("a/4.tif", 100)]
    one = 100 + 140 + 2 * len("a/1.tif")  # 254
    assert ZIP_END == 98
    assert cut_parts(files, None) == [4]
    assert cut_parts(iter(files), ZIP_END + 2 * one) == [2, 1, 1]  # a/1, a/2 | a/3 | a/4
    assert cut_parts(files, ZIP_END + 2 * one - 1) == [1, 1, 1, 1]
    assert cut_parts([], 10) == []
    assert package_path("d", "x", "rgb").name == "x_rgb.zip"
    assert package_path("d", "x", "rgb", 2, 3).name == "x_rgb.part02-of-03.zip"
    assert package_path("d", "x", "rgb", 7, 120).name == "x_rgb.part007-of-120.zip"


def _members(tmp_path):
    """Files to zip: stored and deflated, empty, one of 200 kB, a name in UTF-8; (name, path) in zip order."""
    import random

    rng = random.Random(7)
    files = {"a/0.tif": b"", "a/1.tif": bytes(rng.randrange(256) for _ in range(3000)), "a/2.json": b"{}" * 900,
             "a/big.tif": rng.randbytes(200_000), "b/流水.tif": b"x" * 10, "b/z.txt": b"line\n" * 300}
    out = []
    for name, data in files.items():
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        out.append((name, path))
    return out


@pytest.mark.parametrize("zip64, streamed, by_reference", [(False, False, None), (True, False, None),
                                                           (False, True, None), (True, True, None),
                                                           (False, False, 0), (True, True, 0), (False, False, 3000)])
def test_a_zip_joined_from_segments_is_the_zip_zipfile_writes(tmp_path, monkeypatch, zip64, streamed, by_reference):
    """Members zipped into two segments (interleaved: every other file; each segment the bytes ``zipfile``
    writes for its members), then joined in the zip's order: the same bytes as ``zipfile``'s zip of the same
    members -- with zipfile's limits lowered so that sizes, offsets and the entry count need zip64 records
    (``zip64``), as a 5 GB part or one of 70 000 files would; members read in blocks (``streamed``), as those
    above 16 MB are; the stored files (of at least 3 000 bytes) zipped by reference (``by_reference``, a
    publishing group's way: the segment is then zipfile's zip of the other members, the join copies the files)
    -- and a zip that zipfile and ``unzip -t`` read back whole."""
    import shutil
    import subprocess
    import zipfile

    from gos_build.zipjoin import join, read_index, write_segment

    if zip64:
        monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 2500)
        monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 4)
    if streamed:  # members above 1 kB read in blocks, their header written after their data (a Parquet shard's way)
        monkeypatch.setattr("gos_build.zipjoin.ZIP_READ_WHOLE", 1000)
    members = _members(tmp_path)
    text = lambda n: n.endswith((".json", ".txt"))  # noqa: E731
    zipfile_zip(tmp_path / "whole.zip", members, deflate=text)
    assert write_segment(tmp_path / "s0", members[0::2], text, by_reference) == 3
    assert write_segment(tmp_path / "s1", members[1::2], text, by_reference) == 3
    referred = {n for n, p in members if by_reference is not None and not text(n) and p.stat().st_size >= by_reference}
    assert by_reference != 3000 or referred == {"a/1.tif", "a/big.tif"}
    held = [(n, p) for n, p in members[1::2] if n not in referred]
    zipfile_zip(tmp_path / "half.zip", held, deflate=text)  # a segment is itself zipfile's zip of what it holds
    assert (tmp_path / "s1.zip").read_bytes() == (tmp_path / "half.zip").read_bytes()
    root = tmp_path / "src"
    entries = [e for pair in zip(read_index(tmp_path / "s0", root), read_index(tmp_path / "s1", root)) for e in pair]
    assert [e.name for e in entries if e.offset < 0] == [n for n, _ in members if n in referred]
    assert [e.name for e in entries] == [n for n, _ in members]
    assert join(tmp_path / "joined.zip", iter(entries)) == 6
    assert (tmp_path / "joined.zip").read_bytes() == (tmp_path / "whole.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "joined.zip") as zf:
        assert zf.testzip() is None
        assert {n: zf.read(n) for n in zf.namelist()} == {n: p.read_bytes() for n, p in members}
    if zip64:
        assert b"PK\x06\x06" in (tmp_path / "joined.zip").read_bytes()  # zip64 end record: 6 entries > 4
    if shutil.which("unzip"):
        res = subprocess.run(["unzip", "-t", str(tmp_path / "joined.zip")], capture_output=True, text=True)
        assert res.returncode == 0 and "No errors detected" in res.stdout, res.stdout + res.stderr


def test_a_file_changed_since_its_group_zipped_it_is_named(tmp_path):
    """A file zipped by reference whose size is no longer the one its segment's index holds: one message naming
    it, no zip left."""
    from gos_build.errors import GosBuildError
    from gos_build.zipjoin import join, read_index, write_segment

    members = _members(tmp_path)
    write_segment(tmp_path / "s", members, by_reference=0)
    (tmp_path / "src" / "a" / "1.tif").write_bytes(b"shorter")
    with pytest.raises(GosBuildError, match=r"src/a/1\.tif is 7 bytes, 3000 when its publishing group zipped it"):
        join(tmp_path / "out.zip", read_index(tmp_path / "s", tmp_path / "src"))
    assert not list(tmp_path.glob("*out.zip*"))


def test_a_part_joined_from_runs_of_segments(tmp_path):
    """A zip of a subset in another order than the segment's (the second and first entries, then the last
    two): the bytes ``zipfile`` writes for those members in that order."""
    from gos_build.zipjoin import join, read_index, write_segment

    members = _members(tmp_path)
    write_segment(tmp_path / "s", members)
    entries = list(read_index(tmp_path / "s"))
    pick = [1, 0, 4, 5]
    join(tmp_path / "part.zip", [entries[i] for i in pick])
    zipfile_zip(tmp_path / "ref.zip", [members[i] for i in pick])
    assert (tmp_path / "part.zip").read_bytes() == (tmp_path / "ref.zip").read_bytes()


def test_every_form_of_the_schema_has_its_writer():
    """publish.forms' enum (config.FORMS) and the writers name the same forms: none chosen and silently unwritten."""
    from gos_build.archive.writers import WRITERS
    from gos_build.config import DEFAULT_FORMS, FORMS

    assert set(FORMS) == set(WRITERS) and set(DEFAULT_FORMS) < set(FORMS) and "tree" in DEFAULT_FORMS


def test_records_of_another_grid_are_refused_by_the_plan(tmp_path):
    """A tile record whose tile is not one of the grid's (records made with another grid): one line naming it,
    no plan left."""
    j = tmp_path / "t.json"
    chip = {"id": "E0399360N4797440", "class_id": 1, "class": "tectonic", "purity": 1.0, "x": 399360.0,
            "y": 4797440.0, "cloud": 0.0, "stats": {}, "bytes": 0}
    j.write_text(json.dumps({"candidates": 1, "partial_aoi": 0, "kept": 1, "chips": [chip], "tile": "E0000000N0000000",
                             "rejected": {"purity": 0, "cloud": 0, "nodata": 0, "unlabelled": 0}}))
    cfg = {"classes": CLASSES, "split": {"method": "block", "block_chips": 4, "seed": 1,
                                         "ratios": {"train": 0.7, "val": 0.1, "test": 0.2}}}
    with pytest.raises(GosBuildError, match=r"publish: tile E0000000N0000000 of the records is not a tile of this "
                                            r"grid \(1 such\)"):
        publish([j], [], cfg, GRID, {}, tmp_path / "ds", tmp_path / "work")
    assert not (tmp_path / "work" / "plan").exists()


def test_each_parquet_shard_goes_to_a_group_holding_its_chips_and_the_work_evens_out():
    """The scale AOI's five groups and four shards (train 2 of 3 119 chips, val 1, test 1): every shard to a
    group holding some of its chips; the most work any group has is the least any such choice gives (all 5 x 3
    x 5 x 3 choices tried), lower than when each shard went to the group of its first chip; an empty split's one
    shard to group 0."""
    import itertools

    from gos_build.archive.plan import SHARD_CHIP_WORK, shard_writers

    ranges = [{"train": [0, 500], "val": [0, 32], "test": [0, 49]},
              {"train": [500, 2428], "val": [32, 139], "test": [49, 718]},
              {"train": [2428, 4270], "val": [139, 399], "test": [718, 1254]},
              {"train": [4270, 5927], "val": [399, 712], "test": [1254, 1673]},
              {"train": [5927, 6237], "val": [712, 893], "test": [1673, 1780]}]
    n = {"train": 6237, "val": 893, "test": 1780}
    shards = [("train", 0, 0, 3119), ("train", 1, 3119, 6237), ("val", 0, 0, 893), ("test", 0, 0, 1780)]

    def worst(writers):  # the most work of a group: its own chips, and its shards' at SHARD_CHIP_WORK
        work = [sum(e - s for s, e in r.values()) for r in ranges]
        for (split, k, lo, hi) in shards:
            work[writers[split][k]] += SHARD_CHIP_WORK * (hi - lo)
        return max(work)

    def holders(split, lo, hi):
        return [g for g, r in enumerate(ranges) if r[split][0] < hi and lo < r[split][1]]

    cut = {"train": {"shards": 2, "per": 3119}, "val": {"shards": 1, "per": 893}, "test": {"shards": 1, "per": 1780}}
    shard_writers(cut, ranges, n)
    writers = {s: cut[s]["writers"] for s in cut}
    assert all(writers[s][k] in holders(s, lo, hi) for s, k, lo, hi in shards)
    best = min(worst({"train": [a, b], "val": [c], "test": [d]})
               for a, b, c, d in itertools.product(*(holders(s, lo, hi) for s, _, lo, hi in shards)))
    first_chip = {"train": [0, 2], "val": [0], "test": [0]}
    assert worst(writers) == pytest.approx(best) and best < 0.75 * worst(first_chip)

    empty = {"train": {"shards": 1, "per": 1}, "val": {"shards": 1, "per": 1}, "test": {"shards": 1, "per": 1}}
    shard_writers(empty, [{"train": [0, 0], "val": [0, 0], "test": [0, 0]}] * 3, {"train": 0, "val": 0, "test": 0})
    assert [empty[s]["writers"] for s in ("train", "val", "test")] == [[0], [0], [0]]


def test_publishing_groups_are_whole_columns_or_strips_of_tall_ones():
    """A grid of tiles of 4 x 4 chips, its first column 9 tiles tall, the others 10: with group_tiles 5 the first
    is one group, whole; each other is two strips of two chip columns. The groups' eastings run west to east
    without overlap, every chip of the grid falls in exactly one group, which reads its tile, and a strip holds
    half its column's chips; with group_tiles 1000 one group holds every tile."""
    from gos_build.archive.plan import group_of_chips, publish_groups

    grid = build_grid(bbox=[127.7, 43.3, 128.0, 43.5], crs="EPSG:32652", tile_chips=4)
    heights = {}
    for t in grid.tiles():
        heights[t.col_off] = heights.get(t.col_off, 0) + 1
    assert [heights[c] for c in sorted(heights)][:2] == [9, 10] and set(heights.values()) == {9, 10}
    groups = publish_groups(grid, 5)
    assert all(a["x"][1] <= b["x"][0] for a, b in zip(groups, groups[1:]))
    assert [len(g["tiles"]) for g in groups] == [9] + [10] * (2 * (len(heights) - 1))
    assert groups[0]["x"][1] - groups[0]["x"][0] == grid.tile_span
    assert all(g["x"][1] - g["x"][0] == 2 * grid.chip_span for g in groups[1:])
    group_of = group_of_chips(groups)
    x0, _, _, _ = grid.bounds
    held, column = [0] * len(groups), {}
    for t in grid.tiles():
        for i in range(t.width // grid.chip_size):
            x = x0 + t.col_off * grid.resolution + i * grid.chip_span
            k = group_of(x)
            assert groups[k]["x"][0] <= x < groups[k]["x"][1] and t.id in groups[k]["tiles"]
            held[k] += t.height // grid.chip_size
            column[t.col_off] = column.get(t.col_off, 0) + t.height // grid.chip_size
    second = column[sorted(column)[1]]
    assert held[1] == held[2] == second // 2 and second > 0
    assert len(publish_groups(grid, 1000)) == 1
