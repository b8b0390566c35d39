"""The ``gos-build`` command: one sub-command per stage, thin over the package.

A bad input ends with one line on stderr (``gos-build: error: ...``) and exit
status 2, never a traceback; an unexpected failure keeps its traceback.
Options shared by several commands are declared once (:data:`OPTIONS`);
defaults and choices of config keys come from the config schema.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from . import __version__
from .config import ZIP_PART_GB, schema_entry
from .errors import GosBuildError

log = logging.getLogger("gos_build")

# -- options declared once ----------------------------------------------------------------------------------
OPTIONS = {
    "config": (("--config",), dict(required=True, metavar="CONFIG",
                                   help="config file (YAML), or the workflow's validated config as JSON")),
    "grid": (("--grid",), dict(required=True, metavar="GRID_JSON", help="grid.json of the AOI (gos-build grid)")),
    "tile": (("--tile",), dict(required=True, metavar="TILE_ID", help="processing tile id, e.g. E0424960N4828160")),
    "manifest": (("--manifest",), dict(required=True, metavar="JSON",
                                       help="inputs manifest (results/<aoi>/inputs/<kind>.json, gos-build inputs)")),
    "out": (("--out",), dict(required=True, help="output file")),
}


def _add(parser: argparse.ArgumentParser, *names: str) -> argparse.ArgumentParser:
    for name in names:
        flags, kwargs = OPTIONS[name]
        parser.add_argument(*flags, **kwargs)
    return parser


def _from_schema(parser: argparse.ArgumentParser, flag: str, key: str, type_=None) -> None:
    """An option mirroring config key ``key``: its default, choices and help come from the schema."""
    entry = schema_entry(key)
    kwargs = {"default": entry.get("default"), "help": f"{entry.get('description', key)} (config {key})"}
    if "enum" in entry:
        kwargs["choices"] = entry["enum"]
    if type_:
        kwargs["type"] = type_
    parser.add_argument(flag, **kwargs)


def _load(path):
    """A JSON file a command was given (a manifest, a summary, a record): one line naming it if it can't be read."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise GosBuildError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise GosBuildError(f"{path}: not valid JSON ({exc})") from None


def _grid(args):
    from .grid import Grid

    return Grid.read(args.grid)


def _config(args) -> dict:
    from .config import job_config

    return job_config(args.config)


# -- commands -----------------------------------------------------------------------------------------------
def _cmd_demo_inputs(args) -> None:
    from .demo import demo_inputs

    if args.format == "polygons":  # interpretation polygons only (cheap): e.g. to dry-run configs/gos10m.yaml
        from .demo import demo_polygons

        log.info("demo polygons -> %s", demo_polygons(args.bbox, args.out, seed=args.seed))
        return
    if args.format == "stac":
        from .demo.stac import write_demo_stac

        summary = write_demo_stac(args.bbox, args.out, seed=args.seed, baseline=args.baseline,
                                  cloud_fraction=args.cloud_fraction, granules=args.granules, dates=args.dates)
        log.info("demo STAC catalogue in %s/catalogue: %s (serve it: gos-build demo-stac-api %s/catalogue)",
                 args.out, summary, args.out)
        return
    from .demo import demo_sentinel2

    manifest = demo_inputs(args.bbox, args.out, seed=args.seed, baseline=args.baseline,
                           cloud_fraction=args.cloud_fraction, granules=args.granules, dates=args.dates,
                           sentinel2_formats=args.sentinel2_formats)
    log.info("demo inputs in %s: %d DEM tile(s), %s, %d polygons", args.out, len(manifest["dem"]),
             ", ".join(demo_sentinel2(manifest)), manifest["polygon_count"])


