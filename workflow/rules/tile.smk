# One job per processing tile: Sentinel-2 (cloud-masked RGB and valid mask from
# the decoded granules), the DEM and its seven terrain parameters, the labels,
# then the tile's chips -- in one process, the layers passed in memory
# (gos_build.tile_job). It leaves the tile's shard (scratch, for the dataset),
# small records that stay, and two small pieces from which the AOI-wide preview
# and overview maps are assembled below.


rule tile:
    input:
        grid=rules.grid.output[0],
        sentinel2=rules.inputs_sentinel2.output[0],
        granules=s2_granules,
        mosaic=rules.dem_mosaic.output[0],
        polygons=rules.labels_prepare.output.gpkg,
    output:
        shard=temp(directory(f"{OUT}/tiles/{{tile}}/shard")),
        chips=f"{OUT}/tiles/{{tile}}/chips.json",
        labels=f"{OUT}/tiles/{{tile}}/labels.json",
        sentinel2=f"{OUT}/tiles/{{tile}}/sentinel2.json",
        preview=temp(f"{OUT}/tiles/{{tile}}/preview.tif"),
        overview=temp(f"{OUT}/tiles/{{tile}}/overview.tif"),
    log:
        f"{LOGS}/tile/{{tile}}.log",
    benchmark:
        f"{BENCH}/tile/{{tile}}.tsv"
    conda:
        ENV
    params:
        config=config_json("terrain", "classes", "grid", "chips", "publish.forms", "sentinel2.bands",
                           "sentinel2.periods"),
    threads: 1
    priority: tile_priority
    resources:
        mem_mb=2000,
        runtime=20,
        gdal_cache_mb=128,
    shell:
        "gos-build --log {log} --threads {threads} --gdal-cache-mb {resources.gdal_cache_mb} tile"
        " --config {params.config:q} --grid {input.grid} --tile {wildcards.tile} --sentinel2 {input.sentinel2}"
        " --mosaic {input.mosaic} --polygons {input.polygons} --out-shard {output.shard} --out-chips {output.chips}"
        " --out-labels {output.labels} --out-sentinel2 {output.sentinel2} --out-preview {output.preview}"
        " --out-overview {output.overview} --granules {input.granules}"


rule labels_summary:
    input:
        prepared=rules.labels_prepare.output.summary,
        counts=expand(rules.tile.output.labels, tile=TILES),
    output:
        f"{OUT}/labels/summary.json",
    log:
        f"{LOGS}/labels_summary.log",
    benchmark:
        f"{BENCH}/labels_summary.tsv"
    conda:
        ENV
    resources:
        mem_mb=200,
        runtime=5,
    shell:
        "gos-build --log {log} labels-summary --prepare-summary {input.prepared} --out {output} {input.counts}"


rule s2_preview:
    input:
        grid=rules.grid.output[0],
        pieces=expand(rules.tile.output.preview, tile=TILES),
    output:
        f"{OUT}/sentinel2/visual.tif",
    log:
        f"{LOGS}/s2_preview.log",
    benchmark:
        f"{BENCH}/s2_preview.tsv"
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=10,
        gdal_cache_mb=64,
    shell:
        "gos-build --log {log} --gdal-cache-mb {resources.gdal_cache_mb} s2-preview --grid {input.grid}"
        " --out {output} {input.pieces}"
