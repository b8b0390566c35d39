"""The published forms of a built dataset: STAC catalogue, GeoCroissant metadata, packed Zarr store."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil

import numpy as np
import pytest
import rasterio

from gos_build.layout import MODALITIES, chip_path, read_index

pytestmark = pytest.mark.slow  # reads the datasets of the workflow runs


def test_stac_catalogue_is_valid_relative_and_checksummed(runs, tmp_path):
    import pystac
    from pystac.validation.stac_validator import JsonSchemaSTACValidator

    d = runs["a2"] / "dataset"
    moved = tmp_path / "moved"
    shutil.copytree(d, moved)  # relative links: the folder can move
    classes, chips = read_index(d)
    collection = pystac.Collection.from_file(str(moved / "stac" / "collection.json"))
    validator = JsonSchemaSTACValidator()  # the core schemas ship with pystac: no network needed
    validator.validate_core(collection.to_dict(), pystac.STACObjectType.COLLECTION, "1.1.0", href="collection")
    items = list(collection.get_items())
    assert sorted(i.id for i in items) == sorted(c["id"] for c in chips)
    by_id = {c["id"]: c for c in chips}
    for item in items:
        validator.validate_core(item.to_dict(), pystac.STACObjectType.ITEM, "1.1.0", href=item.id)
        chip = by_id[item.id]
        assert item.properties["ml-aoi:split"] == chip["split"]
        assert item.properties["gos_build:class_id"] == chip["label"]
        assert item.properties["label:tasks"] == ["classification"]
        assert item.properties["proj:code"].startswith("EPSG:326") and item.properties["proj:shape"] == [64, 64]
        assert set(item.assets) == set(MODALITIES)
        for key, asset in item.assets.items():
            assert not asset.href.startswith("/")
            path = asset.get_absolute_href()
            assert path.startswith(str(moved)) and path.endswith(chip_path(key, classes[chip["label"]]["name"],
                                                                           item.id))
            data = open(path, "rb").read()
            assert asset.extra_fields["file:size"] == len(data)
            assert asset.extra_fields["file:checksum"] == "1220" + hashlib.sha256(data).hexdigest()
            assert asset.extra_fields["raster:bands"][0]["data_type"] in ("uint16", "float32")
    assert {link.rel for link in collection.links} >= {"describedby", "preview", "item"}


def test_croissant_validates_and_records_equal_labels_txt(runs):
    import mlcroissant as mlc

    d = runs["a2"] / "dataset"
    doc = json.loads((d / "croissant.json").read_text())
    assert doc["conformsTo"] == ["http://mlcommons.org/croissant/1.1", "http://mlcommons.org/croissant/geo/1.0"]
    assert doc["geocr:coordinateReferenceSystem"].startswith("EPSG:326")
    assert doc["geocr:spatialResolution"]["value"] == 10
    ds = mlc.Dataset(jsonld=str(d / "croissant.json"))  # raises on an invalid document
    got = sorted((r["chips/chip_id"].decode(), int(r["chips/label"]), r["chips/split"].decode())
                 for r in ds.records("chips"))
    _, chips = read_index(d)
    assert got == sorted((c["id"], c["label"], c["split"]) for c in chips)
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
                label = next(c["label"] for c in chips if c["id"] == cid)
                with rasterio.open(d / chip_path(m, classes[label]["name"], cid)) as ds:
                    assert np.array_equal(arr[i], ds.read()), (split, m, cid)
        seen += len(ids)
    assert seen == len(chips)
    train = xr.open_zarr(str(d / "packed"), group="train", consolidated=False)  # without gos-build
    assert train["rgb"].shape[1:] == (3, 64, 64) and train["slope"].shape[1:] == (1, 64, 64)


def test_loader_reads_the_tree_and_the_store_alike(runs):
    pytest.importorskip("torch")
    from gos_build.ml import GOSDataset

    d = runs["a2"] / "dataset"
    for normalize in (False, True):
        tree = GOSDataset(d, split="all", normalize=normalize, source="tree")
        packed = GOSDataset(d, split="all", normalize=normalize, source="packed")
        assert len(tree) == len(packed) > 0
        for i in range(len(tree)):
            a, b = tree[i], packed[i]
            assert a["chip_id"] == b["chip_id"] and a["label"] == b["label"]
            assert np.array_equal(a["rgb"].numpy(), b["rgb"].numpy())
            assert np.array_equal(a["terrain"].numpy(), b["terrain"].numpy())
