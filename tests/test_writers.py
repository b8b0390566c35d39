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
