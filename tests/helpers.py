"""Test helpers: repository paths, test AOIs, reference tools, running the CLI and the workflow.

Imported by the tests as a module (``from helpers import ...``); fixtures live in conftest.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# a small AOI outside China, in another UTM zone (31N): Chaine des Puys, France
AUVERGNE_BBOX = (2.95, 45.72, 3.01, 45.765)
# whole-workflow runs (test_workflow, test_report, test_ml)
DEMO_BBOX = (128.125, 43.60, 128.25, 43.69)
AOI_A = [128.14, 43.615, 128.18, 43.645]  # ~3.2 x 3.3 km
AOI_B = [128.15, 43.62, 128.19, 43.65]  # overlaps most of A


def require_tool(name: str, package: str = "gdal-bin") -> str:
    """Path of a reference command-line tool; missing is a failure under CI, a skip elsewhere."""
    path = shutil.which(name)
    if path:
        return path
    msg = f"{name} not found (Debian package {package}; scripts/check.sh installs it)"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `gos-build ARGS` in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "gos_build.cli", *args], cwd=cwd, capture_output=True,
                          text=True)


def default_config() -> dict:
    """The shipped config.yaml, parsed (the demo AOI)."""
    return yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))


def job_config(**sections) -> str:
    """The default config with ``sections`` replaced, validated and default-filled, as a job's ``--config`` JSON."""
    import json

    from gos_build.config import check_config, with_defaults

    cfg = default_config()
    cfg.pop("demo")
    cfg.update(sections)
    check_config(cfg)
    return json.dumps(with_defaults(cfg), ensure_ascii=False)


def workflow_config(inputs: Path, name: str, bbox, **extra) -> dict:
    cfg = default_config()
    del cfg["demo"]
    cfg["aoi"] = {"name": name, "bbox": bbox}
    cfg["inputs"].update(sentinel2=[str(inputs / "sentinel2" / "*.SAFE")], dem=[str(inputs / "srtm" / "*.hgt")],
                         polygons=str(inputs / "polygons.gpkg"))
    cfg["grid"]["tile_chips"] = 4  # several tiles even for a small AOI
    cfg["split"]["block_chips"] = 2
    for key, value in extra.items():
        cfg.setdefault(key, {}).update(value)
    return cfg


def run_workflow(workdir: Path, cfg: dict, *args, env: dict | None = None, umask: int = -1) -> subprocess.CompletedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "aoi.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return run_configfile(workdir, path, *args, env=env, umask=umask)


def run_configfile(workdir: Path, path: Path, *args, env: dict | None = None,
                   umask: int = -1) -> subprocess.CompletedProcess:
    """``snakemake --configfile PATH ARGS`` in ``workdir``, as a user runs it on a config file of theirs."""
    # the rules call `gos-build`: the one installed beside this Python
    env = dict(env or os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory",
                           str(workdir), "--configfile", str(path), *args], capture_output=True, text=True, env=env,
                          umask=umask)


def zipfile_zip(path: Path, members, deflate=lambda name: False) -> None:
    """The reference zip of ``members`` (``(name, bytes or path)``) through Python's ``zipfile`` itself, as
    gos-build's segments mean to write it: fixed date, mode 644, ``deflate(name)``'s members deflated, a file
    read whole up to ``zipjoin.ZIP_READ_WHOLE`` (``writestr``), else streamed in 1 MB blocks (``open(info,
    "w")``, its size given first)."""
    import zipfile

    from gos_build import zipjoin

    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=zipjoin.ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED if deflate(name) else zipfile.ZIP_STORED
            if not isinstance(data, (bytes, bytearray)):
                with open(data, "rb") as src:
                    size = os.fstat(src.fileno()).st_size
                    if size > zipjoin.ZIP_READ_WHOLE:
                        info.file_size = size
                        with zf.open(info, "w") as dst:
                            shutil.copyfileobj(src, dst, 1 << 20)
                        continue
                    data = src.read()
            zf.writestr(info, data)
