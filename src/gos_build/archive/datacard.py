"""datacard.md: what a dataset is made of -- inputs, config, software, counts -- in one readable page."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import yaml

from ..config import CHUNK_CHIPS, published_forms
from ..layout import (CLASS_ID, CLASS_ID_MEANING, DEM, GOS10M, LABEL, LABEL_MEANING, LAYERS_FILE, S2, SPLITS,
                      Registry, period_names)


def versions() -> dict[str, str]:
    """Versions of the software that shaped the bytes (GDAL through rasterio)."""
    import rasterio

    out = {}
    for dist in ("gos-build", "numpy", "scipy", "rasterio", "richdem2", "shapely", "pyproj", "pyogrio",
                 "geopandas", "snakemake"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    out["GDAL (rasterio)"] = rasterio.__gdal_version__
    return out


def write_datacard(path: str | Path, classes: dict, summary: dict, stats: dict, prov: dict,
                   layers: Registry = GOS10M) -> None:
    cfg = prov.get("config", {})
    aoi = cfg.get("aoi", {})
    grid = prov.get("grid", {})
    inv = prov.get("sentinel2", {})
    dem = prov.get("dem", {})
    lab = prov.get("labels", {})
    out = [f"# Dataset card: {aoi.get('name', '?')}", ""]
    out += ["GOS10m-style multimodal geomorphology scene-classification chips, built by gos-build "
            f"{versions()['gos-build']}: {grid.get('chip_size', 64)} x {grid.get('chip_size', 64)} px chips at "
            f"{grid.get('resolution', 10):g} m, one genesis class per chip, {len(layers)} co-registered layers "
            f"({', '.join(layers)}).", ""]
    if summary.get("warnings"):
        out += ["## Warnings", "", "Where this dataset is too thin for what its users will do with it (the build's "
                "log says the same):", ""] + [f"- {w}" for w in summary["warnings"]] + [""]
    out += ["## Area", "",
            f"- AOI: {'bbox ' + str(aoi['bbox']) if 'bbox' in aoi else 'geometry ' + str(aoi.get('geometry'))} (WGS84)",
            f"- Grid: {grid.get('crs')}, {grid.get('width')} x {grid.get('height')} px, origin "
            f"({grid.get('x_min')}, {grid.get('y_max')}), {len(grid.get('tiles', []))} processing tiles", ""]
    out += ["## Chips per class and split", "", "| id | class | 名称 | " + " | ".join(SPLITS) + " | total |",
            "|---:|---|---|" + "---:|" * (len(SPLITS) + 1)]
    totals = {s: 0 for s in SPLITS}
    for cid, c in sorted(classes.items()):
        row = summary["counts"][str(cid)]
        out.append(f"| {cid} | {c['name']} | {c.get('name_zh', '')} | " + " | ".join(str(row[s]) for s in SPLITS)
                   + f" | {sum(row.values())} |")
        for s in SPLITS:
            totals[s] += row[s]
    out.append("| | **all** | | " + " | ".join(f"**{totals[s]}**" for s in SPLITS) + f" | **{sum(totals.values())}** |")
    split = cfg.get("split", {})
    out += ["", f"Split: `{split.get('method')}`"
            + (f", blocks of {split.get('block_chips')} x {split.get('block_chips')} chips, buffer "
               f"{split.get('buffer_chips', 0)} chip(s)" if str(split.get("method")).startswith("block") else "")
            + f", seed {split.get('seed')}, target ratios {_pairs({s: (split.get('ratios') or {}).get(s) for s in SPLITS})}.", ""]
    out += _balance_section(classes, summary.get("balance", {}), split)
    out += _loading_section(published_forms(cfg))
    out += ["## Candidates and rejections", "",
            f"- Candidate cells (chip fully inside the AOI): {summary['candidates']}; cells partly outside: "
            f"{summary['partial_aoi']}",
            "- Rejected, by first failing test: "
            + ", ".join(f"{k}: {v}" for k, v in summary["rejected"].items()),
            f"- Kept: {summary['kept']}; dropped by the split buffer: {summary['dropped_by_buffer']}; "
            f"in the dataset: {summary['in_dataset']}",
            f"- Filters: {_pairs(cfg.get('chips'))}", ""]
    out += ["## Figures", "", "Written next to the dataset by the `figures` rule (and in `snakemake --report`):", "",
            "- [AOI overview: imagery, hillshade, labels, chips by split](../figures/overview.png)",
            "- [chips per class and split, rejections](../figures/counts.png)",
            "- [per-layer histograms by class](../figures/histograms.png)"]
    out += [f"- [gallery: {c['name']}](../figures/gallery_{c['name']}.png)" for _, c in sorted(classes.items())]
    out += ["", "## Inputs", ""]
    if cfg.get("demo"):
        out += [f"The inputs are synthetic, written by `gos-build demo-inputs` ({_pairs(cfg['demo'])}): real formats "
                "over a generated landscape, not observations.", ""]
    out += ["### Sentinel-2", ""]
    for p in inv.get("products", []):
        form = p.get("format") or "?"
        if p.get("processor_version"):
            form += f", processor {p['processor_version']}"
        when = f", sensed {p['datetime'][:19]}" if p.get("datetime") else ""
        out.append(f"- `{p['name']}` ({form}{when}): {p['level']}, processing baseline {p['baseline']}, cloud "
                   f"{p['cloud_percent']} %, reflectance = {_radiometry(p['offsets']['B04'], p['quantification'])}, "
                   f"{_count(len(p['granules']), 'granule')}" + _content(p))
    out += ["", _composite_line(inv, prov.get("sentinel2_observations"))]
    out += _period_lines(inv, prov.get("sentinel2_periods") or {})
    out += _stac_lines(inv.get("stac"))
    out += ["", f"Invalid SCL classes: {inv.get('invalid_scl')}", "", "### DEM", ""]
    for f in dem.get("files", []):
        out.append(f"- `{f.get('name', '?')}`" + _content(f))
    out += _stac_lines(dem.get("stac"))
    if dem:
        out += ["", f"Mosaic CRS {dem.get('crs')}, resolution {dem.get('resolution')}; voids filled by inverse "
                "distance (<= 64 source px); resampled with "
                f"{cfg.get('terrain', {}).get('resampling', 'cubic')} onto the grid."]
    out += ["", "### Interpretation polygons", ""]
    if lab:
        src = lab.get("source_file") or {}
        out.append(f"- `{src.get('name', '?')}`{_content(src)} (layer `{lab.get('layer')}`, {lab.get('source_crs')}), field "
                   f"`{lab.get('class_field')}`: {_count(lab.get('features_read'), 'feature')}, {lab.get('repaired')} repaired, "
                   f"skipped: {_pairs(lab.get('skipped'))}, overlap rule `{lab.get('overlap_rule')}`")
        for cid, c in sorted(lab.get("classes", {}).items(), key=lambda kv: int(kv[0])):
            out.append(f"  - class {cid} {c['name']}: {_count(c['features'], 'polygon')}, {c['area_in_aoi_m2'] / 1e6:.2f} km² "
                       f"in the AOI, {c.get('pixels', '?')} labelled pixels")
    out += ["", "## Layer statistics (train chips)", "", "| layer | units | mean | std | min | max |",
            "|---|---|---|---|---|---|"]
    for layer, st in stats.items():
        def fmt(vals):
            return ", ".join("-" if v is None else f"{v:.4g}" for v in vals)
        named = f"{layer} ({' '.join(st['bands'])})" if layer == S2 else layer  # which value is which band
        out.append(f"| {named} | {st['units']} | {fmt(st['mean'])} | {fmt(st['std'])} | {fmt(st['min'])} | "
                   f"{fmt(st['max'])} |")
    out += ["", "## Layers", "",
            "A stored value v means v x scale + offset in the layer's unit (1: dimensionless); every form says the "
            "same: the chip GeoTIFFs' band metadata (GDAL's scale, offset and unit type), the STAC items' "
            "`raster:bands`, the packed store's attributes (CF's `scale_factor`, `add_offset`, `units`) and "
            "Croissant's field descriptions."
            + (f" The layers beyond GOS10m's nine are listed in `{LAYERS_FILE}` (name, bands, dtype, units, nodata, "
               "definition) for the readers of the dataset." if layers.extra else "")
            + (" The extra terrain layers are computed on the 10 m grid from the same DEM as the seven GOS10m "
               "parameters." if any(ly.tile_file == DEM.tile_file for ly in layers.extra) else "")
            + (f" `{S2}` holds the Sentinel-2 bands {', '.join(layers[S2].bands)} (config `sentinel2.bands`), in that "
               "order, from the same products and composite as `rgb`: reflectance = (DN + the product's offset for "
               "the band) / quantification, x 10000; 20 m and 60 m bands interpolated bilinearly onto the 10 m grid "
               "from their own pixels (over the clear ones where the pixel is clear); nodata 0 per band. "
               "`chips.max_nodata` holds for it too (a pixel counts as nodata when any band is 0)."
               if S2 in layers else "")
            + (f" {', '.join(f'`{m}`' for m in period_names(layers))}: one layer per period of "
               "`sentinel2.periods` (its range in the layer's definition below), the composite of the products "
               "sensed in it (listed under Sentinel-2), clear observations only: a pixel without one is nodata (0), "
               "and a chip is kept only where each period's share of such pixels is at most "
               "`chips.max_period_nodata` (default `chips.max_nodata`)." if period_names(layers) else ""), "",
            "| layer | dtype | stored | scale | offset | unit | nodata | definition |",
            "|---|---|---|---:|---:|---|---:|---|"]
    for layer in layers.values():
        out.append(f"| {layer.name} | {layer.dtype} | {layer.stored_units} | {layer.scale:g} | {layer.offset:g} | "
                   f"{layer.units} | {layer.nodata:g} | {layer.description} |")
        if layer.classes:
            out.append("| | | | | | | | classes: " + ", ".join(f"{v} {n}" for v, n, _ in layer.classes) + " |")
    out += ["", "## Software", ""] + [f"- {k} {v}" for k, v in versions().items()]
    out += ["", "## Config", "",
            "As given, with each local input named by its content (file name, bytes, sha256) instead of the globs "
            "and folders of the machine that built it:", "",
            "```yaml", yaml.safe_dump(published_config(cfg, prov), allow_unicode=True, sort_keys=False).rstrip(), "```",
            "", "## Licence", "",
            _licence(cfg), ""]
    Path(path).write_text("\n".join(out), encoding="utf-8")


def _pairs(mapping) -> str:
    """``key value, key value`` of a config section, as a person writes it (not a Python dict)."""
    if not isinstance(mapping, dict) or not mapping:
        return "none"
    def word(v):
        if isinstance(v, float):
            return f"{v:g}"
        if isinstance(v, (list, tuple)):
            return " ".join(str(x) for x in v)
        return str(v)

    return ", ".join(f"{k} {word(v)}" for k, v in mapping.items())


def _count(n, noun: str) -> str:
    """``1 polygon``, ``2 polygons``; ``?`` when unknown."""
    if not isinstance(n, int):
        return f"? {noun}s"
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _radiometry(offset: float, quantification: float) -> str:
    """Reflectance from a DN, with the offset's own sign: ``(DN - 1000) / 10000``, or ``DN / 10000``."""
    if not offset:
        return f"DN / {quantification:g}"
    return f"(DN {'-' if offset < 0 else '+'} {abs(offset):g}) / {quantification:g}"


