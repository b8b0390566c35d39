# DEM and the seven terrain parameters: one mosaic (VRT) over the DEM inputs,
# then one job per processing tile (DEM + hillshade, slope, mean, std,
# northness, eastness, dev), each read with a halo so tiles agree with an
# untiled run.


rule dem_mosaic:
    input:
        grid=f"{OUT}/grid.json",
        dem=input_files("dem"),
    output:
        vrt=f"{OUT}/dem/mosaic.vrt",
        summary=f"{OUT}/dem/mosaic.json",
    log:
        f"{LOGS}/dem_mosaic.log",
    benchmark:
        f"{BENCH}/dem_mosaic.tsv"
    conda:
        ENV
    params:
        dem=quoted(config["inputs"]["dem"]),
    resources:
        mem_mb=500,
        runtime=5,
        gdal_cache_mb=64,
    shell:
        "gos-build --log {log} --threads {threads} --gdal-cache-mb {resources.gdal_cache_mb} dem-mosaic --grid {input.grid} --out {output.vrt}"
        " --summary {output.summary} {params.dem}"


rule terrain:
    input:
        grid=f"{OUT}/grid.json",
        mosaic=f"{OUT}/dem/mosaic.vrt",
    output:
        f"{OUT}/tiles/{{tile}}/terrain.tif",
    log:
        f"{LOGS}/terrain/{{tile}}.log",
    benchmark:
        f"{BENCH}/terrain/{{tile}}.tsv"
    conda:
        ENV
    params:
        window=config["terrain"]["window"],
        stat=config["terrain"]["local_statistic"],
        resampling=config["terrain"]["resampling"],
        azimuth=config["terrain"]["hillshade"]["azimuth"],
        altitude=config["terrain"]["hillshade"]["altitude"],
    threads: 1
    resources:
        mem_mb=1500,
        runtime=20,
        gdal_cache_mb=64,
    shell:
        "gos-build --log {log} --threads {threads} --gdal-cache-mb {resources.gdal_cache_mb} terrain-tile --grid {input.grid} --tile {wildcards.tile}"
        " --mosaic {input.mosaic} --out {output} --window {params.window} --local-statistic {params.stat}"
        " --resampling {params.resampling} --azimuth {params.azimuth} --altitude {params.altitude}"
