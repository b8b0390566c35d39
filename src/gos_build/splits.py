"""Split strategies: which chips train, validate and test (``split.method``).

* ``block`` (default): the global chip lattice is cut into blocks of
  ``block_chips`` x ``block_chips`` chips; blocks are visited in an order
  fixed by ``seed`` (SHA-256 of seed and block indices) and each goes to the
  split furthest below its target share of chips -- ratios met as closely as
  whole blocks allow, and neighbouring chips inside a block never straddle
  splits. ``buffer_chips`` = k drops every chip within k chips (8-neighbour
  distance) of a block of another split.
* ``random``: each chip by a seeded hash of its id (for comparison only:
  neighbouring chips leak between splits).

Chips are dicts with ``id`` and the south-west corner ``x``, ``y`` (metres,
grid CRS); the chip lattice cell is ``floor(x / chip_span)``.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter

from .errors import GosBuildError
from .layout import SPLITS

DEFAULT_RATIOS = {"train": 0.7, "val": 0.1, "test": 0.2}


def unit_hash(*parts) -> float:
    """A uniform number in [0, 1) from the parts, the same on every platform and Python."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def random_split(chips: list[dict], seed: int = 42, ratios: dict | None = None) -> dict[str, str]:
    """chip id -> split by a seeded hash of the id (no spatial structure)."""
    ratios = ratios or DEFAULT_RATIOS
    out = {}
    for c in chips:
        u = unit_hash(seed, c["id"])
        out[c["id"]] = "train" if u < ratios["train"] else "val" if u < ratios["train"] + ratios["val"] else "test"
    return out


def block_split(chips: list[dict], chip_span: float, block_chips: int = 8, buffer_chips: int = 0, seed: int = 42,
                ratios: dict | None = None) -> dict[str, str]:
    """chip id -> split by whole seeded blocks of chips; buffer-dropped chips are absent."""
    ratios = ratios or DEFAULT_RATIOS
    cell = {c["id"]: (math.floor(c["x"] / chip_span + 1e-9), math.floor(c["y"] / chip_span + 1e-9)) for c in chips}
    block_of = {cid: (ix // block_chips, iy // block_chips) for cid, (ix, iy) in cell.items()}
    size = Counter(block_of.values())
    total = sum(size.values())
    target = {s: ratios[s] * total for s in SPLITS}
    have = {s: 0 for s in SPLITS}
    assigned = {}
    for b in sorted(size, key=lambda b: (unit_hash(seed, b[0], b[1]), b)):
        s = max(SPLITS, key=lambda s: (target[s] - have[s], -SPLITS.index(s)))
        assigned[b] = s
        have[s] += size[b]
    out = {}
    for cid, (ix, iy) in cell.items():
        own = assigned[block_of[cid]]
        if buffer_chips:
            near = {assigned.get(((ix + dx) // block_chips, (iy + dy) // block_chips))
                    for dx in range(-buffer_chips, buffer_chips + 1) for dy in range(-buffer_chips, buffer_chips + 1)}
            if near - {own, None}:
                continue
        out[cid] = own
    return out


METHODS = {"block": block_split, "random": random_split}


def assign_splits(chips: list[dict], chip_span: float, method: str = "block", block_chips: int = 8,
                  buffer_chips: int = 0, seed: int = 42, ratios: dict | None = None) -> dict[str, str]:
    """chip id -> split for the chips kept, by ``method`` (the config's ``split`` keys)."""
    if method == "random":
        return random_split(chips, seed, ratios)
    if method == "block":
        return block_split(chips, chip_span, block_chips, buffer_chips, seed, ratios)
    raise GosBuildError(f"split.method: expected one of {', '.join(METHODS)}, got '{method}'")


def splits_from_config(chips: list[dict], chip_span: float, split_cfg: dict) -> dict[str, str]:
    """:func:`assign_splits` with the (validated) config's ``split`` section."""
    return assign_splits(chips, chip_span, split_cfg["method"], split_cfg["block_chips"],
                         split_cfg.get("buffer_chips", 0), split_cfg["seed"], split_cfg["ratios"])
