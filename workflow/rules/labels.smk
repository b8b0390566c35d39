# Labels: resolve the interpretation polygons into the inputs manifest; map
# them to class ids (checked, repaired, reprojected, overlap rule applied)
# once. Each tile's job (tile.smk) rasterizes them on the tile.


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
