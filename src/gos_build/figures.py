"""Figures of a built dataset (PNG, matplotlib): look before you train.

* ``overview.png``: the AOI -- RGB preview, hillshade, label map with the
  class legend (English and Chinese names), and the chip lattice coloured by
  split with rejected candidates coloured by reason;
* ``gallery_<class>.png``: sample chips of one class, one row per modality;
* ``counts.png``: chips per class and split, rejections by reason;
* ``histograms.png``: per-layer value distributions by class (what separates
  the classes), from the train chips.

All read the dataset folder and ``overview_layers.tif`` (the tiles' layers
decimated by each tile's job, :func:`overview_piece`, and assembled by
:func:`overview_layers`), so memory does not grow with the AOI. Chinese names are drawn in Noto Sans CJK SC
from the ``mplfonts`` package (a dependency: the same glyphs on every machine), else in an installed font that
has them; without any, the legend falls back to English names and the log says so once.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling

from .bands import display_bands
from .errors import GosBuildError
from .grid import Grid
from .gtiff import read_files
from .layout import (DEM, HILLSHADE, RGB, chip_path, dataset_layers, has_tree, is_period, read_folds, read_index,
                     rgb_stretch)

log = logging.getLogger(__name__)

SPLIT_COLOURS = {"train": "#1b9e77", "val": "#7570b3", "test": "#d95f02"}
REASON_COLOURS = {"purity": "#bdbdbd", "cloud": "#67a9cf", "nodata": "#000000", "unlabelled": "#fddbc7",
                  "boundary": "#fdae61"}
FOLD_COLOURS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]
CLASS_COLOURS = ["#8c510a", "#c51b7d", "#2166ac", "#1a9850", "#fee08b", "#762a83", "#e08214", "#4d4d4d"]
_ZH_SAMPLE = "构造地貌火山熔岩流水"
OVERVIEW_PX = 1200  # the longer side of the overview's maps, px


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


PACKAGED_CJK_FONT = ("mplfonts", "fonts/NotoSansCJKsc-Regular.otf")  # (package, file): SIL Open Font License


def _packaged_cjk_font() -> list[str]:
    """The path of the CJK font a package ships, where that package is installed (not imported: only its file)."""
    import importlib.util

    spec = importlib.util.find_spec(PACKAGED_CJK_FONT[0])
    places = spec.submodule_search_locations if spec else None
    return [str(Path(p) / PACKAGED_CJK_FONT[1]) for p in places or [] if (Path(p) / PACKAGED_CJK_FONT[1]).is_file()]


def cjk_font() -> str | None:
    """Name of a font that has the Chinese class names' glyphs (the packaged one first, then the system's), or
    None."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    for path in _packaged_cjk_font() + sorted(font_manager.findSystemFonts()):
        try:
            ft = FT2Font(path)
        except (OSError, RuntimeError):
            continue
        if all(ft.get_char_index(ord(c)) for c in _ZH_SAMPLE):
            font_manager.fontManager.addfont(path)
            return font_manager.FontProperties(fname=path).get_name()
    return None


def _save(fig, path: Path) -> None:
    from .io import atomic_path

    with atomic_path(path) as tmp:
        # no timestamp or software version in the PNG: same data, same bytes
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    _plt().close(fig)


def _read_dataset(dataset: Path):
    """(class id -> (name, name_zh), chips) through the one index reader."""
    classes, chips = read_index(dataset)
    return {cid: (c["name"], c["name_zh"]) for cid, c in classes.items()}, chips


