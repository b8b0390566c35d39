"""The whole workflow, as a user runs it: byte-identical reruns, shared chips across AOIs, validate."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import yaml

from helpers import AOI_A, DEMO_BBOX, ROOT, run_cli, run_workflow, workflow_config

pytestmark = pytest.mark.slow  # runs the workflow


def test_cores_1_and_2_give_the_same_bytes(runs):
    a2, a1 = runs["a2"], runs["a1"]
    assert (a2 / "dataset" / "MANIFEST.sha256").read_bytes() == (a1 / "dataset" / "MANIFEST.sha256").read_bytes()
    for z in sorted((a2 / "dist").glob("*.zip")):
        assert z.read_bytes() == (a1 / "dist" / z.name).read_bytes(), z.name
    assert len((a2 / "dataset" / "MANIFEST.sha256").read_text().splitlines()) > 9 * 8


def test_the_files_do_not_depend_on_the_groups_of_tiles(inputs, tmp_path):
    """The demo's AOI, every form, split.folds: 3, packed chunks of 5 chips, zips in parts of 0.3 MB; the
    publishing jobs over one tile column each, then over one group of every tile: the same MANIFEST (packed
    chunks and the Parquet shards cross the groups: a group reads the chips that end them from the next groups'
    tiles) and the same zips, byte for byte (joined from the groups' segments, then, forced again once the
    segments are gone, zipped by the package job alone), and it validates."""
    forms = ["tree", "stac", "stac-geoparquet", "croissant", "packed", "parquet"]
    manifests, groups, zips = {}, {}, {}
    for group_tiles in (1, 1000):
        cfg = workflow_config(inputs, "aoi", list(DEMO_BBOX), split={"folds": 3, "block_chips": 4},
                              publish={"forms": forms, "zips": {"part_gb": 0.0003}, "group_tiles": group_tiles,
                                       "chunk_chips": 5})
        res = run_workflow(tmp_path / str(group_tiles), cfg, "--cores", "2")
        assert res.returncode == 0, res.stderr[-3000:]
        aoi = tmp_path / str(group_tiles) / "results" / "aoi"
        plan = json.loads((aoi / "publish" / "plan" / "plan.json").read_text(encoding="utf-8"))
        groups[group_tiles] = plan["groups"]
        manifests[group_tiles] = (aoi / "dataset" / "MANIFEST.sha256").read_bytes()
        zips[group_tiles] = {z.name: z.read_bytes() for z in (aoi / "dist").glob("*.zip")}
        assert not list((aoi / "publish" / "groups").glob("*/zips"))  # the segments go once the zips are whole
        if group_tiles == 1:  # the package job again without the groups' segments: it zips their files itself
            res = run_workflow(tmp_path / str(group_tiles), cfg, "--cores", "2", "--forcerun", "package")
            assert res.returncode == 0, res.stderr[-3000:]
            again = {z.name: z.read_bytes() for z in (aoi / "dist").glob("*.zip")}
            assert again == zips[group_tiles]
        res = run_cli("validate", str(aoi / "dataset"))
        assert res.returncode == 0, res.stdout + res.stderr
    assert len(groups[1000]) == 1 and len(groups[1]) >= 3
    # a packed chunk (5 chips: publish.chunk_chips) starts in one group and ends in the next
    train = [g["range"]["train"] for g in groups[1]]
    assert any(start < end and end % 5 and end < train[-1][1] for start, end in train)
    assert manifests[1] == manifests[1000]
    assert sorted(zips[1]) == sorted(zips[1000]) and any(".part02-of-" in n for n in zips[1]), sorted(zips[1])
    assert all(zips[1][name] == zips[1000][name] for name in zips[1])


def test_the_dataset_validates_and_has_the_documented_layout(runs):
    d = runs["a2"] / "dataset"
    res = run_cli("validate", str(d))
    assert res.returncode == 0 and f"{d}: OK" in res.stdout, res.stderr
    for name in ("classes.txt", "labels.txt", "train.txt", "val.txt", "test.txt", "stats.json", "datacard.md"):
        assert (d / name).is_file()
    rows = [ln.split() for ln in (d / "labels.txt").read_text().splitlines() if not ln.startswith("#")]
    splits = {s: set((d / f"{s}.txt").read_text().split()) for s in ("train", "val", "test")}
    assert not (splits["train"] & splits["val"] or splits["train"] & splits["test"] or splits["val"] & splits["test"])
    assert {r[0] for r in rows} == splits["train"] | splits["val"] | splits["test"]
    names = {r.split("\t")[0]: r.split("\t")[1] for r in (d / "classes.txt").read_text().splitlines()}
    for cid, label, *_ in rows[:20]:
        for m in ("rgb", "dem", "hillshade", "slope", "mean", "std", "northness", "eastness", "dev"):
            assert (d / m / names[label] / f"{cid}.tif").is_file()
    dist = sorted(p.name for p in (runs["a2"] / "dist").glob("*.zip"))
    assert dist == sorted(f"aoi_{m}.zip" for m in ("rgb", "dem", "hillshade", "slope", "mean", "std", "northness",
                                                   "eastness", "dev", "labels", "packed", "parquet"))


def test_inputs_are_resolved_once_into_manifests(runs, inputs):
    """results/<aoi>/inputs/<kind>.json name exactly the files the globs match, and the stages read nothing else."""
    man = {k: json.loads((runs["a2"] / "inputs" / f"{k}.json").read_text(encoding="utf-8"))
           for k in ("sentinel2", "dem", "polygons")}
    assert {m["kind"] for m in man.values()} == {"sentinel2", "dem", "polygons"}
    safes = sorted(str(p) for p in (inputs / "sentinel2").glob("*.SAFE"))
    assert [p["source"] for p in man["sentinel2"]["products"]] == safes
    assert all(p["bytes"] > 1000 for p in man["sentinel2"]["products"])
    assert man["dem"]["sources"] == sorted(str(p) for p in (inputs / "srtm").glob("*.hgt"))
    assert [f["bytes"] for f in man["dem"]["files"]] == [25934402] * len(man["dem"]["files"])  # SRTM1 tiles
    assert man["polygons"]["path"] == str(inputs / "polygons.gpkg") and man["polygons"]["features"] > 0
    assert man["dem"]["aoi_covered"] > 0.9999 and man["sentinel2"]["aoi_covered"] > 0.9999


def test_overlapping_aois_share_identical_chips(runs):
    a, b = runs["a2"] / "dataset", runs["b2"] / "dataset"
    files_a = {p.relative_to(a) for p in a.glob("*/*/*.tif")}
    files_b = {p.relative_to(b) for p in b.glob("*/*/*.tif")}
    shared = files_a & files_b
    assert len(shared) >= 9 * 3
    for rel in shared:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_validate_reports_problems(runs, tmp_path):
    d = tmp_path / "ds"
    shutil.copytree(runs["a2"] / "dataset", d)
    first = sorted(d.glob("slope/*/*.tif"))[0]
    first.write_bytes(first.read_bytes()[:-10] + b"0123456789")  # tampered
    moved = sorted(d.glob("dem/*/*.tif"))[0]
    wrong = d / "dem" / "elsewhere"
    wrong.mkdir()
    shutil.move(moved, wrong / moved.name)  # wrong class folder
    train = (d / "train.txt").read_text().split()
    (d / "val.txt").write_text((d / "val.txt").read_text() + train[0] + "\n")  # in two splits
    # chips whose geometry is wrong, written by GDAL as another tool would: validate reads their headers
    import rasterio

    hill = sorted(d.glob("hillshade/*/*.tif"))
    with rasterio.open(hill[1]) as ds:
        profile, data = ds.profile, ds.read()
    small, shifted, other_crs, lzw, garbage = hill[1], hill[2], hill[3], hill[4], hill[5]
    with rasterio.open(small, "w", **(profile | {"width": 32, "height": 32})) as dst:
        dst.write(data[:, :32, :32])
    with rasterio.open(shifted, "w", **(profile | {"transform": profile["transform"] * rasterio.Affine.translation(1, 0)})) as dst:
        dst.write(data)
    with rasterio.open(other_crs, "w", **(profile | {"crs": "EPSG:32630"})) as dst:
        dst.write(data)
    with rasterio.open(lzw) as ds:
        same = (ds.profile | {"compress": "lzw"}, ds.read())
    with rasterio.open(lzw, "w", **same[0]) as dst:  # same pixels and place, another compression: only the sha256
        dst.write(same[1])
    garbage.write_bytes(b"II*\x00 not really a GeoTIFF")
    res = run_cli("validate", str(d))
    assert res.returncode == 2
    err = res.stderr
    assert f"{first.relative_to(d).as_posix()}: sha256 differs from MANIFEST.sha256" in err
    assert f"dem/elsewhere/{moved.name}: no matching line in labels.txt" in err
    assert f"{train[0]}: in splits ['train', 'val'], labels.txt says train" in err
    rel = {p: p.relative_to(d).as_posix() for p in hill[1:6]}
    assert f"{rel[small]}: 32 x 32 px, expected 64 x 64" in err
    for p in (small, shifted, other_crs):
        assert f"{rel[p]}: bounds or CRS differ from the chip's rgb layer" in err
    assert f"{rel[garbage]}: not a readable GeoTIFF" in err
    assert f"{rel[lzw]}: sha256 differs from MANIFEST.sha256" in err
    assert f"{rel[lzw]}: bounds" not in err and f"{rel[lzw]}: not a readable" not in err
    assert "gos-build: error:" in err and "problem(s)" in err


def test_datacard_states_inputs_counts_and_versions(runs):
    card = (runs["a2"] / "dataset" / "datacard.md").read_text(encoding="utf-8")
    assert "S2B_MSIL2A_20201026T015715_N0509" in card and "processing baseline 05.09" in card
    assert "N43E128.hgt" in card and "rasterio" in card and "richdem2" in card
    assert "| 1 | tectonic | 构造地貌 |" in card and "Rejected, by first failing test" in card


def _start_workflow(work: Path, cfg: dict) -> subprocess.Popen:
    """The workflow on ``cfg`` in ``work``, with two cores, in a process group of its own (to be killed whole)."""
    work.mkdir()
    path = work / "aoi.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.Popen([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory",
                             str(work), "--configfile", str(path), "--cores", "2"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def test_killed_in_the_chip_stage_resumes_to_identical_bytes(inputs, runs, tmp_path):
    """SIGKILL the whole workflow once chip shards start to appear; rerun; same MANIFEST as an uninterrupted run."""
    import signal
    import time

    work = tmp_path / "killed"
    cfg = workflow_config(inputs, "aoi", AOI_A)
    proc = _start_workflow(work, cfg)
    tiles = work / "results" / "aoi" / "tiles"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if list(tiles.glob("*/chips.json")):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the workflow ended before the chip stage could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (work / "results" / "aoi" / "dataset").exists()
    # a killed Snakemake leaves its lock on the working directory: release it, as the docs say
    assert run_workflow(work, cfg, "--unlock").returncode == 0
    res = run_workflow(work, cfg, "--cores", "2", "--rerun-incomplete")
    assert res.returncode == 0, res.stderr[-3000:]
    manifest = (work / "results" / "aoi" / "dataset" / "MANIFEST.sha256").read_bytes()
    assert manifest == (runs["a2"] / "dataset" / "MANIFEST.sha256").read_bytes()
    # temporary names are .<name>.<random>.tmp* (io.atomic_path) and .dataset.tmp; Zarr's own .zarray etc. are data
    leftovers = [p for p in (work / "results").rglob(".*") if ".tmp" in p.name]
    assert not leftovers, leftovers


def test_killed_while_publishing_resumes_and_forcerun_redoes_only_the_last_job(inputs, runs, tmp_path):
    """SIGKILL the workflow while a publishing group's job writes (its temporary folder exists): nothing
    half-written is left (no dataset/), the rerun gives the uninterrupted run's MANIFEST, a second rerun plans no
    job, ``--forcerun package`` runs the package job alone, and ``--forcerun dataset`` the last publishing job
    (and what follows it) without a group's job again."""
    import signal
    import time

    work = tmp_path / "killed"
    cfg = workflow_config(inputs, "aoi", AOI_A)
    proc = _start_workflow(work, cfg)
    aoi = work / "results" / "aoi"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if any((aoi / "publish" / "groups").glob(".*.tmp/files/*/*/*.tif")):  # a group's files are being placed
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the workflow ended before a publishing job could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (aoi / "dataset").exists()  # the job's output appears whole or not at all
    assert run_workflow(work, cfg, "--unlock").returncode == 0
    res = run_workflow(work, cfg, "--cores", "2", "--rerun-incomplete")
    assert res.returncode == 0, res.stderr[-3000:]
    assert (aoi / "dataset" / "MANIFEST.sha256").read_bytes() == (runs["a2"] / "dataset" / "MANIFEST.sha256").read_bytes()
    leftovers = [p for p in (work / "results").rglob(".*") if ".tmp" in p.name or p.name.startswith(".stac-geo")]
    assert not leftovers, leftovers
    res = run_workflow(work, cfg, "--cores", "2", "-n")
    assert res.returncode == 0 and "Nothing to be done" in res.stdout + res.stderr, res.stdout[-2000:]
    res = run_workflow(work, cfg, "--cores", "2", "--forcerun", "package", "--quiet", "rules")
    assert res.returncode == 0, res.stderr[-3000:]
    ran = dict(re.findall(r"^(\w+)\s+(\d+)$", res.stdout + res.stderr, re.M))
    assert ran == {"package": "1", "all": "1", "total": "2"}, res.stdout + res.stderr
    res = run_workflow(work, cfg, "--cores", "2", "--forcerun", "dataset", "--quiet", "rules")
    assert res.returncode == 0, res.stderr[-3000:]
    ran = dict(re.findall(r"^(\w+)\s+(\d+)$", res.stdout + res.stderr, re.M))
    assert set(ran) <= {"dataset", "package", "figures", "all", "total"} and ran["dataset"] == "1", ran  # no group
    assert (aoi / "dataset" / "MANIFEST.sha256").read_bytes() == (runs["a2"] / "dataset" / "MANIFEST.sha256").read_bytes()


