"""gos_build.torchgeo in TorchGeo's own test style: a fake dataset made by ``tests/data/gos_build/data.py``, the
sample types, lengths, bad split and layer names, ``plot`` with and without titles and a prediction, the
missing-RGB case, the data module through TorchGeo's classification task (``fast_dev_run``), the shipped
Lightning config through TorchGeo's command-line trainer; then against built datasets: samples equal the
tree's chips, and the shard stream yields each chip once per epoch over 2 ranks x 2 workers.

Needs the ``[torchgeo]`` extra, installed in an environment of its own (``scripts/check.sh`` makes
``.venv-torchgeo`` and runs this module there); elsewhere it skips.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torchgeo = pytest.importorskip("torchgeo", reason="needs the [torchgeo] extra (scripts/check.sh: .venv-torchgeo)")
import torch  # noqa: E402
from torchgeo.datasets.errors import RGBBandsMissingError  # noqa: E402

from helpers import AOI_A, DEMO_BBOX, ROOT, run_workflow, workflow_config  # noqa: E402
from gos_build.torchgeo import GOSBuild, GOSBuildDataModule, GOSBuildStream, channels  # noqa: E402

pytestmark = pytest.mark.torchgeo
DATA = ROOT / "tests" / "data" / "gos_build" / "data.py"


@pytest.fixture(scope="module")
def fake(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fake") / "dataset"
    subprocess.run([sys.executable, str(DATA), str(out)], check=True)
    return out


class TestGOSBuild:
    def test_getitem(self, fake):
        ds = GOSBuild(fake, split="train")
        x = ds[0]
        assert isinstance(x, dict)
        assert isinstance(x["image"], torch.Tensor) and x["image"].dtype == torch.float32
        assert x["image"].shape == (11, 64, 64)
        assert isinstance(x["label"], torch.Tensor) and x["label"].dtype == torch.int64 and x["label"].ndim == 0

    @pytest.mark.parametrize("split,n", [("train", 6), ("val", 2), ("test", 4)])
    def test_len(self, fake, split, n):
        assert len(GOSBuild(fake, split=split)) == n

    def test_layers_in_the_order_given(self, fake):
        both = GOSBuild(fake, layers=["slope", "rgb"])[0]["image"]
        alone = GOSBuild(fake, layers=["rgb"])[0]["image"]
        slope = GOSBuild(fake, layers=["slope"])[0]["image"]
        assert torch.equal(both[1:], alone) and torch.equal(both[:1], slope)
        assert channels(fake, ["slope", "rgb"]) == 4

    def test_invalid_split(self, fake):
        with pytest.raises(ValueError, match="split: expected one of train, val, test"):
            GOSBuild(fake, split="foo")

    def test_invalid_layers(self, fake):
        with pytest.raises(ValueError, match=r"layers: \['ndvi'\] not among the dataset's layers"):
            GOSBuild(fake, layers=["rgb", "ndvi"])

    def test_transforms(self, fake):
        ds = GOSBuild(fake, transforms=lambda s: {**s, "image": s["image"] * 0})
        assert ds[0]["image"].abs().sum() == 0

    def test_parquet_when_there_is_no_packed_store(self, fake, tmp_path):
        copy = tmp_path / "dataset"
        shutil.copytree(fake, copy, ignore=shutil.ignore_patterns("packed"))
        for split in ("train", "test"):
            a, b = GOSBuild(fake, split=split), GOSBuild(copy, split=split)
            assert len(a) == len(b)
            for i in range(len(a)):
                assert torch.equal(a[i]["image"], b[i]["image"]) and a[i]["label"] == b[i]["label"]

    def test_plot(self, fake, tmp_path):
        import matplotlib.pyplot as plt

        ds = GOSBuild(fake)
        x = ds[0]
        fig = ds.plot(x, suptitle="Test")
        plt.close(fig)
        fig = ds.plot(x, show_titles=False)
        plt.close(fig)
        x["prediction"] = x["label"].clone()
        fig = ds.plot(x)
        assert "Prediction" in fig.axes[0].get_title() and "Label" in fig.axes[0].get_title()
        fig.savefig(tmp_path / "sample.png")
        plt.close(fig)

    def test_plot_rgb_missing(self, fake):
        ds = GOSBuild(fake, layers=["dem", "slope"])
        with pytest.raises(RGBBandsMissingError):
            ds.plot(ds[0])

    def test_fold_as_validation(self, fake):
        from gos_build.layout import read_folds, read_index

        folds = read_folds(fake)
        _, chips = read_index(fake)
        val = GOSBuild(fake, split="val", fold=1)
        train = GOSBuild(fake, split="train", fold=1)
        pool = [c for c in chips if c["split"] != "test"]
        assert len(val) == sum(1 for c in pool if folds[c["id"]] == 1)
        assert len(train) == sum(1 for c in pool if folds[c["id"]] != 1)
        with pytest.raises(ValueError, match="fold: 7 is not a fold"):
            GOSBuild(fake, split="val", fold=7)


class TestGOSBuildDataModule:
    def test_normalisation_from_stats(self, fake):
        import json

        dm = GOSBuildDataModule(root=fake, layers=["rgb", "slope"], batch_size=2)
        stats = json.loads((fake / "stats.json").read_text())
        assert torch.allclose(dm.mean, torch.tensor(stats["rgb"]["mean"] + stats["slope"]["mean"]))
        assert torch.allclose(dm.std, torch.tensor(stats["rgb"]["std"] + stats["slope"]["std"]))

    @pytest.mark.parametrize("streaming", [False, True])
    def test_classification_task_fast_dev_run(self, fake, tmp_path, streaming):
        from lightning.pytorch import Trainer
        from torchgeo.trainers import ClassificationTask

        dm = GOSBuildDataModule(root=fake, batch_size=2, streaming=streaming)
        task = ClassificationTask(model="resnet18", weights=None, in_channels=channels(fake), num_classes=3)
        trainer = Trainer(accelerator="cpu", fast_dev_run=True, logger=False, enable_checkpointing=False,
                          enable_progress_bar=False, default_root_dir=str(tmp_path))
        trainer.fit(model=task, datamodule=dm)
        trainer.test(model=task, datamodule=dm)

    def test_the_shipped_config_through_torchgeos_trainer(self, fake, tmp_path):
        exe = shutil.which("torchgeo", path=str(Path(sys.executable).parent))
        assert exe, "the torchgeo command comes with the [torchgeo] extra"
        res = subprocess.run([exe, "fit", "--config", str(ROOT / "configs" / "torchgeo" / "demo.yaml"),
                              "--data.root", str(fake), "--trainer.fast_dev_run", "true",
                              "--trainer.default_root_dir", str(tmp_path)], capture_output=True, text=True,
                             timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]


# -- against built datasets ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built(inputs, tmp_path_factory) -> dict[str, Path]:
    """The demo workflow on a small AOI: GOS10m's nine layers, and with two extra terrain layers."""
    out = {}
    extra = {"extra": {"tpi_300": {"kind": "tpi", "radius_m": 300}, "landforms": {"kind": "geomorphons",
                                                                               "search_m": 300}}}
    # the demo's whole AOI (~150 chips: its train split's one shard has ~27 row groups to deal out), and a
    # small AOI with extra layers
    for key, bbox, terrain in (("default", list(DEMO_BBOX), {}), ("extra", AOI_A, extra)):
        base = tmp_path_factory.mktemp(key)
        res = run_workflow(base, workflow_config(inputs, "tg", bbox, terrain=terrain), "--cores", "2")
        assert res.returncode == 0, res.stderr[-3000:]
        out[key] = base / "results" / "tg" / "dataset"
    return out