def _cells(grid: Grid, cells) -> tuple[np.ndarray, tuple]:
    """Chip cells painted on the overview's decimated grid (:func:`overview_factor`): an RGBA image and its
    extent (grid CRS, m). ``cells``: (x, y of the south-west corner in m, colour, alpha), later ones over
    earlier ones. An image, not a patch a chip: a province's 350 000 chips cost the figure no more memory than
    a county's."""
    from matplotlib.colors import to_rgb

    factor = overview_factor(grid)
    px, span = grid.resolution * factor, grid.chip_span
    H, W = math.ceil(grid.height / factor), math.ceil(grid.width / factor)
    img = np.zeros((H, W, 4), dtype=np.float32)
    rgb = {}
    for x, y, colour, alpha in cells:
        c0, r0 = int((x - grid.x_min) // px), int((grid.y_max - y - span) // px)
        c1 = max(c0 + 1, int(round((x + span - grid.x_min) / px)))
        r1 = max(r0 + 1, int(round((grid.y_max - y) / px)))
        img[max(r0, 0) : r1, max(c0, 0) : c1] = (*rgb.setdefault(colour, to_rgb(colour)), alpha)
    return img, (grid.x_min, grid.x_min + W * px, grid.y_max - H * px, grid.y_max)


def overview_factor(grid: Grid) -> int:
    """Decimation of the overview's maps: the longer side of the grid to ~1 200 px."""
    return max(1, math.ceil(max(grid.width, grid.height) / OVERVIEW_PX))


OVERVIEW_MAPS = (HILLSHADE.name, "labels", "observations")  # bands of overview_layers.tif (the last: median only)


def overview_piece(grid: Grid, tile, hillshade: np.ndarray, labels: np.ndarray, observations: np.ndarray | None,
                   out: str | Path, periods: dict | None = None) -> None:
    """Write a tile's piece of the overview's maps (the tile's own pixels, decimated by :func:`overview_factor`):
    float32 bands hillshade (average, DEM nodata excluded), class ids (nearest), for the median composite
    valid observations per pixel (nearest), and for each period layer (``periods``: name -> its three shown
    bands, uint16 (3, h, w), nodata 0) those bands (average, nodata excluded; ``<name> R`` ...), for
    :func:`overview_layers`."""
    from .tiles import decimate_array, write_piece

    factor = overview_factor(grid)
    nearest = np.stack([labels] if observations is None else [labels, observations])  # uint8 both, no nodata
    parts = [decimate_array(grid, tile, hillshade, DEM.nodata, factor, Resampling.average),
             decimate_array(grid, tile, nearest, None, factor)]
    names = list(OVERVIEW_MAPS[: 1 + len(nearest)])
    for name, arr in (periods or {}).items():
        parts.append(decimate_array(grid, tile, arr, 0, factor, Resampling.average))
        names += [f"{name} {c}" for c in "RGB"]
    write_piece(out, grid, tile, factor, np.concatenate(parts).astype(np.float32), None, names)


def overview_layers(grid: Grid, pieces: dict[str, str | Path], out: str | Path) -> None:
    """The overview's maps of the whole AOI decimated by :func:`overview_factor`, float32 GeoTIFF (grid CRS):
    band 1 hillshade (0-255; DEM nodata outside the tiles), band 2 class ids (0 none), band 3 (median
    composite) valid observations per pixel -- assembled from every tile's :func:`overview_piece` (tile id ->
    file), so the figures can be drawn, and redrawn, after the per-tile work is gone."""
    from .io import write_geotiff
    from .tiles import place_pieces

    factor = overview_factor(grid)
    with rasterio.open(next(iter(pieces.values()))) as ds:  # every piece has the same bands
        names = list(ds.descriptions)
    maps = place_pieces(grid, factor, pieces, [DEM.nodata] + [0] * (len(names) - 1))
    write_geotiff(out, list(maps), grid.crs, grid.transform @ rasterio.Affine.scale(factor), None, names)
    log.info("figures: overview layers %d x %d px (1:%d) -> %s", maps.shape[2], maps.shape[1], factor, out)


def overview(grid: Grid, dataset: Path, layers: Path, visual: Path, records: list[dict], out: Path,
             zh_font: str | None) -> None:
    """The AOI in panels: imagery, hillshade, labels, chips by split (and by fold); each period layer's image
    (its shown bands in ``layers``); with the median composite's band in ``layers`` (:func:`overview_layers`)
    a map of valid observations per pixel."""
    plt = _plt()
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    classes, chips = _read_dataset(dataset)
    extent = (grid.bounds[0], grid.bounds[2], grid.bounds[1], grid.bounds[3])
    folds = read_folds(dataset)
    with rasterio.open(layers) as ds:
        maps = dict(zip(ds.descriptions, ds.read()))
    observations = maps.get("observations")
    periods = sorted({d.rsplit(" ", 1)[0] for d in maps if is_period(d) and d.endswith(" R")})
    n = 4 + bool(folds) + (observations is not None) + len(periods)
    fig, axes = plt.subplots(1, n, figsize=(5.5 * n, 6))
    with rasterio.open(visual) as ds:
        f = max(1, math.ceil(max(ds.width, ds.height) / OVERVIEW_PX))
        rgb = ds.read(out_shape=(3, math.ceil(ds.height / f), math.ceil(ds.width / f)), resampling=Resampling.average)
        vext = (ds.bounds.left, ds.bounds.right, ds.bounds.bottom, ds.bounds.top)
    axes[0].imshow(np.moveaxis(rgb, 0, -1), extent=vext)
    axes[0].set_title("Sentinel-2 RGB (2-98 % stretch of the clear pixels)")
    hs = maps[HILLSHADE.name]
    axes[1].imshow(np.ma.masked_equal(hs, HILLSHADE.nodata), cmap="gray", extent=extent, vmin=0, vmax=255)
    axes[1].set_title(f"{HILLSHADE.name} (315°, 45°)")
    lab = maps["labels"]
    ids = sorted(classes)
    cmap = ListedColormap(["#ffffff"] + [CLASS_COLOURS[i % len(CLASS_COLOURS)] for i in range(len(ids))])
    index = np.zeros(lab.shape, dtype=np.int32)
    for k, cid in enumerate(ids, start=1):
        index[lab == cid] = k
    axes[2].imshow(index, cmap=cmap, vmin=0, vmax=len(ids), extent=extent, interpolation="nearest")
    handles = [Patch(color=CLASS_COLOURS[k % len(CLASS_COLOURS)],
                     label=f"{cid} {classes[cid][0]}" + (f" {classes[cid][1]}" if zh_font and classes[cid][1] else ""))
               for k, cid in enumerate(ids)]
    legend = axes[2].legend(handles=handles + [_aoi_handle()], loc="lower left", fontsize=9, framealpha=0.9)
    if zh_font:
        for text in legend.get_texts():
            text.set_fontfamily(zh_font)
    axes[2].set_title("labels (interpretation polygons)")
    ax = axes[3]
    ax.imshow(np.ma.masked_equal(hs, HILLSHADE.nodata), cmap="gray", extent=extent, vmin=0, vmax=255, alpha=0.5)
    img, cext = _cells(grid, [(c["x"], c["y"], SPLIT_COLOURS[c["split"]], 0.75) for c in chips]
                       + [(x, y, REASON_COLOURS.get(reason, "#ff00ff"), 0.8) for doc in records
                          for x, y, reason in doc.get("rejected_cells", [])])
    ax.imshow(img, extent=cext, interpolation="nearest")
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.legend(handles=[Patch(color=v, label=k) for k, v in SPLIT_COLOURS.items()]
              + [Patch(color=v, label=f"rejected: {k}") for k, v in REASON_COLOURS.items()] + [_aoi_handle()],
              loc="lower left", fontsize=8, framealpha=0.9)
    ax.set_title("chips by split; rejected candidates by reason")
    if folds:  # spatial cross-validation folds, whole blocks
        ax = axes[4]
        ax.imshow(np.ma.masked_equal(hs, HILLSHADE.nodata), cmap="gray", extent=extent, vmin=0, vmax=255, alpha=0.5)
        k = max(folds.values())
        colours = [FOLD_COLOURS[i % len(FOLD_COLOURS)] for i in range(k)]
        img, cext = _cells(grid, [(c["x"], c["y"], colours[folds[c["id"]] - 1], 0.8) for c in chips])
        ax.imshow(img, extent=cext, interpolation="nearest")
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax.legend(handles=[Patch(color=colours[i], label=f"fold {i + 1}") for i in range(k)], loc="lower left",
                  fontsize=8, framealpha=0.9)
        ax.set_title(f"chips by spatial fold ({k} folds)")
    for k, name in enumerate(periods):  # each period's image: its clear observations, 2-98 % stretch
        img = np.stack([maps[f"{name} {c}"] for c in "RGB"])
        have = (img > 0).all(axis=0)
        shown = np.zeros(img.shape[1:] + (4,))
        if have.any():
            for b in range(3):
                lo, hi = np.percentile(img[b][have], [2, 98])
                shown[..., b] = np.clip((img[b] - lo) / max(hi - lo, 1.0), 0, 1)
        shown[..., 3] = have  # no clear observation: transparent
        ax = axes[4 + bool(folds) + k]
        ax.imshow(shown, extent=extent)
        ax.set_title(f"{name} ({100 * (~have).mean():.1f} % without a clear observation)")
    if observations is not None:  # the median composite: how many valid observations each pixel's median had
        from matplotlib.colors import BoundaryNorm

        obs = observations
        top = max(1, int(obs.max()))
        cmap = plt.get_cmap("viridis", top + 1)
        im = axes[-1].imshow(obs, cmap=cmap, norm=BoundaryNorm(np.arange(-0.5, top + 1.5), top + 1), extent=extent,
                             interpolation="nearest")
        fig.colorbar(im, ax=axes[-1], ticks=range(top + 1), fraction=0.046, pad=0.02)
        axes[-1].set_title(f"valid Sentinel-2 observations per pixel (median; {100 * (obs == 0).mean():.1f} % none)")
    for i, a in enumerate(axes):
        for part in getattr(grid.aoi, "geoms", [grid.aoi]):
            a.plot(*part.exterior.xy, color=AOI_COLOUR, lw=0.8)
        _coordinates(a, grid, labels=i == 0)
    _scale_bar(axes[0], extent[1] - extent[0])
    fig.suptitle(f"AOI overview ({grid.crs}, {grid.width} x {grid.height} px at {grid.resolution:g} m)")
    fig.tight_layout()
    _save(fig, out)


AOI_COLOUR = "red"


def _aoi_handle():
    """The legend entry of the AOI's outline drawn on every map."""
    from matplotlib.lines import Line2D

    return Line2D([], [], color=AOI_COLOUR, lw=0.8, label="AOI outline")


def _coordinates(ax, grid: Grid, labels: bool) -> None:
    """Grid coordinates on a map's frame, km of the grid CRS (eastings, northings); the axis names on one map."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(4))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:g}"))
    ax.tick_params(labelsize=7)
    if labels:
        ax.set_xlabel(f"easting, km ({grid.crs})", fontsize=8)
        ax.set_ylabel("northing, km", fontsize=8)


def nice_length(span_m: float) -> float:
    """A round length for a scale bar about a fifth of ``span_m`` (m): 1, 2 or 5 x 10^k m."""
    target = max(span_m / 5, 1e-9)
    base = 10 ** math.floor(math.log10(target))
    return max(m * base for m in (1, 2, 5) if m * base <= target)


def _scale_bar(ax, span_m: float) -> None:
    """A scale bar in the map's lower right corner."""
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    length = nice_length(span_m)
    text = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    ax.add_artist(AnchoredSizeBar(ax.transData, length, text, "lower right", pad=0.4, color="black", frameon=True,
                                  size_vertical=span_m / 150, fontproperties={"size": 8}))


class ChipArrays:
    """A layer of chips by id, from whichever form the dataset has: the tree's GeoTIFFs, else the Parquet
    shards' bytes, else the packed store (a dataset published without the tree)."""

    def __init__(self, dataset: Path, chips: list[dict]):
        self.dataset, self.chips = dataset, chips
        self.tree = has_tree(dataset)
        self._parquet = self._packed = None
        self._chunk = (None, None)  # the last chunk of the store read: (split, layer, k), its arrays

    def read(self, layer: str, class_name: str, ids: list[str]):
        """(N, bands, H, W) of ``ids`` (an empty list for none) (chips of the class ``class_name``) in ``layer``."""
        from .gtiff import read_arrays
        from .readers import PACKED, PARQUET_INDEX, PackedReader, ParquetReader

        if not ids:
            return []
        if self.tree:
            return read_files([self.dataset / chip_path(layer, class_name, cid) for cid in ids])
        if (self.dataset / PARQUET_INDEX).is_file():
            self._parquet = self._parquet or ParquetReader(self.dataset)
            return read_arrays([self._parquet.layers(cid)[layer] for cid in ids])
        if (self.dataset / PACKED).is_dir():
            if self._packed is None:  # chip id -> (split, its index), the store's rows in labels.txt's order
                count, where = {}, {}
                for c in self.chips:
                    where[c["id"]] = (c["split"], count.setdefault(c["split"], 0))
                    count[c["split"]] += 1
                self._packed = (PackedReader(self.dataset), where, count)
            reader, where, count = self._packed
            out = []
            for cid in ids:  # ids in order: chips of one chunk follow each other, the chunk decoded once
                split, i = where[cid]
                per = reader.meta(split, layer, count[split])["chunks"][0]
                key = (split, layer, i // per)
                if self._chunk[0] != key:
                    self._chunk = (key, reader.chunk(split, layer, count[split], i // per))
                out.append(self._chunk[1][i % per])
            return np.stack(out)
        raise GosBuildError(f"{self.dataset}: no form holds the chips' pixels (tree, parquet/ or packed/)")


def gallery(dataset: Path, class_id: int, out: Path, per_class: int = 6, seed: int = 0) -> None:
    """One column per sample chip of the class, one row per modality (one axes, the chips placed in it:
    a grid of 54 axes costs a second more to build than to draw); each row in one colour scale, its colour bar
    with the layer's units at the right."""
    plt = _plt()
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    classes, chips = _read_dataset(dataset)
    name = classes[class_id][0]
    mine = sorted(c["id"] for c in chips if c["class_id"] == class_id)
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(mine, size=min(per_class, len(mine)), replace=False)) if mine else []
    # one stretch for every chip (mean +- 2.5 std of the train chips): colours comparable across classes
    stats = json.loads((dataset / "stats.json").read_text(encoding="utf-8"))
    layers = dataset_layers(dataset)
    # the colour layers, three bands each as red, green, blue: rgb's own, s2's false colour (NIR, red, green)
    shown = {m: (0, 1, 2) if m == RGB.name else display_bands(layer.bands) for m, layer in layers.items()
             if len(layer.bands) > 1}
    stretch = {m: [np.array(v)[list(idx)].reshape(1, 1, 3) for v in rgb_stretch(stats, m)] for m, idx in shown.items()}
    categorical = [layer for layer in layers.values() if layer.classes]
    cols, rows = max(1, len(pick)), len(layers)
    bar = 1.1  # inches right of the chips: a colour bar and its units
    width, height = 1.7 * cols + 1 + bar, 1.7 * rows + 0.6  # inches: a chip 1.7, room for the names and the title
    width += 1.6 if categorical else 0  # room for the legend of the categorical layers (geomorphons)
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((0.6 / width, 0.1 / height, 1.7 * cols / width, 1.7 * rows / height))
    gap = 0.06  # between chips, in chip widths
    chip_arrays = ChipArrays(dataset, chips)
    by_layer = {m: chip_arrays.read(m, name, pick) for m in layers}
    arrays = [{m: by_layer[m][i].astype(np.float64) for m in layers} for i in range(len(pick))]
    for i, m in enumerate(layers):
        layer = layers[m]
        if m not in shown:
            masked = [np.ma.masked_equal(a[m][0], layer.nodata) for a in arrays]
            style = layer_style(layer, np.ma.concatenate([v.ravel() for v in masked]) if masked else None)
        for j, a in enumerate(arrays):
            extent = (j, j + 1 - gap, -i - 1 + gap, -i)
            if m in shown:
                lo, hi = stretch[m]
                ax.imshow(np.clip((np.moveaxis(a[m][list(shown[m])], 0, -1) - lo) / np.maximum(hi - lo, 1), 0, 1),
                          extent=extent)
            else:
                ax.imshow(masked[j], extent=extent, **style)
        label = m if m == RGB.name or m not in shown else f"{m} ({' '.join(layer.bands[k] for k in shown[m])})"
        ax.text(-gap, -i - (1 - gap) / 2, label, ha="right", va="center", rotation=90, fontsize=9)
        if not arrays:  # a class without chips: no scale to show
            continue
        # the row's scale, at the right of the chips (inches from the figure's bottom-left corner)
        y0 = 0.1 + 1.7 * (rows - i - 1) + 1.7 * gap
        cax = fig.add_axes(((0.6 + 1.7 * cols + 0.08) / width, y0 / height, 0.12 / width, 1.7 * (1 - gap) / height))
        if m in shown or layer.classes:
            cax.axis("off")
            cax.text(0, 0.5, f"{layer.stored_units}\n(one stretch:\ntrain mean\n± 2.5 sd)" if m in shown
                     else "classes:\nlegend", fontsize=7, va="center", ha="left", transform=cax.transAxes)
            continue
        bar_ = fig.colorbar(ScalarMappable(Normalize(style["vmin"], style["vmax"]), style["cmap"]), cax=cax)
        bar_.ax.tick_params(labelsize=7)
        bar_.set_label(layer.units_text(), fontsize=7)
    for j, cid in enumerate(pick):
        ax.text(j + (1 - gap) / 2, gap / 2, cid, ha="center", va="bottom", fontsize=7)
    ax.set_xlim(0, cols - gap)
    ax.set_ylim(-rows, 0)
    ax.set_aspect("equal")
    ax.axis("off")
    for layer in categorical:
        class_legend(fig, layer, loc="center right")
    fig.suptitle(f"class {class_id} {name}: {len(mine)} chips, {len(pick)} shown", y=1 - 0.05 / height, va="top")
    _save(fig, out)


DIVERGING = ("RdBu", "RdBu_r")  # colour maps of signed layers: centred on 0 when the registry fixes no range


def layer_style(layer, values=None) -> dict:
    """``imshow`` keywords of a single-band layer: a categorical layer (geomorphons) in its classes' own
    colours, one colour a class value; any other in its registry colour map and fixed range, if any; a
    diverging map (:data:`DIVERGING`) without one centred on 0, +- the 98th percentile of the magnitude of
    ``values``; any other without one from the 2nd to the 98th percentile of ``values`` (``vmin``/``vmax``
    None without values: matplotlib's own range)."""
    if layer.classes:
        from matplotlib.colors import BoundaryNorm, ListedColormap

        values = [v for v, _, _ in layer.classes]
        cmap = ListedColormap([c for _, _, c in layer.classes])
        edges = [values[0] - 0.5] + [v + 0.5 for v in values]
        return {"cmap": cmap, "norm": BoundaryNorm(edges, len(values)), "interpolation": "nearest"}
    cmap, lim = layer.display
    if lim is None and values is not None and np.ma.count(values):
        valid = np.ma.compressed(values)
        if cmap in DIVERGING:
            top = float(np.percentile(np.abs(valid), 98)) or 1.0
            lim = (-top, top)
        else:
            low, high = (float(v) for v in np.percentile(valid, [2, 98]))
            lim = (low, high if high > low else low + 1.0)
    return {"cmap": cmap, "vmin": lim[0] if lim else None, "vmax": lim[1] if lim else None}


def class_legend(fig, layer, loc: str = "center right") -> None:
    """A legend of a categorical layer's classes (value, name, colour) at the figure's edge."""
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=c, edgecolor="k", lw=0.3, label=f"{v} {n}") for v, n, c in layer.classes]
    fig.legend(handles=handles, loc=loc, fontsize=7, title=layer.name, title_fontsize=8, frameon=False)


def counts(dataset: Path, records: list[dict], out: Path) -> None:
    plt = _plt()
    classes, chips = _read_dataset(dataset)
    rejected: dict[str, int] = {}
    for doc in records:  # the tile records: rejections by first failing test
        for k, v in doc["rejected"].items():
            rejected[k] = rejected.get(k, 0) + v
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    ids = sorted(classes)
    x = np.arange(len(ids))
    bottom = np.zeros(len(ids))
    for s, colour in SPLIT_COLOURS.items():
        vals = np.array([sum(1 for c in chips if c["class_id"] == cid and c["split"] == s) for cid in ids])
        axes[0].bar(x, vals, bottom=bottom, color=colour, label=s)
        for xi, (b, v) in enumerate(zip(bottom, vals)):
            if v:
                axes[0].text(xi, b + v / 2, str(v), ha="center", va="center", fontsize=8, color="white")
        bottom += vals
    axes[0].set_xticks(x, [classes[c][0] for c in ids])
    axes[0].set_ylabel("chips")
    axes[0].legend()
    axes[0].set_title("chips per class and split")
    keys = sorted(rejected)
    axes[1].bar(keys, [rejected[k] for k in keys], color=[REASON_COLOURS.get(k, "#999") for k in keys], edgecolor="k")
    for i, k in enumerate(keys):
        axes[1].text(i, rejected[k], str(rejected[k]), ha="center", va="bottom", fontsize=8)
    axes[1].set_title("rejected candidates, by first failing test")
    fig.tight_layout()
    _save(fig, out)


def histograms(dataset: Path, out: Path, per_class: int = 200, seed: int = 0) -> None:
    """Value distributions of every layer by class, over (up to ``per_class``) train chips per class."""
    plt = _plt()
    classes, chips = _read_dataset(dataset)
    rng = np.random.default_rng(seed)
    registry = dataset_layers(dataset)
    layers = [f"{m}:{b}" if len(layer.bands) > 1 else m for m, layer in registry.items() for b in layer.bands]
    values = {cid: {ly: [] for ly in layers} for cid in classes}
    chip_arrays = ChipArrays(dataset, chips)
    for cid in classes:
        ids = sorted(c["id"] for c in chips if c["class_id"] == cid and c["split"] == "train")
        if len(ids) > per_class:
            ids = sorted(rng.choice(ids, size=per_class, replace=False))
        for m, layer in registry.items():  # a layer's chips of the class, decoded together
            arrs = chip_arrays.read(m, classes[cid][0], ids) if ids else []
            nodata = layer.nodata
            for a in arrs:
                a = a.astype(np.float64)
                for b in range(a.shape[0]):
                    key = f"{m}:{layer.bands[b]}" if len(layer.bands) > 1 else m
                    v = a[b].ravel()
                    values[cid][key].append(v[v != nodata][::4])
    rows = max(3, -(-len(layers) // 4))
    fig, axes = plt.subplots(rows, 4, figsize=(18, 11 * rows / 3))
    for ax, ly in zip(axes.flat, layers):
        allv = [np.concatenate(values[c][ly]) for c in classes if values[c][ly]]
        if not allv:
            continue
        kinds = registry[ly.split(":")[0]].classes
        if kinds:  # a categorical layer: one bin a class, labelled
            bins = np.arange(kinds[0][0] - 0.5, kinds[-1][0] + 1.0)
            ax.set_xticks([v for v, _, _ in kinds], [n for _, n, _ in kinds], rotation=90, fontsize=7)
        else:
            lo, hi = np.percentile(np.concatenate(allv), [0.5, 99.5])
            bins = np.linspace(lo, hi if hi > lo else lo + 1, 60)
        for k, cid in enumerate(sorted(classes)):
            if values[cid][ly]:
                ax.hist(np.concatenate(values[cid][ly]), bins=bins, density=True, histtype="step", lw=1.5,
                        color=CLASS_COLOURS[k % len(CLASS_COLOURS)], label=classes[cid][0])
        ax.set_title(ly)
        ax.set_yticks([])
        layer = registry[ly.split(":")[0]]
        ax.set_xlabel("class" if kinds else "dimensionless" if layer.stored_units == "1" else layer.stored_units,
                      fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("density (share of pixels per unit)", fontsize=8)
    axes.flat[0].legend()
    for ax in list(axes.flat)[len(layers):]:
        ax.axis("off")
    fig.suptitle("per-layer value distributions by class (train chips)")
    fig.tight_layout(rect=(0, 0, 1, 0.97))  # the title above the panels, not over them
    _save(fig, out)


def make_figures(grid: Grid, dataset: str | Path, layers: str | Path, visual: str | Path, shard_jsons,
                 out_dir: str | Path) -> list[Path]:
    """Every figure into ``out_dir``; ``layers``: overview_layers.tif (:func:`overview_layers`)."""
    dataset, layers, out_dir = Path(dataset), Path(layers), Path(out_dir)
    zh = cjk_font()
    if zh is None:
        log.warning("figures: no font with Chinese glyphs (the %s package, a dependency of gos-build, is not "
                    "installed, nor a system CJK font): class names in English only", PACKAGED_CJK_FONT[0])
    classes, _ = _read_dataset(dataset)
    made = []
    # the tiles' records (chips.json), read once: rejected cells for the overview, counts for the bars -- not
    # their kept chips' statistics (~6 kB a chip parsed: a province's would be gigabytes), dropped as each is read
    records = [{k: v for k, v in json.loads(Path(s).read_text(encoding="utf-8")).items() if k != "chips"}
               for s in shard_jsons]
    steps = [("overview.png", lambda p: overview(grid, dataset, layers, Path(visual), records, p, zh)),
             ("counts.png", lambda p: counts(dataset, records, p)),
             ("histograms.png", lambda p: histograms(dataset, p))]
    steps += [(f"gallery_{classes[cid][0]}.png", lambda p, cid=cid: gallery(dataset, cid, p)) for cid in sorted(classes)]
    for i, (name, fn) in enumerate(steps, start=1):
        fn(out_dir / name)
        made.append(out_dir / name)
        log.info("figures: %d/%d %s", i, len(steps), out_dir / name)
    return made
