# Sentinel-2: inventory the products once (radiometry, AOI coverage, valid
# pixels), then one job per tile writes the cloud-masked RGB and valid mask;
# a gather step makes the 8-bit preview of the whole AOI.


rule s2_inventory:
    input:
        grid=f"{OUT}/grid.json",
        products=input_files("sentinel2"),
    output:
        f"{OUT}/sentinel2/inventory.json",
    log:
        f"{LOGS}/s2_inventory.log",
    benchmark:
        f"{BENCH}/s2_inventory.tsv"
    conda:
        ENV
    params:
        products=quoted(config["inputs"]["sentinel2"]),
        snow="--mask-snow" if config["sentinel2"]["mask_snow"] else "",
    resources:
        mem_mb=1000,
        runtime=10,
        gdal_cache_mb=128,
    shell:
        "gos-build --log {log} --gdal-cache-mb {resources.gdal_cache_mb} s2-inventory --grid {input.grid}"
        " --out {output} {params.snow} {params.products}"


rule s2:
    input:
        grid=f"{OUT}/grid.json",
        inventory=f"{OUT}/sentinel2/inventory.json",
    output:
        rgb=f"{OUT}/tiles/{{tile}}/rgb.tif",
        valid=f"{OUT}/tiles/{{tile}}/valid.tif",
    log:
        f"{LOGS}/s2/{{tile}}.log",
    benchmark:
        f"{BENCH}/s2/{{tile}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1500,
        runtime=20,
        gdal_cache_mb=128,
    shell:
        "gos-build --log {log} --threads {threads} --gdal-cache-mb {resources.gdal_cache_mb} s2-tile"
        " --grid {input.grid} --tile {wildcards.tile} --inventory {input.inventory}"
        " --out-rgb {output.rgb} --out-valid {output.valid}"


rule s2_preview:
    input:
        grid=f"{OUT}/grid.json",
        rgb=expand(f"{OUT}/tiles/{{tile}}/rgb.tif", tile=TILES),
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
