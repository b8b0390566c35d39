"""The published forms of a built dataset: STAC catalogue, GeoCroissant metadata, packed Zarr store."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
import shutil

import numpy as np
import pytest
import rasterio

from gos_build.layout import MODALITIES, chip_path, read_index
from helpers import AUVERGNE_BBOX, run_workflow, workflow_config

pytestmark = pytest.mark.slow  # reads the datasets of the workflow runs


@pytest.fixture(scope="module")
def auvergne_dataset(auvergne_demo, tmp_path_factory):
    """A dataset of the Auvergne demo AOI (UTM 31N, baseline 05.09, 10 % cloud): another zone, other classes' shares."""
    base = tmp_path_factory.mktemp("auvergne")
    res = run_workflow(base, workflow_config(auvergne_demo, "auvergne", list(AUVERGNE_BBOX)), "--cores", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    return base / "results" / "auvergne" / "dataset"


@pytest.mark.parametrize("which", ["demo", "auvergne"])
def test_stac_catalogue_passes_core_and_extension_schemas(which, runs, auvergne_dataset):
    """The collection and every item against STAC core and the six extensions' published schemas (offline); the
    rgb asset's eo:bands are Sentinel-2's B04 B03 B02 (ESA's centre wavelengths, S2A), named as its raster:bands."""
    from stac_schemas import OfflineSchemas

    schemas = OfflineSchemas()  # skips where ../shared/stac-schemas is absent
    d = runs["a2"] / "dataset" if which == "demo" else auvergne_dataset
    collection = json.loads((d / "stac" / "collection.json").read_text())
    assert collection["summaries"]["ml-aoi:split"] == ["train", "validate", "test"]
    problems = schemas.errors(collection)
    _, chips = read_index(d)
    splits = {"train": "train", "val": "validate", "test": "test"}  # ml-aoi's words for the dataset's splits
    for chip in chips:
        item = json.loads((d / "stac" / chip["id"] / f"{chip['id']}.json").read_text())
        assert set(item["stac_extensions"]) == {f"https://stac-extensions.github.io/{e}/schema.json" for e in (
            "label/v1.0.1", "ml-aoi/v0.2.0", "projection/v2.0.0", "raster/v1.1.0", "file/v2.1.0", "eo/v1.1.0")}
        assert item["properties"]["ml-aoi:split"] == splits[chip["split"]]
        rgb = item["assets"]["rgb"]
        assert [(b["name"], b["common_name"], b["center_wavelength"]) for b in rgb["eo:bands"]] == [
            ("red", "red", 0.6646), ("green", "green", 0.5598), ("blue", "blue", 0.4924)]
        assert [b["name"] for b in rgb["raster:bands"]] == ["red", "green", "blue"]
        assert not any("eo:bands" in a for k, a in item["assets"].items() if k != "rgb")  # the DEM, labels
        problems += schemas.errors(item)
    assert problems == [], "\n".join(problems[:20])
    assert len(chips) >= 10


def test_stac_catalogue_is_relative_checksummed_and_labels_each_chip(runs, tmp_path):
    import pystac
    import shapely.geometry

    d = runs["a2"] / "dataset"
    moved = tmp_path / "moved"
    shutil.copytree(d, moved)  # relative links: the folder can move
    classes, chips = read_index(d)
    collection = pystac.Collection.from_file(str(moved / "stac" / "collection.json"))
    items = list(collection.get_items())
    assert sorted(i.id for i in items) == sorted(c["id"] for c in chips)
    by_id = {c["id"]: c for c in chips}
    for item in items:
        chip = by_id[item.id]
        assert item.properties["gos_build:class_id"] == chip["class_id"]
        assert item.properties["label:tasks"] == ["classification"]
        assert item.properties["proj:code"].startswith("EPSG:326") and item.properties["proj:shape"] == [64, 64]
        assert set(item.assets) == set(MODALITIES) | {"labels"}
        for key, asset in item.assets.items():
            assert not asset.href.startswith("/")
            path = asset.get_absolute_href()
            assert path.startswith(str(moved))
            data = open(path, "rb").read()
            assert asset.extra_fields["file:size"] == len(data)
            assert asset.extra_fields["file:checksum"] == "1220" + hashlib.sha256(data).hexdigest()
            if key == "labels":  # tile classification: one feature, the chip's footprint, with its class
                assert asset.roles == ["labels", "labels-vector"] and asset.extra_fields["ml-aoi:role"] == "label"
                features = json.loads(data)["features"]
                assert len(features) == 1
                assert features[0]["properties"]["class"] == classes[chip["class_id"]]["name"]
                assert shapely.geometry.shape(features[0]["geometry"]).equals(shapely.geometry.shape(item.geometry))
                continue
            assert path.endswith(chip_path(key, classes[chip["class_id"]]["name"], item.id))
            assert asset.extra_fields["raster:bands"][0]["data_type"] in ("uint16", "float32")
            assert asset.extra_fields["ml-aoi:role"] == "feature"
    assert {link.rel for link in collection.links} >= {"describedby", "item"}


# the GeoCroissant 1.0 vocabulary, as its specification defines it (mlcommons/croissant docs/croissant_geo.ttl)
GEOCROISSANT_1_0 = {
    "BandConfiguration", "SpectralBand", "MultiWavelengthConfiguration", "SolarInstrumentCharacteristics",
    "coordinateReferenceSystem", "spatialResolution", "bandConfiguration", "spectralBandMetadata", "recordEndpoint",
    "spatialIndex", "spatialBias", "samplingStrategy", "temporalResolution", "timeSeriesIndex",
    "multiWavelengthConfiguration", "solarInstrumentCharacteristics", "totalBands", "bandNamesList",
    "centerWavelength", "bandwidth", "channelList", "observatory", "instrument"}


def _geocr_terms(node) -> set[str]:
    """Every geocr: term a JSON-LD document uses, as a key or as an @type value."""
    if isinstance(node, dict):
        out = {k for k in node if k.startswith("geocr:")}
        if isinstance(node.get("@type"), str) and node["@type"].startswith("geocr:"):
            out.add(node["@type"])
        return out.union(*(_geocr_terms(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_geocr_terms(v) for v in node))
    return set()


def test_croissant_uses_geocroissant_terms_as_the_spec_names_them(runs):
    doc = json.loads((runs["a2"] / "dataset" / "croissant.json").read_text())
    used = _geocr_terms(doc)
    assert {t.removeprefix("geocr:") for t in used} <= GEOCROISSANT_1_0, used
    assert doc["@context"]["geocr"] == "http://mlcommons.org/croissant/geo/"
    bands = doc["geocr:bandConfiguration"]
    assert bands["geocr:totalBands"] == len(bands["geocr:bandNamesList"]) == 11
    assert [b["name"] for b in doc["geocr:spectralBandMetadata"]] == ["rgb:red", "rgb:green", "rgb:blue"]


def test_croissant_validates_and_records_equal_labels_txt(runs):
    import mlcroissant as mlc

    d = runs["a2"] / "dataset"
    doc = json.loads((d / "croissant.json").read_text())
    assert doc["conformsTo"] == ["http://mlcommons.org/croissant/1.1", "http://mlcommons.org/croissant/geo/1.0"]
    assert doc["geocr:coordinateReferenceSystem"].startswith("EPSG:326")
    assert doc["geocr:spatialResolution"]["value"] == 10
    ds = mlc.Dataset(jsonld=str(d / "croissant.json"))  # raises on an invalid document
    got = sorted((r["chips/chip_id"].decode(), int(r["chips/class_id"]), r["chips/split"].decode())
                 for r in ds.records("chips"))
    _, chips = read_index(d)
    assert got == sorted((c["id"], c["class_id"], c["split"]) for c in chips)
    with open(d / "chips.csv", newline="", encoding="utf-8") as f:
        row = next(csv.DictReader(f))
    assert (d / row["slope_path"]).is_file()


def test_packed_store_equals_the_geotiffs_for_every_chip(runs):
    import xarray as xr
    import zarr

    d = runs["a2"] / "dataset"
    classes, chips = read_index(d)
    store = zarr.open_group(str(d / "packed"), mode="r")
    seen = 0
    for split in ("train", "val", "test"):
        g = store[split]
        ids = [str(v) for v in g["chip_id"][:]]
        assert ids == sorted(c["id"] for c in chips if c["split"] == split)
        for m in MODALITIES:
            arr = g[m][:]
            for i, cid in enumerate(ids):
                label = next(c["class_id"] for c in chips if c["id"] == cid)
                with rasterio.open(d / chip_path(m, classes[label]["name"], cid)) as ds:
                    assert np.array_equal(arr[i], ds.read()), (split, m, cid)
        seen += len(ids)
    assert seen == len(chips)
    train = xr.open_zarr(str(d / "packed"), group="train", consolidated=False)  # without gos-build
    assert train["rgb"].shape[1:] == (3, 64, 64) and train["slope"].shape[1:] == (1, 64, 64)


def test_loader_reads_the_tree_the_store_and_the_parquet_shards_alike(runs):
    pytest.importorskip("torch")
    from gos_build.ml import GOSDataset

    d = runs["a2"] / "dataset"
    for normalize in (False, True):
        tree = GOSDataset(d, split="all", normalize=normalize, source="tree")
        for source in ("packed", "parquet"):
            other = GOSDataset(d, split="all", normalize=normalize, source=source)
            assert len(tree) == len(other) > 0
            for i in range(len(tree)):
                a, b = tree[i], other[i]
                assert a["chip_id"] == b["chip_id"] and a["label"] == b["label"]
                assert np.array_equal(a["rgb"].numpy(), b["rgb"].numpy()), (source, a["chip_id"])
                assert np.array_equal(a["terrain"].numpy(), b["terrain"].numpy()), (source, a["chip_id"])


_LOAD_WITH_DATASETS = r"""
import hashlib, json, sys
import datasets
import numpy as np
out = {}
for split, rows in datasets.load_dataset(sys.argv[1]).items():
    names = rows.features["label"].names
    out[split] = [{"chip_id": r["chip_id"], "label": names[r["label"]], "class_id": r["class_id"],
                   "split": r["split"], "thumbnail": np.asarray(r["thumbnail"]).tolist(),
                   "sha256": {m: hashlib.sha256(r[m]).hexdigest() for m in sys.argv[2].split(",")}} for r in rows]
print(json.dumps(out))
"""


def test_parquet_loads_offline_with_datasets_and_equals_the_tree(runs, tmp_path):
    """``datasets.load_dataset(<dataset folder>)``, offline, gives the splits of labels.txt, each layer's bytes
    those of the tree's file, and thumbnails that are the chip's RGB under the dataset's one stretch."""
    import subprocess
    import sys

    d = runs["a2"] / "dataset"
    classes, chips = read_index(d)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets")}
    res = subprocess.run([sys.executable, "-c", _LOAD_WITH_DATASETS, str(d), ",".join(MODALITIES)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(got) == {"train", "validation", "test"}
    hub = {"train": "train", "val": "validation", "test": "test"}
    stats = json.loads((d / "stats.json").read_text())["rgb"]
    lo = np.array([m - 2.5 * s for m, s in zip(stats["mean"], stats["std"])])
    hi = np.array([m + 2.5 * s for m, s in zip(stats["mean"], stats["std"])])
    for split in ("train", "val", "test"):
        want = [c for c in chips if c["split"] == split]
        rows = got[hub[split]]
        assert [r["chip_id"] for r in rows] == [c["id"] for c in want]
        for r, c in zip(rows, want):
            name = classes[c["class_id"]]["name"]
            assert (r["label"], r["class_id"], r["split"]) == (name, c["class_id"], split)
            for m in MODALITIES:
                assert r["sha256"][m] == hashlib.sha256((d / chip_path(m, name, c["id"])).read_bytes()).hexdigest()
            with rasterio.open(d / chip_path("rgb", name, c["id"])) as ds:
                rgb = ds.read().astype(np.float64)
            expect = np.clip((np.moveaxis(rgb, 0, -1) - lo) / (hi - lo) * 255, 0, 255)
            thumb = np.array(r["thumbnail"], dtype=np.float64)
            assert thumb.shape == (64, 64, 3) and np.abs(thumb - expect).max() <= 0.5 + 1e-9


def test_geoparquet_index_footprints_equal_the_stac_items_and_find_the_rows(runs):
    import duckdb
    import geopandas as gpd
    import shapely.geometry

    d = runs["a2"] / "dataset"
    _, chips = read_index(d)
    index = gpd.read_parquet(d / "parquet" / "chips.parquet")
    assert index.crs.to_string() == "OGC:CRS84"
    assert list(index["chip_id"]) == [c["id"] for c in chips]
    for row in index.itertuples():
        item = json.loads((d / "stac" / row.chip_id / f"{row.chip_id}.json").read_text())
        assert row.geometry.equals_exact(shapely.geometry.shape(item["geometry"]), 1e-12)
    # DuckDB, from the index to the chip's row
    con = duckdb.connect()
    pairs = con.execute(f"select chip_id, parquet_file, parquet_row from read_parquet('{d}/parquet/chips.parquet')"
                        ).fetchall()
    assert len(pairs) == len(chips)
    for cid, file, row in pairs[:: max(1, len(pairs) // 10)]:
        (at,) = con.execute(f"select chip_id from read_parquet('{d}/{file}', file_row_number = true) "
                            f"where file_row_number = {row}").fetchone()
        assert at == cid


def test_validate_finds_a_parquet_row_that_differs_from_the_tree(runs, tmp_path):
    import pyarrow.parquet as pq

    from gos_build.archive.validate import validate_dataset

    d = tmp_path / "dataset"
    shutil.copytree(runs["a2"] / "dataset", d)
    shard = d / "parquet" / "train-00000-of-00001.parquet"
    table = pq.read_table(shard)
    slope = table.column("slope").to_pylist()
    slope[0] = slope[0][:-1] + bytes([slope[0][-1] ^ 1])
    pq.write_table(table.set_column(table.schema.get_field_index("slope"), "slope", [slope]), shard)
    problems = validate_dataset(d)
    cid = table.column("chip_id")[0].as_py()
    assert any(p.startswith(f"parquet/train-00000-of-00001.parquet: chip {cid}: slope bytes differ") for p in problems)
    assert "parquet/train-00000-of-00001.parquet: sha256 differs from MANIFEST.sha256" in problems


def test_publish_chooses_the_forms_and_cuts_the_zips_in_parts(inputs, tmp_path):
    """``publish: {forms: [tree, packed], zips: {part_gb: 0.00005}}``: dataset/ holds the tree and the packed store
    only (no STAC, Croissant, Parquet or Hub card; the tile shards carry no Parquet or STAC files either), the
    datacard shows how to load what is there and its snippet runs; each layer's zip is cut into parts of at most
    50 kB (each a valid zip, whole files, the tree's order); all parts unzipped into one folder are the
    dataset, which validates. ``zips: false`` plans no package job."""
    import subprocess
    import sys
    import zipfile

    from helpers import AOI_A, run_cli

    cfg = workflow_config(inputs, "pub", AOI_A, publish={"forms": ["tree", "packed"], "zips": {"part_gb": 0.00005}})
    res = run_workflow(tmp_path, cfg, "--cores", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    d = tmp_path / "results" / "pub" / "dataset"
    top = sorted(p.name for p in d.iterdir())
    assert "packed" in top and "rgb" in top
    assert not {"stac", "parquet", "croissant.json", "chips.csv", "README.md"} & set(top), top
    res = run_cli("validate", str(d))
    assert res.returncode == 0 and f"{d}: OK" in res.stdout, res.stderr
    card = (d / "datacard.md").read_text(encoding="utf-8")
    block = card.split("```python\n", 1)[1].split("```", 1)[0]
    assert "The same chips two ways" in card and "pystac" not in block and "datasets" not in block
    env = {**os.environ, "MPLBACKEND": "Agg"}
    run = subprocess.run([sys.executable, "-c", block], cwd=d, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    dist = tmp_path / "results" / "pub" / "dist"
    zips = sorted(dist.glob("*.zip"))
    rgb = [z for z in zips if z.name.startswith("pub_rgb.")]
    assert len(rgb) >= 2 and [z.name for z in rgb][0] == f"pub_rgb.part01-of-{len(rgb):02d}.zip"
    assert not any(z.name.startswith(("pub_parquet", "pub_stac")) for z in zips)
    out = tmp_path / "unzipped"
    names = []
    for z in zips:
        with zipfile.ZipFile(z) as f:
            assert f.testzip() is None
            members = f.namelist()
            assert z.stat().st_size <= 50_000 or len(members) == 1, (z.name, z.stat().st_size)
            if z in rgb:
                names += members
            f.extractall(out)
    assert names == sorted(names, key=lambda n: n.split("/"))  # the parts follow the tree's order
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == \
        sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file() and p.name != ".snakemake_timestamp")
    res = run_cli("validate", str(out))
    assert res.returncode == 0 and f"{out}: OK" in res.stdout, res.stderr
    cfg["publish"]["zips"] = False
    res = run_workflow(tmp_path / "nozips", cfg, "-n")
    assert res.returncode == 0 and "rule package" not in res.stdout and "rule dataset" in res.stdout, res.stdout[-2000:]


def _table_items(d):
    """(classes, chips, the Items of ``stac-geoparquet/items.parquet`` read back by stac-geoparquet), one Item a
    chip of labels.txt."""
    import pyarrow.parquet as pq
    import stac_geoparquet.arrow

    classes, chips = read_index(d)
    items = list(stac_geoparquet.arrow.stac_table_to_items(pq.read_table(d / "stac-geoparquet" / "items.parquet")))
    assert sorted(i["id"] for i in items) == sorted(c["id"] for c in chips)
    return classes, chips, items


def test_stac_geoparquet_holds_the_items_of_the_stac_form_in_one_table(inputs, tmp_path):
    """``publish.forms`` with ``stac-geoparquet`` beside ``stac``: ``stac-geoparquet/items.parquet``, read back by
    the stac-geoparquet package, holds one Item per chip -- each valid against STAC core and its extensions'
    published schemas, and equal to the chip's JSON Item of the ``stac`` form but for where its hrefs lead from
    and its label asset (the shared ``labels.parquet``, one row a chip as labels.txt says); validate passes;
    ``zips: false`` leaves no dist/."""
    import pyarrow.parquet as pq

    from gos_build.layout import label_of
    from helpers import AOI_A, run_cli
    from stac_schemas import OfflineSchemas

    schemas = OfflineSchemas()  # skips where ../shared/stac-schemas is absent
    forms = ["tree", "stac", "stac-geoparquet", "parquet"]
    res = run_workflow(tmp_path, workflow_config(inputs, "sgp", AOI_A, publish={"forms": forms, "zips": False}),
                       "--cores", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    d = tmp_path / "results" / "sgp" / "dataset"
    assert not (tmp_path / "results" / "sgp" / "dist").exists()
    assert sorted(p.name for p in (d / "stac-geoparquet").iterdir()) == ["collection.json", "items.parquet",
                                                                         "labels.parquet"]
    classes, chips, items = _table_items(d)
    problems = []
    for item in items:
        problems += schemas.errors(item)
        mine = json.loads((d / "stac" / item["id"] / f"{item['id']}.json").read_text())
        for key, asset in mine["assets"].items():
            if key == "labels":
                assert item["assets"][key]["href"] == "./labels.parquet"
                continue
            assert asset["href"].startswith("../../") and item["assets"][key]["href"] == asset["href"][3:], key
            assert item["assets"][key]["file:checksum"] == asset["file:checksum"]
            assert item["assets"][key]["raster:bands"] == asset["raster:bands"]
        def props(doc):  # the same instant, whatever its digits: the table holds a timestamp
            out = {k: v for k, v in doc["properties"].items() if v is not None}
            out["datetime"] = dt.datetime.fromisoformat(out["datetime"].replace("Z", "+00:00"))
            return out

        assert props(item) == props(mine)
        assert np.allclose(item["geometry"]["coordinates"], mine["geometry"]["coordinates"], rtol=0, atol=1e-12)
    collection = json.loads((d / "stac-geoparquet" / "collection.json").read_text())
    problems += schemas.errors(collection)
    assert problems == [], "\n".join(problems[:20])
    assert collection["assets"]["items"]["href"] == "./items.parquet"
    labels = pq.read_table(d / "stac-geoparquet" / "labels.parquet").to_pylist()
    index = label_of(classes)
    assert {r["chip_id"]: (r["class"], r["class_id"], r["label"], r["split"]) for r in labels} == \
        {c["id"]: (classes[c["class_id"]]["name"], c["class_id"], index[c["class_id"]], c["split"]) for c in chips}
    res = run_cli("validate", str(d))
    assert res.returncode == 0 and f"{d}: OK" in res.stdout, res.stderr
    card = (d / "datacard.md").read_text(encoding="utf-8")
    assert "The same chips four ways" in card and "stac-geoparquet/items.parquet" in card
    # the card's snippet as a user copies it, from the dataset folder (the table's lines among them)
    import subprocess
    import sys

    block = card.split("```python\n", 1)[1].split("```", 1)[0]
    assert "stac_table_to_items" in block
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "MPLBACKEND": "Agg"}
    run = subprocess.run([sys.executable, "-c", block], cwd=d, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"{len(chips)} " in run.stdout and "../rgb/" in run.stdout


def test_forms_without_the_tree_hold_the_same_chips(inputs, runs, tmp_path):
    """``publish: {forms: [packed, parquet, stac-geoparquet], zips: false, chunk_chips: 3}``: no layer folder,
    every file the manifest lists; the Parquet shards the same bytes as the build with the tree (its MANIFEST),
    the packed store the same arrays (read by zarr) in chunks of 3 chips, one file a chunk; each STAC Item valid against core and its extensions' schemas, its layer assets the chip's
    Parquet shard with the row holding it (read back with pyarrow); validate passes; ``datasets`` loads it
    offline; the datacard's snippet runs; the figures come from the shards."""
    import subprocess
    import sys

    import pyarrow.parquet as pq

    from helpers import AOI_A, run_cli
    from stac_schemas import OfflineSchemas

    schemas = OfflineSchemas()  # skips where ../shared/stac-schemas is absent
    forms = ["packed", "parquet", "stac-geoparquet"]
    res = run_workflow(tmp_path, workflow_config(inputs, "aoi", AOI_A, publish={"forms": forms, "zips": False,
                                                                                 "chunk_chips": 3}),
                       "--cores", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    aoi = tmp_path / "results" / "aoi"
    d = aoi / "dataset"
    assert not [m for m in MODALITIES if (d / m).exists()]
    listed = dict(reversed(line.split("  ")) for line in (d / "MANIFEST.sha256").read_text().splitlines())
    files = {p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()}
    assert files - {"MANIFEST.sha256", ".snakemake_timestamp"} == set(listed)
    tree = dict(reversed(line.split("  ")) for line in
                (runs["a2"] / "dataset" / "MANIFEST.sha256").read_text().splitlines())
    for rel, digest in listed.items():
        if rel.startswith("parquet/"):
            assert tree[rel] == digest, rel
    import zarr

    mine, theirs = zarr.open_group(str(d / "packed"), mode="r"), zarr.open_group(str(runs["a2"] / "dataset" / "packed"),
                                                                                  mode="r")
    for split in ("train", "val", "test"):
        for name in (*MODALITIES, "chip_id", "label", "class_id", "x_min", "y_min"):
            assert np.array_equal(mine[split][name][:], theirs[split][name][:]), (split, name)
        n = mine[split]["rgb"].shape[0]
        assert mine[split]["rgb"].chunks[0] == 3
        assert len([r for r in listed if r.startswith(f"packed/{split}/rgb/") and r[-1].isdigit()]) == -(-n // 3)
    classes, chips, items = _table_items(d)
    problems = []
    for item in items:
        problems += schemas.errors(item)
        for m in MODALITIES:
            asset = item["assets"][m]
            assert asset["href"].startswith("../parquet/") and asset["gos_build:parquet_column"] == m
            shard = pq.read_table(d / "stac-geoparquet" / asset["href"], columns=["chip_id", m])
            row = asset["gos_build:parquet_row"]
            assert shard.column("chip_id")[row].as_py() == item["id"]
            name = classes[item["properties"]["gos_build:class_id"]]["name"]
            assert hashlib.sha256(shard.column(m)[row].as_py()).hexdigest() == tree[chip_path(m, name, item["id"])]
    problems += schemas.errors(json.loads((d / "stac-geoparquet" / "collection.json").read_text()))
    assert problems == [], "\n".join(problems[:20])
    res = run_cli("validate", str(d))
    assert res.returncode == 0 and f"{d}: OK" in res.stdout, res.stdout + res.stderr
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets"), "MPLBACKEND": "Agg"}
    res = subprocess.run([sys.executable, "-c", _LOAD_WITH_DATASETS, str(d), ",".join(MODALITIES)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert sorted(r["chip_id"] for rows in got.values() for r in rows) == sorted(c["id"] for c in chips)
    card = (d / "datacard.md").read_text(encoding="utf-8")
    block = card.split("```python\n", 1)[1].split("```", 1)[0]
    run = subprocess.run([sys.executable, "-c", block], cwd=d, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert all((aoi / "figures" / f"gallery_{c['name']}.png").is_file() for c in classes.values())
    # a tree-less dataset whose shard lost a chip's layer bytes: validate finds it without a tree to compare
    broken = tmp_path / "broken"
    shutil.copytree(d, broken)
    shard = next(p for p in sorted((broken / "parquet").glob("train-*.parquet")))
    table = pq.read_table(shard)
    import pyarrow as pa

    col = table.column("dem").to_pylist()
    col[0] = b"not a tiff"
    pq.write_table(table.set_column(table.schema.get_field_index("dem"), "dem", pa.array(col, pa.binary())), shard)
    res = run_cli("validate", str(broken))
    assert res.returncode != 0 and "dem: not a chip GeoTIFF" in res.stderr, res.stderr
    # what readers without the tree fall back to, against the tree build's files read by rasterio: the figures'
    # chips from the store alone (no parquet/), GOSDataset's "auto" from the shards alone (no packed/)
    from gos_build.figures import ChipArrays
    from gos_build.ml import GOSDataset

    store_only, shards_only = tmp_path / "store_only", tmp_path / "shards_only"
    shutil.copytree(d, store_only, ignore=shutil.ignore_patterns("parquet"))
    shutil.copytree(d, shards_only, ignore=shutil.ignore_patterns("packed"))
    pick = sorted(c["id"] for c in chips)[:5]
    name_of = {c["id"]: classes[c["class_id"]]["name"] for c in chips}
    reader = ChipArrays(store_only, chips)
    for m in ("rgb", "dem", "slope"):
        got = [reader.read(m, name_of[cid], [cid])[0] for cid in pick]
        for cid, arr in zip(pick, got):
            with rasterio.open(runs["a2"] / "dataset" / chip_path(m, name_of[cid], cid)) as ds:
                assert np.array_equal(arr, ds.read()), (m, cid)
    assert GOSDataset(shards_only, split="all").source == "parquet"


def test_forms_without_the_tree_that_need_it_are_config_errors(tmp_path):
    """Croissant points at the tree's files; the STAC Items need the tree or the Parquet shards; some form must
    hold the pixels: each a one-line config error naming the key."""
    import yaml

    from helpers import default_config, run_cli

    for forms, said in ((["croissant", "parquet"], "croissant points at the tree's files"),
                        (["stac", "packed"], "the STAC Items point at each chip's bytes"),
                        (["stac-geoparquet"], "the chips' pixels are in no form")):
        cfg = default_config()
        cfg["publish"] = {"forms": forms}
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
        res = run_cli("check-config", str(path))
        assert res.returncode == 2 and f"config key 'publish.forms': {said}" in res.stderr, res.stderr


def test_a_dataset_of_parquet_shards_alone_loads_as_its_card_says(inputs, tmp_path):
    """``publish: {forms: [parquet], zips: false}``: the datacard's snippet, run as written from the dataset
    folder, loads it (``datasets`` offline, GOSDataset from the shards), and validate passes."""
    import subprocess
    import sys

    from helpers import AOI_A, run_cli

    res = run_workflow(tmp_path, workflow_config(inputs, "aoi", AOI_A, publish={"forms": ["parquet"], "zips": False}),
                       "--cores", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    d = tmp_path / "results" / "aoi" / "dataset"
    assert run_cli("validate", str(d)).returncode == 0
    block = (d / "datacard.md").read_text(encoding="utf-8").split("```python\n", 1)[1].split("```", 1)[0]
    assert 'source="parquet"' in block
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "MPLBACKEND": "Agg"}
    run = subprocess.run([sys.executable, "-c", block + "\nprint(len(ds), ds.source)"], cwd=d, capture_output=True,
                         text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    _, chips = read_index(d)
    assert run.stdout.strip().splitlines()[-1] == f"{sum(c['split'] == 'train' for c in chips)} parquet"
