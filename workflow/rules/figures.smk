# Figures of the built dataset, registered for `snakemake --report report.html`.
# Their maps come from overview_layers.tif, decimated from the per-tile layers
# while those exist (they are scratch): figures can be redrawn after clean-up.


rule overview_layers:
    input:
        grid=rules.grid.output[0],
        tiles=[tile_file(role, t) for t in TILES for role in ("terrain", "labels")],
        observations=[observations_file(t) for t in TILES] if MEDIAN else [],
    output:
        f"{OUT}/figures/overview_layers.tif",
    log:
        f"{LOGS}/overview_layers.log",
    benchmark:
        f"{BENCH}/overview_layers.tsv"
    conda:
        ENV
    params:
        tiles_dir=lambda wildcards, input: os.path.dirname(os.path.dirname(input.tiles[0])),
        observations=lambda wildcards, input: ("--observations " + " ".join(input.observations)) if MEDIAN else "",
    resources:
        mem_mb=1000,
        runtime=10,
        gdal_cache_mb=64,
    shell:
        "gos-build --log {log} --gdal-cache-mb {resources.gdal_cache_mb} overview-layers --grid {input.grid}"
        " --tiles-dir {params.tiles_dir} --out {output} {params.observations}"


rule figures:
    input:
        grid=rules.grid.output[0],
        dataset=rules.dataset.output[0],
        visual=rules.s2_preview.output[0],
        layers=rules.overview_layers.output[0],
        shards=expand(rules.chips.output.json, tile=TILES),
    output:
        overview=report(f"{OUT}/figures/overview.png", caption="../report/overview.rst", category="1 AOI overview"),
        counts=report(f"{OUT}/figures/counts.png", caption="../report/counts.rst", category="2 Chips and rejections"),
        histograms=report(f"{OUT}/figures/histograms.png", caption="../report/histograms.rst",
                          category="3 Layer histograms"),
        galleries=report(expand(f"{OUT}/figures/gallery_{{name}}.png", name=CLASS_NAMES),
                         caption="../report/gallery.rst", category="4 Chip galleries"),
    log:
        f"{LOGS}/figures.log",
    benchmark:
        f"{BENCH}/figures.tsv"
    conda:
        ENV
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output.overview),
    resources:
        mem_mb=2000,
        runtime=20,
        gdal_cache_mb=64,
    shell:
        "gos-build --log {log} --gdal-cache-mb {resources.gdal_cache_mb} figures --grid {input.grid}"
        " --dataset {input.dataset} --layers {input.layers} --visual {input.visual}"
        " --out-dir {params.out_dir} {input.shards}"
