"""A synthetic geomorphic landscape, defined everywhere on Earth, for the demo inputs.

Every field is a pure function of (lon, lat, seed): two bboxes that overlap
see the same landscape, and the same arguments give the same numbers.

The three genesis classes carry the signatures GOS10m's classes have:

* tectonic (构造地貌): rugged, ridged high relief under forest;
* volcanic lava (火山熔岩地貌): smooth elevated plateau with scattered cones,
  darker sparse vegetation over basalt;
* fluvial (流水地貌): flat valley floors along meandering drainage, fields
  and a river channel.

Distances are in "landscape km": Mercator coordinates scaled by cos(45°),
so features are isotropic everywhere and ground-true near 45° latitude.
"""

from __future__ import annotations

import numpy as np

CLASS_TECTONIC, CLASS_VOLCANIC, CLASS_FLUVIAL = 1, 2, 3
CLASS_NAMES_ZH = {CLASS_TECTONIC: "构造地貌", CLASS_VOLCANIC: "火山熔岩地貌", CLASS_FLUVIAL: "流水地貌"}

_EARTH_KM = 6378.137
_KM_SCALE = _EARTH_KM * np.cos(np.radians(45.0))
_FLUVIAL_HALF_WIDTH = 0.075  # threshold on |river field|: ~1.5-2 km wide valley floors
_VOLCANIC_LEVEL = 0.20


def landscape_km(lon, lat):
    """(u, v) landscape coordinates in km of lon/lat degrees (float64 arrays)."""
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.clip(np.asarray(lat, dtype=np.float64), -85.0, 85.0)
    u = _KM_SCALE * np.radians(lon)
    v = _KM_SCALE * np.log(np.tan(np.pi / 4 + np.radians(lat) / 2))
    return u, v


# -- noise -----------------------------------------------------------------
_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)
_M3 = np.uint64(0xFF51AFD7ED558CCD)
_M4 = np.uint64(0xC4CEB9FE1A85EC53)


def _hash01(ix, iy, salt: int):
    """Uniform [0, 1) from integer lattice coordinates (splitmix-style finaliser)."""
    with np.errstate(over="ignore"):
        h = ix.astype(np.int64).view(np.uint64) * _M1
        h ^= iy.astype(np.int64).view(np.uint64) * _M2
        h ^= np.uint64((salt * 0x165667B19E3779F9) & 0xFFFFFFFFFFFFFFFF)
        h ^= h >> np.uint64(33)
        h *= _M3
        h ^= h >> np.uint64(33)
        h *= _M4
        h ^= h >> np.uint64(33)
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def value_noise(u, v, scale_km: float, salt: int):
    """Smooth value noise in [-1, 1] with feature size ``scale_km``."""
    x = u / scale_km
    y = v / scale_km
    ix = np.floor(x)
    iy = np.floor(y)
    fx = x - ix
    fy = y - iy
    sx = fx * fx * (3.0 - 2.0 * fx)
    sy = fy * fy * (3.0 - 2.0 * fy)
    ix = ix.astype(np.int64)
    iy = iy.astype(np.int64)
    a = _hash01(ix, iy, salt)
    b = _hash01(ix + 1, iy, salt)
    c = _hash01(ix, iy + 1, salt)
    d = _hash01(ix + 1, iy + 1, salt)
    top = a + (b - a) * sx
    bot = c + (d - c) * sx
    return 2.0 * (top + (bot - top) * sy) - 1.0


def fbm(u, v, scale_km: float, octaves: int, salt: int, gain: float = 0.5):
    """Fractal sum of value noise, normalised to about [-1, 1]."""
    total = np.zeros(np.broadcast(u, v).shape)
    amp, norm, scale = 1.0, 0.0, scale_km
    for k in range(octaves):
        total += amp * value_noise(u, v, scale, salt * 101 + k)
        norm += amp
        amp *= gain
        scale /= 2.0
    return total / norm


def ridged(u, v, scale_km: float, octaves: int, salt: int):
    """Ridged multifractal in [0, 1]: sharp crests, rugged slopes."""
    total = np.zeros(np.broadcast(u, v).shape)
    amp, norm, scale = 1.0, 0.0, scale_km
    for k in range(octaves):
        n = 1.0 - np.abs(value_noise(u, v, scale, salt * 101 + k))
        total += amp * n * n
        norm += amp
        amp *= 0.5
        scale /= 2.0
    return total / norm


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