def _cmd_check_config(args) -> None:
    """A config checked as the workflow checks it, without running anything: YAML (file, line, column), the
    schema and semantics (by key), the AOI's grid, a demo: section that would overwrite another area's inputs."""
    from .config import demo_conflict, load_config
    from .grid import grid_from_config
    from .layout import layers_from_config

    cfg = load_config(args.config)
    grid = grid_from_config(cfg)
    demo = cfg.get("demo")
    if demo:
        conflict = demo_conflict(demo["out"], demo.get("bbox", cfg["aoi"].get("bbox", [])), demo["seed"])
        if conflict:
            raise GosBuildError(f"{args.config}: config key 'demo.out': {conflict}")
    layers = layers_from_config(cfg)
    print(f"{args.config}: OK -- AOI '{cfg['aoi']['name']}' on {grid.crs}, {grid.width} x {grid.height} px at "
          f"{grid.resolution:g} m, {len(grid.tiles())} processing tile(s); {len(cfg['classes'])} classes; "
          f"{len(layers)} layers ({', '.join(layers)}); run: snakemake --cores all --configfile {args.config}")


def _cmd_init(args) -> None:
    """Draft a config for the user's own area, check its inputs, write it, and say what is missing."""
    from .init import config_text, draft_config
    from .io import atomic_write_text

    if not args.log:  # the report below is init's output; the checks' progress only in a --log file
        logging.getLogger().setLevel(logging.WARNING)
    out = Path(args.config)
    if out.exists() and not args.force:
        raise GosBuildError(f"{out}: exists; init does not overwrite a config (--force to replace it)")
    name = args.name or out.stem
    draft = draft_config(name, args.bbox, args.sentinel2, args.dem, args.polygons, args.class_field)
    atomic_write_text(out, config_text(draft, str(out)))
    for check in draft.checks:
        print(f"{'ok' if check.ok else 'MISSING':8}{check.kind}: {check.text}")
    for note in draft.notes:
        print(f"{'edit':8}{note}")
    missing = draft.missing
    if missing:
        raise GosBuildError(f"{out}: written, but {len(missing)} input(s) are missing or wrong "
                            f"({', '.join(c.kind for c in missing)}): fix them and rerun init with --force, "
                            "or edit the file and run gos-build check-config on it")
    print(f"{out}: written. Next: gos-build check-config {out}; snakemake --cores all --configfile {out}")


def _cmd_demo_stac_api(args) -> None:
    import time

    from .demo.stac import StacApi

    with StacApi(args.catalogue, max_seconds=args.seconds) as api:
        print(f"STAC API at {api.url}/ (127.0.0.1 only) for {args.seconds:g} s; Ctrl-C stops it", flush=True)
        try:
            time.sleep(args.seconds)
        except KeyboardInterrupt:
            pass


def _cmd_grid(args) -> None:
    from .grid import build_grid, grid_from_config
    from .io import atomic_write_text

    if args.config:
        if args.bbox or args.geometry:
            raise GosBuildError("grid: give --config or --bbox/--geometry, not both")
        grid = grid_from_config(_config(args))
    else:
        if (args.bbox is None) == (args.geometry is None):
            raise GosBuildError("grid: give --config, or exactly one of --bbox or --geometry")
        grid = build_grid(bbox=args.bbox, geometry_path=args.geometry, crs=args.crs, resolution=args.resolution,
                          chip_size=args.chip_size, tile_chips=args.tile_chips)
    atomic_write_text(args.out, grid.to_json())
    log.info("grid %s: %d x %d px at %g m, %d tile(s) -> %s", grid.crs, grid.width, grid.height,
             grid.resolution, len(grid.tiles()), args.out)


def _cmd_inputs(args) -> None:
    from .inputs import resolve, write_manifest

    write_manifest(args.out, resolve(args.kind, _config(args), _grid(args)))
    log.info("inputs %s: manifest -> %s", args.kind, args.out)


def _cmd_terrain(args) -> None:
    from .terrain import terrain_file

    terrain_file(args.dem, args.out_dir, window=args.window, local_statistic=args.local_statistic,
                 azimuth=args.azimuth, altitude=args.altitude)


def _cmd_dem_mosaic(args) -> None:
    from .dem import build_mosaic
    from .inputs import read_manifest

    build_mosaic(read_manifest(args.manifest, "dem"), args.out)


