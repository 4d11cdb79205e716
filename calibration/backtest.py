"""Back-tests of a fitted scenario.

``backtest`` (in sample): simulate the fitted scenario over the history's own period and
put the simulated KPIs (mean and 95% interval over replications) beside the actual ones.

``holdout_backtest`` (out of sample, a test that can fail): fit on the leads created
before a split date (events after it hidden: right-censored), simulate the later window
with parameters drawn from their fitted uncertainty (one draw per replication), and
compare every KPI the export supports: the actual value with its 95% interval, the
simulated mean with a 95% *prediction* interval (t, ``sd * sqrt(1 + 1/n)``: a new
realisation, parameter and replication noise together). Verdict per KPI: ``pass`` when
the actual value lies inside the prediction interval, ``fail`` otherwise, ``not
testable`` when the export cannot show it ("not in this export") or too few
replications ran. The twin fails overall when any KPI falls outside its prediction
interval widened for the number of KPIs tested (Bonferroni); it passes only when none
fails so *and* at least ``MIN_TESTED_SHARE`` of the KPIs were tested: a twin checked on
two figures out of thirteen has not been validated, and its overall verdict is ``not
testable: <why>`` (``overall_verdict``). ``save_backtest`` writes the CSV, the chart and
the verdict into the scenario file's header.

Opportunity-only exports (every row an opportunity, created when it was engaged, as in
Maven CRM): the rows are not leads, so ``leads_per_week`` is not testable; and the
twin's opportunity volume (``pipeline_per_week_usd``, ``won_per_week``) is not fitted -
it rests on the base scenario's assumed lead-to-opportunity rates, which the export
cannot check - so those are not testable either. What stays testable is what the export
measured at the opportunity stage (win rate, deal size).

Both sides are measured by the one KPI function (``sim.kpis.funnel_kpis``) on a lead
table alone: an export rarely has an event log, so the simulated side is read without
its own (each MQL counts at its first pass on both sides), over the same window, with
the same censoring at the window's end."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from calibration.fitted_funnel import FittedFunnel
from calibration.history_read import read_history
from common.intervals import LEVEL, mean_interval, normal_quantile, t_half_width
from sim.kpi_dashboard import implied_stages, kpi_interval
from sim.kpis import funnel_kpis, kpi

# What an export can show, in the order the back-test lists them.
BACKTEST_KPIS = [
    "leads_per_week", "mql_per_week", "hot_share_of_mql", "response_median_minutes", "response_p90_minutes",
    "within_1_hour_share", "mql_to_sql_rate", "sql_per_week", "sql_to_opportunity_rate", "win_rate",
    "pipeline_per_week_usd", "deal_size_mean_usd", "won_per_week",
]
#: The lead-table columns each KPI needs; a KPI whose column the export lacks is "not in this export".
KPI_NEEDS = {
    "mql_per_week": ("mql_at",), "hot_share_of_mql": ("mql_at", "band"),
    "response_median_minutes": ("mql_at", "first_response_at"), "response_p90_minutes": ("mql_at", "first_response_at"),
    "within_1_hour_share": ("mql_at", "first_response_at"), "mql_to_sql_rate": ("mql_at", "sql_at"),
    "sql_per_week": ("sql_at",), "sql_to_opportunity_rate": ("sql_at", "opportunity_at"),
    "win_rate": ("opportunity_at", "closed_at", "outcome"), "pipeline_per_week_usd": ("opportunity_at", "amount"),
    "deal_size_mean_usd": ("opportunity_at", "amount"), "won_per_week": ("opportunity_at", "closed_at", "outcome"),
}
NOT_IN_EXPORT = "not in this export"
#: Share of ``BACKTEST_KPIS`` that must be tested for an overall pass.
MIN_TESTED_SHARE = 0.5
#: Opportunity-only exports: KPIs not testable, and why.
OPPORTUNITY_ONLY = {
    "leads_per_week": "the export's rows are opportunities, not leads (no lead volume)",
    "pipeline_per_week_usd": "opportunity volume not fitted: the export has no lead stages, so the twin's rests on "
                             "the base scenario's assumed lead-to-opportunity rates",
    "won_per_week": "opportunity volume not fitted: the export has no lead stages, so the twin's rests on the base "
                    "scenario's assumed lead-to-opportunity rates",
}


def supported(frame: pd.DataFrame, name: str) -> bool:
    """Whether a lead table has what KPI ``name`` needs (columns present and filled)."""
    return all(c in frame and frame[c].notna().any() for c in KPI_NEEDS.get(name, ()))


def opportunity_only(frame: pd.DataFrame) -> bool:
    """Whether every row of an export is an opportunity dated when it was created (no
    lead stage before it): ``opportunity_at`` filled and equal to ``created_at``."""
    if "opportunity_at" not in frame or "created_at" not in frame or len(frame) == 0:
        return False
    o, c = frame["opportunity_at"], frame["created_at"]
    lead_stages = any(col in frame and frame[col].notna().any() for col in ("mql_at", "sal_at", "sql_at"))
    return bool(o.notna().all() and (o == c).all() and not lead_stages)


def overall_verdict(table: pd.DataFrame) -> str:
    """The twin's verdict from its KPI rows (``verdict`` and ``note`` columns): ``fail``
    when a KPI is outside its Bonferroni-widened interval; else ``not testable: <why>``
    when fewer than ``MIN_TESTED_SHARE`` of the KPIs were tested; else ``pass``."""
    tested = table[table["verdict"] != "not testable"]
    if tested["note"].astype(str).str.startswith("outside the Bonferroni").any():
        return "fail"
    need = math.ceil(MIN_TESTED_SHARE * len(table))
    if len(tested) < need:
        why = table.loc[table["verdict"] == "not testable", "note"].value_counts()
        return (f"not testable: only {len(tested)} of {len(table)} KPIs testable "
                f"({', '.join(tested['kpi']) or 'none'}; rule: at least {need} for a pass); "
                + "; ".join(f"{k} for {v}" for k, v in why.items()))
    return "pass"


def backtest(fitted: FittedFunnel, export, mapping=None, replications: int = 5, seed: int = 2026,
             n_jobs: int = 1) -> pd.DataFrame:
    """Simulate the fitted scenario over the history's period; one row per KPI of
    ``BACKTEST_KPIS`` with ``actual``, ``simulated`` (mean over replications), its 95%
    interval (n/a below 2 replications) and ``ratio`` = simulated / actual.

    The window runs from the end of the scenario's warm-up to the export's last date
    (inclusive). ``export`` is read again with ``mapping`` (default: the simulator's own
    mapping)."""
    from common.paths import ROOT
    from sim.crm import crm_export
    from sim.experiment import run_scenario

    scn = fitted.scenario
    mapping = mapping or ROOT / "data" / "mappings" / "sim_leads.yaml"
    actual_df, _ = read_history(export, mapping, scn.calendar.timezone)
    start = pd.Timestamp(scn.calendar.start_date) + pd.Timedelta(days=scn.calendar.warmup_days)
    end = fitted.end + pd.Timedelta(seconds=1)  # the export's last date counts
    actual = funnel_kpis(actual_df, None, scn, start, end)
    res = run_scenario(scn, replications=replications, seed=seed, n_jobs=n_jobs, keep_tables=True, progress=False)
    sims = []
    for _, leads in res.leads.groupby("replication", sort=True):
        crm = crm_export(leads.drop(columns=["replication"]), scn)
        sims.append(funnel_kpis(crm, None, scn, start, end))
    sim = pd.DataFrame(sims)
    rows = []
    for name in BACKTEST_KPIS:
        a = actual[name]
        m, lo, hi, _ = mean_interval(sim[name], lower=kpi(name).bounds[0], upper=kpi(name).bounds[1])
        rows.append(dict(kpi=name, actual=a, simulated=m, sim_ci_low=lo, sim_ci_high=hi,
                         ratio=m / a if a and not math.isnan(a) else math.nan))
    return pd.DataFrame(rows)


# ---- out of sample ---------------------------------------------------------------------------
#: Fit-report parameter -> (scenario field path, scale of its uncertainty).
_DRAWN = [
    ("arrivals.leads_per_week", ("arrivals", "leads_per_week"), "log"),
    *[(f"win[{s}]", ("conversion", "win_prob", s), "logit") for s in ("smb", "mid", "enterprise")],
    *[(f"sql_to_opportunity[{s}]", ("conversion", "sql_to_opportunity", s), "logit")
      for s in ("smb", "mid", "enterprise")],
    *[(f"sal_accept[{b}]", ("conversion", "sal_accept_prob", b), "logit") for b in ("hot", "mql")],
    *[(f"deal_size_median[{s}]", ("conversion", "deal_size_median", s), "log") for s in ("smb", "mid", "enterprise")],
    *[(f"days_to_close[{s}]", ("conversion", "days_to_close_mean", s), "log") for s in ("smb", "mid", "enterprise")],
]


def draw_scenario(fitted: FittedFunnel, rng: np.random.Generator, overrides: dict | None = None):
    """The fitted scenario with each fitted parameter drawn from its 95% interval
    (normal on the log or logit scale, sd = interval width / 2z); ``overrides`` (field
    path -> value) are applied after the draw."""
    from scipy import special

    from sim.scenario import build_scenario

    doc = fitted.scenario.model_dump(mode="json")
    z = normal_quantile(LEVEL)
    rep = fitted.report.set_index("parameter") if fitted.report is not None else pd.DataFrame()
    for name, path, scale in _DRAWN:
        if name not in rep.index or rep.loc[name, "status"] != "fitted":
            continue
        r = rep.loc[name]
        est, lo, hi = float(r["value"]), float(r["ci_low"]), float(r["ci_high"])
        if not all(map(math.isfinite, (est, lo, hi))) or lo <= 0 or hi <= lo:
            continue
        if scale == "logit":
            if hi >= 1 or est <= 0 or est >= 1:
                continue
            f, inv = special.logit, special.expit
        else:
            f, inv = np.log, np.exp
        sd = (f(hi) - f(lo)) / (2 * z)
        value = float(inv(f(est) + sd * rng.standard_normal()))
        node = doc
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value
    for path, value in (overrides or {}).items():
        node = doc
        keys = path.split(".")
        for p in keys[:-1]:
            node = node[p]
        node[keys[-1]] = value
    cv = doc["conversion"]
    for s in cv["win_prob"]:
        cv["no_decision_prob"][s] = min(cv["no_decision_prob"][s], 1 - cv["win_prob"][s])
    return build_scenario(doc, source="back-test draw")


def holdout_backtest(export, mapping, base=None, split=None, replications: int = 8, seed: int = 2026,
                     overrides: dict | None = None, kpis=BACKTEST_KPIS, parameter_uncertainty: bool = True):
    """Fit on leads created before ``split`` (default: two thirds into the creation
    window), simulate the rest, and judge each KPI (see the module docstring).

    Returns ``(table, verdict, fitted)``: one row per KPI with ``actual``,
    ``actual_ci_low/high``, ``simulated``, ``pi_low/high``, ``verdict``; the overall
    verdict; and the scenario fitted on the earlier window. ``overrides`` (scenario
    field -> value) deliberately changes the twin (a wrong twin must fail)."""
    from calibration.history import fit_scenario
    from sim.crm import crm_export
    from sim.model import run_replication
    from sim.scenario import Scenario, build_scenario, load_scenario

    if base is None:
        from common.paths import SCENARIOS

        base = load_scenario(SCENARIOS / "baseline.yaml")
    elif not isinstance(base, Scenario):
        base = load_scenario(base)
    tz = base.calendar.timezone
    actual_df, _ = read_history(export, mapping, tz)
    c0, c1 = actual_df["created_at"].min().floor("D"), actual_df["created_at"].max()
    split = pd.Timestamp(split) if split is not None else (c0 + (c1 - c0) * 2 / 3).floor("D")
    fitted = fit_scenario(export, mapping, base=base, window=(c0, split - pd.Timedelta(seconds=1)), as_of=split)
    end = c1 + pd.Timedelta(seconds=1)
    weeks = (end - split) / pd.Timedelta(days=7)
    test_days = math.ceil((end - split) / pd.Timedelta(days=1))
    doc = fitted.scenario.model_dump(mode="json")
    # Run the twin from the history's own start so that the state at the split (queue
    # backlog, nurture and recycle re-entries, open sales pipeline) is built by the twin
    # over the fit window, as it was in the real history; only the test window is read.
    # Starting empty a warm-up before the split under-loads the SDR queue: on the
    # simulator's own history 41% of the test window's queue passes belong to leads
    # created before such a start, and the median response came out 7 min, not 240.
    warm = math.ceil((split - c0) / pd.Timedelta(days=1))
    doc["calendar"].update(start_date=str(c0.date()), warmup_days=warm, horizon_days=warm + test_days)
    fitted.scenario = build_scenario(doc, source="back-test window")
    actual_lab = implied_stages(actual_df)
    actual = funnel_kpis(actual_lab, None, fitted.scenario, split, end)
    rng = np.random.default_rng(seed)
    sims = []
    for r in range(replications):
        scn = draw_scenario(fitted, rng, overrides) if parameter_uncertainty or overrides else fitted.scenario
        leads = run_replication(scn, r, seed=seed + r).leads
        sims.append(funnel_kpis(crm_export(leads, scn), None, scn, split, end))
    sim = pd.DataFrame(sims)
    rows = []
    untestable = OPPORTUNITY_ONLY if opportunity_only(actual_df) else {}
    tested = [n for n in kpis if supported(actual_df, n) and math.isfinite(actual[n]) and n not in untestable]
    zb = normal_quantile(1 - (1 - LEVEL) / max(len(tested), 1))
    z = normal_quantile(LEVEL)
    for name in kpis:
        a = actual[name]
        x = sim[name].to_numpy(float)
        x = x[np.isfinite(x)]
        m = float(x.mean()) if x.size else math.nan
        half = float(t_half_width(x.std(ddof=1), x.size) * math.sqrt(x.size + 1)) if x.size >= 2 else math.nan
        lo_b, hi_b = kpi(name).bounds
        lo, hi = m - half, m + half
        wide = half * zb / z
        lo = max(lo, lo_b) if lo_b is not None and math.isfinite(lo) else lo
        hi = min(hi, hi_b) if hi_b is not None and math.isfinite(hi) else hi
        alo, ahi = kpi_interval(name, actual, weeks) if supported(actual_df, name) else (math.nan, math.nan)
        if name in untestable:
            verdict, why = "not testable", untestable[name]
        elif not supported(actual_df, name) or not math.isfinite(a):
            verdict, why = "not testable", NOT_IN_EXPORT
        elif not math.isfinite(half):
            verdict, why = "not testable", "fewer than 2 simulated values"
        elif lo <= a <= hi:
            verdict, why = "pass", ""
        else:
            verdict, why = "fail", ("outside the Bonferroni-widened interval too" if abs(a - m) > wide
                                    else "outside the 95% prediction interval")
        rows.append(dict(kpi=name, actual=a if supported(actual_df, name) else math.nan, actual_ci_low=alo,
                         actual_ci_high=ahi, simulated=m, pi_low=lo, pi_high=hi, sim_ci_low=lo, sim_ci_high=hi,
                         ratio=m / a if a and math.isfinite(a) else math.nan, verdict=verdict, note=why))
    table = pd.DataFrame(rows)
    t = table[table["verdict"] != "not testable"]
    overall = overall_verdict(table)
    fitted.notes.append(f"back-test on leads created {split:%Y-%m-%d} .. {c1:%Y-%m-%d}: {overall} "
                        f"({(t['verdict'] == 'pass').sum()} pass, {(t['verdict'] == 'fail').sum()} fail, "
                        f"{(table['verdict'] == 'not testable').sum()} not testable)")
    return table, overall, fitted


def save_backtest(table: pd.DataFrame, overall: str, folder, scenario_path=None) -> list[Path]:
    """``backtest.csv``, ``backtest.png`` in ``folder``; the verdict is written into the
    header of the scenario file at ``scenario_path`` (a later run reads it there)."""
    import matplotlib

    matplotlib.use("Agg")
    from common.files import atomic_write_text
    from sim import plots

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = [atomic_write_text(folder / "backtest.csv", table.assign(overall=overall).to_csv(index=False))]
    testable = table[table["verdict"] != "not testable"]
    if len(testable):
        fig = plots.backtest(testable.assign(kpi=testable["kpi"] + " (" + testable["verdict"] + ")"),
                             low="pi_low", high="pi_high")
        fig.suptitle(f"Back-test: {overall}")
        fig.savefig(folder / "backtest.png", dpi=100, bbox_inches="tight")
        out.append(folder / "backtest.png")
    if scenario_path is not None and Path(scenario_path).exists():
        text = Path(scenario_path).read_text()
        lines = [f"# backtest: {overall}"] + [f"# backtest {r.kpi}: {r.verdict} (actual {r.actual:.4g}, simulated "
                                              f"{r.simulated:.4g} [{r.pi_low:.4g}, {r.pi_high:.4g}])"
                                              for r in testable.itertuples()]
        kept = "".join(ln for ln in text.splitlines(keepends=True) if not ln.startswith("# backtest"))
        atomic_write_text(scenario_path, "\n".join(lines) + "\n" + kept)
        out.append(Path(scenario_path))
    return out