# -- the landscape ---------------------------------------------------------
SURFACE_BANDS = ("B04", "B03", "B02", "B08")  # the 10 m bands' order in the scene
_BAND_ORDER = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
# surface reflectance of the demo's covers in every Sentinel-2 band (B01 ... B12 with B8A): vegetation dark in
# the visible, a red edge to a bright near infrared, darker again in the short-wave infrared; water dark in
# NIR and SWIR; bare rock and ploughed soil bright in SWIR; B09 (water vapour) and B10 (cirrus) absorbed
SPECTRA = {k: dict(zip(_BAND_ORDER, v)) for k, v in {
    "forest": (0.032, 0.038, 0.058, 0.050, 0.090, 0.200, 0.260, 0.28, 0.300, 0.100, 0.004, 0.150, 0.070),
    "basalt": (0.050, 0.054, 0.066, 0.068, 0.100, 0.160, 0.190, 0.20, 0.210, 0.080, 0.004, 0.260, 0.220),
    "water": (0.045, 0.040, 0.034, 0.020, 0.015, 0.012, 0.011, 0.012, 0.010, 0.004, 0.001, 0.005, 0.003),
    "bare": (0.075, 0.082, 0.112, 0.140, 0.170, 0.190, 0.205, 0.22, 0.235, 0.090, 0.004, 0.300, 0.250),
    "stubble": (0.060, 0.066, 0.090, 0.100, 0.130, 0.170, 0.190, 0.20, 0.210, 0.080, 0.004, 0.270, 0.200),
    "grass": (0.040, 0.050, 0.082, 0.060, 0.120, 0.240, 0.290, 0.31, 0.330, 0.110, 0.004, 0.200, 0.100),
    "cloud": (0.44, 0.46, 0.43, 0.42, 0.45, 0.46, 0.47, 0.48, 0.48, 0.30, 0.40, 0.36, 0.26),
}.items()}


