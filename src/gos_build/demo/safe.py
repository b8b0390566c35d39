"""Demo Sentinel-2 L2A products: SAFE folders with JP2 bands, SCL with clouds and the product metadata.

JP2 B02 B03 B04 B08 in ``R10m``, B05 B06 B07 B8A B11 B12 and SCL in ``R20m``, B01 B09
in ``R60m`` (each band computed on its own lattice from the landscape's spectra), ``MTD_MSIL2A.xml`` carrying
processing baseline, quantification value and -- from baseline 04.00 --
BOA_ADD_OFFSET per band, ``MTD_TL.xml`` with the tile geocoding GDAL's
SENTINEL2 driver reads.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from pyproj import Transformer

from ..grid import utm_crs_for
from ..bands import band_ids

BAND_IDS = band_ids()  # band_id of the product metadata (0 = B01 ... 8 = B8A ... 12 = B12)
from ..terrain import horn_gradient
from .landscape import SPECTRA, SURFACE_BANDS, Landscape

BANDS_10M = ("B02", "B03", "B04", "B08")
BANDS_COARSE = {20: ("B05", "B06", "B07", "B8A", "B11", "B12"), 60: ("B01", "B09")}  # L2A's others (no B10)
SENSING_DATE = dt.date(2020, 10, 26)  # the GOS10m scene date
REVISIT_DAYS = 5  # Sentinel-2A + 2B revisit: the demo's later dates
CLOUD_PASSES = 16  # cloud fields per date (> the most granules): date d, part p -> pass p + 16 d
DATE_GAIN = 0.015  # reflectance gain per later date (a small radiometric difference between dates)


def mgrs_tile(lon: float, lat: float) -> str:
    """MGRS 100 km tile id (e.g. 52TCP) of a lon/lat point, as Sentinel-2 names its granules."""
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    band = "CDEFGHJKLMNPQRSTUVWX"[min(max(int(math.floor((lat + 80.0) / 8.0)), 0), 19)]
    utm = Transformer.from_crs("EPSG:4326", f"EPSG:{32600 + zone}", always_xy=True)
    e, n = utm.transform(lon, lat)
    if lat < 0:
        n += 10_000_000.0
    zone_set = (zone - 1) % 6 + 1
    col = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")[(zone_set - 1) % 3][int(e // 100_000) - 1]
    row_idx = int(n // 100_000) % 20
    if zone_set % 2 == 0:
        row_idx = (row_idx + 5) % 20
    return f"{zone:02d}{band}{col}{'ABCDEFGHJKLMNPQRSTUV'[row_idx]}"


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")

def _sun_angles(lat: float) -> tuple[float, float]:
    """(zenith, azimuth) degrees of the sun at about 10:30 local solar time on the scene date."""
    decl = -12.6  # solar declination on 26 October
    hour_angle = math.radians(-22.5)  # 10:30 local solar time
    la, de = math.radians(lat), math.radians(decl)
    cos_z = math.sin(la) * math.sin(de) + math.cos(la) * math.cos(de) * math.cos(hour_angle)
    zen = math.acos(cos_z)
    az = math.atan2(-math.sin(hour_angle), math.tan(de) * math.cos(la) - math.sin(la) * math.cos(hour_angle))
    return math.degrees(zen), (math.degrees(az) + 360.0) % 360.0


def _illumination(z: np.ndarray, res: float, zenith: float, azimuth: float) -> np.ndarray:
    """cos(incidence)/cos(zenith) for the inner part of a north-up elevation grid with a 1-pixel border."""
    dzdx, dzdn = horn_gradient(z, res, res)  # east and north gradients
    slope = np.arctan(np.hypot(dzdx, dzdn))
    aspect = np.arctan2(-dzdx, -dzdn)  # downslope direction, clockwise from north
    zr, ar = math.radians(zenith), math.radians(azimuth)
    cos_i = math.cos(zr) * np.cos(slope) + math.sin(zr) * np.sin(slope) * np.cos(ar - aspect)
    return np.clip(cos_i / math.cos(zr), 0.05, 2.5)


@dataclass
class Scene:
    """One demo Sentinel-2 L2A acquisition over one granule: the pixels and what the metadata says of them,
    written as a SAFE (:func:`write_safe`) or an EOPF Zarr product (:func:`gos_build.demo.eopf.write_eopf`)."""

    product: str  # the product id, without .SAFE / .zarr
    granule: str
    tile: str
    stamp: str
    gen: str
    sense: dt.datetime
    baseline: str
    crs: str
    ulx: int
    uly: int
    bands: np.ndarray  # (4, rows, cols) uint16 DN of B02 B03 B04 B08 at 10 m
    scl: np.ndarray  # (rows/2, cols/2) uint8 at 20 m
    offset: int
    quant: int
    cloud_pct: float
    zenith: float
    azimuth: float
    footprint: str
    coarse: dict  # resolution (20, 60) -> {band: (rows, cols) uint16 DN}: BANDS_COARSE

    @property
    def epsg(self) -> int:
        return int(self.crs.split(":")[1])


def make_scene(land: Landscape, bbox, baseline: str, cloud_fraction: float, part: int = 0, parts: int = 1,
               date: int = 0) -> Scene:
    """The pixels of a Sentinel-2 L2A granule over ``bbox`` (+1 km).

    With ``parts`` > 1 the granule covers the ``part``-th of ``parts`` west-to-east
    strips of that extent (1 km overlap between neighbours), each product with
    its own clouds -- adjacent granules to mosaic. ``date`` > 0: a later
    acquisition (``REVISIT_DAYS`` apart) of the same granule, with its own clouds
    and a small radiometric difference (gain ``1 + DATE_GAIN * date``); date 0 is
    the scene date.
    """
    lon0, lat0, lon1, lat1 = bbox
    clon, clat = (lon0 + lon1) / 2, (lat0 + lat1) / 2
    crs = utm_crs_for(clon, clat)
    tile = mgrs_tile(clon, clat)
    to_utm = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    xs, ys = to_utm.transform([lon0, lon1, lon1, lon0], [lat0, lat0, lat1, lat1])
    # granule extent: bbox + 1 km, snapped outward to 60 m so the 10/20/60 m grids nest
    ulx = math.floor((min(xs) - 1000) / 60) * 60
    uly = math.ceil((max(ys) + 1000) / 60) * 60
    lrx = math.ceil((max(xs) + 1000) / 60) * 60
    lry = math.floor((min(ys) - 1000) / 60) * 60
    if parts > 1:
        strip = math.ceil((lrx - ulx) / parts / 60) * 60
        ulx, lrx = max(ulx, ulx + part * strip - 1020), min(lrx, ulx + (part + 1) * strip + 1020)
        tile = mgrs_tile(*to_ll.transform((ulx + lrx) / 2, (uly + lry) / 2))  # scene time/sun stay the scene's
    ncols10, nrows10 = (lrx - ulx) // 10, (uly - lry) // 10

    utc_hours = (10.5 - clon / 15.0) % 24
    sense = dt.datetime.combine(SENSING_DATE + dt.timedelta(days=REVISIT_DAYS * date), dt.time()) + dt.timedelta(
        hours=utc_hours)
    sense = sense.replace(microsecond=0)
    stamp = sense.strftime("%Y%m%dT%H%M%S")
    gen = (sense + dt.timedelta(hours=2, minutes=19 + part)).strftime("%Y%m%dT%H%M%S")
    nbase = "N" + baseline.replace(".", "")
    product = f"S2B_MSIL2A_{stamp}_{nbase}_R046_T{tile}_{gen}"
    granule = f"L2A_T{tile}_A019031_{stamp}"
    zenith, azimuth = _sun_angles(clat)
    clouds = part + CLOUD_PASSES * date  # each date has its own clouds
    gain = 1.0 + DATE_GAIN * date

    def lonlat(res: int, rows: slice, ncols: int, col0: int = 0):
        r = np.arange(rows.start, rows.stop)
        c = np.arange(col0, col0 + ncols)
        x = ulx + (c + 0.5) * res
        y = uly - (r + 0.5) * res
        gx, gy = np.meshgrid(x, y)
        return to_ll.transform(gx, gy)

    # cloud threshold: the (1 - cloud_fraction) quantile of the cloud field over the granule
    if cloud_fraction > 0:
        qlon, qlat = lonlat(60, slice(0, nrows10 // 6), ncols10 // 6)
        threshold = float(np.quantile(land.cloud_field(qlon, qlat, clouds), 1.0 - cloud_fraction))
    else:
        threshold = math.inf
    shadow_km = 1.2 * math.tan(math.radians(zenith))  # ~1.2 km cloud height
    sdx = -shadow_km * 1000 * math.sin(math.radians(azimuth))  # shadows fall away from the sun
    sdy = -shadow_km * 1000 * math.cos(math.radians(azimuth))

    offset = -1000 if baseline >= "04.00" else 0
    quant = 10000
    block = 256

    def digital_numbers(res: int, names: tuple[str, ...]) -> np.ndarray:
        """uint16 DN (len(names), rows, cols) of the bands ``names`` on the granule's ``res`` m lattice."""
        nrows, ncols = (uly - lry) // res, (lrx - ulx) // res
        out = np.zeros((len(names), nrows, ncols), dtype=np.uint16)
        cloud = np.array([SPECTRA["cloud"][b] for b in names]).reshape(len(names), 1, 1)
        for r0 in range(0, nrows, block):
            rows = slice(r0, min(nrows, r0 + block))
            # one pixel of real terrain around the block for the illumination gradient (also beyond
            # the granule's edge: adjacent granules must agree where they overlap)
            glon, glat = lonlat(res, slice(rows.start - 1, rows.stop + 1), ncols + 2, col0=-1)
            illum = _illumination(land.elevation(glon, glat), float(res), zenith, azimuth)
            glon, glat = glon[1:-1, 1:-1], glat[1:-1, 1:-1]
            refl, _ = land.surface(glon, glat, names)
            refl = refl * (0.3 + 0.7 * illum)
            if gain != 1.0:
                refl = refl * gain
            op = land.cloud_opacity(glon, glat, threshold, clouds)
            slon, slat = _shift(to_ll, to_utm, glon, glat, -sdx, -sdy)
            shade = land.cloud_opacity(slon, slat, threshold, clouds)
            refl = refl * (1.0 - 0.65 * shade * (1.0 - op))
            refl = (1.0 - op) * refl + op * cloud
            out[:, rows] = np.clip(np.round(refl * quant) - offset, 1, 65535).astype(np.uint16)
        return out

    # order B04 B03 B02 B08 of the landscape's surface -> B02 B03 B04 B08 on disk
    bands = digital_numbers(10, SURFACE_BANDS)[[2, 1, 0, 3]]
    coarse = {res: dict(zip(names, digital_numbers(res, names))) for res, names in BANDS_COARSE.items()}

    nrows20, ncols20 = nrows10 // 2, ncols10 // 2
    scl = np.zeros((nrows20, ncols20), dtype=np.uint8)
    for r0 in range(0, nrows20, block):
        rows = slice(r0, min(nrows20, r0 + block))
        glon, glat = lonlat(20, rows, ncols20)
        _, s = land.surface(glon, glat)
        op = land.cloud_opacity(glon, glat, threshold, clouds)
        slon, slat = _shift(to_ll, to_utm, glon, glat, -sdx, -sdy)
        shade = land.cloud_opacity(slon, slat, threshold, clouds)
        s[(shade > 0.3) & (op < 0.02)] = 3
        s[op > 0.02] = 10
        s[op > 0.2] = 8
        s[op > 0.6] = 9
        scl[rows] = s

    cloud_pct = 100.0 * float(np.isin(scl, (8, 9, 10)).mean())
    return Scene(product, granule, tile, stamp, gen, sense, baseline, crs, ulx, uly, bands, scl, offset, quant,
                 cloud_pct, zenith, azimuth, _footprint(to_ll, ulx, uly, lrx, lry), coarse)


