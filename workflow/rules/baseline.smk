# Baseline (not part of the default target): `snakemake --cores N baseline`.
# Trains the late-fusion CNN on the dataset's block split and on a seeded random
# split of the same chips, and each variant of baseline.modalities (rgb, terrain,
# both, drop-one terrain layer) over the spatial folds (else the block split);
# needs PyTorch (`pip install -e '.[ml]'`).


rule baseline:
    input:
        rules.dataset.output[0],
    output:
        metrics=f"{OUT}/baseline/metrics.json",
        report=f"{OUT}/baseline/report.md",
        figure=report(f"{OUT}/baseline/confusion.png", caption="../report/baseline.rst", category="5 Baseline"),
        ablation=report(f"{OUT}/baseline/ablation.png", caption="../report/baseline.rst", category="5 Baseline"),
    log:
        f"{LOGS}/baseline.log",
    benchmark:
        f"{BENCH}/baseline.tsv"
    conda:
        "../../envs/ml.yaml"
    params:
        seed=config["split"]["seed"],
        block=config["split"]["block_chips"],
        epochs=config["baseline"]["epochs"],
        modalities=",".join(config["baseline"]["modalities"]),
        out=lambda wildcards, output: os.path.dirname(output.metrics),
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "gos-build --log {log} --threads {threads} baseline {input} {params.out} --seed {params.seed}"
        " --block-chips {params.block} --epochs {params.epochs} --modalities {params.modalities:q}"