def _cmd_terrain_tile(args) -> None:
    from .terrain import terrain_options, terrain_tile

    terrain_tile(_grid(args), args.tile, args.mosaic, args.out, **terrain_options(_config(args)["terrain"]))


def _cmd_labels_prepare(args) -> None:
    from .inputs import identity, read_manifest
    from .labels import prepare_labels

    cfg = _config(args)
    manifest = read_manifest(args.manifest, "polygons")
    prepare_labels(manifest["path"], cfg["inputs"]["class_field"], cfg["classes"], _grid(args), args.out,
                   args.summary, overlap=cfg["labels"]["overlap"], unknown_values=cfg["labels"]["unknown_values"],
                   encoding=manifest.get("encoding_configured"), source_file=identity(manifest))


def _cmd_labels_tile(args) -> None:
    from .io import atomic_write_text
    from .labels import rasterize_tile

    counts = rasterize_tile(args.prepared, _grid(args), args.tile, args.out)
    atomic_write_text(args.counts, json.dumps(counts, sort_keys=True) + "\n")


def _cmd_labels_summary(args) -> None:
    from .labels import summarize

    summarize(args.prepare_summary, args.counts, args.out)


def _cmd_s2_granule(args) -> None:
    from .inputs import read_manifest
    from .sentinel2 import decode_granule

    decode_granule(read_manifest(args.manifest, "sentinel2"), _grid(args), args.granule, args.out)


def _cmd_s2_tile(args) -> None:
    from .inputs import read_manifest
    from .sentinel2 import s2_tile

    s2_tile(read_manifest(args.manifest, "sentinel2"), _grid(args), args.tile, args.out_rgb, args.out_valid,
            args.granules, args.out_observations)


def _pieces(paths) -> dict[str, str]:
    """tiles/<tile>/<piece> files by tile id."""
    return {Path(p).parent.name: p for p in paths}


def _cmd_s2_preview(args) -> None:
    from .sentinel2 import visual_preview

    visual_preview(_grid(args), _pieces(args.pieces), args.out)


def _cmd_tile(args) -> None:
    from .inputs import read_manifest
    from .tile_job import build_tile

    out = {k: getattr(args, f"out_{k}") for k in ("shard", "chips", "labels", "sentinel2", "preview", "overview")}
    build_tile(_grid(args), args.tile, _config(args), read_manifest(args.sentinel2, "sentinel2"), args.granules,
               args.mosaic, args.polygons, out)


def _cmd_chips_tile(args) -> None:
    from .archive.shard import write_tile_shard
    from .chips import files_reader

    dirs = [Path(d) for d in args.tile_dirs]
    grid = _grid(args)
    write_tile_shard(grid, args.tile, files_reader(grid, dirs[0].parent, {d.name for d in dirs}), _config(args),
                     args.out_shard, args.out_json, polygons=args.polygons)


def _cmd_publish_plan(args) -> None:
    from .archive.plan import make_plan

    grid = _grid(args)
    prov = {"grid": json.loads(grid.to_json())}
    prov["grid"].pop("aoi_wkt", None)
    for key, path in (("sentinel2", args.sentinel2), ("dem", args.dem), ("labels", args.labels)):
        if path:
            prov[key] = _load(path)
    if args.observations:
        from .sentinel2 import observation_summary

        records = [_load(p) for p in sorted(args.observations)]
        prov["sentinel2_observations"] = observation_summary(records)
        periods = sorted({name for rec in records for name in rec.get("periods", {})})
        if periods:  # sentinel2.periods: each period layer's clear observations per pixel
            prov["sentinel2_periods"] = {name: observation_summary(records, name) for name in periods}
    make_plan(sorted(args.records), _config(args), grid, prov, args.out)


def _cmd_publish_group(args) -> None:
    from .archive.gather import publish_group

    publish_group(args.plan, args.group, args.shards, _config(args), _grid(args), args.out,
                  workers=args.threads or 1)


def _cmd_dataset(args) -> None:
    from .archive.gather import build_dataset

    build_dataset(args.plan, args.groups, _config(args), _grid(args), args.out)