class Landscape:
    """The demo landscape of one seed; every method takes lon/lat arrays (degrees)."""

    def __init__(self, seed: int = 0):
        self.seed = int(seed)

    def _s(self, salt: int) -> int:
        return self.seed * 1000 + salt

    def fields(self, u, v):
        """(river, plateau) fields in [-1, 1] at landscape km (u, v)."""
        river = fbm(u, v, 16.0, 3, self._s(11))
        plateau = fbm(u, v, 11.0, 3, self._s(23))
        return river, plateau

    def weights(self, u, v):
        """Soft class memberships (tectonic, volcanic, fluvial), summing to 1."""
        river, plateau = self.fields(u, v)
        # valley walls sit just outside the fluvial polygon: its inside is flat floor
        wf = _sigmoid((_FLUVIAL_HALF_WIDTH + 0.035 - np.abs(river)) / 0.01)
        wv = _sigmoid((plateau - _VOLCANIC_LEVEL) / 0.02) * (1.0 - wf)
        return 1.0 - wf - wv, wv, wf, river

    def classes(self, lon, lat):
        """Genesis class id (uint8: 1 tectonic, 2 volcanic, 3 fluvial) at lon/lat."""
        u, v = landscape_km(lon, lat)
        river, plateau = self.fields(u, v)
        out = np.full(np.shape(u), CLASS_TECTONIC, dtype=np.uint8)
        out[plateau > _VOLCANIC_LEVEL] = CLASS_VOLCANIC
        out[np.abs(river) < _FLUVIAL_HALF_WIDTH] = CLASS_FLUVIAL
        return out

    def _cones(self, u, v):
        """Height (m) of scattered cinder cones with summit craters."""
        cell = 3.0
        cx = np.floor(u / cell).astype(np.int64)
        cy = np.floor(v / cell).astype(np.int64)
        out = np.zeros(np.shape(u))
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                gx, gy = cx + dx, cy + dy
                exists = _hash01(gx, gy, self._s(81)) > 0.3
                px = (gx + 0.15 + 0.7 * _hash01(gx, gy, self._s(82))) * cell
                py = (gy + 0.15 + 0.7 * _hash01(gx, gy, self._s(83))) * cell
                radius = 0.35 + 0.35 * _hash01(gx, gy, self._s(84))
                height = 50.0 + 90.0 * _hash01(gx, gy, self._s(85))
                d = np.hypot(u - px, v - py) / radius
                cone = np.where(d < 1.0, height * np.clip(1.0 - d, 0, 1) ** 1.3, 0.0)
                crater = np.where(d < 0.22, 0.35 * height * (1.0 - d / 0.22) ** 2, 0.0)
                out = np.maximum(out, np.where(exists, cone - crater, 0.0))
        return out

    def elevation(self, lon, lat):
        """Elevation above sea level, metres (float64).

        Each class's relief is evaluated only where that class has weight,
        which keeps a full 3601 x 3601 SRTM1 tile to a few seconds.
        """
        u, v = landscape_km(lon, lat)
        wt, wv, wf, river = self.weights(u, v)
        z = 450.0 + 220.0 * fbm(u, v, 60.0, 2, self._s(31))  # regional trend
        t = wt > 1e-6
        z[t] += wt[t] * (110.0 + 420.0 * ridged(u[t], v[t], 2.6, 5, self._s(41)))
        m = wv > 1e-6
        z[m] += wv[m] * (170.0 + 14.0 * fbm(u[m], v[m], 4.0, 2, self._s(51)) + self._cones(u[m], v[m]))
        f = wf > 1e-6
        channel = np.exp(-((river[f] / (0.2 * _FLUVIAL_HALF_WIDTH)) ** 2))
        z[f] += wf[f] * (-45.0 + 5.0 * fbm(u[f], v[f], 5.0, 2, self._s(61)) - 6.0 * channel)
        return z

    # -- imagery -------------------------------------------------------------
    def surface(self, lon, lat, bands=SURFACE_BANDS):
        """Cloud-free surface reflectance in ``bands`` (Sentinel-2 names; default B04, B03, B02, B08) and SCL
        surface class.

        Returns (refl float64 array (len(bands), ...), scl uint8 array (...)): SCL 4
        vegetation, 5 not vegetated, 6 water. Spectra: :data:`SPECTRA`.
        """
        u, v = landscape_km(lon, lat)
        wt, wv, wf, river = self.weights(u, v)
        nb = len(bands)
        forest, basalt, water = (np.array([SPECTRA[k][b] for b in bands]) for k in ("forest", "basalt", "water"))
        crops = np.array([[SPECTRA[k][b] for b in bands] for k in ("bare", "stubble", "grass")])
        parcel = (
            _hash01(np.floor(u / 0.32).astype(np.int64), np.floor(v / 0.21).astype(np.int64), self._s(91)) * 3
        ).astype(np.int64)
        field = np.moveaxis(crops[np.minimum(parcel, 2)], -1, 0)  # (..., nb) -> (nb, ...)
        is_water = np.abs(river) < 0.04 * _FLUVIAL_HALF_WIDTH  # ~60-80 m wide channel
        texture = 1.0 + 0.12 * fbm(u, v, 0.12, 3, self._s(95))
        refl = (
            wt * forest.reshape(nb, *([1] * u.ndim))
            + wv * basalt.reshape(nb, *([1] * u.ndim))
            + wf * field
        ) * texture
        refl = np.where(is_water & (wf > 0.5), water.reshape(nb, *([1] * u.ndim)), refl)
        scl = np.full(np.shape(u), 4, dtype=np.uint8)
        scl[(wf > 0.5) & (parcel < 2)] = 5
        scl[is_water & (wf > 0.5)] = 6
        return refl, scl

    def cloud_opacity(self, lon, lat, threshold: float, pass_id: int = 0):
        """Cloud opacity in [0, 1] (0 clear); ``threshold`` on the cloud field sets cover."""
        return np.clip((self.cloud_field(lon, lat, pass_id) - threshold) / 0.08, 0.0, 1.0)

    def cloud_field(self, lon, lat, pass_id: int = 0):
        """The smooth field whose upper tail is cloud, about [-1, 1]; each pass has its own clouds."""
        u, v = landscape_km(lon, lat)
        return fbm(u, v, 2.5, 4, self._s(71 + 7 * pass_id))
