"""The one vocabulary of gos-build: layers, tile files, chip paths, class and index files, split names.

Every other module imports its names from here; no other module spells a
layer name. A *layer* is one modality of a chip (``rgb``, ``dem`` and the
seven terrain parameters); its registry entry holds everything the stages,
writers, figures and loader need to know about it: bands, dtype, units,
nodata, the per-tile file it lives in, a description and a display hint.

Paths (relative to ``results/<aoi>/``)::

    tiles/<tile_id>/{rgb,valid,labels,terrain}.tif   per-tile layers on the grid, as the stage commands
                                                     write them (the workflow's tile job keeps them in memory)
    tiles/<tile_id>/{chips,labels,sentinel2}.json    the tile's records; shard/: its chips, for the gather
    dataset/<layer>/<class>/<chip_id>.tif            one GeoTIFF per chip and layer
    dataset/classes.txt  labels.txt  train.txt val.txt test.txt
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from .bands import period_bands
from .errors import GosBuildError

ID_PATTERN = r"[EW]\d{7,8}[NS]\d{7,8}"  # a lattice cell's id (tiles and chips): its south-west corner, metres
TERRAIN_NODATA = -9999.0  # float32 terrain layers and the DEM on the grid
RGB_NODATA = 0  # uint16 reflectance x 10000


@dataclass(frozen=True)
class Layer:
    """One chip modality.

    ``tile_file``/``tile_band`` say where the per-tile stage writes it
    (``tiles/<id>/<tile_file>``, 1-based first band); ``display`` is a
    matplotlib colour map and an optional fixed value range for figures;
    ``classes``: for a categorical layer, ``(value, name, colour)`` of each class;
    ``params``: for a layer of ``terrain.extra``, its config entry as canonical JSON
    (``{"kind": ..., ...}``), empty for GOS10m's nine.

    Units, as GDAL and STAC define them: a stored value ``v`` means ``v * scale + offset`` in ``units``
    (``"1"``: dimensionless). ``stored`` names what a scaled layer stores, in words (``rgb``: reflectance x
    10000); empty where the stored value is already in ``units``.
    """

    name: str
    bands: tuple[str, ...]
    dtype: str
    units: str
    nodata: float | int
    tile_file: str
    tile_band: int
    description: str
    display: tuple[str, tuple[float, float] | None]
    classes: tuple[tuple[int, str, str], ...] = ()
    params: str = ""
    scale: float = 1.0
    offset: float = 0.0
    stored: str = ""

    @property
    def scaled(self) -> bool:
        return (self.scale, self.offset) != (1.0, 0.0)

    @property
    def stored_units(self) -> str:
        """The units of the stored values (what stats.json's figures are in)."""
        return self.stored or self.units

    @property
    def gdal_units(self) -> tuple[str, float, float]:
        """(unit, scale, offset) of every band: the chip GeoTIFFs' band metadata (GDAL's unit type, scale,
        offset)."""
        return self.units, self.scale, self.offset

    def units_text(self) -> str:
        """The units in words, for cards, descriptions and colour bars: ``m``; ``1 (dimensionless)``;
        ``reflectance x 10000 (scale 0.0001, offset 0: unit 1)``."""
        if not self.scaled:
            return "1 (dimensionless)" if self.units == "1" else self.units
        return f"{self.stored_units} (scale {self.scale:g}, offset {self.offset:g}: unit {self.units})"

    def spec(self) -> dict:
        """The ``terrain.extra`` entry of this layer (``{}`` for GOS10m's nine)."""
        return json.loads(self.params) if self.params else {}

    def to_json(self) -> dict:
        doc = {"name": self.name, "bands": list(self.bands), "dtype": self.dtype, "units": self.units,
               "nodata": self.nodata, "description": self.description}
        if self.classes:
            doc["classes"] = [{"value": v, "name": n, "colour": c} for v, n, c in self.classes]
        if self.params:
            doc["terrain"] = self.spec()
        if self.scaled:
            doc.update(scale=self.scale, offset=self.offset, stored=self.stored)
        return doc


TERRAIN_PARAMETERS = ("hillshade", "slope", "mean", "std", "northness", "eastness", "dev")

_TERRAIN_DOC = {
    "hillshade": ("grey level", "GDAL's hillshade (Horn gradient), 1 + 254 cos(incidence), 1-255", ("gray", (0, 255))),
    "slope": ("degree", "slope, Horn (1981), richdem slope_degrees", ("magma", None)),
    "mean": ("m", "local mean (or median) elevation over the terrain window", ("terrain", None)),
    "std": ("m", "local standard deviation of elevation over the terrain window", ("viridis", None)),
    "northness": ("1", "cos(aspect); 0 on flats", ("RdBu", (-1, 1))),
    "eastness": ("1", "sin(aspect); 0 on flats", ("RdBu", (-1, 1))),
    "dev": ("1", "deviation from mean elevation, (z - mean) / std (Wilson & Gallant)", ("RdBu", (-2.5, 2.5))),
}

RGB = Layer("rgb", ("red", "green", "blue"), "uint16", "1", RGB_NODATA, "rgb.tif", 1,
            "Sentinel-2 B04 B03 B02 surface reflectance x 10000", ("rgb", None), scale=0.0001,
            stored="reflectance x 10000")
DEM = Layer("dem", ("dem",), "float32", "m", TERRAIN_NODATA, "terrain.tif", 1,
            "elevation, resampled onto the grid", ("terrain", None))
TERRAIN = tuple(
    Layer(name, (name,), "float32", _TERRAIN_DOC[name][0], TERRAIN_NODATA, "terrain.tif", i + 2, _TERRAIN_DOC[name][1],
          _TERRAIN_DOC[name][2])
    for i, name in enumerate(TERRAIN_PARAMETERS)
)
HILLSHADE = TERRAIN[0]  # the overview's relief backdrop
S2 = "s2"  # the layer of sentinel2.bands; s2_<period> those of sentinel2.periods


def is_period(name: str) -> bool:
    """Whether a layer's name is a period's (``s2_<period>``)."""
    return name.startswith(S2 + "_")


def s2_layer(bands, period: str | None = None, span: str = "") -> Layer:
    """The layer of ``sentinel2.bands`` (``s2``) or of one of ``sentinel2.periods`` (``s2_<period>``, sensed in
    ``span``): those Sentinel-2 bands in their order, uint16 reflectance x 10000 as ``rgb`` (nodata 0), per tile
    in ``<name>.tif``."""
    name = f"{S2}_{period}" if period else S2
    when = f", clear observations sensed {span}" if period else ""
    return Layer(name, tuple(bands), RGB.dtype, RGB.units, RGB.nodata, f"{name}.tif", 1,
                 f"Sentinel-2 {' '.join(bands)} surface reflectance x 10000{when}", ("rgb", None), scale=RGB.scale,
                 stored=RGB.stored)


def period_names(layers) -> tuple[str, ...]:
    """The period layers (``s2_<period>``) among a registry's names, in its order."""
    return tuple(m for m in layers if is_period(m))


class Registry(Mapping):
    """The layers of one dataset, by name, in their order: GOS10m's nine, then those the config adds.

    Built from the config (:func:`layers_from_config`) by the stages and writers, and from the dataset
    itself (:func:`dataset_layers`) by the readers that have no config (validate, loaders, figures).
    """

    def __init__(self, layers):
        self._layers = {layer.name: layer for layer in layers}

    def __getitem__(self, name: str) -> Layer:
        return self._layers[name]

    def __iter__(self):
        return iter(self._layers)

    def __len__(self) -> int:
        return len(self._layers)

    def __eq__(self, other) -> bool:
        return isinstance(other, Registry) and list(self.values()) == list(other.values())

    __hash__ = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._layers)

    @property
    def elevation(self) -> tuple[str, ...]:
        """The layers of the per-tile terrain stack (``terrain.tif``), in band order: the DEM, the seven
        parameters, then the extra terrain layers."""
        stack = sorted((layer for layer in self.values() if layer.tile_file == DEM.tile_file),
                       key=lambda layer: layer.tile_band)
        return tuple(layer.name for layer in stack)

    @property
    def extra(self) -> tuple[Layer, ...]:
        """The layers beyond GOS10m's nine."""
        return tuple(layer for layer in self.values() if layer.name not in GOS10M_NAMES)

    def to_json(self) -> list[dict]:
        return [layer.to_json() for layer in self.values()]