def _cmd_package(args) -> None:
    from .archive.package import package

    package(args.dataset, args.dist, args.aoi, int(args.part_gb * 1e9), args.groups)


def _cmd_validate(args) -> None:
    from .archive.validate import dataset_warnings, validate_dataset

    problems = validate_dataset(args.dataset, args.chip_size)
    if problems:
        for p in problems[:200]:
            print(f"{args.dataset}: {p}", file=sys.stderr)
        more = " (first 200 shown)" if len(problems) > 200 else ""
        raise GosBuildError(f"{args.dataset}: {len(problems)} problem(s){more}")
    warnings = dataset_warnings(args.dataset)
    for w in warnings:
        print(f"{args.dataset}: warning: {w}", file=sys.stderr)
    print(f"{args.dataset}: OK" + (f", with {len(warnings)} warning(s) about weak data (above)" if warnings else ""))


def _cmd_baseline(args) -> None:
    from .ml import baseline

    baseline(args.dataset, args.out_dir, seed=args.seed, epochs=args.epochs, threads=args.threads or 1,
             variants=[v.strip() for v in args.modalities.split(",") if v.strip()], block_chips=args.block_chips)


def _cmd_overview_layers(args) -> None:
    from .figures import overview_layers

    overview_layers(_grid(args), _pieces(args.pieces), args.out)


def _cmd_figures(args) -> None:
    from .figures import make_figures

    make_figures(_grid(args), args.dataset, args.layers, args.visual, args.shards, args.out_dir)