def test_full_results_disk_ends_with_one_line_and_resumes(inputs, runs, tmp_path):
    """results/ on a 6 MB tmpfs: the job that hits the full disk says so in one line; after the space
    is freed the rerun gives the same manifest as an uninterrupted run."""
    work = tmp_path / "work"
    results = work / "results"
    results.mkdir(parents=True)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(results)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        cfg = workflow_config(inputs, "aoi", AOI_A)
        res = run_workflow(work, cfg, "--cores", "2")
        assert res.returncode != 0
        ours = [ln for ln in res.stderr.splitlines() if ln.startswith("gos-build:")]
        assert ours and all(re.fullmatch(r"gos-build: error: results/aoi/\S+: no space left on device \(\d+ MB free\)",
                                         ln) for ln in ours), ours
        assert "internal error" not in res.stderr and "Traceback" not in res.stderr
        leftovers = [p for p in results.rglob("*") if ".tmp" in p.name]
        assert not leftovers, leftovers
        subprocess.run(["mount", "-o", "remount,size=256m", str(results)], check=True)
        res = run_workflow(work, cfg, "--cores", "2", "--rerun-incomplete")
        assert res.returncode == 0, res.stderr[-3000:]
        assert ((results / "aoi" / "dataset" / "MANIFEST.sha256").read_bytes()
                == (runs["a2"] / "dataset" / "MANIFEST.sha256").read_bytes())
    finally:
        subprocess.run(["umount", "-l", str(results)], check=False)


