# The gather of the tiles' shards and records (tile.smk) into the dataset
# folder, and the distribution zips.


rule dataset:
    input:
        grid=rules.grid.output[0],
        sentinel2=rules.inputs_sentinel2.output[0],
        dem=rules.inputs_dem.output[0],
        labels=rules.labels_summary.output[0],
        records=expand(rules.tile.output.chips, tile=TILES),
        shards=expand(rules.tile.output.shard, tile=TILES),
        observations=expand(rules.tile.output.sentinel2, tile=TILES) if MEDIAN else [],
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
        directory(f"{OUT}/dist"),
    log:
        f"{LOGS}/package.log",
    benchmark:
        f"{BENCH}/package.tsv"
    conda:
        ENV
    params:
        aoi=AOI,
        part_gb=ZIP_PART_GB,
    resources:
        mem_mb=1000,
        runtime=30,
    shell:
        "gos-build --log {log} package --dataset {input} --dist {output} --aoi {params.aoi} --part-gb {params.part_gb}"