@pytest.mark.slow
@pytest.mark.parametrize("key", ["default", "extra"])
def test_samples_equal_the_trees_chips(built, key):
    """Every sample of every split: the tree's GeoTIFFs stacked in the layers' order, the Parquet form's label."""
    import pyarrow.parquet as pq
    import rasterio

    from gos_build.layout import chip_path, dataset_layers, read_index

    d = built[key]
    classes, chips = read_index(d)
    layers = dataset_layers(d)
    assert (len(layers) == 11) == (key == "extra")
    parquet_label = {}
    for shard in sorted((d / "parquet").glob("*-of-*.parquet")):
        t = pq.read_table(shard, columns=["chip_id", "label"]).to_pydict()
        parquet_label.update(zip(t["chip_id"], t["label"]))
    for split in ("train", "val", "test"):
        mine = [c for c in chips if c["split"] == split]
        ds = GOSBuild(d, split=split)
        assert len(ds) == len(mine) and ds.layers == layers.names
        for i, c in enumerate(mine):
            want = []
            for m in layers:
                with rasterio.open(d / chip_path(m, classes[c["class_id"]]["name"], c["id"])) as f:
                    want.append(f.read().astype(np.float32))
            x = ds[i]
            assert np.array_equal(x["image"].numpy(), np.concatenate(want)), (split, c["id"])
            assert int(x["label"]) == parquet_label[c["id"]]


def _stream_ids(d: Path, seed: int, epoch: int) -> list[list[str]]:
    """What each of 2 ranks x 2 workers yields in one epoch, as image digests, rank by rank (workers' samples
    as the DataLoader interleaves them)."""
    from torch.utils.data import DataLoader

    out = []
    for rank in range(2):
        stream = GOSBuildStream(d, "train", seed=seed, buffer=8, rank=rank, world_size=2)
        stream.set_epoch(epoch)
        loader = DataLoader(stream, batch_size=None, num_workers=2)
        out.append([hashlib.sha256(s["image"].numpy().tobytes()).hexdigest() for s in loader])
    return out


@pytest.mark.slow
def test_stream_yields_each_chip_once_per_epoch_over_ranks_and_workers(built):
    d = built["default"]
    everything = sorted(hashlib.sha256(s["image"].numpy().tobytes()).hexdigest() for s in GOSBuild(d, "train"))
    first = _stream_ids(d, seed=3, epoch=0)
    seen = sorted(h for rank in first for h in rank)
    assert seen == everything  # each chip exactly once over the 4 readers
    assert all(len(rank) > len(everything) // 4 for rank in first)  # row groups dealt out: one shard, 4 readers
    assert _stream_ids(d, seed=3, epoch=0) == first  # deterministic per seed and epoch
    second = _stream_ids(d, seed=3, epoch=1)
    assert sorted(h for rank in second for h in rank) == everything and second != first  # another order
