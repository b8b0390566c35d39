# Labels: interpretation polygons -> class ids (checked, repaired, reprojected,
# overlap rule applied) once, then rasterized per processing tile.

import json


rule labels_prepare:
    input:
        grid=f"{OUT}/grid.json",
        polygons=input_files("polygons"),
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
        polygons=config["inputs"]["polygons"],
        field=config["inputs"]["class_field"],
        classes=json.dumps(config["classes"], ensure_ascii=False),
        overlap=config["labels"]["overlap"],
        unknown=config["labels"]["unknown_values"],
    resources:
        mem_mb=2000,
        runtime=10,
        gdal_cache_mb=64,
    shell:
        "gos-build --log {log} --gdal-cache-mb {resources.gdal_cache_mb} labels-prepare --grid {input.grid}"
        " --polygons {params.polygons:q} --class-field {params.field:q} --classes {params.classes:q}"
        " --overlap {params.overlap} --unknown-values {params.unknown}"
        " --out {output.gpkg} --summary {output.summary}"


rule labels:
    input:
        grid=f"{OUT}/grid.json",
        prepared=f"{OUT}/labels/polygons.gpkg",
    output:
        tif=f"{OUT}/tiles/{{tile}}/labels.tif",
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
        prepared=f"{OUT}/labels/prepare.json",
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
