"""Demo Sentinel-2 L2A products as ESA's processing framework (EOPF) writes them: Zarr groups, format 2 or 3.

The same pixels as the demo SAFE (:class:`gos_build.demo.safe.Scene`), laid out as the EOPF
Sentinel-2 product is::

    <product>.zarr/
      measurements/reflectance/r10m/{b02,b03,b04,b08}   uint16 DN, CF scale_factor 0.0001, add_offset
                              /r20m/{b05,b06,b07,b8a,b11,b12}, /r60m/{b01,b09}: the others, at their own
                                   /{x,y}                 int64 pixel centres (m), in each group
      conditions/mask/l2a_classification/r20m/scl        uint8 scene classification, and r60m/scl
                                         /r{20,60}m/{x,y}
      root attributes: other_metadata.horizontal_CRS_code, stac_discovery.properties (product:type
      S02MSIL2A, eopf:baseline, processing:version, eo:cloud_cover, proj:epsg, start_datetime ...)

Bands carry ``add_offset`` -0.1 from baseline 04.00 on (the BOA offset; the DN keep the product's +1000),
``fill_value`` 0 and ``valid_min`` 1; no per-variable ``proj:*`` attributes (dropped in processor 2.6).
Chunks are small (256 px at 10 m) so windowed reads touch few of them; blosc zstd with bit shuffle, as
ESA writes them; metadata consolidated (``.zmetadata`` / ``zarr.json``).
"""

from __future__ import annotations

import os
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ..bands import BANDS
from .safe import BANDS_10M, Scene

CHUNK_10M = 256
PROCESSOR_VERSION = "2.9.0"  # stac_discovery processing:version of the demo's products (format 2); 3.x -> v3
WAVELENGTH_NM = {"B02": 492.7, "B03": 559.8, "B04": 664.6, "B08": 832.8}