def build_parser() -> argparse.ArgumentParser:
    from .layout import INPUT_KINDS

    p = argparse.ArgumentParser(prog="gos-build", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"gos-build {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    p.add_argument("--log", metavar="FILE", help="write the full log (and any traceback) to FILE")
    p.add_argument("--threads", type=int, metavar="N", help="GDAL_NUM_THREADS, and OpenBLAS/OpenMP threads (default 1), for this run "
                   "(a job's threads)")
    p.add_argument("--gdal-cache-mb", type=int, metavar="MB", help="GDAL_CACHEMAX for this run (default: GDAL's 5 %% of RAM)")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name, func, help_, *shared, **kw):
        c = sub.add_parser(name, help=help_, **kw)
        c.set_defaults(func=func)
        return _add(c, *shared)

    bbox = dict(nargs=4, type=float, metavar=("LON_MIN", "LAT_MIN", "LON_MAX", "LAT_MAX"))

    cc = command("check-config", _cmd_check_config, "check a config as the workflow does, without running anything")
    cc.add_argument("config", metavar="CONFIG", help="config file (YAML)")

    ini = command("init", _cmd_init, "write a config for your own area from a bbox and input globs, checking the "
                  "inputs and saying what is missing")
    ini.add_argument("config", metavar="CONFIG", help="the config file to write (YAML)")
    ini.add_argument("--bbox", required=True, **bbox)
    ini.add_argument("--name", help="the AOI's name: outputs under results/<name>/ (default: the config's file name)")
    ini.add_argument("--sentinel2", nargs="+", required=True, metavar="GLOB",
                     help="Sentinel-2 products: .SAFE folders or zips, band files (globs)")
    ini.add_argument("--dem", nargs="+", required=True, metavar="GLOB", help="DEM tiles: .hgt, .hgt.zip, GeoTIFF (globs)")
    ini.add_argument("--polygons", required=True, metavar="PATH", help="the interpretation polygons (any OGR vector)")
    ini.add_argument("--class-field", metavar="FIELD", help="the polygons' attribute holding the class")
    ini.add_argument("--force", action="store_true", help="replace CONFIG if it exists")

    d = command("demo-inputs", _cmd_demo_inputs, "write deterministic demo inputs (SRTM HGT, Sentinel-2 SAFE, GeoPackage)")
    d.add_argument("--bbox", required=True, **bbox)
    d.add_argument("--out", required=True, help="output folder")
    _from_schema(d, "--seed", "demo.seed", int)
    _from_schema(d, "--baseline", "demo.baseline")
    _from_schema(d, "--cloud-fraction", "demo.cloud_fraction", float)
    _from_schema(d, "--granules", "demo.granules", int)
    _from_schema(d, "--dates", "demo.dates", int)
    forms = schema_entry("demo.sentinel2_formats")
    d.add_argument("--sentinel2-formats", nargs="+", default=forms["default"], choices=forms["items"]["enum"],
                   help=f"{forms['description']} (config demo.sentinel2_formats)")
    d.add_argument("--format", choices=("files", "stac", "polygons"), default="files",
                   help="files: HGT, SAFE, GeoPackage; stac: the same as a STAC catalogue of COGs (OUT/catalogue); "
                   "polygons: the GeoPackage only")

    sa = command("demo-stac-api", _cmd_demo_stac_api, "serve a demo STAC catalogue on 127.0.0.1 (for trying "
                 "STAC inputs offline)")
    sa.add_argument("catalogue", help="folder written by demo-inputs --format stac (OUT/catalogue)")
    sa.add_argument("--seconds", type=float, default=3600, help="stop after this long")

    g = command("grid", _cmd_grid, "write the reference grid (CRS, transform, tiles) of an AOI as JSON")
    g.add_argument("out", help="output grid.json")
    g.add_argument("--config", metavar="CONFIG", help="take the AOI and grid from a config (file or JSON)")
    g.add_argument("--bbox", **bbox)
    g.add_argument("--geometry", help="OGR vector file whose polygons are the AOI")
    _from_schema(g, "--crs", "aoi.crs")
    _from_schema(g, "--resolution", "grid.resolution", float)
    _from_schema(g, "--chip-size", "grid.chip_size", int)
    _from_schema(g, "--tile-chips", "grid.tile_chips", int)

    i = command("inputs", _cmd_inputs, "resolve one kind of input (config globs) into its manifest", "config", "grid",
                "out")
    i.add_argument("kind", choices=INPUT_KINDS)

    t = command("terrain", _cmd_terrain, "the seven terrain parameters of a projected DEM (metres)",
                description="Write OUT_DIR/<parameter>.tif for each terrain parameter, float32 on the DEM's own "
                "grid, nodata -9999.")
    t.add_argument("dem", help="DEM raster in a projected CRS with metre units")
    t.add_argument("out_dir", help="output folder")
    _from_schema(t, "--window", "terrain.window", int)
    _from_schema(t, "--local-statistic", "terrain.local_statistic")
    _from_schema(t, "--azimuth", "terrain.hillshade.azimuth", float)
    _from_schema(t, "--altitude", "terrain.hillshade.altitude", float)

    command("dem-mosaic", _cmd_dem_mosaic, "VRT mosaic of the DEM files of the dem manifest", "manifest", "out")

    tt = command("terrain-tile", _cmd_terrain_tile, "DEM + seven terrain parameters for one processing tile",
                 "config", "grid", "tile", "out")
    tt.add_argument("--mosaic", required=True, help="DEM mosaic (.vrt) from dem-mosaic")

    sg = command("s2-granule", _cmd_s2_granule, "decode one granule's bands once over the grid (for s2-tile)", "grid",
                 "manifest")
    sg.add_argument("--granule", required=True, help="<product>-<granule>, 1-based in the manifest's order")
    sg.add_argument("--out", required=True, help="output folder (sentinel2/granules/<granule>)")

    st = command("s2-tile", _cmd_s2_tile, "cloud-masked RGB reflectance and valid mask for one tile", "grid", "tile",
                 "manifest")
    st.add_argument("--out-rgb", required=True)
    st.add_argument("--out-valid", required=True)
    st.add_argument("--out-observations", help="median composite: valid observations per pixel (uint8 GeoTIFF)")
    st.add_argument("--granules", nargs="*", help="folders of s2-granule for the granules under the tile (read "
                    "instead of the products' files)")

    sp = command("s2-preview", _cmd_s2_preview, "8-bit RGB preview (COG) of the whole AOI from the tiles' preview "
                 "pieces", "grid", "out")
    sp.add_argument("pieces", nargs="+", help="tiles/<tile>/preview.tif of every tile (gos-build tile)")

    lp = command("labels-prepare", _cmd_labels_prepare, "interpretation polygons -> class ids, repaired, in the "
                 "grid CRS", "config", "grid", "manifest")
    lp.add_argument("--out", required=True, help="output GeoPackage (grid CRS)")
    lp.add_argument("--summary", required=True, help="output JSON: counts and areas per class")

    lt = command("labels-tile", _cmd_labels_tile, "rasterize prepared polygons on one tile (uint8, 0 = unlabelled)",
                 "grid", "tile", "out")
    lt.add_argument("--prepared", required=True, help="GeoPackage from labels-prepare")
    lt.add_argument("--counts", required=True, help="output JSON: pixels per class id")

    ls = command("labels-summary", _cmd_labels_summary, "per-class features, areas and labelled pixels of the AOI",
                 "out")
    ls.add_argument("--prepare-summary", required=True, help="JSON from labels-prepare")
    ls.add_argument("counts", nargs="*", help="per-tile JSON counts from labels-tile")

    ch = command("chips-tile", _cmd_chips_tile, "judge the candidate chips of one tile and write its shard",
                 "config", "grid", "tile")
    ch.add_argument("--out-shard", required=True, help="tiles/<tile>/shard: the writers' per-tile files")
    ch.add_argument("--out-json", required=True)
    ch.add_argument("--polygons", help="labels/polygons.gpkg (labels-prepare): each chip's distance to the nearest "
                    "class boundary")
    ch.add_argument("tile_dirs", nargs="+", help="tiles/<tile> folders: this tile first, then (stride < chip size) "
                    "its east/south neighbours")

    tj = command("tile", _cmd_tile, "one processing tile in one process: Sentinel-2, terrain, labels and its chips "
                 "(the workflow's per-tile job)", "config", "grid", "tile")
    tj.add_argument("--sentinel2", required=True, metavar="JSON", help="inputs/sentinel2.json")
    tj.add_argument("--mosaic", required=True, help="DEM mosaic (.vrt) from dem-mosaic")
    tj.add_argument("--polygons", required=True, help="labels/polygons.gpkg from labels-prepare")
    tj.add_argument("--out-shard", required=True, help="tiles/<tile>/shard: the writers' per-tile files")
    tj.add_argument("--out-chips", required=True, help="tiles/<tile>/chips.json: the tile's record")
    tj.add_argument("--out-labels", required=True, help="tiles/<tile>/labels.json: pixels per class id")
    tj.add_argument("--out-sentinel2", required=True, help="tiles/<tile>/sentinel2.json: nodata, invalid and "
                    "(median composite) valid observations per pixel")
    tj.add_argument("--out-preview", required=True, help="tiles/<tile>/preview.tif: the visual preview's piece")
    tj.add_argument("--out-overview", required=True, help="tiles/<tile>/overview.tif: the overview maps' piece")
    tj.add_argument("--granules", nargs="*", default=[], help="folders of s2-granule for the granules under the "
                    "tile")

    pp = command("publish-plan", _cmd_publish_plan, "split the chips and plan the publishing jobs (from the "
                 "tiles' records; the workflow's publish_plan job)", "config", "grid")
    pp.add_argument("--sentinel2", help="inputs/sentinel2.json (provenance)")
    pp.add_argument("--dem", help="inputs/dem.json (provenance)")
    pp.add_argument("--labels", help="labels/summary.json (provenance)")
    pp.add_argument("--out", required=True, help="the plan folder (publish/plan)")
    pp.add_argument("--observations", nargs="*", help="median composite: every tile's sentinel2.json (the "
                    "datacard's summary of valid observations)")
    pp.add_argument("records", nargs="+", help="chips.json of every tile")

    pg = command("publish-group", _cmd_publish_group, "write one group of tiles' files of the dataset (the "
                 "workflow's publish_group job)", "config", "grid")
    pg.add_argument("--plan", required=True, help="the plan folder (publish/plan)")
    pg.add_argument("--group", required=True, type=int, help="the group's number in the plan (0-based)")
    pg.add_argument("--out", required=True, help="the group's folder (publish/groups/<k>)")
    pg.add_argument("shards", nargs="+", help="the tile shard folders (tiles/<tile>/shard)")

    ds = command("dataset", _cmd_dataset, "write the dataset folder from the plan and its groups (index files, "
                 "catalogues, datacard, manifest)", "config", "grid")
    ds.add_argument("--plan", required=True, help="the plan folder (publish/plan)")
    ds.add_argument("--out", required=True, help="dataset folder")
    ds.add_argument("groups", nargs="+", help="every group's folder (publish/groups/<k>), in the plan's order")

    pk = command("package", _cmd_package, "zip the dataset: one archive per modality plus labels/splits")
    pk.add_argument("--dataset", required=True)
    pk.add_argument("--dist", required=True)
    pk.add_argument("--aoi", required=True)
    pk.add_argument("--part-gb", type=float, default=ZIP_PART_GB, metavar="GB",
                    help=f"cut a zip larger than this into parts (default {ZIP_PART_GB}; config publish.zips.part_gb)")
    pk.add_argument("groups", nargs="*", help="the publishing groups' folders (publish/groups/<k>), whose zip "
                    "segments are joined; without them every file is zipped here")

    va = command("validate", _cmd_validate, "check a dataset folder: manifest, chip geometry, splits, labels")
    va.add_argument("dataset")
    _from_schema(va, "--chip-size", "grid.chip_size", int)

    ol = command("overview-layers", _cmd_overview_layers, "the overview figure's maps (hillshade, labels, "
                 "observations) of the whole AOI from the tiles' pieces (float32 GeoTIFF)", "grid", "out")
    ol.add_argument("pieces", nargs="+", help="tiles/<tile>/overview.tif of every tile (gos-build tile)")

    fg = command("figures", _cmd_figures, "overview, galleries, counts and histograms of a built dataset (PNG)",
                 "grid")
    fg.add_argument("--dataset", required=True)
    fg.add_argument("--layers", required=True, help="figures/overview_layers.tif (overview-layers)")
    fg.add_argument("--visual", required=True, help="sentinel2/visual.tif")
    fg.add_argument("--out-dir", required=True)
    fg.add_argument("shards", nargs="*", help="tiles/<tile>/chips.json (rejected candidates)")

    bl = command("baseline", _cmd_baseline, "train the late-fusion CNN on block and random splits and compare "
                 "modalities over the folds; metrics with intervals (needs [ml])")
    bl.add_argument("dataset", help="dataset folder")
    bl.add_argument("out_dir", help="output folder: metrics.json, report.md, confusion.png")
    _from_schema(bl, "--epochs", "baseline.epochs", int)
    _from_schema(bl, "--seed", "split.seed", int)
    _from_schema(bl, "--block-chips", "split.block_chips", int)
    bl.add_argument("--modalities", default=",".join(schema_entry("baseline.modalities")["default"]),
                    help="comma-separated variants: rgb, terrain, rgb+terrain, rgb+terrain-<layer>, drop-one "
                         "(config baseline.modalities)")
    return p


