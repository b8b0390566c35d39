"""Datasets from strangers and shared servers: containment, permissions, inputs named by content, the --log line."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from helpers import AOI_A, run_cli, run_workflow, workflow_config

from gos_build.archive import validate as validate_module
from gos_build.archive.validate import validate_dataset


def _copy(runs, tmp_path) -> Path:
    d = tmp_path / "dataset"
    shutil.copytree(runs["a2"] / "dataset", d, symlinks=True)
    return d


@pytest.fixture
def opened(monkeypatch):
    """Every path validate reads a file's bytes from."""
    seen = []
    real = validate_module._read

    def spy(path, want_header):
        seen.append(os.path.realpath(path))
        return real(path, want_header)

    monkeypatch.setattr(validate_module, "_read", spy)
    return seen


@pytest.mark.slow
def test_manifest_entries_outside_the_dataset_are_findings_never_opened(runs, tmp_path, opened):
    d = _copy(runs, tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("a file next to the dataset\n")
    host = Path("/etc/hostname")
    lines = [f"{hashlib.sha256(outside.read_bytes()).hexdigest()}  ../outside.txt\n"]
    if host.is_file():
        lines.append(f"{hashlib.sha256(host.read_bytes()).hexdigest()}  {host}\n")
    lines.append(f"{'0' * 64}  rgb/../../outside.txt\n")
    (d / "MANIFEST.sha256").write_text((d / "MANIFEST.sha256").read_text() + "".join(lines))
    problems = validate_dataset(d)
    n = len((runs["a2"] / "dataset" / "MANIFEST.sha256").read_text().splitlines())
    assert f"MANIFEST.sha256:{n + 1}: '../outside.txt' is outside the dataset folder (not opened)" in problems
    if host.is_file():
        assert f"MANIFEST.sha256:{n + 2}: '/etc/hostname' is outside the dataset folder (not opened)" in problems
    assert any("'rgb/../../outside.txt' is outside the dataset folder" in p for p in problems)
    assert str(outside) not in opened and "/etc/hostname" not in opened
    assert all(p.startswith(os.path.realpath(d) + os.sep) for p in opened)


@pytest.mark.slow
def test_a_chip_linked_to_a_file_outside_is_a_finding_never_opened(runs, tmp_path, opened):
    d = _copy(runs, tmp_path)
    chip = sorted(d.glob("slope/*/*.tif"))[0]
    outside = tmp_path / "elsewhere.tif"
    shutil.copy(chip, outside)  # the same bytes: the manifest's sha256 would match
    chip.unlink()
    chip.symlink_to(outside)
    folder_link = d / "stac" / "outside"
    folder_link.symlink_to(tmp_path, target_is_directory=True)
    problems = validate_dataset(d)
    rel = chip.relative_to(d).as_posix()
    assert f"{rel}: a symbolic link to outside the dataset folder (not opened)" in problems
    assert "stac/outside: a symbolic link to outside the dataset folder (not opened)" in problems
    assert str(outside) not in opened
    res = run_cli("validate", str(d))
    assert res.returncode == 2 and "Traceback" not in res.stderr


@pytest.mark.slow
def test_hrefs_urls_and_ids_that_lead_out_are_findings(runs, tmp_path, opened):
    d = _copy(runs, tmp_path)
    item_file = sorted((d / "stac").glob("*/E*.json"))[0]
    item = json.loads(item_file.read_text())
    item["assets"]["dem"]["href"] = "../../../../outside.tif"
    item["assets"]["slope"]["href"] = "/etc/hostname"
    item_file.write_text(json.dumps(item, indent=2))
    doc = json.loads((d / "croissant.json").read_text())
    doc["distribution"][0]["contentUrl"] = "../../secrets.csv"
    doc["distribution"][1]["includes"] = "../../*/*.tif"
    (d / "croissant.json").write_text(json.dumps(doc))
    import pyarrow as pa
    import pyarrow.parquet as pq

    index = pq.read_table(d / "parquet" / "chips.parquet")
    files = index.column("parquet_file").to_pylist()
    files[0] = "../../outside.parquet"
    pq.write_table(index.set_column(index.schema.get_field_index("parquet_file"), "parquet_file",
                                    pa.array(files)), d / "parquet" / "chips.parquet")
    labels = (d / "labels.txt").read_text().splitlines()
    problems = validate_dataset(d)
    rel = item_file.relative_to(d).as_posix()
    assert f"{rel}: asset dem href '../../../../outside.tif' leads outside the dataset (not opened)" in problems
    assert f"{rel}: asset slope href '/etc/hostname' leads outside the dataset (not opened)" in problems
    assert "croissant.json: contentUrl '../../secrets.csv' leads outside the dataset (not opened)" in problems
    assert "croissant.json: includes '../../*/*.tif' leads outside the dataset" in problems
    assert "parquet/chips.parquet: parquet_file '../../outside.parquet' is not a shard of this dataset" in problems
    # a chip id that is a path: labels.txt is refused before any path is made of it
    (d / "labels.txt").write_text("\n".join(labels + ["../../../etc/passwd 1 1.0000 train 0 0"]) + "\n")
    problems = validate_dataset(d)
    assert any("labels.txt:" in p and "malformed line '../../../etc/passwd" in p for p in problems)
    assert all(p.startswith(os.path.realpath(d) + os.sep) for p in opened)


def test_files_follow_the_umask_atomic_writes_included(tmp_path):
    import numpy as np
    from affine import Affine

    from gos_build.io import atomic_write_text, write_folder, write_geotiff
    from gos_build.zipjoin import write_segment

    for mask, want in ((0o022, 0o644), (0o027, 0o640), (0o002, 0o664)):
        old = os.umask(mask)
        try:
            out = tmp_path / f"u{mask:03o}"
            atomic_write_text(out / "a.txt", "text\n")
            write_segment(out / "b", [("m.txt", b"member")])  # b.zip and its index, b.idx
            write_folder(out / "shard", [("x/c.bin", b"bytes")])
            write_geotiff(out / "d.tif", np.zeros((8, 8), np.uint8), "EPSG:32652", Affine(10, 0, 0, 0, -10, 80), 0,
                          ["band"])
        finally:
            os.umask(old)
        modes = {p.relative_to(out).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*") if p.is_file()}
        want_all = {"a.txt": want, "b.zip": want, "b.idx": want, "shard/x/c.bin": want, "d.tif": want}
        assert modes == want_all, (oct(mask), modes)


@pytest.mark.slow
def test_builds_from_two_folders_and_umasks_give_the_same_dataset_readable_by_others(inputs, tmp_path):
    """The same inputs in two folders (another name, other paths), built under umask 022 and 027: the same
    dataset files byte for byte, datacard included; no path of either folder in any of them; modes as open()."""
    copy = tmp_path / "somewhere else" / "my inputs"
    shutil.copytree(inputs, copy)
    runs = {}
    for key, folder, mask in (("a", inputs, 0o022), ("b", copy, 0o027)):
        cfg = workflow_config(folder, "aoi", AOI_A)
        res = run_workflow(tmp_path / key, cfg, "--cores", "2", umask=mask)
        assert res.returncode == 0, res.stderr[-3000:]
        runs[key] = tmp_path / key / "results" / "aoi"
    files = {k: sorted(p.relative_to(r / "dataset").as_posix() for p in (r / "dataset").rglob("*") if p.is_file())
             for k, r in runs.items()}
    assert files["a"] == files["b"]
    for rel in files["a"]:
        a, b = (runs[k] / "dataset" / rel for k in "ab")
        assert a.read_bytes() == b.read_bytes(), rel
        for folder in (str(inputs), str(copy), str(tmp_path)):
            assert folder.encode() not in a.read_bytes() and folder.encode() not in b.read_bytes(), rel
    card = (runs["a"] / "dataset" / "datacard.md").read_text()
    dem = inputs / "srtm" / sorted(p.name for p in (inputs / "srtm").glob("*.hgt"))[0]
    assert f"`{dem.name}` ({dem.stat().st_size} bytes, sha256 `{hashlib.sha256(dem.read_bytes()).hexdigest()}`)" in card
    for key, mask in (("a", 0o022), ("b", 0o027)):
        for p in runs[key].rglob("*"):
            if p.is_file() and not p.is_symlink() and ".snakemake" not in p.parts:
                assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask, (p, oct(p.stat().st_mode))


def test_inputs_are_named_by_content(tmp_path):
    from gos_build.inputs import file_facts, identity

    f = tmp_path / "N45E003.hgt"
    f.write_bytes(b"\x00\x01" * 1000)
    facts = file_facts(str(f))
    assert identity(facts) == {"name": "N45E003.hgt", "bytes": 2000, "sha256": hashlib.sha256(f.read_bytes()).hexdigest()}
    safe = tmp_path / "S2.SAFE"
    (safe / "GRANULE" / "g").mkdir(parents=True)
    (safe / "MTD_MSIL2A.xml").write_text("<xml/>")
    (safe / "GRANULE" / "g" / "B02.jp2").write_bytes(b"jp2")
    listing = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(safe).as_posix()}\n"
                      for p in (safe / "GRANULE" / "g" / "B02.jp2", safe / "MTD_MSIL2A.xml"))
    assert identity(file_facts(str(safe))) == {"name": "S2.SAFE", "bytes": 9,
                                               "sha256": hashlib.sha256(listing.encode()).hexdigest()}
    for ext in (".shp", ".dbf", ".prj"):
        (tmp_path / f"landforms{ext}").write_bytes(ext.encode())
    (tmp_path / "other.dbf").write_bytes(b"not part of it")
    listing = "".join(f"{hashlib.sha256(e.encode()).hexdigest()}  landforms{e}\n" for e in (".dbf", ".prj", ".shp"))
    assert file_facts(str(tmp_path / "landforms.shp"))["sha256"] == hashlib.sha256(listing.encode()).hexdigest()


def test_log_into_a_folder_that_cannot_be_made_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    res = run_cli("--log", str(blocker / "logs" / "grid.log"), "validate", str(tmp_path))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert res.stderr.startswith(f"gos-build: error: --log {blocker / 'logs' / 'grid.log'}: cannot write the log there")
