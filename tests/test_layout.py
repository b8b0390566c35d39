"""The one vocabulary: layer registry, chip paths, index files, and that no other module spells a layer name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from gos_build.errors import GosBuildError
from gos_build.layout import (ELEVATION_LAYERS, LAYERS, MODALITIES, TERRAIN_PARAMETERS, chip_path, classes_text,
                              labels_text, parse_chip_path, read_index)
from helpers import ROOT


def test_registry_order_and_tile_bands():
    # GOS10m's modalities: the image, the DEM and its seven parameters, in the documented order
    assert MODALITIES == ("rgb", "dem", "hillshade", "slope", "mean", "std", "northness", "eastness", "dev")
    assert ELEVATION_LAYERS == MODALITIES[1:] and TERRAIN_PARAMETERS == MODALITIES[2:]
    # terrain.tif holds the DEM and the parameters as bands 1..8, in that order
    assert [LAYERS[m].tile_band for m in ELEVATION_LAYERS] == list(range(1, 9))
    assert {LAYERS[m].tile_file for m in ELEVATION_LAYERS} == {"terrain.tif"}
    assert LAYERS["rgb"].bands == ("red", "green", "blue") and LAYERS["rgb"].dtype == "uint16"
    assert LAYERS["rgb"].nodata == 0 and all(LAYERS[m].nodata == -9999.0 for m in ELEVATION_LAYERS)
    assert LAYERS["slope"].units == "degree" and LAYERS["dem"].units == "m"


def test_chip_path_round_trip():
    rel = chip_path("northness", "volcanic", "E0430080N4836480")
    assert rel == "northness/volcanic/E0430080N4836480.tif"
    assert parse_chip_path(rel) == ("northness", "volcanic", "E0430080N4836480")
    for bad in ("stac/volcanic/E0.json", "rgb/E0430080N4836480.tif", "rgb/../x/E0.tif"):
        with pytest.raises(ValueError):
            parse_chip_path(bad)


def test_index_files_written_and_read_back(tmp_path):
    classes = {2: {"name": "volcanic", "name_zh": "火山熔岩地貌"}, 1: {"name": "tectonic", "name_zh": "构造地貌"}}
    chips = [{"id": "E0430080N4836480", "class_id": 2, "purity": 0.953125, "split": "val", "x": 430080.0,
              "y": 4836480.0}]
    (tmp_path / "classes.txt").write_text(classes_text(classes), encoding="utf-8")
    (tmp_path / "labels.txt").write_text(labels_text(chips), encoding="utf-8")
    assert (tmp_path / "classes.txt").read_text(encoding="utf-8") == "1\ttectonic\t构造地貌\n2\tvolcanic\t火山熔岩地貌\n"
    got_classes, got_chips = read_index(tmp_path)
    assert got_classes == {1: classes[1], 2: classes[2]}
    assert got_chips == [dict(chips[0], purity=0.9531, boundary_m=None)]  # 4 decimals in the file; "-": unknown
    chips[0]["boundary_m"] = 125.004
    (tmp_path / "labels.txt").write_text(labels_text(chips), encoding="utf-8")
    assert read_index(tmp_path)[1][0]["boundary_m"] == 125.0  # 0.01 m in the file
    (tmp_path / "labels.txt").write_text("# chip_id label purity split x y\nE0430080N4836480 2 0.9531 val 430080 "
                                         "4836480\n", encoding="utf-8")  # a dataset written before the column
    assert read_index(tmp_path)[1][0]["boundary_m"] is None
    (tmp_path / "labels.txt").write_text("# header\nE0 1 0.9 train\n", encoding="utf-8")
    with pytest.raises(GosBuildError, match=r"labels.txt:2: malformed line"):
        read_index(tmp_path)


def _string_literals(path: Path):
    """(line, text) of every string constant of a module that is not a docstring."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node.lineno, node.value


def test_layer_names_are_spelled_in_layout_only():
    # names that mean nothing but a layer; ("dem", "mean", "std", "rgb" double as an input kind, statistics
    # and the loader's branch names, so they cannot be policed this way)
    names = {"hillshade", "slope", "northness", "eastness", "dev"}
    allowed = {("terrain.py", "hillshade"),  # the config key terrain.hillshade
               ("geomorphometry.py", "slope"),  # a geomorphon's landform element, not the layer
               ("geomorphometry.py", "dev")}  # the terrain.extra kind (a disc's DEV), not GOS10m's layer
    found = []
    for path in sorted((ROOT / "src" / "gos_build").rglob("*.py")):
        if path.name == "layout.py":
            continue
        for line, text in _string_literals(path):
            if text in names and (path.name, text) not in allowed:
                found.append(f"{path.relative_to(ROOT)}:{line}: {text!r}")
    assert not found, found


FLOORS = {  # module (or package) -> floor; a module imports only from its own floor or below
    "errors": 0, "io": 0, "zipjoin": 0, "gtiff": 0, "parallel": 0, "resample": 0, "bands": 0,  # bands: Sentinel-2's, a table
    # the vocabulary: layout's registry takes each terrain.extra kind's units and definition from
    # geomorphometry (pure array functions and the kinds), and the config checks names against both
    "layout": 1, "geomorphometry": 1, "config": 1,
    "grid": 2,
    "tiles": 3, "inputs": 3,
    "sentinel2": 4, "dem": 4, "terrain": 4, "labels": 4, "chips": 4,
    "demo": 5, "init": 5, "splits": 5, "readers": 5, "evaluation": 5,  # init: a config from the inputs
    "figures": 6, "ml": 6, "torchgeo": 6,  # read datasets through layout and splits, never through the archive
    "archive": 7,
    "tile_job": 8,  # the per-tile stages and the shard writer in one process
    "cli": 9, "__init__": 9,
}


def _floor(module: str) -> int:
    return FLOORS[module.split(".")[0]]


def test_no_module_imports_from_a_higher_floor():
    pkg = ROOT / "src" / "gos_build"
    problems = []
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(pkg).with_suffix("")
        me = ".".join(rel.parts)
        if me == "__init__":
            continue
        here = list(rel.parts[:-1])  # the package the module is in
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or node.level == 0:
                continue
            base = here[: len(here) - (node.level - 1)]
            targets = ([".".join(base + node.module.split("."))] if node.module
                       else [".".join(base + [a.name]) for a in node.names])
            for target in targets:
                if target.split(".")[0] in FLOORS and _floor(target) > _floor(me):
                    problems.append(f"{me} (floor {_floor(me)}) imports {target} (floor {_floor(target)})")
    assert not problems, problems
