"""Sentinel-2 MSI spectral bands: what each is, once.

Central wavelength and bandwidth are Sentinel-2A's (ESA, MSI spectral response functions), nm; the
resolution is the band's native one, m. ``band_id`` is the band's index in the product metadata
(``MTD_MSIL2A.xml``'s ``BOA_ADD_OFFSET band_id``, ``MTD_MSIL1C.xml``'s ``RADIO_ADD_OFFSET band_id``): 0-based in
the order B01 ... B08, B8A, B09 ... -- B8A is 8 and B09 is 9, so an id is not a name's digits. ``common_name``
is STAC eo's; ``earth_search`` the asset key of Earth Search v1's ``sentinel-2-l2a`` collection.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Band:
    name: str
    band_id: int
    resolution: int  # m
    common_name: str
    centre_nm: float
    fwhm_nm: float
    earth_search: str | None  # None: not in L2A (B10, cirrus, is L1C only)

    def eo(self) -> dict:
        """The band as STAC eo v1.1.0 describes it (``eo:bands``: wavelengths in micrometres)."""
        return {"name": self.name, "common_name": self.common_name, "center_wavelength": round(self.centre_nm / 1000, 4),
                "full_width_half_max": round(self.fwhm_nm / 1000, 4)}


BANDS = {b.name: b for b in (
    Band("B01", 0, 60, "coastal", 442.7, 21.0, "coastal"),
    Band("B02", 1, 10, "blue", 492.4, 66.0, "blue"),
    Band("B03", 2, 10, "green", 559.8, 36.0, "green"),
    Band("B04", 3, 10, "red", 664.6, 31.0, "red"),
    Band("B05", 4, 20, "rededge", 704.1, 15.0, "rededge1"),
    Band("B06", 5, 20, "rededge", 740.5, 15.0, "rededge2"),
    Band("B07", 6, 20, "rededge", 782.8, 20.0, "rededge3"),
    Band("B08", 7, 10, "nir", 832.8, 106.0, "nir"),
    Band("B8A", 8, 20, "nir08", 864.7, 21.0, "nir08"),
    Band("B09", 9, 60, "nir09", 945.1, 20.0, "nir09"),
    Band("B10", 10, 60, "cirrus", 1373.5, 31.0, None),
    Band("B11", 11, 20, "swir16", 1613.7, 91.0, "swir16"),
    Band("B12", 12, 20, "swir22", 2202.4, 175.0, "swir22"),
)}
NAMES = tuple(BANDS)  # B01 ... B08 B8A B09 ... B12: the products' order
L1C_ONLY = ("B10",)  # an L2A product has no cirrus band
RGB_BANDS = ("B04", "B03", "B02")  # the rgb layer: red, green, blue


def band_ids() -> dict[str, int]:
    """Band name -> the metadata's ``band_id``."""
    return {b.name: b.band_id for b in BANDS.values()}


def needed_bands(extra=()) -> tuple[str, ...]:
    """The bands a stage reads: the rgb layer's, then those of ``sentinel2.bands`` not among them."""
    return RGB_BANDS + tuple(b for b in extra if b not in RGB_BANDS)


def period_bands(bands=None) -> tuple[str, ...]:
    """The bands of a period layer (``sentinel2.periods``): those of ``sentinel2.bands``, else rgb's B04 B03 B02."""
    return tuple(bands or RGB_BANDS)


def sentinel2_bands(bands) -> tuple[str, ...] | None:
    """The Sentinel-2 band (B01 ... B12, B8A) each of a layer's bands is: its own name where that is one (s2, the
    periods' layers), rgb's red, green, blue as B04 B03 B02 (:data:`RGB_BANDS`); None where any band is neither
    (the DEM, its parameters, the labels)."""
    rgb = {BANDS[b].common_name: b for b in RGB_BANDS}
    names = tuple(b if b in BANDS else rgb.get(b) for b in bands)
    return names if names and None not in names else None


def eo_bands(bands) -> list[dict] | None:
    """A layer's bands as STAC eo v1.1.0 describes them (``eo:bands``), each under its name in the layer (rgb's
    ``red`` is B04's wavelengths, as ``raster:bands`` names it); None for a layer of other bands
    (:func:`sentinel2_bands`)."""
    s2 = sentinel2_bands(bands)
    return None if s2 is None else [{**BANDS[b].eo(), "name": name} for name, b in zip(bands, s2)]


FALSE_COLOUR = ("B08", "B04", "B03")  # near infrared, red, green as red, green, blue: vegetation bright red


def display_bands(bands) -> tuple[int, int, int]:
    """Indices in a layer's ``bands`` of the three shown as red, green, blue: the false-colour NIR (B08, else
    B8A), red, green where the layer has them; else true colour (B04 B03 B02) where it has those; else each
    missing one replaced by the layer's bands in order."""
    bands = list(bands)
    if not {"B08", "B8A"} & set(bands) and set(RGB_BANDS) <= set(bands):
        return tuple(bands.index(b) for b in RGB_BANDS)
    want = [next((b for b in (("B08", "B8A") if f == "B08" else (f,)) if b in bands), None) for f in FALSE_COLOUR]
    spare = iter([i for i, b in enumerate(bands) if b not in want] + list(range(len(bands))) * 3)
    return tuple(bands.index(b) if b else next(spare) for b in want)
