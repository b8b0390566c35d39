# Figures of the built dataset, registered for `snakemake --report report.html`.


rule figures:
    input:
        grid=f"{OUT}/grid.json",
        dataset=f"{OUT}/dataset",
        visual=f"{OUT}/sentinel2/visual.tif",
        shards=expand(f"{OUT}/tiles/{{tile}}/chips.json", tile=TILES),
        tiles=expand(f"{OUT}/tiles/{{tile}}/{{layer}}.tif", tile=TILES, layer=("terrain", "labels")),
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
        tiles_dir=lambda wildcards, input: os.path.dirname(os.path.dirname(input.shards[0])),
        out_dir=lambda wildcards, output: os.path.dirname(output.overview),
    resources:
        mem_mb=2000,
        runtime=20,
        gdal_cache_mb=64,
    shell:
        "gos-build --log {log} --gdal-cache-mb {resources.gdal_cache_mb} figures --grid {input.grid}"
        " --dataset {input.dataset} --tiles-dir {params.tiles_dir} --visual {input.visual}"
        " --out-dir {params.out_dir} {input.shards}"
