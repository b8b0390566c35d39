"""Config checking: one clear line per problem, naming the key and what was expected.

The JSON schema (``gos_build/schemas/config.schema.yaml``, linked from ``workflow/schemas/``) is the contract;
:func:`check_config` turns schema violations into readable messages and adds
the checks a schema cannot express (bbox order, ratios summing to 1).
Defaults are filled by Snakemake's own ``validate(..., set_default=True)``
(:func:`with_defaults`), the same call the workflow makes.
"""

from __future__ import annotations

import copy
import difflib
import functools
from pathlib import Path

import yaml

from .errors import GosBuildError

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "config.schema.yaml"

_JSON_TYPES = {dict: "mapping", list: "list", str: "string", bool: "boolean", int: "integer", float: "number"}


def load_schema(path: str | Path | None = None) -> dict:
    """The config schema (a fresh copy: callers may change it)."""
    return copy.deepcopy(_parsed_schema(str(path or SCHEMA_PATH)))


@functools.lru_cache(maxsize=4)
def _parsed_schema(path: str) -> dict:
    # parsed once per process, with LibYAML where PyYAML has it: every command's options read
    # their defaults from the schema, so this is part of each job's start-up
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=loader)


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _describe(value) -> str:
    kind = _JSON_TYPES.get(type(value), type(value).__name__)
    text = repr(value)
    return f"{kind} {text if len(text) < 60 else text[:57] + '...'}"