@contextlib.contextmanager
def _c_library_stderr():
    """Keep what C libraries write to file descriptor 2 (libtiff's "_tiffWriteProc: No space left on
    device.", richdem's progress) out of the terminal: it goes to the log, so a bad input ends with
    exactly one line. Python's own stderr keeps the terminal. Yields a function returning what was caught.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    console = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")
    sink = tempfile.TemporaryFile(mode="w+b")
    os.dup2(sink.fileno(), 2)
    real_stderr, sys.stderr = sys.stderr, console

    def caught() -> str:
        sink.flush()
        sink.seek(0)
        return sink.read().decode("utf-8", "replace").strip()

    try:
        yield caught
    finally:
        sys.stderr = real_stderr
        os.dup2(saved, 2)
        os.close(saved)
        console.close()
        sink.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with _c_library_stderr() as caught:
        status = _run(args)
        said = caught()
        if said and args.log:
            log.info("C libraries said: %s", said[-4000:])
        elif said and status == 1:  # a bug: whoever reads the terminal needs all of it
            print(said[-4000:], file=sys.stderr)
        logging.getLogger().handlers.clear()  # their stream closes with this block
    return status


def _run(args) -> int:
    try:
        _setup_logging(args)
    except OSError as exc:  # the log's folder is a file, or cannot be made or written: before any work
        print(f"gos-build: error: --log {args.log}: cannot write the log there "
              f"({exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''})", file=sys.stderr)
        return 2
    # GDAL reads these when the first dataset opens: a job's share, never the machine's
    if args.threads:
        os.environ["GDAL_NUM_THREADS"] = str(args.threads)
    if args.gdal_cache_mb:
        os.environ["GDAL_CACHEMAX"] = str(args.gdal_cache_mb)
    # numpy's OpenBLAS (and OpenMP) start a spinning thread per core when first imported: 0.1-0.15 s of CPU
    # a process, most of a small job's start-up. A job's share too (read on import: numpy is not loaded yet)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads or 1))
    _reuse_freed_memory()
    try:
        t0 = time.perf_counter()
        args.func(args)
        log.info("%s: done in %.1f s; peak memory %s", args.command, time.perf_counter() - t0, _peak_memory())
    except GosBuildError as exc:
        if args.log:
            log.error("%s", exc)
        print(f"gos-build: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gos-build: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a write the machine refused (full disk, quota, read-only) outside io.writing
        from .io import write_error, write_failure

        reason = write_failure(exc, exc.filename or ".") if exc.errno is not None else None
        if reason is None:
            log.exception("internal error")
            if args.log:
                print(f"gos-build: internal error: {exc!r} (traceback in {args.log})", file=sys.stderr)
            return 1
        message = str(write_error(exc.filename or os.getcwd(), reason))
        log.error("%s", message)
        print(f"gos-build: error: {message}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, not a bad input: keep the traceback
        log.exception("internal error")
        if args.log:
            print(f"gos-build: internal error: {exc!r} (traceback in {args.log})", file=sys.stderr)
        return 1
    return 0


def _reuse_freed_memory() -> None:
    """glibc's allocator keeps what the process frees for its next allocations instead of handing it back to the
    kernel: a tile's layers are arrays of 4-32 MB, allocated and freed over and over, and above glibc's mmap
    threshold each one came back as fresh pages for the kernel to fault in and zero (7 % of a tile job's cycles;
    ~170 000 page faults, 40 000 with this, the job 5 % faster). The memory is reused, not added: a tile job's
    peak 523 -> 530 MB, held until the job ends. Left alone where the user tunes the allocator
    (``GLIBC_TUNABLES``, ``MALLOC_*_``) and off glibc."""
    import platform

    if platform.libc_ver()[0] != "glibc" or "GLIBC_TUNABLES" in os.environ or any(
            k.startswith("MALLOC_") and k.endswith("_") for k in os.environ):
        return
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: blocks up to 1 GiB from the heap, reused once freed
    mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: keep up to 1 GiB freed at the heap's top


def _peak_memory() -> str:
    """This process's peak resident memory (MiB): the kernel's high-water mark of its own memory (Linux's
    ``VmHWM``: exact, not sampled; ``getrusage``'s ``ru_maxrss`` elsewhere, which on Linux would also hold the
    forking parent's, Snakemake's, carried across ``exec``), and its largest worker's where it had workers;
    "unknown" where the platform does not say."""
    try:
        import resource
    except ImportError:  # not a Unix
        return "unknown"
    unit = 1 if sys.platform == "darwin" else 1 << 10  # ru_maxrss: bytes on macOS, KiB on Linux
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            own = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration, ValueError, IndexError):  # not Linux
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit / (1 << 20)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * unit / (1 << 20)
    return f"{own:.0f} MB" + (f" (its largest worker {workers:.0f} MB)" if workers else "")


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
