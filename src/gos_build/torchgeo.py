"""A built gos-build dataset in TorchGeo's shape: a ``NonGeoDataset``, a ``NonGeoDataModule`` and a shard stream.

Needs the optional extra ``gos-build[torchgeo]`` (TorchGeo 0.8.1 and later, PyTorch, Lightning); the
pipeline never imports this module::

    from gos_build.torchgeo import GOSBuild, GOSBuildDataModule
    ds = GOSBuild("results/demo/dataset", split="train", layers=["rgb", "dem", "slope"])
    ds[0]   # {"image": float32 (C, 64, 64), "label": int64 ()}

- ``image``: the chosen layers' bands in the order given (all of the dataset's by default, its
  ``layers.json`` or GOS10m's nine), float32, the values of the chip GeoTIFFs (``rgb``: reflectance x
  10000; terrain layers in their units); ``label``: the class index 0..K-1 (classes sorted by id),
  the Parquet form's ``label``. Read from the packed store, or the Parquet shards where there is none.
- :class:`GOSBuildDataModule`: the dataset's train/val/test splits (or, with ``fold=k``, spatial fold k
  of ``folds.txt`` as validation and the other folds as training, the test split kept), normalised per
  band with the train chips' mean/std of ``stats.json`` (TorchGeo's ``aug``, after the batch reaches
  the device). No flips or rotations: hillshade, northness/eastness and the sun-lit imagery carry
  directions that a flip would contradict.
- :class:`GOSBuildStream`: an ``IterableDataset`` over a split's Parquet shards for many GPUs: every
  chip once per epoch over all ranks and workers (see its docstring for how shards are dealt out).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info
from torchgeo.datamodules import NonGeoDataModule
from torchgeo.datasets import NonGeoDataset
from torchgeo.datasets.errors import RGBBandsMissingError

from .errors import GosBuildError
from .layout import HILLSHADE, LABEL, RGB, SPLITS, dataset_layers, read_folds, read_index
from .ml import GOSDataset


def _layer_names(registry, layers) -> tuple[str, ...]:
    """The chosen layers, checked by name against the dataset's ``registry`` (a ValueError names the unknown
    ones)."""
    names = tuple(registry) if layers is None else tuple(layers)
    unknown = [n for n in names if n not in registry]
    if unknown or not names:
        raise ValueError(f"layers: {unknown or 'none'} not among the dataset's layers ({', '.join(registry)})")
    return names


def _ids(root: Path, split: str, fold: int | None) -> list[str] | None:
    """The chip ids of ``split`` when a spatial fold stands in for validation (None: the dataset's own split)."""
    if fold is None:
        return None
    folds = read_folds(root)
    if fold not in set(folds.values()):
        raise ValueError(f"fold: {fold} is not a fold of {root}/folds.txt ({sorted(set(folds.values())) or 'none'})")
    _, chips = read_index(root)
    if split == "test":
        return [c["id"] for c in chips if c["split"] == "test"]
    pool = [c["id"] for c in chips if c["split"] != "test"]
    return [cid for cid in pool if (folds.get(cid) == fold) == (split == "val")]


class GOSBuild(NonGeoDataset):
    """Chips of a gos-build dataset (a ``results/<aoi>/dataset`` folder or the downloads unzipped together).

    Args:
        root: the dataset folder.
        split: ``train``, ``val`` or ``test``.
        layers: layer names, in the order the image stacks them (default: every layer of the dataset).
        transforms: a function of the sample dict returning it transformed.
        fold: use spatial fold ``fold`` of ``folds.txt`` as validation (``split="val"``) and the other
            folds as training; the test split stays the dataset's.

    Raises:
        ValueError: a split or layer name the dataset does not have.
    """

    splits = SPLITS

    def __init__(self, root: str | Path = "data", split: str = "train", layers=None, transforms=None,
                 fold: int | None = None) -> None:
        if split not in self.splits:
            raise ValueError(f"split: expected one of {', '.join(self.splits)}, got {split!r}")
        self.root = Path(root)
        registry = dataset_layers(self.root)
        self.layers = _layer_names(registry, layers)
        self.split = split
        self.transforms = transforms
        self.bands = [f"{m}:{b}" if len(registry[m].bands) > 1 else m for m in self.layers for b in registry[m].bands]
        # the fastest form the dataset has (publish.forms): the packed store, the Parquet shards, the tree
        source = next((f for f in ("packed", "parquet") if (self.root / f).is_dir()), "tree")
        self._reader = GOSDataset(self.root, split=split, ids=_ids(self.root, split, fold), normalize=False,
                                  source=source)
        self.classes = [self._reader.classes[c] for c in self._reader.class_ids]

    def __len__(self) -> int:
        return len(self._reader)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        chip = self._reader.chips[index]
        image = np.concatenate([self._reader.layer(m, chip) for m in self.layers])
        sample = {"image": torch.from_numpy(image),
                  LABEL: torch.tensor(self._reader.label_of[chip["class_id"]], dtype=torch.long)}
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def plot(self, sample: dict[str, Tensor], show_titles: bool = True, suptitle: str | None = None):
        """The chip's RGB (one 2-98 % stretch over its three bands), one terrain layer (hillshade where chosen, else the
        first single-band layer), and the label (and prediction, when the sample has one) in the titles.

        Raises:
            RGBBandsMissingError: ``rgb`` is not among the chosen layers.
        """
        import matplotlib.pyplot as plt

        if RGB.name not in self.layers:
            raise RGBBandsMissingError()
        image = sample["image"].numpy()
        start = self.bands.index(f"{RGB.name}:{RGB.bands[0]}")
        rgb = np.moveaxis(image[start : start + 3], 0, -1).astype(np.float64)
        lo, hi = np.percentile(rgb, [2, 98])  # one stretch for the three bands: colours stay balanced
        rgb = np.clip((rgb - lo) / max(hi - lo, 1e-9), 0, 1)
        single = [b for b in self.bands if ":" not in b]
        terrain = HILLSHADE.name if HILLSHADE.name in single else (single[0] if single else None)
        panels = 2 if terrain else 1
        fig, axes = plt.subplots(1, panels, figsize=(4 * panels, 4), squeeze=False)
        axes[0, 0].imshow(rgb)
        if terrain:
            axes[0, 1].imshow(image[self.bands.index(terrain)], cmap="gray" if terrain == HILLSHADE.name else "terrain")
        for ax in axes[0]:
            ax.axis("off")
        if show_titles:
            title = f"Label: {self.classes[int(sample['label'])]}"
            if "prediction" in sample:
                title += f"\nPrediction: {self.classes[int(sample['prediction'])]}"
            axes[0, 0].set_title(title)
            if terrain:
                axes[0, 1].set_title(terrain)
        if suptitle is not None:
            fig.suptitle(suptitle)
        return fig


class GOSBuildStream(IterableDataset):
    """A split's chips streamed from the Parquet shards: whole shards (or row groups) per reader.

    A reader is one (rank, data-loader worker) pair; there are ``world_size x num_workers`` of them.
    Every epoch the units of reading -- whole shards when there are at least as many shards as readers,
    else the shards' row groups (4 chips each; the Parquet writer cuts shards by size, so a small dataset
    has one shard a split) -- are permuted with ``seed + epoch`` (the same order on every rank) and dealt
    out round-robin, so each chip is read by exactly one reader. A reader shuffles its chips in a buffer of
    ``buffer`` chips, seeded by (seed, epoch, reader). Readers may get different numbers of chips (at
    most one unit apart); under DDP let Lightning's ``use_distributed_sampler: false`` stand and end
    epochs by the shortest rank (``limit_train_batches``) or accept the uneven last batches.

    ``rank``/``world_size`` default to ``torch.distributed``'s when it is initialised, else 0/1; call
    :meth:`set_epoch` before each epoch (the data module does).
    """

    def __init__(self, root: str | Path, split: str = "train", layers=None, seed: int = 0, buffer: int = 256,
                 rank: int | None = None, world_size: int | None = None) -> None:
        from .readers import PARQUET, SHARD_RE

        self.root = Path(root)
        if split not in SPLITS:
            raise ValueError(f"split: expected one of {', '.join(SPLITS)}, got {split!r}")
        self.layers = _layer_names(dataset_layers(self.root), layers)
        folder = self.root / PARQUET
        if not folder.is_dir():
            raise GosBuildError(f"{self.root}: no Parquet form (parquet/) to stream")
        self.shards = sorted(str(p) for p in folder.glob(f"{split}-*.parquet")
                             if SHARD_RE.fullmatch(f"{PARQUET}/{p.name}"))
        _, chips = read_index(self.root)  # the shards' label column is the label: no class ids needed
        self.length = sum(1 for c in chips if c["split"] == split)  # over all readers (no __len__: per reader it varies)
        self.seed, self.buffer, self.epoch = seed, buffer, 0
        self.rank, self.world_size = rank, world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _units(self, readers: int) -> list[tuple[str, int | None]]:
        import pyarrow.parquet as pq

        if len(self.shards) >= readers:
            return [(s, None) for s in self.shards]
        return [(s, g) for s in self.shards for g in range(pq.ParquetFile(s).num_row_groups)]

    def _where(self) -> tuple[int, int]:
        """(this reader's index, the number of readers)."""
        rank, world = self.rank, self.world_size
        if rank is None or world is None:
            dist = torch.distributed
            ready = dist.is_available() and dist.is_initialized()
            rank = dist.get_rank() if ready else 0
            world = dist.get_world_size() if ready else 1
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        return rank * workers + worker, world * workers

    def __iter__(self):
        import pyarrow.parquet as pq

        from .gtiff import read_arrays

        reader, readers = self._where()
        units = self._units(readers)
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(units))
        mine = [units[i] for i in order[reader::readers]]
        rng = np.random.default_rng([self.seed, self.epoch, reader])
        pending: list[dict] = []
        for path, group in mine:
            f = pq.ParquetFile(path)
            for g in range(f.num_row_groups) if group is None else [group]:
                table = f.read_row_group(g, columns=[LABEL, *self.layers])
                cols = {k: table.column(k).to_pylist() for k in (LABEL, *self.layers)}
                for i, label in enumerate(cols[LABEL]):
                    image = np.concatenate([read_arrays([cols[m][i]])[0] for m in self.layers]).astype(np.float32)
                    pending.append({"image": torch.from_numpy(image),
                                    LABEL: torch.tensor(label, dtype=torch.long)})
                    if len(pending) >= self.buffer:
                        yield pending.pop(int(rng.integers(len(pending))))
        while pending:
            yield pending.pop(int(rng.integers(len(pending))))


