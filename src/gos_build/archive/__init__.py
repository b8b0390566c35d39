"""The dataset archive: from the tile jobs' chips to the published product.

* :mod:`.shard` -- per tile: cut the chips (:mod:`gos_build.chips`) and let
  every per-tile writer encode them (``tiles/<id>/chips.{zip,json}``);
* :mod:`.gather` -- once: splits, statistics, index files, the writers' gather
  step, datacard and ``MANIFEST.sha256`` into ``results/<aoi>/dataset``;
* :mod:`.writers` -- one module per output format (today the GeoTIFF tree);
* :mod:`.package` -- the distribution zips; :mod:`.validate` -- ``gos-build validate``;
  :mod:`.datacard` -- the provenance page.

Layout (``results/<aoi>/dataset/``)::

    <modality>/<class>/<chip_id>.tif   one GeoTIFF per chip and modality (writers.tree)
    classes.txt                        id name name_zh (tab-separated)
    labels.txt                         chip_id label purity split x y
    train.txt val.txt test.txt         chip ids
    stats.json                         per-layer (per-band) mean/std/min/max over train chips
    datacard.md                        provenance: inputs, config, versions, counts
    MANIFEST.sha256                    sha256 of every file above
"""