GOS10M = Registry((RGB, DEM, *TERRAIN))  # GOS10m's nine layers: a dataset without layers.json has these
GOS10M_NAMES = GOS10M.names  # rgb dem hillshade slope mean std northness eastness dev
LAYERS = GOS10M  # the default registry (the default config's)
MODALITIES = GOS10M_NAMES
ELEVATION_LAYERS = GOS10M.elevation  # dem + the seven parameters


def ordered_extra(extra: dict | None) -> dict:
    """``terrain.extra`` in the registry's order: by name (the workflow passes the config to jobs as JSON with
    sorted keys, so the config's own order is not the same everywhere)."""
    return dict(sorted((extra or {}).items()))


def layers_from_config(config: dict) -> Registry:
    """The registry of a (validated) config: GOS10m's nine, ``s2`` where ``sentinel2.bands`` is given, an
    ``s2_<period>`` for each of ``sentinel2.periods`` (by name), then the ``terrain.extra`` layers in the order of
    their names (a config passed to a job as JSON has its keys sorted: one order wherever it is read), appended
    to the terrain stack."""
    from .geomorphometry import extra_layer

    s2 = config.get("sentinel2") or {}
    bands, periods = s2.get("bands"), sorted((s2.get("periods") or {}).items())
    extra = ordered_extra((config.get("terrain") or {}).get("extra"))
    if not extra and not bands and not periods:
        return GOS10M
    first_band = len(GOS10M.elevation) + 1
    added = [extra_layer(name, spec, DEM.tile_file, first_band + i) for i, (name, spec) in enumerate(extra.items())]
    imagery = ([s2_layer(bands)] if bands else []) + [s2_layer(period_bands(bands), p, span) for p, span in periods]
    return Registry((*GOS10M.values(), *imagery, *added))


