# Labels: resolve the interpretation polygons into the inputs manifest; map
# them to class ids (checked, repaired, reprojected, overlap rule applied)
# once; then rasterize per processing tile.


rule inputs_polygons:
    input:
        grid=rules.grid.output[0],
        sources=input_sources("polygons"),
    output:
        manifest("polygons"),
    log:
        f"{LOGS}/inputs_polygons.log",
    benchmark:
        f"{BENCH}/inputs_polygons.tsv"
    conda:
        ENV
    params:
        config=config_json("inputs.polygons", "inputs.class_field", "inputs.polygons_encoding"),
    resources:
        mem_mb=500,
        runtime=5,
    shell:
        "gos-build --log {log} inputs polygons --config {params.config:q} --grid {input.grid} --out {output}"


rule labels_prepare:
    input:
        grid=rules.grid.output[0],
        manifest=rules.inputs_polygons.output[0],
    output:
        gpkg=f"{OUT}/labels/polygons.gpkg",
        summary=f"{OUT}/labels/prepare.json",
    log:
        f"{LOGS}/labels_prepare.log",
    benchmark:
        f"{BENCH}/labels_prepare.tsv"
    conda:
        ENV
    params:
        config=config_json("inputs.class_field", "classes", "labels"),
    resources:
        mem_mb=2000,
        runtime=10,
        gdal_cache_mb=64,
    shell:
        "gos-build --log {log} --gdal-cache-mb {resources.gdal_cache_mb} labels-prepare --config {params.config:q}"
        " --grid {input.grid} --manifest {input.manifest} --out {output.gpkg} --summary {output.summary}"


rule labels:
    input:
        grid=rules.grid.output[0],
        prepared=rules.labels_prepare.output.gpkg,
    output:
        tif=temp(tile_file("labels")),
        counts=f"{OUT}/tiles/{{tile}}/labels.json",
    log:
        f"{LOGS}/labels/{{tile}}.log",
    benchmark:
        f"{BENCH}/labels/{{tile}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
        gdal_cache_mb=64,
    shell:
        "gos-build --log {log} --threads {threads} --gdal-cache-mb {resources.gdal_cache_mb} labels-tile"
        " --grid {input.grid} --tile {wildcards.tile} --prepared {input.prepared}"
        " --out {output.tif} --counts {output.counts}"


rule labels_summary:
    input:
        prepared=rules.labels_prepare.output.summary,
        counts=expand(f"{OUT}/tiles/{{tile}}/labels.json", tile=TILES),
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
