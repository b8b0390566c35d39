"""What a new user trips over, done as the user did it (issue: a first own area in minutes).

A YAML mistake in a config gets its file, line and column from ``gos-build check-config`` (Snakemake reads
``--configfile`` before the workflow starts and names neither); a copy of ``config.yaml`` that kept the
``demo:`` section never overwrites the demo's inputs; the schema's descriptions are one string each; the
README shows targets before ``--configfile``.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest
import yaml

from helpers import ROOT, AUVERGNE_BBOX, default_config, run_cli, run_configfile, run_workflow
from gos_build.errors import GosBuildError


def test_check_config_names_file_line_and_column_of_a_yaml_error(tmp_path):
    bad = tmp_path / "my_aoi.yaml"
    text = (ROOT / "config.yaml").read_text(encoding="utf-8").replace("  bbox: [128.125", "   bbox: [128.125", 1)
    bad.write_text(text, encoding="utf-8")
    line = next(i for i, t in enumerate(text.splitlines(), start=1) if t.startswith("   bbox"))
    res = run_cli("check-config", str(bad))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"{bad}:{line}:" in res.stderr and "not valid YAML" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_check_config_names_the_key_of_a_schema_error_and_says_ok_otherwise(tmp_path):
    cfg = default_config()
    cfg["grid"]["tile_chip"] = 8
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    res = run_cli("check-config", str(path))
    assert res.returncode == 2 and "config key 'grid': unknown key 'tile_chip' (did you mean 'tile_chips'?)" in res.stderr
    res = run_cli("check-config", str(ROOT / "config.yaml"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "OK" in res.stdout and "9 processing tile(s)" in res.stdout and "EPSG:32652" in res.stdout


def _digests(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_a_kept_demo_section_never_overwrites_another_areas_inputs(auvergne_demo, tmp_path):
    """A copy of config.yaml with a new bbox that kept ``demo:`` (same ``out``): refused by the generator, by the
    workflow before any job, and by check-config -- and the inputs stay as they were."""
    from gos_build.demo import demo_inputs

    before = _digests(auvergne_demo)
    other = [AUVERGNE_BBOX[0] + 0.05, AUVERGNE_BBOX[1], AUVERGNE_BBOX[2] + 0.05, AUVERGNE_BBOX[3]]
    with pytest.raises(GosBuildError, match=r"holds the demo inputs of bbox \[2\.95, 45\.72, 3\.01, 45\.765\], seed 3"):
        demo_inputs(other, auvergne_demo, seed=3)
    with pytest.raises(GosBuildError, match="another area or seed"):
        demo_inputs(AUVERGNE_BBOX, auvergne_demo, seed=4)
    cfg = default_config()
    cfg["aoi"] = {"name": "copied", "bbox": other}
    cfg["demo"] = dict(cfg["demo"], out=str(auvergne_demo), seed=3)
    res = run_workflow(tmp_path / "wf", cfg, "-n")
    said = res.stdout + res.stderr  # Snakemake prints a WorkflowError of the parse on stdout
    assert res.returncode != 0 and "never replace those of another area or seed" in said, said[-2000:]
    res = run_cli("check-config", str(tmp_path / "wf" / "aoi.yaml"))
    assert res.returncode == 2 and "config key 'demo.out'" in res.stderr
    assert _digests(auvergne_demo) == before
    demo_inputs(AUVERGNE_BBOX, auvergne_demo, seed=3, baseline="05.09", cloud_fraction=0.1)  # the same: same bytes
    assert _digests(auvergne_demo) == before


def test_schema_descriptions_are_one_string_each():
    """A description with commas in a YAML flow mapping splits into keys ('5 days apart': null)."""
    schema = yaml.safe_load((ROOT / "src" / "gos_build" / "schemas" / "config.schema.yaml").read_text())
    split = []

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                if v is None and path[-1:] != ["default"]:
                    split.append(f"{'/'.join(path)}: {k!r}")
                walk(v, path + [str(k)])
        elif isinstance(node, list):
            for v in node:
                walk(v, path)

    walk(schema, [])
    assert not split, split


def test_readme_and_config_comments_put_targets_before_configfile():
    """``snakemake --cores 2 --configfile X baseline`` reads ``baseline`` as a second config file."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "configs").rglob("*.yaml"))]:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            m = re.search(r"snakemake [^`#]*--configfile\s+[^\s`]+(?:[ \t]+(?P<next>[^\s`\\]+))?", line)
            if m and m.group("next") and not m.group("next").startswith("-"):
                found.append(f"{path.name}:{n}: {line.strip()}")
    assert not found, found


@pytest.mark.slow
def test_the_datacards_snippet_runs_as_written_in_the_dataset_folder(runs, tmp_path):
    """The datacard's Python block, copied as a user would, run from the dataset folder it says: every line
    works (datasets.load_dataset of the folder, the packed store through xarray, ...), and the store's call as
    written gives the integers back (xarray would otherwise read fill_value 0 as missing and give floats)."""
    import os
    import subprocess
    import sys

    d = runs["a2"] / "dataset"
    card = (d / "datacard.md").read_text(encoding="utf-8")
    block = card.split("```python\n", 1)[1].split("```", 1)[0]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "MPLBACKEND": "Agg"}
    res = subprocess.run([sys.executable, "-c", block], cwd=d, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    line = next(t for t in block.splitlines() if "xr.open_zarr" in t).split("#")[0].strip()
    check = f"import xarray as xr\n{line}\nprint(train.label.dtype, train.rgb.dtype, train.slope.dtype)"
    res = subprocess.run([sys.executable, "-c", check], cwd=d, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0 and res.stdout.split() == ["uint8", "uint16", "float32"], res.stdout + res.stderr


@pytest.mark.slow
def test_the_datacard_reads_like_a_person_wrote_it(runs):
    """No Python reprs, an offset with its own sign, singular and plural counts, the attribution the inputs
    call for (the demo's synthetic inputs hold no Copernicus data), and the report's caption names the AOI's
    folder."""
    from types import SimpleNamespace

    import jinja2

    from gos_build.archive.datacard import _count, _licence, _radiometry

    card = (runs["a2"] / "dataset" / "datacard.md").read_text(encoding="utf-8")
    body = card.split("## Config", 1)[0]  # the config itself is YAML, quoted as given
    assert "{'" not in body and "['" not in body and "+ -" not in body
    assert "reflectance = (DN - 1000) / 10000" in body  # the demo generator's baseline 05.09
    assert "target ratios train 0.7, val 0.1, test 0.2" in body
    assert "Contains modified Copernicus Sentinel data" in card  # these workflow runs have no demo: section
    assert (_radiometry(-1000, 10000), _radiometry(0, 10000)) == ("(DN - 1000) / 10000", "DN / 10000")
    assert (_count(1, "polygon"), _count(22, "polygon")) == ("1 polygon", "22 polygons")
    assert "no Copernicus Sentinel or SRTM data" in _licence({"demo": {"seed": 0}})
    caption = (ROOT / "workflow" / "report" / "workflow.rst").read_text(encoding="utf-8")
    shown = jinja2.Template(caption).render(snakemake=SimpleNamespace(config={"aoi": {"name": "jilin"}}))
    assert "results/jilin/dataset/" in shown and "<aoi>" not in shown


@pytest.mark.slow
def test_every_download_unzipped_into_one_folder_is_the_dataset(runs, tmp_path):
    """As a user of the downloads does: every ``dist/*.zip`` into one folder; it validates and loads (Hugging
    Face datasets, offline), and holds the same files as the dataset folder."""
    import os
    import subprocess
    import sys
    import zipfile

    dist = runs["a2"] / "dist"
    out = tmp_path / "unzipped"
    zips = sorted(dist.glob("*.zip"))
    assert any(z.name.endswith("_parquet.zip") for z in zips)
    for z in zips:
        with zipfile.ZipFile(z) as f:
            f.extractall(out)
    assert _digests(out) == {k: v for k, v in _digests(runs["a2"] / "dataset").items()
                             if k != ".snakemake_timestamp"}
    res = run_cli("validate", str(out))
    assert res.returncode == 0 and "OK" in res.stdout + res.stderr, res.stdout + res.stderr
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    res = subprocess.run([sys.executable, "-c", "import datasets, sys; d = datasets.load_dataset(sys.argv[1]); "
                          "print(sorted(d), d['train'].num_rows)", str(out)], capture_output=True, text=True, env=env,
                         timeout=300)
    assert res.returncode == 0 and "['test', 'train', 'validation']" in res.stdout, res.stderr[-2000:]


@pytest.mark.slow
def test_label_means_the_same_for_a_chip_in_every_form(runs, tmp_path):
    """A user joining two forms by chip id: ``label`` is the class index 0..K-1 (classes by ascending id) and
    ``class_id`` the id of classes.txt in every form that has them -- read with each form's own reader
    (csv, mlcroissant, zarr, pyarrow, Hugging Face datasets offline, STAC JSON) and the loaders."""
    import csv
    import json
    import os
    import subprocess
    import sys

    import mlcroissant as mlc
    import pyarrow.parquet as pq
    import zarr

    from gos_build.ml import GOSDataset

    d = runs["a2"] / "dataset"
    names = {}
    for line in (d / "classes.txt").read_text(encoding="utf-8").splitlines():
        cid, name = line.split("\t")[:2]
        names[int(cid)] = name
    lines = (d / "labels.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0].split()[:3] == ["#", "chip_id", "class_id"]
    class_id = {f[0]: int(f[1]) for f in (line.split() for line in lines[1:])}
    want = {cid: sorted(names).index(k) for cid, k in class_id.items()}  # the meaning, computed here
    assert class_id and all(want[c] != class_id[c] for c in class_id)  # the two meanings tell apart here

    forms = {}
    with open(d / "chips.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    forms["chips.csv"] = {r["chip_id"]: (int(r["label"]), int(r["class_id"])) for r in rows}
    records = mlc.Dataset(jsonld=str(d / "croissant.json")).records("chips")
    forms["croissant"] = {r["chips/chip_id"].decode(): (int(r["chips/label"]), int(r["chips/class_id"]))
                          for r in records}
    store = zarr.open_group(str(d / "packed"), mode="r")
    forms["packed"] = {str(i): (int(lab), int(k)) for s in ("train", "val", "test")
                       for i, lab, k in zip(store[s]["chip_id"][:], store[s]["label"][:], store[s]["class_id"][:])}
    shards = sorted((d / "parquet").glob("*-of-*.parquet"))
    forms["parquet"] = {r["chip_id"]: (r["label"], r["class_id"]) for p in shards
                        for r in pq.read_table(p, columns=["chip_id", "label", "class_id"]).to_pylist()}
    index = pq.read_table(d / "parquet" / "chips.parquet", columns=["chip_id", "label", "class_id"]).to_pylist()
    forms["parquet index"] = {r["chip_id"]: (r["label"], r["class_id"]) for r in index}
    for form, got in forms.items():
        assert got == {cid: (want[cid], class_id[cid]) for cid in class_id}, form
    for item in (d / "stac").glob("E*/E*.json"):
        props = json.loads(item.read_text(encoding="utf-8"))["properties"]
        assert props["gos_build:class_id"] == class_id[item.stem], item
    for source in ("tree", "packed", "parquet"):
        ds = GOSDataset(d, split="all", source=source, normalize=False)
        assert {c["id"]: ds[i]["label"] for i, c in enumerate(ds.chips)} == want, source
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    code = ("import datasets, json, sys; d = datasets.load_dataset(sys.argv[1]); "
            "print(json.dumps({r['chip_id']: [r['label'], d[s].features['label'].names[r['label']]] "
            "for s in d for r in d[s].select_columns(['chip_id', 'label'])}))")
    res = subprocess.run([sys.executable, "-c", code, str(d)], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    hub = json.loads(res.stdout.strip().splitlines()[-1])
    assert hub == {cid: [want[cid], names[class_id[cid]]] for cid in class_id}


@pytest.mark.slow
def test_units_are_one_truth_in_every_form(runs, tmp_path):
    """What a user reads of a layer's units agrees everywhere: GDAL's band metadata of each chip GeoTIFF (unit
    type, scale, offset), the STAC item's raster:bands, the packed store's CF attributes (xarray decodes rgb to
    reflectance, DN x 0.0001), and the datacard; validate finds a chip whose unit was changed."""
    import json
    import shutil

    import rasterio
    import xarray as xr

    from gos_build.layout import read_index

    d = runs["a2"] / "dataset"
    classes, chips = read_index(d)
    chip = chips[0]
    item = json.loads((d / "stac" / chip["id"] / f"{chip['id']}.json").read_text(encoding="utf-8"))
    layers = [k for k, a in item["assets"].items() if "raster:bands" in a]
    assert "rgb" in layers and "slope" in layers
    for m in layers:
        with rasterio.open(d / m / classes[chip["class_id"]]["name"] / f"{chip['id']}.tif") as ds:
            gdal = [(u, s, o) for u, s, o in zip(ds.units, ds.scales, ds.offsets)]
        stac = [(b["unit"], b.get("scale", 1.0), b.get("offset", 0.0)) for b in item["assets"][m]["raster:bands"]]
        assert gdal == stac, m
    assert stac_rgb_is_reflectance(item)
    with rasterio.open(d / "rgb" / classes[chip["class_id"]]["name"] / f"{chip['id']}.tif") as ds:
        dn = ds.read()
    store = xr.open_zarr(d / "packed", group=chip["split"], consolidated=False)  # CF decoding on
    i = list(store.chip_id.values).index(chip["id"])
    decoded = store.rgb.values[i]
    assert store.rgb.attrs["units"] == "1"
    assert np.allclose(decoded[dn > 0], dn[dn > 0] * 0.0001, rtol=1e-6) and np.isnan(decoded[dn == 0]).all()
    card = (d / "datacard.md").read_text(encoding="utf-8")
    assert "| rgb | uint16 | reflectance x 10000 | 0.0001 | 0 | 1 | 0 |" in card
    assert "| slope | float32 | degree | 1 | 0 | degree | -9999 |" in card

    copy = tmp_path / "dataset"
    shutil.copytree(d, copy)
    rel = f"slope/{classes[chip['class_id']]['name']}/{chip['id']}.tif"
    with rasterio.open(copy / rel, "r+") as ds:
        ds.units = ("radian",)
    res = run_cli("validate", str(copy))
    assert res.returncode != 0 and f"{rel}: band unit ['radian'] in the GeoTIFF, the layer's is ['degree']" in \
        res.stdout + res.stderr, res.stdout + res.stderr


def stac_rgb_is_reflectance(item) -> bool:
    """The rgb asset's bands: uint16 DN whose scale gives reflectance (unit 1), no second unit beside it."""
    bands = item["assets"]["rgb"]["raster:bands"]
    return all(b["data_type"] == "uint16" and b["scale"] == 0.0001 and b["unit"] == "1" for b in bands)


@pytest.mark.slow
def test_a_one_class_aoi_warns_in_the_log_the_datacard_and_validate(runs):
    """The test AOI holds one class (fluvial): the build's log and the datacard say so, with each class that has
    no chip and each split in fewer than 10 spatial blocks; validate passes and says it with warnings."""
    from gos_build.layout import read_index

    d = runs["a2"] / "dataset"
    classes, chips = read_index(d)
    present = {c["class_id"] for c in chips}
    assert len(present) == 1  # the fixture's AOI, as a user's weak AOI
    absent = [f"class {cid} {c['name']}: no chip in this AOI" for cid, c in sorted(classes.items())
              if cid not in present]
    one = f"one class only ({classes[next(iter(present))]['name']})"
    test_chips = sum(1 for c in chips if c["split"] == "test")
    log = (runs["a2"].parent.parent / "logs" / "aoi" / "dataset.log").read_text(encoding="utf-8")
    card = (d / "datacard.md").read_text(encoding="utf-8")
    warnings = card.split("## Warnings", 1)[1].split("\n## ", 1)[0]
    for text in (log, warnings):
        assert all(a in text for a in absent) and one in text
        assert f"split test: its {test_chips} chips lie in" in text and "fewer than 10" in text
    assert "WARNING" in log
    res = run_cli("validate", str(d))
    assert res.returncode == 0, res.stderr
    assert f"{d}: OK, with" in res.stdout and "warning(s) about weak data" in res.stdout
    assert all(f"warning: {a}" in res.stderr for a in absent) and one in res.stderr


def test_the_chinese_class_names_have_a_font_from_the_packages():
    """A plain install draws 构造地貌 火山熔岩地貌 流水地貌: the font comes with a dependency (mplfonts' Noto Sans CJK
    SC), found before any system font, and has a glyph for every character of the shipped config's names."""
    from matplotlib.ft2font import FT2Font

    from gos_build.figures import _packaged_cjk_font, cjk_font

    paths = _packaged_cjk_font()
    assert paths and cjk_font() == "Noto Sans CJK SC"
    names = "".join(c.get("name_zh", "") for c in default_config()["classes"].values())
    assert len(names) >= 8
    font = FT2Font(paths[0])
    assert all(font.get_char_index(ord(ch)) for ch in names), names


def test_figure_scales_a_reader_can_use():
    """The scale bar's length is a round 1, 2 or 5 x 10^k m near a fifth of the map; a row of the gallery shares
    one colour range, the 2nd..98th percentile of its valid values (numpy) unless the registry fixes one, so its
    colour bar holds for every chip of the row."""
    from gos_build.figures import layer_style, nice_length
    from gos_build.layout import GOS10M

    assert [nice_length(v) for v in (10880.0, 4300.0, 100000.0, 31.0)] == [2000.0, 500.0, 20000.0, 5.0]
    rng = np.random.default_rng(2)
    values = np.ma.masked_equal(np.concatenate([rng.gamma(2.0, 3.0, 5000), [-9999.0] * 50]), -9999.0)
    style = layer_style(GOS10M["slope"], values)
    assert (style["vmin"], style["vmax"]) == tuple(np.percentile(values.compressed(), [2, 98]))
    assert (layer_style(GOS10M["hillshade"], values)["vmin"], layer_style(GOS10M["hillshade"], values)["vmax"]) == (0, 255)
    assert (layer_style(GOS10M["dev"], values)["vmin"], layer_style(GOS10M["dev"], values)["vmax"]) == (-2.5, 2.5)


@pytest.mark.slow
def test_init_writes_a_config_for_your_own_area_that_builds(auvergne_demo, tmp_path):
    """A new user with a Sentinel-2 product, DEM tiles and polygons (the Auvergne demo inputs, class field
    `genesis` with Chinese values): `gos-build init` names what it found, writes a config whose classes are
    the field's values (GOS10m's English names and order), check-config passes it and the workflow builds a
    dataset that validates from it. A wrong glob or no class field: the config is written, the missing input
    named, the exit status 2; an existing file is never overwritten without --force."""
    out = tmp_path / "auvergne.yaml"
    args = ["init", str(out), "--bbox", *map(str, AUVERGNE_BBOX), "--sentinel2",
            str(auvergne_demo / "sentinel2" / "*.SAFE"), "--dem", str(auvergne_demo / "srtm" / "*.hgt"),
            "--polygons", str(auvergne_demo / "polygons.gpkg")]
    res = run_cli(*args)
    assert res.returncode == 2 and "MISSING polygons: inputs.class_field:" in res.stdout and \
        "its fields: " in res.stdout and "genesis" in res.stdout, res.stdout + res.stderr
    assert out.is_file()
    res = run_cli(*args, "--class-field", "genesis")
    assert res.returncode == 2 and "exists; init does not overwrite" in res.stderr
    wrong = list(args)
    wrong[args.index("--sentinel2") + 1] = str(tmp_path / "nowhere" / "*.SAFE")
    res = run_cli(*wrong, "--class-field", "genesis", "--force")
    assert res.returncode == 2 and f"MISSING sentinel2: inputs.sentinel2: '{tmp_path / 'nowhere'}" in res.stdout
    res = run_cli(*args, "--class-field", "genesis", "--force")
    assert res.returncode == 0, res.stdout + res.stderr
    assert [line.split()[:2] for line in res.stdout.splitlines()[:3]] == [["ok", "sentinel2:"], ["ok", "dem:"],
                                                                           ["ok", "polygons:"]]
    cfg = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert cfg["aoi"]["name"] == "auvergne" and cfg["inputs"]["class_field"] == "genesis"
    import pyogrio

    values = set(pyogrio.read_dataframe(auvergne_demo / "polygons.gpkg", columns=["genesis"],
                                        read_geometry=False)["genesis"])
    assert {v for c in cfg["classes"].values() for v in c["values"]} == values
    gos10m = {"构造地貌": "tectonic", "火山熔岩地貌": "volcanic", "流水地貌": "fluvial"}  # GOS10m's names, in its order
    ids = sorted(cfg["classes"])
    assert ids == list(range(1, len(values) + 1))
    assert [(cfg["classes"][i]["name"], cfg["classes"][i]["name_zh"]) for i in ids] == \
        [(gos10m[v], v) for v in gos10m if v in values]
    res = run_cli("check-config", str(out))
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr
    res = run_configfile(tmp_path, out, "--cores", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    res = run_cli("validate", str(tmp_path / "results" / "auvergne" / "dataset"))
    assert res.returncode == 0 and ": OK" in res.stdout, res.stderr


def test_init_names_classes_a_person_can_keep_or_must_edit():
    from gos_build.init import classes_from_values

    classes, notes = classes_from_values(["流水地貌", "moraine", 7, "冰川地貌", "构造地貌"])
    assert [(cid, c["name"], c.get("name_zh"), c["values"]) for cid, c in sorted(classes.items())] == [
        (1, "tectonic", "构造地貌", ["构造地貌"]), (2, "fluvial", "流水地貌", ["流水地貌"]),  # GOS10m's, its order
        (3, "7", None, [7]), (4, "moraine", None, ["moraine"]), (5, "class_5", "冰川地貌", ["冰川地貌"])]  # by text
    assert notes == ["classes.5: value '冰川地貌' got the name 'class_5': give it a plain name (letters, digits, _ "
                     "or -; it names the class's folders)"]
    with pytest.raises(GosBuildError, match="300 distinct values"):
        classes_from_values(list(range(300)))
