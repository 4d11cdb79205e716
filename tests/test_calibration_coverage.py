"""Interval coverage over repeated seeds: a fit of generated Salesforce- and
HubSpot-shaped exports with a known truth (``calibration.synthetic_crm``) must give 95%
intervals that hold the true value 95% of the time, parameter family by family.

Acceptance (from theory, not tuned): if a family's N intervals each cover with
probability 0.95, independently, the number covering is Binomial(N, 0.95); the test
accepts the central 99.9% of that law (``binom.ppf(0.0005)`` .. ``binom.ppf(0.9995)``),
so a correct fit fails a family with probability below 0.1%. Power: for N = 40 (one
interval per export, accept 32..40) a family whose intervals truly cover 70% of the
time is caught with probability 0.89 (80%: 0.41); families with several groups per
export (channels, segments, reasons: N of 100 to 200) catch 80% coverage with
probability above 0.95 and 85% with 0.65 to 0.96 (``test_acceptance_band_has_power``).

Exports alternate between the two shapes (even seeds Salesforce, odd seeds HubSpot),
so every interval comes from its own simulated history.
"""
from __future__ import annotations

import math
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from calibration.fit_report import report_table
from calibration.synthetic_crm import fit_generated, true_parameters
from common.paths import SCENARIOS
from sim.scenario import load_scenario

K = 40            # exports: 20 Salesforce, 20 HubSpot
LEVEL = 0.95
ACCEPT = 0.999    # central probability of the acceptance band
# A small identifiable truth (about 1,800 leads in 12 weeks; see test_calibration_history
# for why the decay needs no contact curve, three SDRs and no nurture). The base keeps the
# baseline's contact curve: every export contradicts it, and the fit sets it aside
# (``calibration.decay_fit.fit_qualification``; checked in test_calibration_history).
TRUTH = {"decay.contact.kind": "none", "decay.qualification.kind": "power",
         "decay.qualification.d0_minutes": 120.0, "decay.qualification.alpha": 0.9,
         "nurture.enabled": False, "team.sdrs": 3, "calendar.horizon_days": 84,
         "arrivals.leads_per_week": 150.0}
#: Parameter families: report parameters whose name starts with the prefix.
FAMILIES = {
    "leads_per_week": "arrivals.leads_per_week", "channel share": "arrivals.channels[",
    "decay p_band": "decay.p_", "decay d0": "decay.d0_minutes", "decay alpha": "decay.alpha",
    "qualify_prob": "conversion.qualify_prob[",
    "sal_accept": "sal_accept[", "rejection mix": "conversion.rejection_mix[",
    "sql_to_opportunity": "sql_to_opportunity[", "win": "win[", "no_decision": "no_decision[",
    "days_to_close": "days_to_close[", "deal_size_median": "deal_size_median[",
    "deal_size_sigma": "deal_size_sigma[", "disposition_days": "disposition_days[",
    "sql_to_opportunity_days": "sql_to_opportunity_days[", "team.sdrs": "team.sdrs",
}


def band(n: int, p: float = LEVEL, central: float = ACCEPT) -> tuple[int, int]:
    """The central ``central`` range of Binomial(n, p) (inclusive counts)."""
    a = (1 - central) / 2
    return int(stats.binom.ppf(a, n, p)), int(stats.binom.ppf(1 - a, n, p))


def _one(seed: int) -> pd.DataFrame:
    """The fitted parameters of one generated export, with their truth."""
    truth = load_scenario(SCENARIOS / "baseline.yaml", TRUTH)
    base = load_scenario(SCENARIOS / "baseline.yaml", {"nurture.enabled": False})
    shape = ("salesforce", "hubspot")[seed % 2]
    with tempfile.TemporaryDirectory() as folder:
        fit = fit_generated(truth, base, shape, 1000 + seed, folder)
    rep = report_table(fit)
    rep = rep[rep["status"] == "fitted"].copy()
    rep["truth"] = rep["parameter"].map(true_parameters(truth))
    rep["shape"], rep["seed"] = shape, seed
    return rep


@pytest.fixture(scope="module")
def fits() -> pd.DataFrame:
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        return pd.concat(list(pool.map(_one, range(K))), ignore_index=True)


def test_acceptance_band_has_power():
    lo, hi = band(40)
    assert (lo, hi) == (32, 40)
    assert stats.binom.cdf(lo - 1, 40, LEVEL) + stats.binom.sf(hi, 40, LEVEL) < 1 - ACCEPT
    assert stats.binom.cdf(lo - 1, 40, 0.70) > 0.85
    lo, hi = band(120)
    assert stats.binom.cdf(lo - 1, 120, 0.85) > 0.7 and stats.binom.cdf(lo - 1, 120, 0.80) > 0.95


def test_every_fitted_interval_has_a_truth(fits):
    with_ci = fits[np.isfinite(fits["ci_low"].astype(float)) | np.isfinite(fits["ci_high"].astype(float))]
    assert with_ci["truth"].notna().all(), sorted(set(with_ci.loc[with_ci["truth"].isna(), "parameter"]))
    fam = {p for p in with_ci["parameter"] if any(p.startswith(f) for f in FAMILIES.values())}
    assert fam == set(with_ci["parameter"]), sorted(set(with_ci["parameter"]) - fam)


def test_hours_fitted_without_an_interval_are_recovered_exactly(fits):
    rows = fits[fits["parameter"].isin(["calendar.open_hour", "calendar.close_hour"])]
    assert len(rows) == 2 * K
    wrong = rows[rows["value"].astype(float) != rows["truth"]]
    assert wrong.empty, wrong[["parameter", "shape", "seed", "value", "truth", "reason"]].to_string()


def test_no_recording_window_is_detected_in_complete_exports(fits):
    # Every export is complete from its first day: a detected window would be a false alarm.
    assert not fits["parameter"].str.startswith("recorded_from[").any()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_intervals_cover_at_their_nominal_rate(fits, family):
    rows = fits[fits["parameter"].str.startswith(FAMILIES[family]) & fits["truth"].notna()]
    rows = rows[np.isfinite(rows["ci_low"].astype(float)) | np.isfinite(rows["ci_high"].astype(float))]
    assert len(rows) >= 20, f"{family}: only {len(rows)} fitted intervals"
    lo = rows["ci_low"].astype(float).fillna(-math.inf)
    hi = rows["ci_high"].astype(float).fillna(math.inf)
    covered = int(((lo <= rows["truth"]) & (rows["truth"] <= hi)).sum())
    a, b = band(len(rows))
    missed = rows[~((lo <= rows["truth"]) & (rows["truth"] <= hi))]
    assert a <= covered <= b, (f"{family}: {covered} of {len(rows)} intervals cover the truth "
                               f"(accept {a}..{b}); missed: "
                               + "; ".join(f"{r.parameter} seed {r.seed} [{r.ci_low:.4g}, {r.ci_high:.4g}] "
                                           f"truth {r.truth:.4g}" for r in missed.head(6).itertuples()))