def _licence(cfg: dict) -> str:
    """The attribution the inputs call for: the demo's synthetic inputs contain no Copernicus or SRTM data."""
    if cfg.get("demo"):
        return ("The inputs are synthetic (written by gos-build demo-inputs in the formats of Sentinel-2, SRTM "
                "and a map): the dataset contains no Copernicus Sentinel or SRTM data. GOS10m itself is CC BY 4.0 "
                "(Ouyang & Chen, 2024).")
    return ("Contains modified Copernicus Sentinel data; SRTM courtesy of NASA/USGS (public domain); the "
            "interpretation polygons are the mapper's. GOS10m itself is CC BY 4.0 (Ouyang & Chen, 2024).")


def _composite_line(inv: dict, obs: dict | None) -> str:
    """How the products were composited, and -- for the median -- how many observations each pixel had."""
    n = len(inv.get("rgb", inv.get("products", [])))  # rgb's products (with STAC periods, not the periods' own)
    if inv.get("composite", "mosaic") != "median":
        return (f"Composite: mosaic of {n} product(s): per pixel the least cloudy product with a valid "
                "observation (else the least cloudy with data, marked invalid).")
    line = f"Composite: per pixel and band the median of the valid observations of {n} product(s)"
    if obs and obs.get("pixels"):
        shares, text = _by_count(obs)
        line += (f"; valid observations per pixel: mean {obs['mean']:g}, {text}"
                 f"; {obs['none']} px ({100 * shares.get('0', 0.0):.2f} %) had none and are nodata")
    return line + "."


