"""Split strategies: which chips train, validate and test (``split.method``), and spatial folds.

The global chip lattice is cut into blocks of ``block_chips`` x
``block_chips`` chips; block strategies move whole blocks, so neighbouring
chips inside a block never straddle splits (Roberts et al. 2017).
``buffer_chips`` = k then drops every chip within k chips (8-neighbour
distance) of a block of another split.

* ``block`` (default): class-stratified blocks. Each split should hold its
  ratio of every class, so that each split's class shares equal the AOI's.
  The cost of an assignment is, in this order: the number of (split, class)
  pairs left empty although the class has blocks enough to reach that split
  (a class in n blocks can reach min(n, 3) splits); the worst deviation
  ``|chips of class k in split s - ratio_s x chips of class k| / (ratio_s x
  all chips)`` -- the deviation of the split's class share, in share points,
  when the split has its target size; the sum of squared deviations. Blocks
  are placed greedily, rarest-class and largest first (ties in a seeded
  order), each where the cost is lowest; then single-block moves and pair
  swaps that lower the cost are made until none does. Deterministic for a seed.
* ``block_unstratified``: the earlier rule, blind to classes -- blocks in a
  seeded order (SHA-256 of seed and block indices), each to the split
  furthest below its target number of chips. For comparison.
* ``random``: each chip by a seeded hash of its id (for comparison only:
  neighbouring chips leak between splits).

``split.folds: k`` adds k spatial folds for cross-validation, made the same
way as ``block`` (k groups of equal ratio, whole blocks, stratified).

Chips are dicts with ``id``, ``class_id`` and the south-west corner ``x``, ``y``
(metres, grid CRS); the chip lattice cell is ``floor(x / chip_span)``.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter

from .errors import GosBuildError
from .layout import SPLITS

DEFAULT_RATIOS = {"train": 0.7, "val": 0.1, "test": 0.2}
MIN_BLOCKS = 10  # spatial blocks a split or fold needs before an accuracy measured on it means much


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


def _cell(c, chip_span: float) -> tuple[int, int]:
    """A chip's cell of the chip lattice (column, row from the CRS origin)."""
    return math.floor(c["x"] / chip_span + 1e-9), math.floor(c["y"] / chip_span + 1e-9)


def _blocks(chips: list[dict], chip_span: float, block_chips: int) -> dict:
    """chip id -> block (column, row) for chips on the chip lattice; a block's tuple is shared by its chips
    (a province's chips hold one pointer each, not a tuple each)."""
    shared: dict = {}
    block_of = {}
    for c in chips:
        ix, iy = _cell(c, chip_span)
        b = ix // block_chips, iy // block_chips
        block_of[c["id"]] = shared.setdefault(b, b)
    return block_of


