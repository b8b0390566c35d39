# Publishing (gos_build.archive.plan): the split of the tiles' records, then one job per group of tile columns
# writing its chips' files beside the others, then a light last job writing what spans the dataset and
# linking the groups' files into the dataset folder; and the distribution zips.


rule publish_plan:
    input:
        grid=rules.grid.output[0],
        sentinel2=rules.inputs_sentinel2.output[0],
        dem=rules.inputs_dem.output[0],
        labels=rules.labels_summary.output[0],
        records=expand(rules.tile.output.chips, tile=TILES),
        observations=expand(rules.tile.output.sentinel2, tile=TILES) if OBSERVATIONS else [],
    output:
        directory(f"{OUT}/publish/plan"),
    log:
        f"{LOGS}/publish_plan.log",
    benchmark:
        f"{BENCH}/publish_plan.tsv"
    conda:
        ENV
    params:
        config=config_json(),
        observations=lambda wildcards, input: ("--observations " + " ".join(input.observations) + " --")
        if OBSERVATIONS else "",
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "gos-build --log {log} publish-plan --config {params.config:q} --grid {input.grid}"
        " --sentinel2 {input.sentinel2} --dem {input.dem} --labels {input.labels} --out {output}"
        " {params.observations} {input.records}"


rule publish_group:
    input:
        grid=rules.grid.output[0],
        plan=rules.publish_plan.output[0],
        shards=expand(rules.tile.output.shard, tile=TILES),  # its own, and those its last chunk or shard reaches
    output:
        directory(f"{OUT}/publish/groups/{{group}}"),
    log:
        f"{LOGS}/publish_group/{{group}}.log",
    benchmark:
        f"{BENCH}/publish_group/{{group}}.tsv"
    conda:
        ENV
    params:
        config=config_json(),
    threads: 1
    resources:
        mem_mb=1500,
        runtime=30,
    shell:
        "gos-build --log {log} --threads {threads} publish-group --config {params.config:q} --grid {input.grid}"
        " --plan {input.plan} --group {wildcards.group} --out {output} {input.shards}"


rule dataset:
    input:
        grid=rules.grid.output[0],
        plan=rules.publish_plan.output[0],
        groups=expand(rules.publish_group.output[0], group=GROUPS),
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
    resources:
        mem_mb=1000,
        runtime=30,
    shell:
        "gos-build --log {log} dataset --config {params.config:q} --grid {input.grid} --plan {input.plan}"
        " --out {output} {input.groups}"


rule package:
    input:
        dataset=rules.dataset.output[0],
        groups=expand(rules.publish_group.output[0], group=GROUPS),  # their zip segments (publish/groups/<k>/zips)
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
        "gos-build --log {log} package --dataset {input.dataset} --dist {output} --aoi {params.aoi}"
        " --part-gb {params.part_gb} {input.groups}"