def _by_count(obs: dict) -> tuple[dict, str]:
    """The share of pixels by number of observations (:func:`gos_build.sentinel2.observation_summary`), and in
    words (``0: 0.7 %, 1: 17.6 %, 2: 81.8 %``)."""
    shares = {k: v / obs["pixels"] for k, v in obs["pixels_by_count"].items()}
    return shares, ", ".join(f"{k}: {100 * v:.1f} %" for k, v in shares.items())


def _period_lines(inv: dict, observed: dict) -> list[str]:
    """One line per period of ``sentinel2.periods``: its range, its products, and how many clear observations its
    layer had per pixel (a pixel with none is nodata in ``s2_<period>``)."""
    out = []
    products = inv.get("products", [])
    for name, spec in (inv.get("periods") or {}).items():
        names = ", ".join(f"`{products[i]['name']}` ({(products[i].get('datetime') or '?')[:10]})"
                          for i in spec["products"])
        line = (f"- Period `{name}` ({spec['datetime']}, layer `s2_{name}`, {inv.get('composite', 'mosaic')}): "
                f"{_count(len(spec['products']), 'product')}: {names}")
        obs = observed.get(name)
        if obs and obs.get("pixels"):
            shares, text = _by_count(obs)
            line += (f"; clear observations per pixel: {text} (mean {obs['mean']:g}); "
                     f"{100 * shares.get('0', 0.0):.2f} % of the pixels had none (nodata in the layer)")
        out.append(line + ".")
    return ([""] + out) if out else []