def _apply_buffer(chips, chip_span: float, block_of, assigned, block_chips: int,
                  buffer_chips: int) -> dict[str, str]:
    out = {}
    for c in chips:
        cid = c["id"]
        own = assigned[block_of[cid]]
        if buffer_chips:
            ix, iy = _cell(c, chip_span)
            near = {assigned.get(((ix + dx) // block_chips, (iy + dy) // block_chips))
                    for dx in range(-buffer_chips, buffer_chips + 1) for dy in range(-buffer_chips, buffer_chips + 1)}
            if near - {own, None}:
                continue
        out[cid] = own
    return out


def block_unstratified_split(chips: list[dict], chip_span: float, block_chips: int = 8, buffer_chips: int = 0,
                             seed: int = 42, ratios: dict | None = None) -> dict[str, str]:
    """chip id -> split by whole seeded blocks, sizes only; buffer-dropped chips are absent."""
    ratios = ratios or DEFAULT_RATIOS
    block_of = _blocks(chips, chip_span, block_chips)
    size = Counter(block_of.values())
    total = sum(size.values())
    target = {s: ratios[s] * total for s in SPLITS}
    have = {s: 0 for s in SPLITS}
    assigned = {}
    for b in sorted(size, key=lambda b: (unit_hash(seed, b[0], b[1]), b)):
        s = max(SPLITS, key=lambda s: (target[s] - have[s], -SPLITS.index(s)))
        assigned[b] = s
        have[s] += size[b]
    return _apply_buffer(chips, chip_span, block_of, assigned, block_chips, buffer_chips)


def stratified_groups(counts: dict, ratios: list[float], seed: int, max_rounds: int = 50,
                      max_swap_blocks: int = 1500) -> dict:
    """Assign blocks to groups so that each group holds its ratio of every class.

    ``counts``: block -> chips per class (a sequence, one entry per class); ``ratios``: one per group,
    summing to 1. Returns block -> group index. See the module docstring for the rule.
    """
    import numpy as np

    blocks = sorted(counts)
    if not blocks:
        return {}
    c = np.array([counts[b] for b in blocks], dtype=np.float64)  # (B, K)
    r = np.asarray(ratios, dtype=np.float64)  # (G,)
    total_k = c.sum(axis=0)  # (K,)
    target = r[:, None] * total_k[None, :]  # (G, K)
    norm = np.maximum(r * c.sum(), 1.0)[:, None]  # (G, 1): target size of each group

    # a class in n blocks can reach min(n, groups) groups: each group it could reach but misses counts first
    need = np.minimum((c > 0).sum(axis=0), len(r))  # (K,)

    def cost(have):
        dev = np.abs(have - target) / norm
        missing = int(np.maximum(need - (have > 0).sum(axis=0), 0).sum())
        return missing, float(dev.max()), float((dev * dev).sum())

    # largest and rarest-class blocks first, so the small ones can even out what they leave
    rarity = (c / np.maximum(total_k, 1.0)).max(axis=1)
    order = sorted(range(len(blocks)), key=lambda i: (-rarity[i], -c[i].sum(), unit_hash(seed, *blocks[i])))
    group = np.full(len(blocks), -1)
    have = np.zeros_like(target)
    for i in order:
        best = None
        for g in range(len(r)):
            have[g] += c[i]
            key = (cost(have), g)
            have[g] -= c[i]
            if best is None or key < best:
                best = key
        group[i] = best[1]
        have[best[1]] += c[i]
    # local search: move one block, or swap two, while the worst deviation (then the sum of squares) drops
    current = cost(have)
    for _ in range(max_rounds):
        improved = False
        for i in order:
            gi = group[i]
            for g in range(len(r)):
                if g == gi:
                    continue
                have[gi] -= c[i]
                have[g] += c[i]
                new = cost(have)
                if new < current:
                    group[i], current, improved = g, new, True
                    break
                have[g] -= c[i]
                have[gi] += c[i]
        for a in range(len(order) if len(order) <= max_swap_blocks else 0):  # swaps cost B^2
            i = order[a]
            for j in order[a + 1 :]:
                gi, gj = group[i], group[j]
                if gi == gj or not (c[i] - c[j]).any():
                    continue
                delta = c[j] - c[i]
                have[gi] += delta
                have[gj] -= delta
                new = cost(have)
                if new < current:
                    group[i], group[j], current, improved = gj, gi, new, True
                else:
                    have[gi] -= delta
                    have[gj] += delta
        if not improved:
            break
    return {b: int(group[i]) for i, b in enumerate(blocks)}


def _class_counts(chips: list[dict], block_of: dict) -> tuple[dict, list]:
    labels = sorted({c.get("class_id", 0) for c in chips})
    index = {k: i for i, k in enumerate(labels)}
    counts: dict = {}
    for c in chips:
        counts.setdefault(block_of[c["id"]], [0] * len(labels))[index[c.get("class_id", 0)]] += 1
    return counts, labels


def block_split(chips: list[dict], chip_span: float, block_chips: int = 8, buffer_chips: int = 0, seed: int = 42,
                ratios: dict | None = None) -> dict[str, str]:
    """chip id -> split by whole blocks, stratified by class (module docstring); buffer-dropped chips are absent."""
    ratios = ratios or DEFAULT_RATIOS
    block_of = _blocks(chips, chip_span, block_chips)
    counts, _ = _class_counts(chips, block_of)
    group = stratified_groups(counts, [ratios[s] for s in SPLITS], seed)
    assigned = {b: SPLITS[g] for b, g in group.items()}
    return _apply_buffer(chips, chip_span, block_of, assigned, block_chips, buffer_chips)


def block_folds(chips: list[dict], chip_span: float, k: int, block_chips: int = 8, seed: int = 42) -> dict[str, int]:
    """chip id -> fold 1..k: whole blocks, each fold holding about 1/k of every class."""
    block_of = _blocks(chips, chip_span, block_chips)
    counts, _ = _class_counts(chips, block_of)
    group = stratified_groups(counts, [1.0 / k] * k, seed)
    return {c["id"]: group[block_of[c["id"]]] + 1 for c in chips}


def class_balance(chips: list[dict], split_of: dict[str, str], chip_span: float, block_chips: int) -> dict:
    """Per class: chips and blocks, its share of each split vs of all chips, and the splits it is absent from.

    ``split_of`` may map to splits or to folds; what the datacard reports.
    """
    block_of = _blocks(chips, chip_span, block_chips)
    kept = [c for c in chips if c["id"] in split_of]
    present = {split_of[c["id"]] for c in kept}
    groups = list(SPLITS) if present <= set(SPLITS) else sorted(present)
    size = Counter(split_of[c["id"]] for c in kept)
    out = {}
    for label in sorted({c["class_id"] for c in kept}):
        mine = [c for c in kept if c["class_id"] == label]
        per = Counter(split_of[c["id"]] for c in mine)
        out[label] = {
            "chips": len(mine),
            "blocks": len({block_of[c["id"]] for c in mine}),
            "share": len(mine) / len(kept),
            "share_in": {str(g): (per[g] / size[g] if size[g] else 0.0) for g in groups},
            "absent_from": [str(g) for g in groups if per[g] == 0],
        }
    return out


def weak_data(class_names: dict[int, str], chips: list[dict], chip_span: float | None = None,
              block_chips: int | None = None, fold_of: dict[str, int] | None = None) -> list[str]:
    """Warnings, in words, about data too weak for what its users will do with it: a class with no chip, one
    class only, a split or fold without chips or without a class the dataset has, and -- with ``chip_span``
    (m) and ``block_chips`` -- a split or fold in fewer than :data:`MIN_BLOCKS` spatial blocks. ``chips``:
    dicts with ``id``, ``class_id``, ``split``, ``x``, ``y``; ``class_names``: class id -> name."""
    out = []
    have = Counter(c["class_id"] for c in chips)
    out += [f"class {cid} {name}: no chip in this AOI" for cid, name in sorted(class_names.items()) if not have[cid]]
    if len(have) == 1:
        only = next(iter(have))
        out.append(f"one class only ({class_names.get(only, only)}): a classifier learns nothing from this dataset "
                   "and no accuracy of it means anything")
    block_of = _blocks(chips, chip_span, block_chips) if chip_span and block_chips else None
    groups = [("split", {c["id"]: c["split"] for c in chips}, list(SPLITS))]
    if fold_of:
        groups.append(("fold", fold_of, sorted(set(fold_of.values()))))
    for kind, group_of, names in groups:
        for g in names:
            mine = [c for c in chips if group_of.get(c["id"]) == g]
            if not mine:
                out.append(f"{kind} {g}: no chip")
                continue
            there = {c["class_id"] for c in mine}
            missing = [class_names.get(k, str(k)) for k in sorted(have) if k not in there]
            if missing and len(have) > 1:
                out.append(f"{kind} {g}: no chip of {', '.join(missing)}")
            if block_of is not None:
                n = len({block_of[c["id"]] for c in mine})
                if n < MIN_BLOCKS:
                    out.append(f"{kind} {g}: its {len(mine)} chips lie in {n} spatial block{'s' if n != 1 else ''} "
                               f"of {block_chips} x {block_chips} chips, fewer than {MIN_BLOCKS}: an accuracy "
                               "measured on it has a wide interval"
                               + (" and the baseline compares no variant" if (kind, g) == ("split", "test") else ""))
    return out


METHODS = {"block": block_split, "block_unstratified": block_unstratified_split, "random": random_split}


def assign_splits(chips: list[dict], chip_span: float, method: str = "block", block_chips: int = 8,
                  buffer_chips: int = 0, seed: int = 42, ratios: dict | None = None) -> dict[str, str]:
    """chip id -> split for the chips kept, by ``method`` (the config's ``split`` keys)."""
    if method == "random":
        return random_split(chips, seed, ratios)
    if method == "block":
        return block_split(chips, chip_span, block_chips, buffer_chips, seed, ratios)
    if method == "block_unstratified":
        return block_unstratified_split(chips, chip_span, block_chips, buffer_chips, seed, ratios)
    raise GosBuildError(f"split.method: expected one of {', '.join(METHODS)}, got '{method}'")


def splits_from_config(chips: list[dict], chip_span: float, split_cfg: dict) -> dict[str, str]:
    """:func:`assign_splits` with the (validated) config's ``split`` section."""
    return assign_splits(chips, chip_span, split_cfg["method"], split_cfg["block_chips"],
                         split_cfg.get("buffer_chips", 0), split_cfg["seed"], split_cfg["ratios"])