def write_safe(scene: Scene, out: Path) -> Path:
    """The scene as a Sentinel-2 L2A SAFE product in ``out``; returns its folder."""
    safe = out / f"{scene.product}.SAFE"
    tile, granule, stamp = scene.tile, scene.granule, scene.stamp
    nrows10, ncols10 = scene.bands.shape[1:]
    stem = f"T{tile}_{stamp}"
    t10 = Affine(10, 0, scene.ulx, 0, -10, scene.uly)
    t20 = Affine(20, 0, scene.ulx, 0, -20, scene.uly)
    image_files = []
    for i, band in enumerate(BANDS_10M):
        rel = f"GRANULE/{granule}/IMG_DATA/R10m/{stem}_{band}_10m"
        _write_jp2(safe / f"{rel}.jp2", scene.bands[i], t10, scene.crs)
        image_files.append(rel)
    for res, bands in scene.coarse.items():
        for band, dn in bands.items():
            rel = f"GRANULE/{granule}/IMG_DATA/R{res}m/{stem}_{band}_{res}m"
            _write_jp2(safe / f"{rel}.jp2", dn, Affine(res, 0, scene.ulx, 0, -res, scene.uly), scene.crs)
            image_files.append(rel)
    rel = f"GRANULE/{granule}/IMG_DATA/R20m/{stem}_SCL_20m"
    _write_jp2(safe / f"{rel}.jp2", scene.scl, t20, scene.crs)
    image_files.append(rel)

    _write_text(safe / "MTD_MSIL2A.xml", _mtd_msil2a(safe.name, stamp, scene.gen, scene.baseline, tile, granule,
                                                     image_files, scene.offset, scene.quant, scene.cloud_pct,
                                                     scene.footprint, scene.sense))
    _write_text(safe / "GRANULE" / granule / "MTD_TL.xml", _mtd_tl(tile, scene.epsg, scene.baseline, stamp, scene.gen,
                                                                      scene.ulx, scene.uly, nrows10, ncols10,
                                                                      scene.zenith, scene.azimuth, scene.cloud_pct))
    for sub in ("AUX_DATA", "DATASTRIP", "HTML", "rep_info"):
        (safe / sub).mkdir(parents=True, exist_ok=True)
    (safe / "GRANULE" / granule / "QI_DATA").mkdir(parents=True, exist_ok=True)
    return safe


