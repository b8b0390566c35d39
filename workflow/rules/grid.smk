# The reference grid: CRS, 10 m transform on the global chip lattice, tiles.


rule grid:
    output:
        f"{OUT}/grid.json",
    log:
        f"{LOGS}/grid.log",
    benchmark:
        f"{BENCH}/grid.tsv"
    conda:
        ENV
    params:
        config=config_json("aoi", "grid"),
    resources:
        mem_mb=500,
        runtime=5,
    shell:
        "gos-build --log {log} grid {output} --config {params.config:q}"
