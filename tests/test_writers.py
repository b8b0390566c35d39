"""The writers' own serialisations against the libraries they stand in for: json.dumps and zarr."""

from __future__ import annotations

import json

import numpy as np

from gos_build.archive.writers import packed, stac


def test_stac_template_renders_what_json_dumps_writes():
    """An Item filled through the template is, character for character, ``json.dumps(indent=2)`` of the
    same Item built as a dict (strings with non-ASCII and quotes, floats, ints, None, nested lists)."""
    slot = stac._Template.slot
    shape = {"id": slot("id"), "zh": "构造地貌", "n": slot("n"), "none": None, "xs": [[slot("x"), 1.5]],
             "nested": {"split": slot("split"), "flag": True, "empty": [], "e": {}}}
    template = stac._Template(shape)
    for values in ({"id": "E0432640N4830720", "n": 12558, "x": 127.5556016, "split": "train"},
                   {"id": 'odd "quoted" \\ id', "n": 0, "x": -1e-07, "split": "验证"},
                   {"id": "", "n": -3, "x": 4830720.0, "split": None}):
        filled = json.loads(json.dumps(shape))
        filled.update(id=values["id"], n=values["n"])
        filled["xs"][0][0] = values["x"]
        filled["nested"]["split"] = values["split"]
        assert template.render(values) == json.dumps(filled, indent=2)


def test_packed_chunks_are_the_files_zarr_writes(tmp_path):
    """The chunk files the workers write by hand from the shards' arrays equal, byte for byte, those zarr
    writes for the same array: full chunks, the padded last chunk, and no file for a chunk of fill values only."""
    import zarr

    rng = np.random.default_rng(2)
    n, shape = 37, (16, 1, 64, 64)  # 2 full chunks and a partial one
    chips = (rng.standard_normal((n, 1, 64, 64)) * 100).astype("float32")
    chips[16:32] = -9999.0  # the second chunk: fill values only
    # two tile shards' arrays, rows in another order than the chunks' (odd chips in one, even in the other, reversed)
    rows = [None] * n
    for k in (0, 1):
        mine = list(range(n))[k::2][::-1]
        np.save(tmp_path / f"shard{k}.npy", chips[mine])
        for row, i in enumerate(mine):
            rows[i] = (str(tmp_path / f"shard{k}.npy"), row)
    for name in ("ours", "zarr"):
        arr = zarr.open_group(str(tmp_path / name), mode="w", zarr_format=2).create_array(
            "dem", shape=(n, 1, 64, 64), dtype="float32", chunks=shape, fill_value=-9999.0,
            compressors=packed._compressor())
        if name == "zarr":
            arr[:] = chips
    sums = packed._write_chunks((rows, 0, shape, "float32", -9999.0, str(tmp_path / "ours" / "dem")))
    ours = sorted(p.name for p in (tmp_path / "ours" / "dem").iterdir() if not p.name.startswith("."))
    theirs = sorted(p.name for p in (tmp_path / "zarr" / "dem").iterdir() if not p.name.startswith("."))
    assert ours == theirs == ["0.0.0.0", "2.0.0.0"] and sorted(sums) == ours
    for name in ours:
        assert (tmp_path / "ours" / "dem" / name).read_bytes() == (tmp_path / "zarr" / "dem" / name).read_bytes()
    assert np.array_equal(zarr.open_array(str(tmp_path / "ours" / "dem"), mode="r")[:], chips)


def test_a_collections_item_links_streamed_are_what_json_dumps_writes(tmp_path):
    """The Collection written a link at a time (the last job: a province's million links are never one list)
    is, byte for byte, ``json.dumps(indent=2)`` of the whole document with every link -- for 0, 1 and 3 items,
    hrefs with quotes and non-ASCII."""
    doc = {"type": "Collection", "id": "c", "links": [{"rel": "root", "href": "./collection.json"}],
           "extent": {"spatial": {"bbox": [[1.5, 2, 3, 4]]}}, "title": "构造"}
    for hrefs in ([], ["./E1/E1.json"], ["./a/a.json", './"q"/x.json', "./验证/v.json"]):
        path = tmp_path / "collection.json"
        stac.write_with_item_links(path, doc, iter(hrefs))
        whole = dict(doc, links=doc["links"] + [{"rel": "item", "href": h, "type": "application/geo+json"}
                                                 for h in hrefs])
        assert path.read_text(encoding="utf-8") == json.dumps(whole, indent=2)


def test_a_footprint_index_in_several_row_groups_holds_every_chip(tmp_path, monkeypatch):
    """The GeoParquet index written in row groups (a province's: INDEX_ROW_GROUP chips a group; here 3) and
    its footprints in steps (here 2): read back by pyarrow and shapely, every row is its chip's -- the
    columns in order, the footprint the chip's square projected by pyproj -- and the bbox covers them all."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely
    from pyproj import Transformer

    from gos_build.archive.writers import parquet

    monkeypatch.setattr(parquet, "INDEX_ROW_GROUP", 3)
    monkeypatch.setattr(parquet, "FOOTPRINT_STEP", 2)
    chips = [{"id": f"c{i}", "x": 400000.0 + 640 * i, "y": 4800000.0 - 640 * (i % 3)} for i in range(8)]
    parquet.write_footprints(tmp_path / "i.parquet", chips, "EPSG:32652", 640.0,
                             lambda start, part: {"chip_id": pa.array([c["id"] for c in part]),
                                                  "start": pa.array([start] * len(part), pa.int64())})
    meta = pq.ParquetFile(tmp_path / "i.parquet").metadata
    assert meta.num_row_groups == 3
    table = pq.read_table(tmp_path / "i.parquet")
    assert table.column("chip_id").to_pylist() == [c["id"] for c in chips]
    assert table.column("start").to_pylist() == [0, 0, 0, 3, 3, 3, 6, 6]
    to_ll = Transformer.from_crs("EPSG:32652", "EPSG:4326", always_xy=True)
    polygons = shapely.from_wkb(table.column("geometry").to_pylist())
    for c, poly in zip(chips, polygons):
        lon, lat = to_ll.transform([c["x"], c["x"] + 640, c["x"] + 640, c["x"]], [c["y"], c["y"], c["y"] + 640,
                                                                                  c["y"] + 640])
        assert np.allclose(np.asarray(poly.exterior.coords)[:4], np.column_stack([lon, lat]), atol=1e-7)
    bbox = json.loads(table.schema.metadata[b"geo"])["columns"]["geometry"]["bbox"]
    assert bbox == list(shapely.total_bounds(polygons))