def _content(facts: dict) -> str:
    """`` (N bytes, sha256 H)`` of an input where its content is known (local inputs), else nothing."""
    if not facts.get("sha256"):
        return ""
    return f" ({facts['bytes']} bytes, sha256 `{facts['sha256']}`)"


def published_config(cfg: dict, prov: dict) -> dict:
    """The config as the datacard shows it: local inputs (globs, paths) replaced by what they matched, named by
    content -- a reader can check their own copies, and no folder of the builder's machine is published; how the
    work was shared out (``publish.group_tiles``, like the cores) left out: the files do not depend on it; the
    packed store's chunk (``publish.chunk_chips``) only where it is not the default 16 (as before the key was)."""
    import copy

    from ..inputs import identity
    from ..inputs.stac import is_stac

    out = copy.deepcopy(cfg)
    inputs = out.get("inputs", {})
    s2 = prov.get("sentinel2", {})
    if "sentinel2" in inputs and not is_stac(inputs["sentinel2"]):
        inputs["sentinel2"] = [{"name": p.get("file", p["name"]), "bytes": p.get("bytes"), "sha256": p.get("sha256")}
                               for p in s2.get("products", [])]
    if "dem" in inputs and not is_stac(inputs["dem"]):
        inputs["dem"] = [identity(f) for f in prov.get("dem", {}).get("files", [])]
    if "polygons" in inputs:
        inputs["polygons"] = identity((prov.get("labels") or {}).get("source_file") or
                                      {"name": Path(str(inputs["polygons"])).name})
    publish = out.get("publish") or {}
    publish.pop("group_tiles", None)
    if publish.get("chunk_chips") == CHUNK_CHIPS:  # shown where set otherwise: the store's own .zarray says it too
        publish.pop("chunk_chips")
    aoi = out.get("aoi", {})
    if isinstance(aoi.get("geometry"), str):
        aoi["geometry"] = Path(aoi["geometry"]).name
    demo = out.get("demo")
    if isinstance(demo, dict) and isinstance(demo.get("out"), str) and Path(demo["out"]).is_absolute():
        demo["out"] = Path(demo["out"]).name
    return out