class GOSBuildDataModule(NonGeoDataModule):
    """TorchGeo's data module over a gos-build dataset: splits (or a spatial fold as validation), the train
    chips' mean/std per band from ``stats.json`` as its normalisation, and ``streaming=True`` for training
    from :class:`GOSBuildStream` (whole Parquet shards per rank and worker) instead of random access."""

    def __init__(self, root: str | Path = "data", layers=None, fold: int | None = None, batch_size: int = 32,
                 num_workers: int = 0, streaming: bool = False, seed: int = 0, **kwargs) -> None:
        import json

        root = Path(root)
        names = _layer_names(dataset_layers(root), layers)
        super().__init__(GOSBuild, batch_size, num_workers, root=root, layers=names, fold=fold, **kwargs)
        stats = json.loads((root / "stats.json").read_text(encoding="utf-8"))
        mean = [v if v is not None else 0.0 for m in names for v in stats[m]["mean"]]
        std = [v if v else 1.0 for m in names for v in stats[m]["std"]]
        self.mean, self.std = torch.tensor(mean), torch.tensor(std)
        import kornia.augmentation as K

        self.aug = K.AugmentationSequential(K.Normalize(mean=self.mean, std=self.std), data_keys=None,
                                            keepdim=True)
        self.streaming, self.seed = streaming, seed
        if streaming and fold is not None:
            raise ValueError("streaming reads the dataset's own train split: give fold or streaming, not both")

    def train_dataloader(self):
        if not self.streaming:
            return super().train_dataloader()
        rank = self.trainer.global_rank if self.trainer else 0
        world = self.trainer.world_size if self.trainer else 1
        stream = GOSBuildStream(self.kwargs["root"], "train", self.kwargs["layers"], seed=self.seed, rank=rank,
                                world_size=world)
        return EpochLoader(stream, batch_size=self.batch_size, num_workers=self.num_workers)


class EpochLoader(torch.utils.data.DataLoader):
    """A DataLoader of a :class:`GOSBuildStream` that sets the stream's epoch each time it is iterated (before
    its workers start and copy the stream), so every epoch has its own order."""

    def __init__(self, stream: GOSBuildStream, **kwargs) -> None:
        super().__init__(stream, persistent_workers=False, **kwargs)
        self._epoch = 0

    def __iter__(self):
        self.dataset.set_epoch(self._epoch)
        self._epoch += 1
        return super().__iter__()


def channels(root: str | Path, layers=None) -> int:
    """The image's channels for these layers (``in_channels`` of a model)."""
    registry = dataset_layers(Path(root))
    return sum(len(registry[m].bands) for m in _layer_names(registry, layers))


__all__ = ["GOSBuild", "GOSBuildDataModule", "GOSBuildStream", "channels"]
