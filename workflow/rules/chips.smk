# Chips per tile (one shard each: zip of chip GeoTIFFs + JSON record), then the
# gather into the dataset folder and the distribution zips.

import json


rule chips:
    input:
        grid=f"{OUT}/grid.json",
        layers=chip_inputs,
    output:
        zip=f"{OUT}/tiles/{{tile}}/chips.zip",
        json=f"{OUT}/tiles/{{tile}}/chips.json",
    log:
        f"{LOGS}/chips/{{tile}}.log",
    benchmark:
        f"{BENCH}/chips/{{tile}}.tsv"
    conda:
        ENV
    params:
        dirs=chip_tile_dirs,
        classes=json.dumps(config["classes"], ensure_ascii=False),
        stride=config["grid"]["stride"],
        purity=config["chips"]["min_purity"],
        nodata=config["chips"]["max_nodata"],
        cloud=config["chips"]["max_cloud"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
        gdal_cache_mb=64,
    shell:
        "gos-build --log {log} --threads {threads} --gdal-cache-mb {resources.gdal_cache_mb} chips-tile"
        " --grid {input.grid} --tile {wildcards.tile} --classes {params.classes:q} --stride {params.stride}"
        " --min-purity {params.purity} --max-nodata {params.nodata} --max-cloud {params.cloud}"
        " --out-zip {output.zip} --out-json {output.json} {params.dirs}"


rule dataset:
    input:
        grid=f"{OUT}/grid.json",
        sentinel2=f"{OUT}/sentinel2/inventory.json",
        dem=f"{OUT}/dem/mosaic.json",
        labels=f"{OUT}/labels/summary.json",
        shards=expand(f"{OUT}/tiles/{{tile}}/chips.{{ext}}", tile=TILES, ext=("json", "zip")),
    output:
        directory(f"{OUT}/dataset"),
    log:
        f"{LOGS}/dataset.log",
    benchmark:
        f"{BENCH}/dataset.tsv"
    conda:
        ENV
    params:
        config=json.dumps(config, ensure_ascii=False, sort_keys=True),
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "gos-build --log {log} dataset --grid {input.grid} --config-json {params.config:q}"
        " --sentinel2 {input.sentinel2} --dem {input.dem} --labels {input.labels} --out {output} {input.shards}"


rule package:
    input:
        f"{OUT}/dataset",
    output:
        expand(f"{OUT}/dist/{AOI}_{{name}}.zip", name=DIST_NAMES),
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
