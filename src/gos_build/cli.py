"""The ``gos-build`` command: one sub-command per stage, thin over the stage modules.

A bad input ends with one line on stderr (``gos-build: error: ...``) and exit
status 2, never a traceback; an unexpected failure keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from . import __version__
from .errors import GosBuildError

log = logging.getLogger("gos_build")


def _cmd_demo_inputs(args) -> None:
    from .demo import demo_inputs

    manifest = demo_inputs(args.bbox, args.out, seed=args.seed, baseline=args.baseline,
                           cloud_fraction=args.cloud_fraction, granules=args.granules)
    log.info("demo inputs in %s: %d DEM tile(s), %s, %d polygons", args.out, len(manifest["dem"]),
             manifest["sentinel2"][0], manifest["polygon_count"])


def _cmd_grid(args) -> None:
    from .grid import build_grid
    from .io import atomic_write_text

    if (args.bbox is None) == (args.geometry is None):
        raise GosBuildError("grid: give exactly one of --bbox or --geometry")
    grid = build_grid(bbox=args.bbox, geometry_path=args.geometry, crs=args.crs, resolution=args.resolution,
                      chip_size=args.chip_size, tile_chips=args.tile_chips)
    atomic_write_text(args.out, grid.to_json())
    log.info("grid %s: %d x %d px at %g m, %d tile(s) -> %s", grid.crs, grid.width, grid.height,
             grid.resolution, len(grid.tiles()), args.out)


def _cmd_terrain(args) -> None:
    from .terrain import terrain_file

    terrain_file(args.dem, args.out_dir, window=args.window, local_statistic=args.local_statistic,
                 azimuth=args.azimuth, altitude=args.altitude)


def _cmd_dem_mosaic(args) -> None:
    from .dem import build_mosaic, expand_inputs
    from .grid import Grid

    import json

    from .io import atomic_write_text

    summary = build_mosaic(expand_inputs(args.dem, "dem"), Grid.read(args.grid), args.out)
    if args.summary:
        atomic_write_text(args.summary, json.dumps(summary, indent=2, sort_keys=True) + "\n")


def _cmd_terrain_tile(args) -> None:
    from .grid import Grid
    from .terrain import terrain_tile

    terrain_tile(Grid.read(args.grid), args.tile, args.mosaic, args.out, window=args.window,
                 local_statistic=args.local_statistic, resampling=args.resampling, azimuth=args.azimuth,
                 altitude=args.altitude)


def _cmd_labels_prepare(args) -> None:
    import json

    from .grid import Grid
    from .labels import prepare_labels

    try:
        classes = json.loads(args.classes)
    except ValueError as exc:
        raise GosBuildError(f"--classes: not JSON ({exc})") from None
    prepare_labels(args.polygons, args.class_field, classes, Grid.read(args.grid), args.out, args.summary,
                   overlap=args.overlap, unknown_values=args.unknown_values)


def _cmd_labels_tile(args) -> None:
    import json

    from .grid import Grid
    from .io import atomic_write_text
    from .labels import rasterize_tile

    counts = rasterize_tile(args.prepared, Grid.read(args.grid), args.tile, args.out)
    atomic_write_text(args.counts, json.dumps(counts, sort_keys=True) + "\n")


def _cmd_labels_summary(args) -> None:
    from .labels import summarize

    summarize(args.prepare_summary, args.counts, args.out)


def _cmd_s2_inventory(args) -> None:
    from .grid import Grid
    from .sentinel2 import INVALID_SCL, inventory

    invalid = tuple(INVALID_SCL) + ((11,) if args.mask_snow else ())
    inventory(args.sentinel2, Grid.read(args.grid), args.out, invalid_scl=invalid)


def _cmd_s2_tile(args) -> None:
    from .grid import Grid
    from .sentinel2 import s2_tile

    s2_tile(args.inventory, Grid.read(args.grid), args.tile, args.out_rgb, args.out_valid)


def _cmd_s2_preview(args) -> None:
    from pathlib import Path as P

    from .grid import Grid
    from .sentinel2 import visual_preview

    tiles = {P(t).parent.name: t for t in args.rgb}
    visual_preview(Grid.read(args.grid), tiles, args.out)


def _cmd_chips_tile(args) -> None:
    import json

    from .chips import chips_tile
    from .grid import Grid

    dirs = {Path(d).name: Path(d) for d in args.tile_dirs}
    chips_tile(Grid.read(args.grid), args.tile, dirs, json.loads(args.classes), args.stride, args.min_purity,
               args.max_nodata, args.max_cloud, args.out_zip, args.out_json)


def _cmd_dataset(args) -> None:
    import json

    from .archive import build_dataset
    from .grid import Grid

    cfg = json.loads(args.config_json)
    grid = Grid.read(args.grid)
    prov = {"config": cfg, "grid": json.loads(grid.to_json())}
    for key, path in (("sentinel2", args.sentinel2), ("dem", args.dem), ("labels", args.labels)):
        if path:
            prov[key] = json.loads(Path(path).read_text(encoding="utf-8"))
    prov["grid"].pop("aoi_wkt", None)
    if len(args.shards) % 2:
        raise GosBuildError("dataset: give chips.json and chips.zip of every tile")
    jsons = sorted(p for p in args.shards if p.endswith(".json"))
    zips = sorted(p for p in args.shards if p.endswith(".zip"))
    build_dataset(list(zip(jsons, zips)), cfg["classes"], cfg["split"], grid.chip_span, args.out, prov)


def _cmd_package(args) -> None:
    from .archive import package

    package(args.dataset, args.dist, args.aoi)


def _cmd_validate(args) -> None:
    from .archive import validate_dataset

    problems = validate_dataset(args.dataset, args.chip_size)
    if problems:
        for p in problems[:200]:
            print(f"{args.dataset}: {p}", file=sys.stderr)
        more = " (first 200 shown)" if len(problems) > 200 else ""
        raise GosBuildError(f"{args.dataset}: {len(problems)} problem(s){more}")
    print(f"{args.dataset}: OK")


def _cmd_baseline(args) -> None:
    from .ml import baseline

    baseline(args.dataset, args.out_dir, seed=args.seed, epochs=args.epochs, threads=args.threads or 1)


def _cmd_figures(args) -> None:
    from .figures import make_figures
    from .grid import Grid

    make_figures(Grid.read(args.grid), args.dataset, args.tiles_dir, args.visual, args.shards, args.out_dir)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gos-build", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"gos-build {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    p.add_argument("--log", metavar="FILE", help="write the full log (and any traceback) to FILE")
    p.add_argument("--threads", type=int, metavar="N", help="GDAL_NUM_THREADS for this run (a job's threads)")
    p.add_argument("--gdal-cache-mb", type=int, metavar="MB", help="GDAL_CACHEMAX for this run (default: GDAL's 5 %% of RAM)")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo-inputs", help="write deterministic demo inputs (SRTM HGT, Sentinel-2 SAFE, GeoPackage)")
    d.add_argument("--bbox", nargs=4, type=float, required=True, metavar=("LON_MIN", "LAT_MIN", "LON_MAX", "LAT_MAX"))
    d.add_argument("--out", required=True, help="output folder")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--baseline", default="05.09", help="Sentinel-2 processing baseline: 05.09 (offset -1000) or 02.14")
    d.add_argument("--cloud-fraction", type=float, default=0.05, help="fraction of the granule under cloud (0-0.9)")
    d.add_argument("--granules", type=int, default=1, help="adjacent Sentinel-2 products (west to east) to mosaic")
    d.set_defaults(func=_cmd_demo_inputs)

    g = sub.add_parser("grid", help="write the reference grid (CRS, transform, tiles) of an AOI as JSON")
    g.add_argument("out", help="output grid.json")
    g.add_argument("--bbox", nargs=4, type=float, metavar=("LON_MIN", "LAT_MIN", "LON_MAX", "LAT_MAX"))
    g.add_argument("--geometry", help="OGR vector file whose polygons are the AOI")
    g.add_argument("--crs", default="auto", help="'auto' (UTM zone of the AOI centroid) or e.g. EPSG:32652")
    g.add_argument("--resolution", type=float, default=10.0, help="pixel size, metres")
    g.add_argument("--chip-size", type=int, default=64, help="chip width, pixels")
    g.add_argument("--tile-chips", type=int, default=32, help="processing tile width, chips")
    g.set_defaults(func=_cmd_grid)

    t = sub.add_parser("terrain", help="the seven terrain parameters of a projected DEM (metres)",
                       description="Write OUT_DIR/{hillshade,slope,mean,std,northness,eastness,dev}.tif, "
                       "float32 on the DEM's own grid, nodata -9999.")
    t.add_argument("dem", help="DEM raster in a projected CRS with metre units")
    t.add_argument("out_dir", help="output folder")
    t.add_argument("--window", type=int, default=9, help="odd window width (pixels) for mean/std/dev")
    t.add_argument("--local-statistic", choices=("mean", "median"), default="mean")
    t.add_argument("--azimuth", type=float, default=315.0, help="hillshade sun azimuth, degrees")
    t.add_argument("--altitude", type=float, default=45.0, help="hillshade sun altitude, degrees")
    t.set_defaults(func=_cmd_terrain)

    m = sub.add_parser("dem-mosaic", help="VRT mosaic of DEM files (.hgt, .hgt.zip, GeoTIFF); checks AOI coverage")
    m.add_argument("--grid", required=True, help="grid.json of the AOI")
    m.add_argument("--out", required=True, help="output .vrt")
    m.add_argument("--summary", help="output JSON: sources, CRS, resolution, AOI coverage")
    m.add_argument("dem", nargs="+", help="DEM files or glob patterns")
    m.set_defaults(func=_cmd_dem_mosaic)

    tt = sub.add_parser("terrain-tile", help="DEM + seven terrain parameters for one processing tile")
    tt.add_argument("--grid", required=True, help="grid.json of the AOI")
    tt.add_argument("--tile", required=True, help="tile id, e.g. E0424960N4828160")
    tt.add_argument("--mosaic", required=True, help="DEM mosaic (.vrt) from dem-mosaic")
    tt.add_argument("--out", required=True, help="output GeoTIFF (8 bands: dem + 7 parameters)")
    tt.add_argument("--window", type=int, default=9)
    tt.add_argument("--local-statistic", choices=("mean", "median"), default="mean")
    tt.add_argument("--resampling", choices=("cubic", "bilinear"), default="cubic")
    tt.add_argument("--azimuth", type=float, default=315.0)
    tt.add_argument("--altitude", type=float, default=45.0)
    tt.set_defaults(func=_cmd_terrain_tile)

    si = sub.add_parser("s2-inventory", help="find Sentinel-2 products, read their radiometry, check AOI coverage")
    si.add_argument("--grid", required=True)
    si.add_argument("--out", required=True, help="output inventory JSON")
    si.add_argument("--mask-snow", action="store_true", help="treat SCL 11 (snow/ice) as invalid too")
    si.add_argument("sentinel2", nargs="+", help=".SAFE folders, .SAFE.zip files or band GeoTIFFs (globs)")
    si.set_defaults(func=_cmd_s2_inventory)

    st = sub.add_parser("s2-tile", help="cloud-masked RGB reflectance and valid mask for one tile")
    st.add_argument("--grid", required=True)
    st.add_argument("--tile", required=True)
    st.add_argument("--inventory", required=True, help="JSON from s2-inventory")
    st.add_argument("--out-rgb", required=True)
    st.add_argument("--out-valid", required=True)
    st.set_defaults(func=_cmd_s2_tile)

    sp = sub.add_parser("s2-preview", help="8-bit RGB preview (COG) of the whole AOI from the tiles' rgb.tif")
    sp.add_argument("--grid", required=True)
    sp.add_argument("--out", required=True)
    sp.add_argument("rgb", nargs="+", help="tiles/<tile>/rgb.tif files")
    sp.set_defaults(func=_cmd_s2_preview)

    ch = sub.add_parser("chips-tile", help="judge the candidate chips of one tile and write its shard")
    ch.add_argument("--grid", required=True)
    ch.add_argument("--tile", required=True)
    ch.add_argument("--classes", required=True, help="the config's classes as JSON")
    ch.add_argument("--stride", type=int, default=64)
    ch.add_argument("--min-purity", type=float, default=0.9)
    ch.add_argument("--max-nodata", type=float, default=0.0)
    ch.add_argument("--max-cloud", type=float, default=0.05)
    ch.add_argument("--out-zip", required=True)
    ch.add_argument("--out-json", required=True)
    ch.add_argument("tile_dirs", nargs="+", help="tiles/<tile> folders (this tile and, for stride < chip size, "
                    "its east/south neighbours) with labels.tif valid.tif rgb.tif terrain.tif")
    ch.set_defaults(func=_cmd_chips_tile)

    ds = sub.add_parser("dataset", help="gather the tile shards into the dataset folder (splits, stats, manifest)")
    ds.add_argument("--grid", required=True)
    ds.add_argument("--config-json", required=True, help="the effective config as JSON")
    ds.add_argument("--sentinel2", help="inventory.json (provenance)")
    ds.add_argument("--dem", help="dem/mosaic.json (provenance)")
    ds.add_argument("--labels", help="labels/summary.json (provenance)")
    ds.add_argument("--out", required=True, help="dataset folder")
    ds.add_argument("shards", nargs="+", help="chips.json and chips.zip of every tile")
    ds.set_defaults(func=_cmd_dataset)

    pk = sub.add_parser("package", help="zip the dataset: one archive per modality plus labels/splits")
    pk.add_argument("--dataset", required=True)
    pk.add_argument("--dist", required=True)
    pk.add_argument("--aoi", required=True)
    pk.set_defaults(func=_cmd_package)

    va = sub.add_parser("validate", help="check a dataset folder: manifest, chip geometry, splits, labels")
    va.add_argument("dataset")
    va.add_argument("--chip-size", type=int, default=64)
    va.set_defaults(func=_cmd_validate)

    fg = sub.add_parser("figures", help="overview, galleries, counts and histograms of a built dataset (PNG)")
    fg.add_argument("--grid", required=True)
    fg.add_argument("--dataset", required=True)
    fg.add_argument("--tiles-dir", required=True, help="results/<aoi>/tiles")
    fg.add_argument("--visual", required=True, help="sentinel2/visual.tif")
    fg.add_argument("--out-dir", required=True)
    fg.add_argument("shards", nargs="*", help="tiles/<tile>/chips.json (rejected candidates)")
    fg.set_defaults(func=_cmd_figures)

    bl = sub.add_parser("baseline", help="train the two-branch CNN on block and random splits; metrics (needs [ml])")
    bl.add_argument("dataset", help="dataset folder")
    bl.add_argument("out_dir", help="output folder: metrics.json, report.md, confusion.png")
    bl.add_argument("--epochs", type=int, default=15)
    bl.add_argument("--seed", type=int, default=42)
    bl.set_defaults(func=_cmd_baseline)

    lp = sub.add_parser("labels-prepare", help="interpretation polygons -> class ids, repaired, in the grid CRS")
    lp.add_argument("--grid", required=True, help="grid.json of the AOI")
    lp.add_argument("--polygons", required=True, help="any OGR vector file (GeoPackage, Shapefile, GeoJSON)")
    lp.add_argument("--class-field", required=True, help="attribute holding the class value")
    lp.add_argument("--classes", required=True, help='the config\'s classes as JSON: {"1": {"name": ..., "values": [...]}}')
    lp.add_argument("--overlap", choices=("error", "first", "priority"), default="error")
    lp.add_argument("--unknown-values", choices=("error", "ignore"), default="error")
    lp.add_argument("--out", required=True, help="output GeoPackage (grid CRS)")
    lp.add_argument("--summary", required=True, help="output JSON: counts and areas per class")
    lp.set_defaults(func=_cmd_labels_prepare)

    lt = sub.add_parser("labels-tile", help="rasterize prepared polygons on one tile (uint8, 0 = unlabelled)")
    lt.add_argument("--grid", required=True)
    lt.add_argument("--tile", required=True)
    lt.add_argument("--prepared", required=True, help="GeoPackage from labels-prepare")
    lt.add_argument("--out", required=True, help="output GeoTIFF")
    lt.add_argument("--counts", required=True, help="output JSON: pixels per class id")
    lt.set_defaults(func=_cmd_labels_tile)

    ls = sub.add_parser("labels-summary", help="per-class features, areas and labelled pixels of the AOI")
    ls.add_argument("--prepare-summary", required=True, help="JSON from labels-prepare")
    ls.add_argument("--out", required=True, help="output JSON")
    ls.add_argument("counts", nargs="*", help="per-tile JSON counts from labels-tile")
    ls.set_defaults(func=_cmd_labels_summary)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args)
    # GDAL reads these when the first dataset opens: a job's share, never the machine's
    if args.threads:
        os.environ["GDAL_NUM_THREADS"] = str(args.threads)
    if args.gdal_cache_mb:
        os.environ["GDAL_CACHEMAX"] = str(args.gdal_cache_mb)
    try:
        args.func(args)
    except GosBuildError as exc:
        if args.log:
            log.error("%s", exc)
        print(f"gos-build: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gos-build: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not a bad input: keep the traceback
        log.exception("internal error")
        if args.log:
            print(f"gos-build: internal error: {exc!r} (traceback in {args.log})", file=sys.stderr)
        return 1
    return 0


def _setup_logging(args) -> None:
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.WARNING if args.quiet else logging.INFO)
    if args.log:
        Path(args.log).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(args.log, mode="w", encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(fmt)
    root.addHandler(handler)
    for noisy in ("pyogrio", "rasterio", "fiona"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


if __name__ == "__main__":
    sys.exit(main())
