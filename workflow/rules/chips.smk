# Chips per tile (one shard each: the writers' per-tile files + the tile's
# record), then the gather into the dataset folder and the distribution zips.


rule chips:
    input:
        grid=rules.grid.output[0],
        polygons=rules.labels_prepare.output.gpkg,
        layers=chip_inputs,
    output:
        shard=temp(directory(f"{OUT}/tiles/{{tile}}/shard")),
        json=f"{OUT}/tiles/{{tile}}/chips.json",
    log:
        f"{LOGS}/chips/{{tile}}.log",
    benchmark:
        f"{BENCH}/chips/{{tile}}.tsv"
    conda:
        ENV
    params:
        dirs=chip_tile_dirs,
        config=config_json("classes", "grid", "chips"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
        gdal_cache_mb=64,
    shell:
        "gos-build --log {log} --threads {threads} --gdal-cache-mb {resources.gdal_cache_mb} chips-tile"
        " --config {params.config:q} --grid {input.grid} --tile {wildcards.tile}"
        " --polygons {input.polygons} --out-shard {output.shard} --out-json {output.json} {params.dirs}"


rule dataset:
    input:
        grid=rules.grid.output[0],
        sentinel2=rules.inputs_sentinel2.output[0],
        dem=rules.inputs_dem.output[0],
        labels=rules.labels_summary.output[0],
        records=expand(rules.chips.output.json, tile=TILES),
        shards=expand(rules.chips.output.shard, tile=TILES),
        observations=[observations_file(t) for t in TILES] if MEDIAN else [],
    output:
        directory(f"{OUT}/dataset"),
    log:
        f"{LOGS}/dataset.log",
    benchmark:
        f"{BENCH}/dataset.tsv"
    conda:
        ENV
    params:
        config=config_json(),
        observations=lambda wildcards, input: ("--observations " + " ".join(input.observations) + " --")
        if MEDIAN else "",
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "gos-build --log {log} --threads {threads} dataset --config {params.config:q} --grid {input.grid}"
        " --sentinel2 {input.sentinel2} --dem {input.dem} --labels {input.labels} --out {output}"
        " {params.observations} {input.records} {input.shards}"


rule package:
    input:
        rules.dataset.output[0],
    output:
        package_files(),
    log:
        f"{LOGS}/package.log",
    benchmark:
        f"{BENCH}/package.tsv"
    conda:
        ENV
    params:
        dist=lambda wildcards, output: os.path.dirname(output[0]),
        aoi=AOI,
    resources:
        mem_mb=1000,
        runtime=30,
    shell:
        "gos-build --log {log} package --dataset {input} --dist {params.dist} --aoi {params.aoi}"
