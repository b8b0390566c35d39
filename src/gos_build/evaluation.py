"""How sure is an accuracy: intervals, differences and the words for them (no PyTorch here).

* :func:`wilson` -- the Wilson score interval of a proportion (an accuracy: k correct of n);
* :func:`newcombe` -- the interval of the difference of two independent proportions (Newcombe's hybrid
  score interval, method 10), for accuracies on different test sets (a random split against the block split);
* :func:`paired_block_bootstrap` -- the interval of the difference of two classifiers' accuracies on the same
  chips, resampling whole spatial blocks (neighbouring chips are not independent: resampling chips one by
  one would make the interval too narrow);
* :func:`boundary_bins` -- error rates by the chips' distance to the nearest class boundary;
* :func:`difference_words`, :func:`random_split_words`, :func:`boundary_words` -- sentences chosen by the sign
  and the significance of the numbers, never fixed text.

A difference is *significant* when its 95 % interval excludes 0.
"""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """(low, high) of the Wilson score interval of k successes in n (95 %); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float, float]:
    """(p1 - p2, low, high): the difference of two independent proportions and its 95 % interval
    (Newcombe 1998, method 10: from the two Wilson intervals)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1)
    l2, u2 = wilson(k2, n2)
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def block_ids(xy: list[tuple[float, float]], block_m: float) -> np.ndarray:
    """The spatial block (``block_m`` squares of the global lattice) of each chip corner, as integers."""
    keys = [(math.floor(x / block_m), math.floor(y / block_m)) for x, y in xy]
    index = {k: i for i, k in enumerate(sorted(set(keys)))}
    return np.array([index[k] for k in keys], dtype=np.int64)


def paired_block_bootstrap(correct_a, correct_b, blocks, resamples: int = 2000,
                           seed: int = 0) -> tuple[float, float, float]:
    """(accuracy of a - accuracy of b, low, high): the 95 % percentile interval of the difference on the same
    chips, resampling whole blocks with replacement (``blocks``: each chip's block id). Deterministic."""
    a, b = np.asarray(correct_a, dtype=np.float64), np.asarray(correct_b, dtype=np.float64)
    d = float(a.mean() - b.mean()) if len(a) else 0.0
    ids = np.unique(blocks)
    if len(ids) < 2:
        return d, -1.0, 1.0  # one block: nothing to resample; nothing is resolved
    diff = a - b
    sums = np.array([diff[blocks == i].sum() for i in ids])
    counts = np.array([(blocks == i).sum() for i in ids])
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(ids), size=(resamples, len(ids)))
    stats = sums[pick].sum(1) / counts[pick].sum(1)
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return d + 0.0, float(lo) + 0.0, float(hi) + 0.0  # + 0.0: no "-0.000" in a report


def significant(lo: float, hi: float) -> bool:
    return lo > 0 or hi < 0


# chips widths: < 1, 1-2, 2-4, > 4
BOUNDARY_BINS = ((0.0, 1.0), (1.0, 2.0), (2.0, 4.0), (4.0, math.inf))


def boundary_bins(distances_m, correct, chip_m: float) -> list[dict]:
    """Per bin of distance to the nearest class boundary (in chip widths, :data:`BOUNDARY_BINS`): chips, errors,
    error rate and its Wilson interval. Chips of unknown distance (None, NaN) are left out."""
    out = []
    d = np.array([np.nan if v is None else v for v in distances_m], dtype=np.float64) / chip_m
    ok = np.asarray(correct, dtype=bool)
    for lo, hi in BOUNDARY_BINS:
        sel = (d >= lo) & (d < hi)
        n, errors = int(sel.sum()), int((~ok[sel]).sum())
        low, high = wilson(errors, n)
        out.append({"from_chips": lo, "to_chips": None if math.isinf(hi) else hi, "chips": n, "errors": errors,
                    "error_rate": errors / n if n else None, "interval": [low, high]})
    return out


def bin_label(b: dict) -> str:
    return f"< {b['to_chips']:g}" if b["from_chips"] == 0 else \
        f"> {b['from_chips']:g}" if b["to_chips"] is None else f"{b['from_chips']:g}-{b['to_chips']:g}"


def interval_text(v: float, lo: float, hi: float) -> str:
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


def difference_words(what: str, d: float, lo: float, hi: float, chips: int) -> str:
    """One sentence on a difference of accuracies, chosen by its sign and whether its interval excludes 0."""
    d, lo, hi = d + 0.0, lo + 0.0, hi + 0.0  # negated zeros print as "-0.000"
    if significant(lo, hi):
        verb = "adds" if d > 0 else "costs"
        return (f"{what} {verb} {abs(d):.3f} of overall accuracy (95 % interval [{lo:+.3f}, {hi:+.3f}], "
                f"{chips} test chips): significant.")
    return (f"{what} changes overall accuracy by {d:+.3f}, within what {chips} test chips resolve (95 % interval "
            f"[{lo:+.3f}, {hi:+.3f}] includes 0): not significant.")


def random_split_words(d: float, lo: float, hi: float, n_random: int, n_block: int) -> str:
    """The sentence on a random split against the block split, chosen by the numbers."""
    head = (f"A random split of the same chips changes test accuracy by {d:+.3f} (95 % interval "
            f"[{lo:+.3f}, {hi:+.3f}], {n_random} and {n_block} test chips): ")
    if not significant(lo, hi):
        return head + ("not significant: at this size the two splits cannot be told apart, so this AOI "
                       "shows no inflation from a random split (nor its absence).")
    if d > 0:
        return head + ("significant: the random split scores higher, as expected when test chips sit next to "
                       "near-copies of themselves in the training set; the block split keeps them apart.")
    return head + ("significant, and lower: the random split scores worse here, the opposite of the inflation "
                   "neighbouring chips usually cause; look at the class shares of the two test sets.")


def boundary_words(bins: list[dict]) -> str:
    """The sentence on errors by distance to a class boundary: the nearest bin against every farther one pooled."""
    near, rest = bins[0], bins[1:]
    n, e = sum(b["chips"] for b in rest), sum(b["errors"] for b in rest)
    if not near["chips"] or not n:
        return "Too few test chips on both sides of one chip width from a boundary to compare their errors."
    lo, hi = wilson(e, n)
    head = (f"Chips {bin_label(near)} chip width from a class boundary err {near['error_rate']:.3f} "
            f"[{near['interval'][0]:.3f}, {near['interval'][1]:.3f}] ({near['chips']} chips), those farther "
            f"{e / n:.3f} [{lo:.3f}, {hi:.3f}] ({n} chips): ")
    if near["interval"][0] > hi:
        return head + "errors concentrate near the boundaries, where map-scale label noise is."
    if near["interval"][1] < lo:
        return head + "errors are more frequent away from the boundaries; boundary noise is not what limits accuracy."
    return head + "the intervals overlap: no clear difference at this size."
