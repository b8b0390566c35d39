# Sentinel-2: resolve the products once into the inputs manifest (radiometry,
# AOI coverage, valid pixels); decode each granule's bands once over the grid
# (granules are known from the manifest: a checkpoint). The tiles' cloud-masked
# RGB and valid mask are made in each tile's job (tile.smk).


checkpoint inputs_sentinel2:
    input:
        grid=rules.grid.output[0],
        sources=input_sources("sentinel2"),
    output:
        manifest("sentinel2"),
    log:
        f"{LOGS}/inputs_sentinel2.log",
    benchmark:
        f"{BENCH}/inputs_sentinel2.tsv"
    conda:
        ENV
    params:
        config=config_json("aoi.name", "inputs.sentinel2", "sentinel2"),
    resources:
        mem_mb=1000,
        runtime=10,
        gdal_cache_mb=128,
    shell:
        "gos-build --log {log} --gdal-cache-mb {resources.gdal_cache_mb} inputs sentinel2"
        " --config {params.config:q} --grid {input.grid} --out {output}"


rule s2_granule:
    input:
        grid=rules.grid.output[0],
        manifest=rules.inputs_sentinel2.output[0],
    output:
        temp(directory(f"{OUT}/sentinel2/granules/{{granule}}")),
    log:
        f"{LOGS}/s2_granule/{{granule}}.log",
    benchmark:
        f"{BENCH}/s2_granule/{{granule}}.tsv"
    conda:
        ENV
    wildcard_constraints:
        granule=r"\d+-\d+",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=20,
        # a row of the product's blocks is read at a time, each block once: the cache need not hold more than
        # that row (a 10 m band's: 11 blocks of 1024 x 1024 px, 22 MB); 256 MB let the job's memory grow with the AOI
        gdal_cache_mb=32,
    shell:
        "gos-build --log {log} --threads {threads} --gdal-cache-mb {resources.gdal_cache_mb} s2-granule"
        " --grid {input.grid} --manifest {input.manifest} --granule {wildcards.granule} --out {output}"