LAYERS_FILE = "layers.json"  # in a dataset whose layers are not GOS10m's nine: the registry, machine-readable


def layers_text(layers: Registry) -> str | None:
    """``layers.json`` of a dataset with these layers; None for GOS10m's nine (no file: the default)."""
    if layers == GOS10M:
        return None
    return json.dumps({"layers": layers.to_json()}, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def dataset_layers(dataset: str | Path) -> Registry:
    """The layers of a built dataset: its ``layers.json``, or GOS10m's nine where it has none.

    Raises GosBuildError naming the file when it cannot be read or names a layer wrongly.
    """
    path = Path(dataset) / LAYERS_FILE
    if not path.exists() and not path.is_symlink():
        return GOS10M
    if path.is_symlink():  # a stranger's dataset: a link may lead out of it, and is never followed
        raise GosBuildError(f"{path}: a symbolic link (not opened); a dataset's layers.json is a file")
    try:
        if path.stat().st_size > 1 << 20:  # hundreds of layers are a few kB
            raise ValueError("larger than 1 MB")
        doc = json.loads(path.read_text(encoding="utf-8"))
        out = []
        for d in doc["layers"]:
            name = d["name"]
            if not _NAME_RE.fullmatch(name) or "/" in name:
                raise ValueError(f"layer name {name!r}")
            if name in GOS10M:
                out.append(GOS10M[name])
                continue
            if name == S2 or is_period(name):  # Sentinel-2 bands (of a period): their names say the rest
                from .bands import BANDS

                unknown = [b for b in d["bands"] if b not in BANDS]
                if unknown or not d["bands"]:
                    raise ValueError(f"layer {name}: bands {unknown or 'none'} are not Sentinel-2 bands")
                layer = s2_layer([str(b) for b in d["bands"]], name[len(S2) + 1:] or None)
                out.append(replace(layer, description=str(d.get("description", layer.description))))
                continue
            if "terrain" in d:  # a terrain.extra layer: the same entry the config gave the writer
                from .geomorphometry import extra_layer

                band = 1 + sum(1 for ly in out if ly.tile_file == DEM.tile_file)
                layer = extra_layer(name, d["terrain"], DEM.tile_file, band)
                if (list(layer.bands), layer.dtype, layer.nodata) != (d["bands"], d["dtype"], d["nodata"]):
                    raise ValueError(f"layer {name}: bands, dtype or nodata differ from its kind's")
                out.append(layer)
                continue
            classes = tuple((int(c["value"]), str(c["name"]), str(c["colour"])) for c in d.get("classes", []))
            out.append(Layer(name, tuple(d["bands"]), str(d["dtype"]), str(d["units"]), d["nodata"], f"{name}.tif",
                             1, str(d.get("description", "")), ("viridis", None), classes,
                             scale=float(d.get("scale", 1.0)), offset=float(d.get("offset", 0.0)),
                             stored=str(d.get("stored", ""))))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise GosBuildError(f"{path}: not a gos-build layers file ({exc})") from None
    return Registry(out)


def rgb_stretch(stats: dict, layer: str = "rgb") -> tuple[list[float], list[float]]:
    """The one stretch of a dataset's colour previews (chip galleries, Parquet thumbnails): per band of ``layer``
    (rgb's R, G, B; each of s2's), the train chips' mean -/+ 2.5 std (``stats.json``'s entry, reflectance x
    10000), so colours compare across chips and classes."""
    entry = stats[layer]
    lo = [m - 2.5 * s if m is not None else 0.0 for m, s in zip(entry["mean"], entry["std"])]
    hi = [m + 2.5 * s if m is not None else 10000.0 for m, s in zip(entry["mean"], entry["std"])]
    return lo, hi


# per-tile files written by the stages, by role
TILE_FILES = {RGB.name: RGB.tile_file, "valid": "valid.tif", "labels": "labels.tif", "terrain": DEM.tile_file,
              S2: f"{S2}.tif"}  # and s2_<period>.tif
VALID_DESCRIPTION = "valid (1) / cloud, shadow, cirrus or nodata (0)"
OBSERVATIONS_DESCRIPTION = "valid Sentinel-2 observations (products) per pixel"
LABEL_DESCRIPTION = "label"

SPLITS = ("train", "val", "test")
REJECTIONS = ("unlabelled", "purity", "nodata", "cloud", "boundary")
INPUT_KINDS = ("sentinel2", "dem", "polygons")


def tile_path(tiles_dir: str | Path, tile_id: str, role: str) -> Path:
    """``<tiles_dir>/<tile_id>/<file>`` of a per-tile file (role: a key of :data:`TILE_FILES`, or a period layer)."""
    return Path(tiles_dir) / tile_id / (f"{role}.tif" if is_period(role) else TILE_FILES[role])


def has_tree(dataset: str | Path, layers=None) -> bool:
    """Whether a built dataset has its GeoTIFF tree: a folder (or a link) of one of its layers (``layers``: its
    registry, :func:`dataset_layers` by default). A dataset published without it (``publish.forms``) holds its
    chips in the packed store or the Parquet shards."""
    dataset = Path(dataset)
    return any((dataset / m).exists() or (dataset / m).is_symlink() for m in layers or dataset_layers(dataset))


def chip_path(layer: str, class_name: str, chip_id: str) -> str:
    """Relative path of one chip layer in the dataset tree: ``<layer>/<class>/<chip_id>.tif``."""
    return f"{layer}/{class_name}/{chip_id}.tif"


def parse_chip_path(rel: str) -> tuple[str, str, str]:
    """(layer, class name, chip id) of a :func:`chip_path`; ValueError if it is not one."""
    parts = rel.split("/")
    if len(parts) != 3 or not parts[2].endswith(".tif") or not _NAME_RE.fullmatch(parts[0]) or ".." in parts:
        raise ValueError(rel)
    return parts[0], parts[1], parts[2][: -len(".tif")]


def band_descriptions(layer: Layer) -> list[str]:
    """GeoTIFF band descriptions of a chip layer: the layer's name for one band; ``rgb R``, ``rgb G``, ``rgb B``;
    the band names of ``s2`` (``B02`` ...)."""
    if len(layer.bands) == 1:
        return [layer.name]
    return [f"{layer.name} {b[0].upper()}" for b in layer.bands] if layer.name == RGB.name else list(layer.bands)


# -- classes.txt and labels.txt: written and read here only ---------------------------
CLASSES_FILE = "classes.txt"
LABELS_FILE = "labels.txt"
LABELS_HEADER = "# chip_id class_id purity split x y boundary_m"

# -- what a label is: one meaning in every form (labels.txt, Croissant, packed, Parquet, STAC, the loaders) ---
CLASS_ID = "class_id"  # the class's id in classes.txt: the config's id, 1..254 (0 = unlabelled, never a chip's)
LABEL = "label"  # the class's index 0..K-1 in classes.txt's order (ascending ids): what a classifier is trained on
CLASS_ID_MEANING = "class id of classes.txt (the config's id of the class)"
LABEL_MEANING = "class index 0..K-1 in classes.txt's order (ascending class ids)"


def label_of(class_ids) -> dict[int, int]:
    """class id -> label (its 0-based index among the dataset's class ids, ascending)."""
    return {cid: i for i, cid in enumerate(sorted(class_ids))}


FOLDS_FILE = "folds.txt"  # only with split.folds
FOLDS_HEADER = "# chip_id fold"


def split_file(split: str) -> str:
    return f"{split}.txt"


def folds_text(fold_of: dict[str, int]) -> str:
    """folds.txt: a header, then ``chip_id fold`` (1..k) per chip, by id."""
    return FOLDS_HEADER + "\n" + "".join(f"{cid} {fold}\n" for cid, fold in sorted(fold_of.items()))


def read_folds(dataset: str | Path) -> dict[str, int]:
    """chip id -> fold of a dataset's folds.txt; empty when the dataset has no folds."""
    path = Path(dataset) / FOLDS_FILE
    if not path.exists():
        return {}
    out = {}
    for n, line in enumerate(_lines(path), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            cid, fold = line.split()
            out[cid] = int(fold)
        except ValueError:
            raise GosBuildError(f"{path}:{n}: malformed line '{line}'") from None
    return out


def classes_text(classes: dict[int, dict]) -> str:
    """classes.txt: ``id<TAB>name<TAB>name_zh`` per class, by id."""
    return "".join(f"{cid}\t{c['name']}\t{c.get('name_zh', '')}\n" for cid, c in sorted(classes.items()))


def labels_text(chips: list[dict]) -> str:
    """labels.txt: a header, then ``chip_id class_id purity split x y boundary_m`` per chip (x, y: south-west corner,
    m, grid CRS; boundary_m: distance from the chip to the nearest class boundary of the polygons, m, 0.01 m;
    ``-`` where unknown)."""
    lines = [LABELS_HEADER]
    lines += [f"{c['id']} {c['class_id']} {c['purity']:.4f} {c['split']} {c['x']:.0f} {c['y']:.0f} "
              f"{_metres(c.get('boundary_m'))}" for c in chips]
    return "\n".join(lines) + "\n"


def _metres(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def read_index(dataset: str | Path) -> tuple[dict[int, dict], list[dict]]:
    """(class id -> {"name", "name_zh"}, chips [{"id", "class_id", "purity", "split", "x", "y", "boundary_m"}]) of a
    dataset folder (``boundary_m`` None where the dataset does not say).

    The one reader of ``classes.txt`` and ``labels.txt``; raises GosBuildError naming the file and line.
    """
    d = Path(dataset)
    classes: dict[int, dict] = {}
    chips: list[dict] = []
    for name in (CLASSES_FILE, LABELS_FILE):
        lines = _lines(d / name)
        for n, line in enumerate(lines, start=1):
            if not line.strip() or line.startswith("#"):
                continue
            try:
                if name == CLASSES_FILE:
                    cid, cname, zh = (line.split("\t") + [""])[:3]
                    if not _NAME_RE.fullmatch(cname):  # a folder name of the tree: one plain component
                        raise ValueError(cname)
                    classes[int(cid)] = {"name": cname, "name_zh": zh}
                else:
                    fields = line.split()
                    if len(fields) == 6:  # datasets written before the boundary distance
                        fields.append("-")
                    cid, class_id, purity, split, x, y, boundary = fields
                    if not _CHIP_ID_RE.fullmatch(cid) or split not in SPLITS:
                        raise ValueError(cid)
                    chips.append({"id": cid, "class_id": int(class_id), "purity": float(purity), "split": split,
                                  "x": float(x), "y": float(y),
                                  "boundary_m": None if boundary == "-" else float(boundary)})
            except ValueError:
                raise GosBuildError(f"{d / name}:{n}: malformed line '{line[:200]}'") from None
    return classes, chips


# what the tree's path components may be (they come from files a stranger may have written): a chip id is a
# lattice id, a class name a plain folder name -- never "..", "/" or empty
_CHIP_ID_RE = re.compile(ID_PATTERN)
_NAME_RE = re.compile(r"(?!\.{1,2}$)[^/\\\x00-\x1f]{1,100}")


def _lines(path: Path) -> list[str]:
    """The lines of a dataset's text file; GosBuildError naming it when it cannot be read or is not UTF-8."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise GosBuildError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise GosBuildError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def classes_from_config(classes: dict) -> dict[int, dict]:
    """The config's ``classes`` with int ids (YAML/JSON may give them as strings)."""
    return {int(k): v for k, v in classes.items()}