def _shift(to_ll, to_utm, lon, lat, dx: float, dy: float):
    x, y = to_utm.transform(lon, lat)
    return to_ll.transform(x + dx, y + dy)


def _footprint(to_ll, ulx, uly, lrx, lry) -> str:
    lons, lats = to_ll.transform([ulx, lrx, lrx, ulx, ulx], [uly, uly, lry, lry, uly])
    return " ".join(f"{la:.6f} {lo:.6f}" for lo, la in zip(lons, lats))


def _write_jp2(path: Path, arr: np.ndarray, transform: Affine, crs: str) -> None:
    """Lossless JPEG 2000 (OpenJPEG), georeferenced, as the ground segment writes them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(driver="JP2OpenJPEG", width=arr.shape[1], height=arr.shape[0], count=1, dtype=arr.dtype,
                   crs=crs, transform=transform, QUALITY="100", REVERSIBLE="YES", YCC="NO",
                   BLOCKXSIZE="1024", BLOCKYSIZE="1024", RESOLUTIONS="4")
    with rasterio.Env(GDAL_PAM_ENABLED="NO"):
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(arr, 1)


def _mtd_msil2a(product, stamp, gen, baseline, tile, granule, image_files, offset, quant, cloud_pct,
                footprint, sense) -> str:
    iso = sense.strftime("%Y-%m-%dT%H:%M:%S.024Z")
    gen_iso = dt.datetime.strptime(gen, "%Y%m%dT%H%M%S").strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    files = "\n".join(f"              <IMAGE_FILE>{f}</IMAGE_FILE>" for f in image_files)
    offsets = ""
    if offset:
        rows = "\n".join(f'          <BOA_ADD_OFFSET band_id="{i}">{offset}</BOA_ADD_OFFSET>' for i in range(13))
        offsets = f"\n        <BOA_ADD_OFFSET_VALUES_LIST>\n{rows}\n        </BOA_ADD_OFFSET_VALUES_LIST>"
    phys = "\n".join(
        f'          <Spectral_Information bandId="{i}" physicalBand="{b.replace("B0", "B") if b != "B8A" else b}"/>'
        for b, i in BAND_IDS.items()
    )
    scl_names = ["NODATA", "SATURATED_DEFECTIVE", "DARK_FEATURE_SHADOW", "CLOUD_SHADOW", "VEGETATION",
                 "NOT_VEGETATED", "WATER", "UNCLASSIFIED", "CLOUD_MEDIUM_PROBA", "CLOUD_HIGH_PROBA",
                 "THIN_CIRRUS", "SNOW_ICE"]
    scl = "\n".join(
        f"          <Scene_Classification_ID><SCENE_CLASSIFICATION_TEXT>SC_{n}</SCENE_CLASSIFICATION_TEXT>"
        f"<SCENE_CLASSIFICATION_INDEX>{i}</SCENE_CLASSIFICATION_INDEX></Scene_Classification_ID>"
        for i, n in enumerate(scl_names)
    )
    nb = baseline
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>{iso}</PRODUCT_START_TIME>
      <PRODUCT_STOP_TIME>{iso}</PRODUCT_STOP_TIME>
      <PRODUCT_URI>{product}</PRODUCT_URI>
      <PROCESSING_LEVEL>Level-2A</PROCESSING_LEVEL>
      <PRODUCT_TYPE>S2MSI2A</PRODUCT_TYPE>
      <PROCESSING_BASELINE>{nb}</PROCESSING_BASELINE>
      <PRODUCT_DOI>synthetic: written by gos-build demo-inputs</PRODUCT_DOI>
      <GENERATION_TIME>{gen_iso}</GENERATION_TIME>
      <PREVIEW_IMAGE_URL>Not applicable</PREVIEW_IMAGE_URL>
      <PREVIEW_GEO_INFO>Not applicable</PREVIEW_GEO_INFO>
      <Datatake datatakeIdentifier="GS2B_{stamp}_019031_N{nb}">
        <SPACECRAFT_NAME>Sentinel-2B</SPACECRAFT_NAME>
        <DATATAKE_TYPE>INS-NOBS</DATATAKE_TYPE>
        <DATATAKE_SENSING_START>{iso}</DATATAKE_SENSING_START>
        <SENSING_ORBIT_NUMBER>46</SENSING_ORBIT_NUMBER>
        <SENSING_ORBIT_DIRECTION>DESCENDING</SENSING_ORBIT_DIRECTION>
      </Datatake>
      <Query_Options completeSingleTile="true">
        <PRODUCT_FORMAT>SAFE_COMPACT</PRODUCT_FORMAT>
      </Query_Options>
      <Product_Organisation>
        <Granule_List>
          <Granule datastripIdentifier="S2B_OPER_MSI_L2A_DS_2BPS_{gen}_S{stamp}_N{nb}" granuleIdentifier="S2B_OPER_MSI_L2A_TL_2BPS_{gen}_A019031_T{tile}_N{nb}" imageFormat="JPEG2000">
{files}
          </Granule>
        </Granule_List>
      </Product_Organisation>
    </Product_Info>
    <Product_Image_Characteristics>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX>
      </Special_Values>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX>
      </Special_Values>
      <Image_Display_Order>
        <RED_CHANNEL>3</RED_CHANNEL>
        <GREEN_CHANNEL>2</GREEN_CHANNEL>
        <BLUE_CHANNEL>1</BLUE_CHANNEL>
      </Image_Display_Order>
      <QUANTIFICATION_VALUES_LIST>
        <BOA_QUANTIFICATION_VALUE unit="none">{quant}</BOA_QUANTIFICATION_VALUE>
        <AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>
        <WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE>
      </QUANTIFICATION_VALUES_LIST>{offsets}
      <Reflectance_Conversion>
        <U>0.9756</U>
        <Spectral_Information_List>
{phys}
        </Spectral_Information_List>
      </Reflectance_Conversion>
      <Scene_Classification_List>
{scl}
      </Scene_Classification_List>
    </Product_Image_Characteristics>
  </n1:General_Info>
  <n1:Geometric_Info>
    <Product_Footprint>
      <Product_Footprint>
        <Global_Footprint>
          <EXT_POS_LIST>{footprint}</EXT_POS_LIST>
        </Global_Footprint>
      </Product_Footprint>
      <RASTER_CS_TYPE>POINT</RASTER_CS_TYPE>
      <PIXEL_ORIGIN>1</PIXEL_ORIGIN>
    </Product_Footprint>
    <Coordinate_Reference_System>
      <GEO_TABLES version="1">EPSG</GEO_TABLES>
      <HORIZONTAL_CS_TYPE>GEOGRAPHIC</HORIZONTAL_CS_TYPE>
    </Coordinate_Reference_System>
  </n1:Geometric_Info>
  <n1:Quality_Indicators_Info>
    <Cloud_Coverage_Assessment>{cloud_pct:.4f}</Cloud_Coverage_Assessment>
  </n1:Quality_Indicators_Info>
</n1:Level-2A_User_Product>
"""