def _compressor(zarr_format: int) -> dict:
    import zarr
    from numcodecs import Blosc

    if zarr_format == 2:
        return {"compressor": Blosc(cname="zstd", clevel=3, shuffle=Blosc.BITSHUFFLE)}
    return {"compressors": [zarr.codecs.BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")]}


def _array(group, name: str, data: np.ndarray, zarr_format: int, dims: tuple[str, ...], chunks, attrs: dict,
           fill_value) -> None:
    kw = {"dimension_names": dims} if zarr_format == 3 else {}
    attrs = dict(attrs, _ARRAY_DIMENSIONS=list(dims)) if zarr_format == 2 else dict(attrs)
    arr = group.create_array(name, shape=data.shape, chunks=chunks, dtype=data.dtype, fill_value=fill_value,
                             attributes=attrs, **_compressor(zarr_format), **kw)
    arr[...] = data


def _coords(group, res: int, ulx: int, uly: int, shape: tuple[int, int], zarr_format: int) -> None:
    rows, cols = shape
    x = (ulx + res // 2 + res * np.arange(cols)).astype(np.int64)  # pixel centres
    y = (uly - res // 2 - res * np.arange(rows)).astype(np.int64)
    _array(group, "x", x, zarr_format, ("x",), (cols,), {"units": "m", "standard_name": "projection_x_coordinate"},
           None)
    _array(group, "y", y, zarr_format, ("y",), (rows,), {"units": "m", "standard_name": "projection_y_coordinate"},
           None)


def write_eopf(scene: Scene, out: Path, zarr_format: int) -> Path:
    """The scene as an EOPF Sentinel-2 L2A Zarr product (format 2 or 3) in ``out``; returns its folder."""
    import zarr

    dest = Path(out) / f"{scene.product}.zarr"
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    epsg = scene.epsg
    zone, hemi = epsg % 100, "N" if epsg < 32700 else "S"
    version = PROCESSOR_VERSION if zarr_format == 2 else "3.0.0"
    props = {"product:type": "S02MSIL2A", "processing:level": "L2A", "eopf:baseline": scene.baseline,
             "processing:version": version, "platform": "sentinel-2b", "constellation": "sentinel-2",
             "instrument": "msi", "eo:cloud_cover": round(scene.cloud_pct, 6), "proj:epsg": epsg,
             "start_datetime": scene.sense.strftime("%Y-%m-%dT%H:%M:%S.024000+00:00"),
             "end_datetime": scene.sense.strftime("%Y-%m-%dT%H:%M:%S.024000+00:00"), "datetime": None,
             "sat:relative_orbit": 46, "sat:orbit_state": "descending", "mgrs:tile": scene.tile,
             "product:doi": "synthetic: written by gos-build demo-inputs"}
    root = zarr.open_group(str(dest), mode="w", zarr_format=zarr_format, attributes={
        "other_metadata": {"horizontal_CRS_code": f"EPSG:{epsg}", "horizontal_CRS_name": f"WGS84 / UTM zone {zone}{hemi}",
                           "mean_sun_zenith_angle": round(scene.zenith, 6), "mean_sun_azimuth_angle": round(scene.azimuth, 6)},
        "stac_discovery": {"type": "Feature", "stac_version": "1.0.0", "id": scene.product, "properties": props}})
    r10 = root.create_group("measurements").create_group("reflectance").create_group("r10m")
    add_offset = scene.offset / scene.quant  # -0.1 from baseline 04.00 on, else 0
    for i, band in enumerate(BANDS_10M):
        attrs = {"long_name": f"BOA reflectance from MSI acquisition at spectral band {band.lower()} "
                              f"{WAVELENGTH_NM[band]} nm",
                 "units": "digital_counts", "scale_factor": 1.0 / scene.quant, "add_offset": add_offset,
                 "fill_value": 0, "_FillValue": 0, "valid_min": 1, "valid_max": 65535, "dtype": "<u2",
                 "coordinates": "x y"}
        _array(r10, band.lower(), scene.bands[i], zarr_format, ("y", "x"), (CHUNK_10M, CHUNK_10M), attrs, 0)
    _coords(r10, 10, scene.ulx, scene.uly, scene.bands.shape[1:], zarr_format)
    refl = root["measurements/reflectance"]
    for res, bands in scene.coarse.items():  # r20m, r60m: the bands at their own resolution
        group = refl.create_group(f"r{res}m")
        for band, dn in bands.items():
            attrs = {"long_name": f"BOA reflectance from MSI acquisition at spectral band {band.lower()} "
                                  f"{BANDS[band].centre_nm} nm",
                     "units": "digital_counts", "scale_factor": 1.0 / scene.quant, "add_offset": add_offset,
                     "fill_value": 0, "_FillValue": 0, "valid_min": 1, "valid_max": 65535, "dtype": "<u2",
                     "coordinates": "x y"}
            chunk = max(1, CHUNK_10M * 10 // res)
            _array(group, band.lower(), dn, zarr_format, ("y", "x"), (chunk, chunk), attrs, 0)
        _coords(group, res, scene.ulx, scene.uly, next(iter(bands.values())).shape, zarr_format)
    cls = root.create_group("conditions").create_group("mask").create_group("l2a_classification")
    scl_attrs = {"long_name": "Scene classification map (SCL)", "flag_values": list(range(12)),
                 "flag_meanings": "no_data saturated_or_defective_pixel topographic_casted_shadows cloud_shadows "
                                  "vegetation not_vegetated water unclassified cloud_medium_probability "
                                  "cloud_high_probability thin_cirrus snow_or_ice",
                 "coordinates": "x y"}
    for res, scl in ((20, scene.scl), (60, scene.scl[1::3, 1::3])):
        g = cls.create_group(f"r{res}m")
        _array(g, "scl", np.ascontiguousarray(scl), zarr_format, ("y", "x"), (CHUNK_10M // 2, CHUNK_10M // 2),
               scl_attrs, 0)
        _coords(g, res, scene.ulx, scene.uly, scl.shape, zarr_format)
    with warnings.catch_warnings():  # zarr: consolidated metadata is not (yet) part of the format 3 spec
        warnings.simplefilter("ignore", category=UserWarning)
        zarr.consolidate_metadata(str(dest))
    return dest


def zip_product(folder: str | Path) -> Path:
    """``<product>.zarr.zip`` beside the folder: its files at the zip's root, stored (the chunks are
    compressed already), in path order with a fixed timestamp (same folder -> same bytes)."""
    folder = Path(folder)
    dest = folder.with_name(folder.name + ".zip")
    files = sorted(str(p.relative_to(folder)).replace(os.sep, "/") for p in folder.rglob("*") if p.is_file())
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED) as zf:
        for rel in files:
            info = zipfile.ZipInfo(rel, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, (folder / rel).read_bytes())
    return dest
