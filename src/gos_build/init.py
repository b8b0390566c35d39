"""``gos-build init``: a first config for your own area, from a bbox and input globs, with its inputs checked.

The config holds the AOI, the inputs as given (globs, relative to where the workflow runs) and the classes read
from the polygons' class field -- one class per distinct value, ids 1..K in the order of the values -- and leaves
every other setting to its default. Each input is then checked as the workflow's first jobs check it
(:func:`gos_build.inputs.resolve`: files found, readable, covering the AOI, ...) and the result is said in one
line per input: what was found, or what is missing and why.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from .config import schema_entry
from .errors import GosBuildError

# GOS10m's three genesis classes under their Chinese names: the English folder names init gives them
GOS10M_NAMES = {"构造地貌": "tectonic", "火山熔岩地貌": "volcanic", "流水地貌": "fluvial"}
_CLASSES = schema_entry("classes")
_NAME = re.compile(_CLASSES["additionalProperties"]["properties"]["name"]["pattern"])  # a folder name of the tree
MAX_CLASSES = _CLASSES["maxProperties"]


@dataclass
class Checked:
    """One input's check: ``ok`` and what to say of it."""

    kind: str
    ok: bool
    text: str


@dataclass
class Draft:
    """The config drafted by :func:`draft_config` and what its inputs' checks said."""

    config: dict
    checks: list[Checked] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[Checked]:
        return [c for c in self.checks if not c.ok]


def classes_from_values(values: list) -> tuple[dict, list[str]]:
    """The ``classes:`` section for the distinct values of the class field (GOS10m's in its order, the others
    sorted), and notes on the names a user should look at: a value that is a plain name names its class;
    GOS10m's Chinese names get their English names; any other value gets ``class_<id>`` (and the value as
    ``name_zh`` where it is not ASCII)."""
    if len(values) > MAX_CLASSES:
        raise GosBuildError(f"inputs.class_field: {len(values)} distinct values; a dataset holds at most "
                            f"{MAX_CLASSES} classes (is it the right field?)")
    classes, notes, used = {}, [], set()
    order = list(GOS10M_NAMES)  # GOS10m's classes in GOS10m's order (1 tectonic, 2 volcanic, 3 fluvial), then the rest
    for cid, value in enumerate(sorted(values, key=lambda v: (order.index(str(v)) if str(v) in order else len(order),
                                                             str(v))), start=1):
        text = str(value)
        name = GOS10M_NAMES.get(text) or (text if _NAME.fullmatch(text) else f"class_{cid}")
        if name in used:
            name = f"class_{cid}"
        used.add(name)
        entry = {"name": name, "values": [value]}
        if not text.isascii():
            entry["name_zh"] = text
        if name == f"class_{cid}":
            notes.append(f"classes.{cid}: value '{text}' got the name '{name}': give it a plain name (letters, "
                         "digits, _ or -; it names the class's folders)")
        classes[cid] = entry
    return classes, notes


