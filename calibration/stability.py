"""Population stability: PSI of the score, each feature's stability index, band migration.

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i)

over bins ``i`` with expected shares ``e`` (the reference population) and actual shares
``a`` (the new one); shares are floored at 1e-4 so an empty bin does not give infinity.
Rule of thumb (Siddiqi, *Credit Risk Scorecards*, 2006): < 0.10 stable, 0.10-0.25 some
shift, > 0.25 major shift. The same formula on a feature's levels is its characteristic
stability index.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from calibration.model import category_codes
from sim.scoring import BANDS

#: Score bins for the PSI: every 10 points, open at both ends.
SCORE_EDGES = [-np.inf, *range(0, 101, 10), np.inf]
FLOOR = 1e-4


def psi(expected, actual) -> float:
    """Population stability index of two share vectors over the same bins."""
    e = np.maximum(np.asarray(expected, float), FLOOR)
    a = np.maximum(np.asarray(actual, float), FLOOR)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def verdict(value: float) -> str:
    return "stable" if value < 0.10 else ("some shift" if value < 0.25 else "major shift")


def score_shares(scores, edges=SCORE_EDGES) -> np.ndarray:
    counts = np.histogram(np.asarray(scores, float), bins=np.asarray(edges, float))[0]
    return counts / max(counts.sum(), 1)


def feature_bins(model) -> dict:
    """The fitted model's levels as a JSON-able binning spec, to profile any data later."""
    spec = {}
    for c in model.feature_names_in_:
        if c in model.cut_points_:
            spec[c] = {"kind": "range", "cuts": [float(x) for x in model.cut_points_[c]]}
        else:
            spec[c] = {"kind": "category", "categories": list(model.categories_[c])}
    return spec


def feature_shares(frame: pd.DataFrame, spec: dict) -> dict[str, list[float]]:
    """Share of leads per level (last level: missing / other) for each feature in ``spec``
    that ``frame`` has."""
    out = {}
    for c, s in spec.items():
        if c not in frame:
            continue
        if s["kind"] == "range":
            x = pd.to_numeric(frame[c], errors="coerce").to_numpy(float)
            code = np.searchsorted(np.asarray(s["cuts"]), x, side="right")
            code[np.isnan(x)] = len(s["cuts"]) + 1
            k = len(s["cuts"]) + 2
        else:
            cats = s["categories"]
            code = category_codes(frame[c], cats)
            code = np.where(code < 0, len(cats), code)
            k = len(cats) + 1
        counts = np.bincount(code, minlength=k)
        out[c] = (counts / max(counts.sum(), 1)).tolist()
    return out


def stability_table(expected: dict, actual: dict) -> pd.DataFrame:
    """Characteristic stability index per feature present in both profiles."""
    rows = [(c, psi(expected[c], actual[c])) for c in expected if c in actual and len(expected[c]) == len(actual[c])]
    out = pd.DataFrame(rows, columns=["feature", "stability_index"])
    out["verdict"] = out["stability_index"].map(verdict)
    return out.sort_values("stability_index", ascending=False, ignore_index=True)


def band_migration(old_band, new_band) -> pd.DataFrame:
    """Counts of leads by previous band (rows) and new band (columns), on the same leads."""
    names = np.asarray(BANDS, dtype=object)
    old = pd.Categorical(names[np.asarray(old_band)], categories=BANDS)
    new = pd.Categorical(names[np.asarray(new_band)], categories=BANDS)
    tab = pd.crosstab(pd.Series(old, name="previous"), pd.Series(new, name="new"), dropna=False)
    return tab.reindex(index=list(BANDS), columns=list(BANDS), fill_value=0)
