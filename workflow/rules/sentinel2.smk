# Sentinel-2: resolve the products once into the inputs manifest (radiometry,
# AOI coverage, valid pixels); decode each granule's bands once over the grid
# (granules are known from the manifest: a checkpoint); then one job per tile
# writes the cloud-masked RGB and valid mask; a gather step makes the 8-bit
# preview of the whole AOI.


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
        gdal_cache_mb=256,
    shell:
        "gos-build --log {log} --threads {threads} --gdal-cache-mb {resources.gdal_cache_mb} s2-granule"
        " --grid {input.grid} --manifest {input.manifest} --granule {wildcards.granule} --out {output}"


rule s2:
    input:
        grid=rules.grid.output[0],
        manifest=rules.inputs_sentinel2.output[0],
        granules=s2_granules,
    output:
        rgb=temp(tile_file("rgb")),
        valid=temp(tile_file("valid")),
        **({"observations": temp(observations_file())} if MEDIAN else {}),
    log:
        f"{LOGS}/s2/{{tile}}.log",
    benchmark:
        f"{BENCH}/s2/{{tile}}.tsv"
    conda:
        ENV
    params:
        observations=lambda wildcards, output: f"--out-observations {output.observations}" if MEDIAN else "",
    threads: 1
    resources:
        mem_mb=1500,
        runtime=20,
        gdal_cache_mb=128,
    shell:
        "gos-build --log {log} --threads {threads} --gdal-cache-mb {resources.gdal_cache_mb} s2-tile"
        " --grid {input.grid} --tile {wildcards.tile} --manifest {input.manifest}"
        " --out-rgb {output.rgb} --out-valid {output.valid} {params.observations} --granules {input.granules}"


rule s2_preview:
    input:
        grid=rules.grid.output[0],
        rgb=expand(tile_file("rgb", "{tile}"), tile=TILES),
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
        " --out {output} {input.rgb}"