def _balance_section(classes: dict, balance: dict, split: dict) -> list[str]:
    """Each class's share of every split (and fold) next to its share of all chips; classes missing somewhere."""
    out = []
    for key, title in (("splits", "Class shares per split"), ("folds", "Class shares per spatial fold")):
        bal = balance.get(key)
        if not bal:
            continue
        groups = list(next(iter(bal.values()))["share_in"])
        names = [f"fold {g}" if key == "folds" else g for g in groups]
        out += [f"### {title}", "", "Share of each class among the chips of a group, against its share of all chips "
                "(block strategies keep whole blocks together, so small classes may miss a group).", "",
                "| class | chips | blocks | all | " + " | ".join(names) + " |", "|---|---:|---:|---:|" + "---:|" * len(groups)]
        absent = []
        for cid, b in sorted(bal.items(), key=lambda kv: int(kv[0])):
            name = classes.get(int(cid), {}).get("name", str(cid))
            out.append(f"| {name} | {b['chips']} | {b['blocks']} | {100 * b['share']:.1f} % | "
                       + " | ".join(f"{100 * b['share_in'][g]:.1f} %" for g in groups) + " |")
            if b["absent_from"]:
                where = ", ".join(f"fold {g}" if key == "folds" else g for g in b["absent_from"])
                absent.append(f"{name}: {b['blocks']} block{'s' if b['blocks'] != 1 else ''}, absent from {where}")
        worst = max((abs(v - b["share"]) for b in bal.values() for v in b["share_in"].values()), default=0.0)
        out += ["", f"Largest difference between a class's share in a group and overall: {100 * worst:.1f} points."]
        out += ([""] + [f"- {a}" for a in absent]) if absent else ["", "Every class with chips is present in every group."]
        if key == "folds":
            out += ["", f"`folds.txt` lists the fold (1..{split.get('folds')}) of every chip: for spatial "
                    "cross-validation, test on one fold and train on the others, each fold in turn."]
        out.append("")
    return out


def _stac_lines(stac: dict | None) -> list[str]:
    """Where the inputs came from when a STAC API delivered them: the query, the items, the bytes read."""
    if not stac:
        return []
    out = ["", f"From the STAC API {stac['api']}, collection `{stac['collection']}`, query {stac.get('query')}; "
           f"pin these items with `ids:` for a rebuild with the same scenes:", ""]
    for item in stac["items"]:
        extra = "".join(f", {k.replace('_', ' ')} {item[k]}" for k in ("processing_baseline", "cloud_cover")
                        if item.get(k) is not None)
        out.append(f"- `{item['id']}` ({item['datetime']}{extra})")
    out += ["", f"Only the AOI's windows of the COG assets were read: {stac['fetched_bytes'] / 1e6:.2f} MB of tiles "
            f"fetched, of {stac['whole_asset_bytes'] / 1e6:.2f} MB in the whole assets (cached in "
            f"the inputs' cache folder, sha256 in the build's inputs manifests)."]
    return out


