# Figures of the built dataset, registered for `snakemake --report report.html`.
# Their maps come from overview_layers.tif, assembled from the pieces each tile's
# job decimated from its layers: figures can be redrawn after the scratch is gone.


rule overview_layers:
    input:
        grid=rules.grid.output[0],
        pieces=expand(rules.tile.output.overview, tile=TILES),
    output:
        f"{OUT}/figures/overview_layers.tif",
    log:
        f"{LOGS}/overview_layers.log",
    benchmark:
        f"{BENCH}/overview_layers.tsv"
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=10,
        gdal_cache_mb=64,
    shell:
        "gos-build --log {log} --gdal-cache-mb {resources.gdal_cache_mb} overview-layers --grid {input.grid}"
        " --out {output} {input.pieces}"


rule figures:
    input:
        grid=rules.grid.output[0],
        dataset=rules.dataset.output[0],
        visual=rules.s2_preview.output[0],
        layers=rules.overview_layers.output[0],
        shards=expand(rules.tile.output.chips, tile=TILES),
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