def draft_config(name: str, bbox: list[float], sentinel2: list[str], dem: list[str], polygons: str,
                 class_field: str | None) -> Draft:
    """A config for the AOI and inputs given, and the check of each input (nothing written)."""
    from .config import check_config, with_defaults
    from .grid import grid_from_config
    from .inputs import expand, resolve
    from .inputs.polygons import describe

    cfg = {"aoi": {"name": name, "bbox": [float(v) for v in bbox], "crs": "auto"},
           "inputs": {"sentinel2": list(sentinel2), "dem": list(dem), "polygons": polygons,
                      "class_field": class_field or ""},
           "classes": {}}
    draft = Draft(cfg)
    # the polygons first: their class field gives the classes the rest of the config needs
    try:
        hits = expand(polygons, "polygons")
        if len(hits) != 1:
            raise GosBuildError(f"inputs.polygons: '{polygons}' matches {len(hits)} files; name one vector file")
        facts = describe(hits[0])
        fields = facts["fields"]
        if not class_field or class_field not in fields:
            said = f"no field '{class_field}'" if class_field else "no --class-field given"
            raise GosBuildError(f"inputs.class_field: {hits[0]}: {said}; its fields: {', '.join(fields)} "
                                "(rerun with --class-field FIELD)")
        values = _distinct(hits[0], class_field)
        if not values:
            raise GosBuildError(f"inputs.class_field: {hits[0]}: field '{class_field}' holds no value")
        cfg["classes"], draft.notes = classes_from_values(values)
        draft.checks.append(Checked("polygons", True, f"{hits[0]}: {facts['features']} features, field "
                                    f"'{class_field}': {len(values)} classes ({', '.join(map(str, sorted(values, key=str)))})"))
    except GosBuildError as exc:
        draft.checks.append(Checked("polygons", False, str(exc)))
        cfg["classes"] = {1: {"name": "class_1", "values": ["?"]}}  # a placeholder the user must replace
        draft.notes.append("classes: a placeholder; init writes the classes once the polygons and their class "
                           "field are found")
    check_config(cfg)  # bbox, name: the schema's words, by key
    full = with_defaults(cfg)
    grid = grid_from_config(full)
    for kind in ("sentinel2", "dem"):
        try:
            doc = resolve(kind, full, grid)
        except GosBuildError as exc:
            draft.checks.append(Checked(kind, False, str(exc)))
            continue
        found = doc.get("products") or doc.get("files") or []
        names = [f.get("name") or f.get("path") or "?" for f in found]
        draft.checks.append(Checked(kind, True, f"{len(found)} {'product' if kind == 'sentinel2' else 'file'}"
                                    f"{'s' if len(found) != 1 else ''} covering the AOI ({', '.join(map(str, names[:5]))}"
                                    f"{', ...' if len(names) > 5 else ''})"))
    draft.checks.sort(key=lambda c: ("sentinel2", "dem", "polygons").index(c.kind))
    return draft


def _distinct(path: str, column: str) -> list:
    """The distinct non-null values of one attribute of a vector file (no geometry read)."""
    import pyogrio

    try:
        table = pyogrio.read_dataframe(path, columns=[column], read_geometry=False)
    except Exception as exc:  # pyogrio's errors are many: any of them means the file cannot be read
        raise GosBuildError(f"inputs.polygons: {path}: not a readable vector file ({exc})") from None
    out = []
    for v in table[column].dropna().unique().tolist():
        out.append(int(v) if isinstance(v, float) and v.is_integer() else v)
    return out


def config_text(draft: Draft, path: str) -> str:
    """The config as YAML a person reads: the sections init wrote, with what each key means."""
    cfg = draft.config
    aoi, inputs = cfg["aoi"], cfg["inputs"]
    ok = sum(c.ok for c in draft.checks)
    lines = [f"# gos-build config of the AOI '{aoi['name']}', written by `gos-build init`: {ok} of "
             f"{len(draft.checks)} inputs found as given.",
             f"# Check it: gos-build check-config {path}",
             f"# Build it: snakemake --cores all --configfile {path}",
             "# Every setting not written here takes its default: workflow/schemas/config.schema.yaml says each.",
             "",
             "aoi:",
             f"  name: {json.dumps(aoi['name'])}   # outputs under results/<name>/",
             f"  bbox: {json.dumps(aoi['bbox'])}   # lon_min, lat_min, lon_max, lat_max (WGS84)",
             "  crs: auto                               # the UTM zone of the AOI's centre",
             "",
             "inputs:",
             f"  sentinel2: {json.dumps(inputs['sentinel2'], ensure_ascii=False)}   # .SAFE folders or zips, band files",
             f"  dem: {json.dumps(inputs['dem'], ensure_ascii=False)}   # .hgt, .hgt.zip or GeoTIFF tiles",
             f"  polygons: {json.dumps(inputs['polygons'], ensure_ascii=False)}   # any OGR vector, any CRS",
             f"  class_field: {json.dumps(inputs['class_field'], ensure_ascii=False)}",
             "",
             "classes:                                  # id: folder name, Chinese name, the field's values"]
    for cid, c in sorted(cfg["classes"].items()):
        parts = [f"name: {c['name']}"] + ([f"name_zh: {json.dumps(c['name_zh'], ensure_ascii=False)}"] if c.get("name_zh") else []) + \
                [f"values: {json.dumps(c['values'], ensure_ascii=False)}"]
        lines.append(f"  {cid}: {{{', '.join(parts)}}}")
    return "\n".join(lines) + "\n"