_FORM_ROWS = {  # form -> (its row in the table, its lines in the Python block)
    "tree": ("| GeoTIFF tree | `<layer>/<class>/<chip_id>.tif`, `labels.txt`, split lists | GIS, any tool that "
             "reads GeoTIFF |", []),
    "stac": ("| STAC catalogue | `stac/collection.json`, one Item per chip | catalogue and geospatial ML tools "
             "(pystac, TorchGeo, QGIS) |",
             ["import pystac                                   # STAC",
              "collection = pystac.Collection.from_file(\"stac/collection.json\")",
              "item = next(collection.get_items()); print(item.properties[\"ml-aoi:split\"], item.assets[\"rgb\"].href)",
              ""]),
    "stac-geoparquet": ("| STAC as GeoParquet | `stac-geoparquet/items.parquet` (one row per Item), "
                        "`stac-geoparquet/collection.json` | catalogues of a million chips (stac-geoparquet, rustac, "
                        "DuckDB, GeoPandas) |",
                        ["import pyarrow.parquet as pq, stac_geoparquet.arrow  # STAC Items as one table",
                         "items = list(stac_geoparquet.arrow.stac_table_to_items(pq.read_table(\"stac-geoparquet/items.parquet\")))",
                         "print(len(items), items[0][\"properties\"][\"ml-aoi:split\"], items[0][\"assets\"][\"rgb\"][\"href\"])",
                         ""]),
    "croissant": ("| GeoCroissant | `croissant.json` over `chips.csv` | ML dataset search and loaders (mlcroissant) |",
                  ["import mlcroissant as mlc                       # Croissant",
                   "records = mlc.Dataset(jsonld=\"croissant.json\").records(\"chips\")",
                   "print(next(iter(records)))", ""]),
    "packed": ("| packed Zarr store | `packed/<split>/<layer>`, `[N, C, 64, 64]` | training: whole splits as arrays |",
               ["import xarray as xr                             # packed store (or zarr.open_group(\"packed\"))",
                "train = xr.open_zarr(\"packed\", group=\"train\", consolidated=False, mask_and_scale=False)  # integers",
                "print(train.rgb.shape, train.label.values[:5])", ""]),
    "parquet": ("| Parquet | `parquet/<split>-*.parquet`, `parquet/chips.parquet` (GeoParquet), `README.md` | the "
                "Hugging Face Hub, `datasets`, DuckDB, GeoPandas |",
                ["import datasets, pathlib                        # Parquet: train / validation / test",
                 "ds = datasets.load_dataset(str(pathlib.Path.cwd()))  # this folder by its path; on the Hub, its repo id",
                 "row = ds[\"train\"][0]; print(row[\"chip_id\"], row[\"label\"], row[\"thumbnail\"].size)", "",
                 "import geopandas as gpd                         # the footprints, and where each chip's row is",
                 "index = gpd.read_parquet(\"parquet/chips.parquet\")",
                 "print(index[[\"chip_id\", \"parquet_file\", \"parquet_row\"]].head())", ""]),
}


def _loading_section(forms) -> list[str]:
    """How to load the dataset each way it is published (``publish.forms``): the GeoTIFF tree, STAC, Croissant,
    the packed store, Parquet."""
    names = {1: "one way", 2: "two ways", 3: "three ways", 4: "four ways", 5: "five ways", 6: "six ways"}
    out = ["## Load it", "", f"The same chips {names.get(len(forms), f'{len(forms)} ways')} (paths relative to this "
           "folder):", "", "| form | where | for |", "|---|---|---|"]
    out += [_FORM_ROWS[f][0] for f in forms]
    out += ["", f"In every form `{LABEL}` is the {LABEL_MEANING} and `{CLASS_ID}` the {CLASS_ID_MEANING} "
            "(`labels.txt` gives the class id): the same chip has the same `label` in each.", "", "```python"]
    for f in forms:
        out += _FORM_ROWS[f][1]
    source = "packed" if "packed" in forms else "tree" if "tree" in forms else "parquet"
    said = "the Parquet shards" if source == "parquet" else "the tree or the store, the same samples"
    out += [f"from gos_build.ml import GOSDataset             # PyTorch: {said}",
            f"ds = GOSDataset(\".\", split=\"train\", source=\"{source}\")", "```", ""]
    return out