def test_demo_aoi_has_every_class_in_every_split_and_fold(inputs, tmp_path):
    """The demo AOI (config.yaml's, on the same generated inputs) with split.folds: 3."""

    cfg = workflow_config(inputs, "demo", list(DEMO_BBOX), grid={"tile_chips": 8},
                          split={"block_chips": 4, "folds": 3})
    res = run_workflow(tmp_path, cfg, "--cores", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    d = tmp_path / "results" / "demo" / "dataset"
    rows = [ln.split() for ln in (d / "labels.txt").read_text().splitlines() if not ln.startswith("#")]
    by_split = {s: {r[1] for r in rows if r[3] == s} for s in ("train", "val", "test")}
    assert by_split == {"train": {"1", "2", "3"}, "val": {"1", "2", "3"}, "test": {"1", "2", "3"}}
    folds = dict(ln.split() for ln in (d / "folds.txt").read_text().splitlines() if not ln.startswith("#"))
    label = {r[0]: r[1] for r in rows}
    assert set(folds) == set(label)
    for f in ("1", "2", "3"):
        assert {label[c] for c, g in folds.items() if g == f} == {"1", "2", "3"}
    assert run_cli("validate", str(d)).returncode == 0
    card = (d / "datacard.md").read_text(encoding="utf-8")
    assert "Every class with chips is present in every group." in card
    with zipfile.ZipFile(tmp_path / "results" / "demo" / "dist" / "demo_labels.zip") as zf:
        assert "folds.txt" in zf.namelist()


def test_scratch_goes_after_its_last_reader_and_reruns_do_nothing(inputs, runs):
    """Decoded granules, the tiles' shards and map pieces are temp(), the tiles' layers never files: after a run
    only products and small records stay, the dataset holds real files (no link into a removed shard), a
    rerun plans no job, and --forcerun figures redraws the same figures from what stays."""
    aoi = runs["a2"]
    work, cfg = aoi.parents[1], workflow_config(inputs, "aoi", AOI_A)
    kept = {p.relative_to(aoi).parts[0] for p in aoi.rglob("*") if p.is_file()}
    assert kept == {"dataset", "dist", "figures", "inputs", "labels", "sentinel2", "dem", "grid.json", "tiles",
                    "publish"}
    assert not (aoi / "sentinel2" / "granules").exists()
    assert {p.name for p in (aoi / "tiles").rglob("*")} - {p.name for p in (aoi / "tiles").iterdir()} == {
        "chips.json", "labels.json", "sentinel2.json"}
    dataset = [p for p in (aoi / "dataset").rglob("*") if not p.is_dir()]
    # real files: none a symbolic link, and the only other name of a file the publishing group's that wrote it
    grouped = {(p.stat().st_ino, p.stat().st_dev) for p in (aoi / "publish" / "groups").rglob("*") if p.is_file()}
    assert dataset and not [p for p in dataset if p.is_symlink() or p.stat().st_nlink > 2]
    assert all((p.stat().st_ino, p.stat().st_dev) in grouped for p in dataset if p.stat().st_nlink == 2)
    res = run_workflow(work, cfg, "--cores", "2", "-n")
    assert res.returncode == 0 and "Nothing to be done" in res.stdout + res.stderr, res.stdout[-2000:]
    before = {p.name: p.read_bytes() for p in (aoi / "figures").glob("*.png")}
    res = run_workflow(work, cfg, "--cores", "2", "--forcerun", "figures", "--quiet", "rules")
    assert res.returncode == 0, res.stderr[-3000:]
    ran = dict(re.findall(r"^(\w+)\s+(\d+)$", res.stdout + res.stderr, re.M))
    assert ran == {"figures": "1", "all": "1", "total": "2"}, res.stdout + res.stderr
    assert {p.name: p.read_bytes() for p in (aoi / "figures").glob("*.png")} == before


def test_notemp_keeps_the_scratch_and_the_same_dataset(inputs, runs, tmp_path):
    """--notemp (Snakemake's own switch) keeps every intermediate; the dataset is the same bytes; the overview's
    maps are the tiles' hillshade and labels as the stage commands write them, placed by their own
    georeferencing."""
    cfg = workflow_config(inputs, "aoi", AOI_A)
    res = run_workflow(tmp_path, cfg, "--cores", "2", "--notemp")
    assert res.returncode == 0, res.stderr[-3000:]
    aoi = tmp_path / "results" / "aoi"
    tiles = [d for d in (aoi / "tiles").iterdir()]
    assert tiles and all({"preview.tif", "overview.tif"} <= {p.name for p in d.iterdir()} and (d / "shard").is_dir()
                         for d in tiles)
    assert list((aoi / "sentinel2" / "granules").iterdir())
    assert (aoi / "dataset" / "MANIFEST.sha256").read_bytes() == (runs["a2"] / "dataset" / "MANIFEST.sha256").read_bytes()
    import numpy as np
    import rasterio

    from gos_build.layout import HILLSHADE

    with rasterio.open(aoi / "figures" / "overview_layers.tif") as ds:  # a small AOI: not decimated
        maps, transform = dict(zip(ds.descriptions, ds.read())), ds.transform
    assert transform.a == 10.0 and set(maps) == {"hillshade", "labels"}
    placed = {"hillshade": 0, "labels": 0}
    from gos_build.config import with_defaults

    terrain = json.dumps({"terrain": with_defaults(cfg)["terrain"]})
    for d in tiles:
        common = ("--grid", str(aoi / "grid.json"), "--tile", d.name)
        for name, args, band in (
                ("hillshade", ("terrain-tile", "--config", terrain, *common,
                               "--mosaic", str(aoi / "dem" / "mosaic.vrt")), HILLSHADE.tile_band),
                ("labels", ("labels-tile", *common, "--prepared", str(aoi / "labels" / "polygons.gpkg"),
                            "--counts", str(tmp_path / "counts.json")), 1)):
            res = run_cli(*args, "--out", str(tmp_path / "layer.tif"))
            assert res.returncode == 0, res.stderr
            with rasterio.open(tmp_path / "layer.tif") as ds:
                r0 = round((transform.f - ds.transform.f) / 10.0)
                c0 = round((ds.transform.c - transform.c) / 10.0)
                part = ds.read(band)
            np.testing.assert_array_equal(maps[name][r0 : r0 + part.shape[0], c0 : c0 + part.shape[1]], part)
            placed[name] += part.size
        # the tile's label counts are those of its labels layer
        assert json.loads((d / "labels.json").read_text()) == json.loads((tmp_path / "counts.json").read_text())
    assert placed == {name: m.size for name, m in maps.items()}  # the tiles cover the maps, once
