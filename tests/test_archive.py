"""The archive's gather: refusals and what it writes, from hand-made tile records."""

from __future__ import annotations

import json
import zipfile

import pytest

from gos_build.archive.gather import build_dataset
from gos_build.errors import GosBuildError

CLASSES = {1: {"name": "tectonic", "name_zh": "构造地貌", "values": ["tectonic"]},
           2: {"name": "volcanic", "name_zh": "火山熔岩地貌", "values": ["volcanic"]},
           3: {"name": "fluvial", "name_zh": "流水地貌", "values": ["fluvial"]}}


def test_no_chip_passing_the_filters(tmp_path):
    j = tmp_path / "t.json"
    j.write_text(json.dumps({"candidates": 12, "partial_aoi": 0, "kept": 0, "chips": [],
                             "rejected": {"purity": 9, "cloud": 3, "nodata": 0, "unlabelled": 0}}))
    z = tmp_path / "t.zip"
    zipfile.ZipFile(z, "w").close()
    with pytest.raises(GosBuildError, match=r"no chip passed the filters \(12 candidates; rejected: cloud 3, "
                                            r"nodata 0, purity 9, unlabelled 0\)"):
        build_dataset([(str(j), str(z))], {"classes": CLASSES, "split": {"method": "block", "block_chips": 4, "seed": 1,
                      "ratios": {"train": 0.7, "val": 0.1, "test": 0.2}}}, 640.0, tmp_path / "ds", {})
    assert not (tmp_path / "ds").exists()
