# Demo inputs: real formats (SRTM HGT, Sentinel-2 L2A SAFE, GeoPackage) written
# by `gos-build demo-inputs` when the config has a `demo:` section. The demo is
# one more producer of input files: it registers its folder, and the input
# resolvers depend on its marker file for globs under that folder.

if "demo" in config:
    DEMO = config["demo"]
    PRODUCERS[DEMO["out"]] = f"{DEMO['out']}/demo-inputs.json"
    # a copied config that kept `demo:` would regenerate another area's inputs over these: refused at parse time
    _conflict = demo_conflict(DEMO["out"], DEMO.get("bbox", config["aoi"].get("bbox", [])), DEMO["seed"])
    if _conflict and config["aoi"].get("bbox"):
        raise WorkflowError(_conflict)

    rule demo_inputs:
        output:
            PRODUCERS[DEMO["out"]],
        log:
            f"{LOGS}/demo_inputs.log",
        benchmark:
            f"{BENCH}/demo_inputs.tsv"
        conda:
            ENV
        params:
            bbox=" ".join(str(v) for v in DEMO.get("bbox", config["aoi"].get("bbox", []))),
            out=lambda wildcards, output: os.path.dirname(output[0]),
            seed=DEMO["seed"],
            baseline=DEMO["baseline"],
            cloud=DEMO["cloud_fraction"],
            granules=DEMO["granules"],
            dates=DEMO["dates"],
            formats=" ".join(DEMO["sentinel2_formats"]),
        resources:
            mem_mb=4000,
            runtime=60,
        shell:
            "gos-build --log {log} demo-inputs --bbox {params.bbox} --out {params.out} "
            "--seed {params.seed} --baseline {params.baseline} --cloud-fraction {params.cloud}"
            " --granules {params.granules} --dates {params.dates} --sentinel2-formats {params.formats}"
