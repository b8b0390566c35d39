# DEM: resolve the DEM files once into the inputs manifest, one mosaic (VRT)
# over them. Each tile's job (tile.smk) warps it onto the tile with a halo and
# derives the seven terrain parameters, so tiles agree with an untiled run.


rule inputs_dem:
    input:
        grid=rules.grid.output[0],
        sources=input_sources("dem"),
    output:
        manifest("dem"),
    log:
        f"{LOGS}/inputs_dem.log",
    benchmark:
        f"{BENCH}/inputs_dem.tsv"
    conda:
        ENV
    params:
        config=config_json("aoi.name", "inputs.dem"),
    resources:
        mem_mb=500,
        runtime=5,
        gdal_cache_mb=64,
    shell:
        "gos-build --log {log} --gdal-cache-mb {resources.gdal_cache_mb} inputs dem"
        " --config {params.config:q} --grid {input.grid} --out {output}"


rule dem_mosaic:
    input:
        rules.inputs_dem.output[0],
    output:
        f"{OUT}/dem/mosaic.vrt",
    log:
        f"{LOGS}/dem_mosaic.log",
    benchmark:
        f"{BENCH}/dem_mosaic.tsv"
    conda:
        ENV
    resources:
        mem_mb=500,
        runtime=5,
    shell:
        "gos-build --log {log} dem-mosaic --manifest {input} --out {output}"