def _mtd_tl(tile, epsg, baseline, stamp, gen, ulx, uly, nrows10, ncols10, zenith, azimuth, cloud_pct) -> str:
    zone = epsg % 100
    hemi = "N" if epsg < 32700 else "S"
    sense_iso = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%S").strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    sizes = "\n".join(
        f'      <Size resolution="{r}">\n        <NROWS>{nrows10 * 10 // r}</NROWS>\n'
        f"        <NCOLS>{ncols10 * 10 // r}</NCOLS>\n      </Size>"
        for r in (10, 20, 60)
    )
    geopos = "\n".join(
        f'      <Geoposition resolution="{r}">\n        <ULX>{ulx}</ULX>\n        <ULY>{uly}</ULY>\n'
        f"        <XDIM>{r}</XDIM>\n        <YDIM>-{r}</YDIM>\n      </Geoposition>"
        for r in (10, 20, 60)
    )
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:Level-2A_Tile_ID xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-2A_Tile_Metadata.xsd" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <n1:General_Info>
    <TILE_ID metadataLevel="Brief">S2B_OPER_MSI_L2A_TL_2BPS_{gen}_A019031_T{tile}_N{baseline}</TILE_ID>
    <DATASTRIP_ID metadataLevel="Standard">S2B_OPER_MSI_L2A_DS_2BPS_{gen}_S{stamp}_N{baseline}</DATASTRIP_ID>
    <SENSING_TIME metadataLevel="Standard">{sense_iso}</SENSING_TIME>
  </n1:General_Info>
  <n1:Geometric_Info>
    <Tile_Geocoding metadataLevel="Brief">
      <HORIZONTAL_CS_NAME>WGS84 / UTM zone {zone}{hemi}</HORIZONTAL_CS_NAME>
      <HORIZONTAL_CS_CODE>EPSG:{epsg}</HORIZONTAL_CS_CODE>
{sizes}
{geopos}
    </Tile_Geocoding>
    <Tile_Angles metadataLevel="Standard">
      <Mean_Sun_Angle>
        <ZENITH_ANGLE unit="deg">{zenith:.6f}</ZENITH_ANGLE>
        <AZIMUTH_ANGLE unit="deg">{azimuth:.6f}</AZIMUTH_ANGLE>
      </Mean_Sun_Angle>
    </Tile_Angles>
  </n1:Geometric_Info>
  <n1:Quality_Indicators_Info metadataLevel="Standard">
    <Image_Content_QI>
      <CLOUDY_PIXEL_PERCENTAGE>{cloud_pct:.4f}</CLOUDY_PIXEL_PERCENTAGE>
    </Image_Content_QI>
  </n1:Quality_Indicators_Info>
</n1:Level-2A_Tile_ID>
"""