def _message(err) -> str:
    """The line a user reads for one ``jsonschema.ValidationError``."""
    import jsonschema

    key = _key(err.absolute_path)
    v, schema, inst = err.validator, err.schema, err.instance
    if v == "additionalProperties" and isinstance(inst, dict):
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(k for k in inst if k not in schema.get("properties", {}))
        parts = []
        for k in extra:
            close = difflib.get_close_matches(str(k), allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            parts.append(f"unknown key '{k}'{hint}")
        where = "" if key == "(top level)" else f" '{key}'"
        return f"config key{where}: {', '.join(parts)}; allowed keys: {', '.join(allowed)}"
    if v == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        full = f"{key}.{missing}" if key != "(top level)" else missing
        return f"config key '{full}': missing (required)"
    if v == "type":
        want = schema["type"] if isinstance(schema["type"], str) else " or ".join(schema["type"])
        return f"config key '{key}': expected {want}, got {_describe(inst)}"
    if v == "enum":
        return f"config key '{key}': expected one of {schema['enum']}, got {_describe(inst)}"
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[v]
        return f"config key '{key}': expected a value {op} {schema[v]}, got {inst!r}"
    if v in ("minItems", "maxItems"):
        return f"config key '{key}': expected {schema.get('minItems')}..{schema.get('maxItems', 'any')} items, got {len(inst)}"
    if v == "not" and "multipleOf" in schema.get("not", {}):
        return f"config key '{key}': expected an odd integer, got {inst!r}"
    if v == "oneOf" and key == "aoi":
        return "config key 'aoi': give exactly one of 'bbox' or 'geometry'"
    if v == "oneOf" and err.context:
        # inputs.sentinel2 / inputs.dem: say what is wrong in the branch of the value's own kind
        branch = 0 if isinstance(inst, list) else 1 if isinstance(inst, dict) else None
        mine = [e for e in err.context if e.relative_schema_path and e.relative_schema_path[0] == branch]
        if mine:
            return _message(jsonschema.exceptions.best_match(mine))
        return (f"config key '{key}': expected a list of globs or a mapping {{stac: {{api, collection, ...}}}}, "
                f"got {_describe(inst)}")
    if v == "anyOf" and key == "publish.zips":
        mine = [e for e in err.context if isinstance(inst, dict) and e.relative_schema_path and
                e.relative_schema_path[0] == 1]
        if mine:  # a mapping: what is wrong in it
            return _message(jsonschema.exceptions.best_match(mine))
        return f"config key '{key}': expected false or {{part_gb: a number > 0}}, got {_describe(inst)}"
    if v == "pattern" and key == "sentinel2.periods":  # a period's name (the mapping's key): a layer s2_<name>
        return (f"config key '{key}': period names are lower-case letters, digits and _, starting with a letter "
                f"(at most 21; the layer is s2_<name>); got {inst!r}")
    if v == "pattern" and key.startswith("sentinel2.periods."):
        return f"config key '{key}': expected a date range 'YYYY-MM-DD/YYYY-MM-DD', got {inst!r}"
    if v == "pattern" and key == "terrain.extra":  # a layer's name (the mapping's key)
        return (f"config key '{key}': layer names are lower-case letters, digits and _, starting with a letter "
                f"(at most 31); got {inst!r}")
    if v == "pattern":
        return f"config key '{key}': {inst!r} does not match {schema['pattern']}"
    if v == "propertyNames":
        return f"config key '{key}': class ids must be integers 1..254, got {inst!r}"
    return f"config key '{key}': {err.message}"


def bbox_problem(bbox, lat_range: tuple[float, float] = (-90.0, 90.0)) -> str | None:
    """What is wrong with a WGS84 ``[lon_min, lat_min, lon_max, lat_max]`` (None: nothing).

    The one bbox check: the config, the grid and the demo generator use it.
    """
    lon0, lat0, lon1, lat1 = (float(b) for b in bbox)
    if not (lon0 < lon1 and lat0 < lat1):
        return f"expected [lon_min, lat_min, lon_max, lat_max] with min < max, got {list(bbox)}"
    if not (-180 <= lon0 and lon1 <= 180 and lat_range[0] <= lat0 and lat1 <= lat_range[1]):
        return f"{list(bbox)} is outside lon [-180, 180] / lat [{lat_range[0]:g}, {lat_range[1]:g}]"
    return None


DEMO_MARKER = "demo-inputs.json"  # written last into a folder of demo inputs: what they were generated for


def demo_conflict(out: str | Path, bbox, seed: int) -> str | None:
    """Why demo inputs for ``bbox``/``seed`` must not be written into ``out`` (None: they may): the folder holds
    the demo inputs of another area or seed, which generated inputs never replace (a copied config that kept
    the ``demo:`` section would otherwise overwrite them, and the first config's workflow rebuild them)."""
    import json

    marker = Path(out) / DEMO_MARKER
    if not marker.is_file():
        return None
    try:
        made = json.loads(marker.read_text(encoding="utf-8"))
        old_bbox, old_seed = [float(v) for v in made["bbox"]], int(made["seed"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"{marker}: not a demo-inputs record; delete {out} to generate demo inputs there"
    if old_bbox != [float(v) for v in bbox] or old_seed != int(seed):
        return (f"{out}: holds the demo inputs of bbox {old_bbox}, seed {old_seed} ({DEMO_MARKER}); generated "
                f"inputs never replace those of another area or seed: give this config's demo: section its own "
                f"out: folder (or delete {out})")
    return None


def period_bounds(span: str):
    """(start, end) UTC datetimes of a period ``"2021-04-01/2021-05-31"`` (dates: the end day included; or ISO
    datetimes); ValueError saying what is wrong."""
    import datetime as dt

    parts = span.split("/")
    if len(parts) != 2:
        raise ValueError(f"expected a date range 'YYYY-MM-DD/YYYY-MM-DD', got {span!r}")
    out = []
    for k, text in enumerate(parts):
        try:
            t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.timezone.utc)
        if k == 1 and len(text) == 10:  # a date: the whole day
            t += dt.timedelta(days=1) - dt.timedelta(microseconds=1)
        out.append(t)
    if out[0] > out[1]:
        raise ValueError(f"the period {span!r} ends before it starts")
    return out[0], out[1]


def _semantic_problems(cfg: dict) -> list[str]:
    out = []
    for key, bbox in (("aoi.bbox", cfg.get("aoi", {}).get("bbox")), ("demo.bbox", (cfg.get("demo") or {}).get("bbox"))):
        if isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(b, (int, float)) for b in bbox):
            problem = bbox_problem(bbox)
            if problem:
                out.append(f"config key '{key}': {problem}")
    ratios = (cfg.get("split") or {}).get("ratios")
    if isinstance(ratios, dict) and all(isinstance(ratios.get(k), (int, float)) for k in ("train", "val", "test")):
        total = ratios["train"] + ratios["val"] + ratios["test"]
        if abs(total - 1.0) > 1e-6:
            out.append(f"config key 'split.ratios': train + val + test must be 1, got {total:g}")
    periods = (cfg.get("sentinel2") or {}).get("periods")
    source = cfg.get("inputs", {}).get("sentinel2") if isinstance(cfg.get("inputs"), dict) else None
    stac = source.get("stac") if isinstance(source, dict) else None
    pinned = stac.get("period_ids") if isinstance(stac, dict) else None
    if isinstance(pinned, dict):
        for name in pinned:
            if not isinstance(periods, dict) or name not in periods:
                out.append(f"config key 'inputs.sentinel2.stac.period_ids.{name}': no such period in "
                           f"sentinel2.periods ({', '.join(periods) if isinstance(periods, dict) else 'none'})")
    if isinstance(periods, dict):
        for name, span in periods.items():
            if isinstance(span, str):
                try:
                    period_bounds(span)
                except ValueError as exc:
                    out.append(f"config key 'sentinel2.periods.{name}': {exc}")
    extra = (cfg.get("terrain") or {}).get("extra")
    if isinstance(extra, dict):
        from .geomorphometry import extra_problems
        from .layout import GOS10M_NAMES

        resolution = (cfg.get("grid") or {}).get("resolution", 10)
        out += extra_problems(extra, resolution if isinstance(resolution, (int, float)) else 10, GOS10M_NAMES)
    variants = (cfg.get("baseline") or {}).get("modalities")
    if isinstance(variants, list):
        from .layout import ELEVATION_LAYERS

        terrain = [*ELEVATION_LAYERS, *(extra if isinstance(extra, dict) else {})]
        s2 = cfg.get("sentinel2") or {}
        periods = s2.get("periods") if isinstance(s2.get("periods"), dict) else {}
        made = ({"s2"} if s2.get("bands") else set()) | {f"s2_{p}" for p in periods}
        for v in variants:
            if not isinstance(v, str) or v.startswith("rgb+terrain-"):
                continue
            missing = [p for p in v.split("+") if p.startswith("s2") and p not in made]
            if missing:
                out.append(f"config key 'baseline.modalities': '{v}' uses the layer {missing[0]}, which only "
                           f"{'sentinel2.bands' if missing[0] == 's2' else 'sentinel2.periods'} makes")
        for v in variants:
            if isinstance(v, str) and v.startswith("rgb+terrain-") and v[len("rgb+terrain-"):] not in terrain:
                close = difflib.get_close_matches(v[len("rgb+terrain-"):], terrain, n=1)
                hint = f" (did you mean 'rgb+terrain-{close[0]}'?)" if close else ""
                out.append(f"config key 'baseline.modalities': '{v}' drops no terrain layer of this config{hint}; "
                           f"layers: {', '.join(terrain)}")
    forms = (cfg.get("publish") or {}).get("forms")
    if isinstance(forms, list) and forms and "tree" not in forms:
        got = ", ".join(map(str, forms))
        if "croissant" in forms:
            out.append("config key 'publish.forms': croissant points at the tree's files: add tree, or leave "
                       f"croissant out (got {got})")
        elif not {"packed", "parquet"} & set(forms):
            out.append("config key 'publish.forms': the chips' pixels are in no form: add tree, packed or parquet "
                       f"(got {got})")
        elif {"stac", "stac-geoparquet"} & set(forms) and "parquet" not in forms:
            out.append("config key 'publish.forms': the STAC Items point at each chip's bytes: in the tree's files "
                       f"or the Parquet shards' rows; add tree or parquet (got {got})")
    classes = cfg.get("classes")
    if isinstance(classes, dict):
        seen: dict = {}
        for cid, spec in classes.items():
            for val in (spec or {}).get("values", []) if isinstance(spec, dict) else []:
                if val in seen and seen[val] != cid:
                    out.append(f"config key 'classes': value {val!r} is listed for class {seen[val]} and class {cid}")
                seen[val] = cid
    return out


def check_config(config: dict, schema: dict | None = None) -> None:
    """Raise :class:`GosBuildError` listing every problem of ``config`` (one line each)."""
    import jsonschema

    schema = schema or load_schema()
    # class ids arrive as int keys from YAML; JSON schema wants string keys
    cfg = _stringify_keys(config)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    problems = []
    for err in errors:
        msg = _message(err)
        if msg not in problems:
            problems.append(msg)
    problems += [p for p in _semantic_problems(cfg) if p not in problems]
    if problems:
        raise GosBuildError("invalid config:\n  " + "\n  ".join(problems))


def _stringify_keys(obj):
    if isinstance(obj, dict):
        return {str(k): _stringify_keys(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_stringify_keys(v) for v in obj]
    return obj


def load_config(path: str | Path) -> dict:
    """Read, check and default-fill a config file; raise GosBuildError naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            cfg = yaml.safe_load(f)
    except OSError as exc:
        raise GosBuildError(f"{path}: cannot read config ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        what = " ".join(str(p) for p in (getattr(exc, "context", None), getattr(exc, "problem", None)) if p) or str(exc)
        raise GosBuildError(f"{where}: not valid YAML: {what}") from None
    if not isinstance(cfg, dict):
        raise GosBuildError(f"{path}: a config must be a YAML mapping")
    try:
        check_config(cfg)
    except GosBuildError as exc:
        raise GosBuildError(f"{path}: {exc}") from None
    return with_defaults(cfg)


def with_defaults(config: dict) -> dict:
    """A copy of a checked config with the schema's defaults filled in, exactly as the workflow does it
    (``snakemake.utils.validate(..., set_default=True)``)."""
    from snakemake.utils import validate

    cfg = copy.deepcopy(config)
    validate(cfg, str(SCHEMA_PATH), set_default=True)
    return cfg


def job_config(value: str) -> dict:
    """The config a job runs with, from ``--config``.

    The workflow passes its validated, default-filled config (or the sections
    a rule needs) as inline JSON; a user running a command by hand passes a
    config file, which is checked and default-filled here.
    """
    import json

    if value.lstrip().startswith("{"):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise GosBuildError(f"--config: not valid JSON ({exc})") from None
    return load_config(value)


def schema_entry(key: str, schema: dict | None = None) -> dict:
    """The schema of config key ``key`` (dotted, e.g. ``terrain.window``): its type, default, enum, description."""
    node = schema or _parsed_schema(str(SCHEMA_PATH))
    for part in key.split("."):
        node = node["properties"][part]
    return node


# publish: the forms (every one, in the writers' order; the default, GOS10m-compatible) and the largest zip
# part's default (4 GB, as TACO cuts its archives), as the schema says them
FORMS = tuple(schema_entry("publish.forms")["items"]["enum"])
DEFAULT_FORMS = tuple(schema_entry("publish.forms")["default"])
ZIP_PART_GB = next(b["properties"]["part_gb"]["default"] for b in schema_entry("publish.zips")["anyOf"]
                   if b.get("type") == "object")


CHUNK_CHIPS = schema_entry("publish.chunk_chips")["default"]  # chips a chunk of the packed store
MAX_CHUNK_CHIPS = schema_entry("publish.chunk_chips")["maximum"]  # the largest chunk a store may declare
GROUP_TILES = schema_entry("publish.group_tiles")["default"]


def chunk_chips(config: dict) -> int:
    """Chips a chunk of the packed store holds (``publish.chunk_chips`` of a validated config)."""
    return int((config.get("publish") or {}).get("chunk_chips", CHUNK_CHIPS))


def group_tiles(config: dict) -> int:
    """Tiles a publishing group holds at least (``publish.group_tiles`` of a validated config)."""
    return int((config.get("publish") or {}).get("group_tiles", GROUP_TILES))


def published_forms(config: dict) -> tuple[str, ...]:
    """The forms a (validated) config publishes, in :data:`FORMS`' order (the schema's; the datacard's table)."""
    chosen = set((config.get("publish") or {}).get("forms") or DEFAULT_FORMS)
    return tuple(f for f in FORMS if f in chosen)


def zip_part_bytes(config: dict) -> int | None:
    """The largest part of a dist/ zip a (validated) config allows, bytes; None: no zips (``publish.zips:
    false``)."""
    zips = (config.get("publish") or {}).get("zips", {})
    if zips is False:
        return None
    return int(float((zips or {}).get("part_gb", ZIP_PART_GB)) * 1e9)
