"""Chip GeoTIFFs without a GDAL dataset each: byte for byte GDAL's, and read back as GDAL reads them."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.io import MemoryFile

from gos_build import gtiff
from gos_build.io import geotiff_bytes

KINDS = [  # (shape, dtype, nodata, band descriptions, (unit, scale, offset)): the chip layers gos-build writes
    ((3, 64, 64), "uint16", 0, ["rgb R", "rgb G", "rgb B"], ("1", 0.0001, 0.0)),
    ((1, 64, 64), "float32", -9999.0, ["dem"], ("m", 1.0, 0.0)),
    ((1, 64, 64), "uint8", None, ["label"], None),  # a mask: no units
    ((1, 32, 48), "float32", -9999.0, ["slope"], ("degree", 1.0, 0.0)),  # another chip size: other strips
]


def _arrays(shape, dtype, nodata, n, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        if np.dtype(dtype).kind == "f":
            a = (rng.standard_normal(shape) * 10 ** (i % 4) + 500).astype(dtype)
        else:
            a = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
        if i % 3 == 1 and nodata is not None:
            a[:, rng.integers(0, shape[1]) :, : rng.integers(1, shape[2])] = nodata  # a nodata corner
        if i % 3 == 2:
            a[:] = a.flat[0]  # flat: long runs
        yield a


def _transform(i):
    return Affine(10.0, 0.0, 432640.0 + 640 * i, 0.0, -10.0, 4830720.0 - 1280 * i)


@pytest.mark.parametrize("shape,dtype,nodata,descriptions,units", KINDS)
def test_encoder_writes_gdals_bytes(shape, dtype, nodata, descriptions, units):
    enc = gtiff.Encoder(shape, dtype, "EPSG:32652", nodata, descriptions, 10.0, units)
    assert enc.level is not None, "the assembled GeoTIFFs differ from GDAL's here: every chip goes through GDAL"
    for i, a in enumerate(_arrays(shape, dtype, nodata, 12)):
        data = enc.encode(a, _transform(i))
        assert data == geotiff_bytes(a, "EPSG:32652", _transform(i), nodata, descriptions, units)
    with MemoryFile(data) as mem, mem.open() as ds:  # GDAL reads the band metadata back
        unit, scale, offset = units or (None, 1.0, 0.0)
        assert ds.units == (unit,) * shape[0] and ds.scales == (scale,) * shape[0]
        assert ds.offsets == (offset,) * shape[0] and list(ds.descriptions) == descriptions


def test_encoder_hands_other_chips_to_gdal(monkeypatch):
    shape, dtype, nodata, desc, _ = KINDS[1]
    a = next(_arrays(shape, dtype, nodata, 1))
    enc = gtiff.Encoder(shape, dtype, "EPSG:32652", nodata, desc, 10.0)
    t20 = Affine(20.0, 0.0, 432640.0, 0.0, -20.0, 4830720.0)  # another pixel size than the template's
    assert enc.encode(a, t20) == geotiff_bytes(a, "EPSG:32652", t20, nodata, desc)
    b = a[:, :32]  # another shape
    assert enc.encode(b, _transform(0)) == geotiff_bytes(b, "EPSG:32652", _transform(0), nodata, desc)
    # a libdeflate that cannot give libtiff's bytes: the encoder proves nothing and uses GDAL for every chip
    monkeypatch.setattr(gtiff.Encoder, "LEVELS", (1,))
    slow = gtiff.Encoder(shape, dtype, "EPSG:32652", nodata, desc, 10.0)
    assert slow.level is None
    assert slow.encode(a, _transform(3)) == geotiff_bytes(a, "EPSG:32652", _transform(3), nodata, desc)


@pytest.mark.parametrize("shape,dtype,nodata,descriptions,units", KINDS)
def test_reader_gives_what_gdal_reads(shape, dtype, nodata, descriptions, units):
    datas, expected = [], []
    for i, a in enumerate(_arrays(shape, dtype, nodata, 6, seed=1)):
        data = geotiff_bytes(a, "EPSG:32652", _transform(i), nodata, descriptions, units)
        with MemoryFile(data) as mem, mem.open() as ds:
            ref = ds.read()
            h = gtiff.read_header(data)
            assert (h.width, h.height, h.count, h.dtype) == (ds.width, ds.height, ds.count, ds.dtypes[0])
            assert h.bounds == tuple(ds.bounds)
        assert np.array_equal(gtiff.read_array(data), ref) and np.array_equal(ref, a)
        datas.append(data)
        expected.append(ref)
    assert np.array_equal(gtiff.read_arrays(datas), np.stack(expected))


def test_other_geotiffs_are_refused_by_the_reader_and_read_by_gdal(tmp_path):
    a = (np.arange(64 * 64, dtype=np.float32).reshape(1, 64, 64) / 7).astype(np.float32)
    paths = []
    for name, opts in (("lzw", dict(compress="lzw")), ("tiled", dict(compress="deflate", tiled=True, blockxsize=16,
                                                                       blockysize=16))):
        p = tmp_path / f"{name}.tif"
        with rasterio.open(p, "w", driver="GTiff", width=64, height=64, count=1, dtype="float32", crs="EPSG:32652",
                           transform=_transform(0), **opts) as dst:
            dst.write(a)
        paths.append(p)
    with pytest.raises(gtiff.NotAChip):
        gtiff.read_array(paths[0].read_bytes())
    with pytest.raises(gtiff.NotAChip):
        gtiff.read_array(paths[1].read_bytes())
    assert np.array_equal(gtiff.read_files(paths), np.stack([a, a]))
    point = tmp_path / "point.tif"  # georeferenced by pixel centres: GDAL shifts bounds by half a pixel
    with rasterio.open(point, "w", driver="GTiff", width=64, height=64, count=1, dtype="float32", crs="EPSG:32652",
                       transform=_transform(0), compress="deflate", predictor=3) as dst:
        dst.write(a)
        dst.update_tags(AREA_OR_POINT="Point")
    with pytest.raises(gtiff.NotAChip, match="PixelIsPoint"):
        gtiff.read_header(point.read_bytes())
    with pytest.raises(gtiff.NotAChip):
        gtiff.read_header(b"not a tiff at all")


def test_validate_takes_a_chip_without_units_from_an_earlier_gos_build_and_finds_a_wrong_one():
    """An older chip (descriptions, no unit, scale or offset) says nothing wrong; a wrong unit, a lost
    description or a wrong scale is a finding naming the band field."""
    from affine import Affine as A

    from gos_build.archive.validate import _declared
    from gos_build.layout import GOS10M, band_descriptions

    def header(layer, units):
        arr = np.zeros((len(layer.bands), 8, 8), layer.dtype)
        data = geotiff_bytes(arr, "EPSG:32652", A(10, 0, 0, 0, -10, 80), layer.nodata, band_descriptions(layer),
                             units)
        return gtiff.read_header(data)

    rgb, slope = GOS10M["rgb"], GOS10M["slope"]
    assert _declared(rgb, header(rgb, rgb.gdal_units), {}) is None
    assert _declared(rgb, header(rgb, None), {}) is None  # written before units were declared
    assert _declared(slope, header(slope, ("radian", 1.0, 0.0)), {}) == \
        "band unit ['radian'] in the GeoTIFF, the layer's is ['degree'] (value x scale + offset in unit)"
    assert _declared(rgb, header(rgb, ("1", 0.001, 0.0)), {}).startswith("band scale [0.001, 0.001, 0.001]")
