"""The quarterly refit: export -> model -> points table -> thresholds -> comparison.

One call for a notebook or the CLI::

    res = run_refit("crm.csv", "data/mappings/x_education.yaml", previous=None, seed=0)
    res.points_table; res.diagnostics; res.lift; res.comparison.recommendation
    res.save("models/2024Q3")

Validation respects time: with ``created_at`` the model trains on the earlier leads and
is tested on the latest ``holdout`` share; without dates a stratified random holdout is
used, and the result says which (``res.split``).

What the refit decides on its own, it says in ``res.notes`` (and ``model.json``): a raw
field left out because a derived flag of it is scored (``industry`` beside
``industry_fit``; ``score_both`` keeps both), bins merged to keep points monotone, a
``(missing)`` level that converts unusually well, cut-offs that leave nearly every lead
in one band. A table whose bands invert (a higher band converting significantly below a
lower one on the holdout) is refused with an error. Only a challenger that wins the
champion/challenger rule becomes the table in use (``res.in_use``); otherwise the
champion's table stays in use and is what the artifact's ``points.yaml`` holds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sklearn.model_selection import train_test_split

from calibration.artifact import Artifact, load_model, write_artifact
from calibration.diagnostics import Diagnostics, evaluate, platt
from calibration.importer import LeadData, import_export
from calibration.leakage import LeakageReport, check_leakage
from calibration.mapping import CREATED, Mapping
from calibration.model import LeadScoringModel
from calibration.points import criteria_sheet, cutoff_meaning, points_table_from_model, table_applicability
from calibration.stability import band_migration, feature_bins, feature_shares, psi, score_shares, \
    stability_table, verdict
from calibration.thresholds import ThresholdChoice, choose_thresholds, threshold_curve
from common.errors import LabError, validation_message
from common.intervals import normal_quantile
from common.files import code_version, now_utc
from sim.scoring import PointsTable

#: Points a lead loses per week without engagement when the export cannot say: the
#: simulator's nurture default (``sim.scenario``, ``nurture.score_decay_points_per_week``).
DEFAULT_DECAY_POINTS_PER_WEEK = 2.0
#: The export column with each lead's last engagement date (estimates the decay rule).
ENGAGEMENT_DATE = "last_engagement_at"
#: A (missing) level converting at this multiple of the average or more is reported.
MISSING_NOTE_RATIO = 1.5


class RefitConfig(BaseModel):
    """Refit parameters; unknown names are errors."""

    model_config = ConfigDict(extra="forbid")
    outcome: str = "success"
    within_days: float | None = Field(None, gt=0)
    holdout: float = Field(0.3, gt=0, lt=1)
    seed: int = 0
    n_bins: int = Field(6, ge=2, le=50)
    Cs: list[float] = [0.01, 0.1, 1.0, 10.0]
    scale: Literal["minmax", "pdo"] | None = None
    score_min: int = 0
    score_max: int = 100
    pdo: float | None = Field(None, gt=0)
    score_both: list[str] = []
    weekly_volume: float | None = Field(None, gt=0)
    capacity: float | None = Field(None, gt=0)
    hot_capacity: float | None = Field(None, gt=0)
    value_per_qualified: float = Field(1.0, gt=0)
    n_boot: int = Field(200, ge=10)
    leakage_max_rows: int = Field(100_000, ge=1000)


@dataclass
class Comparison:
    """New model vs the champion (previous model, or the seeds' table)."""

    champion: str
    applicable: bool
    points_changes: pd.DataFrame
    score_psi: float | None
    psi_reference: str
    stability: pd.DataFrame
    migration: pd.DataFrame | None
    deltas: pd.DataFrame
    recommendation: str
    rule: str


@dataclass
class RefitResult:
    points_table: PointsTable  # the challenger: this export's refitted table
    model: LeadScoringModel
    diag: Diagnostics
    comparison: Comparison
    leakage: LeakageReport
    threshold_choice: ThresholdChoice | None
    thresholds_curve: pd.DataFrame
    split: dict
    meta: dict
    profile: dict = field(repr=False, default_factory=dict)
    in_use: PointsTable | None = None  # the table in use after the decision
    notes: list[str] = field(default_factory=list)
    decay: dict = field(default_factory=dict)

    @property
    def promoted(self) -> bool:
        return self.comparison.recommendation.startswith("promote")

    @property
    def criteria_sheet(self) -> str:
        """The challenger in plain language, with its band rules."""
        return criteria_sheet(self.points_table)

    @property
    def decision(self) -> str:
        """The champion/challenger decision in one sentence."""
        c = self.comparison
        if self.promoted:
            return (f"The refitted table replaces the {c.champion} table and is now in use "
                    f"({c.recommendation.removeprefix('promote: ')}).")
        return (f"The {c.champion} table stays in use; the refitted table is kept as a challenger only "
                f"({c.recommendation.removeprefix(f'keep {c.champion}: ')}).")

    @property
    def diagnostics(self) -> pd.DataFrame:
        return self.diag.metrics

    @property
    def reliability(self) -> pd.DataFrame:
        return self.diag.reliability

    @property
    def lift(self) -> pd.DataFrame:
        return self.diag.lift

    @property
    def bands(self) -> pd.DataFrame:
        return self.diag.bands

    def summary(self) -> pd.DataFrame:
        """Metric x model table of 'estimate [lo, hi]' strings, for the CLI."""
        m = self.diag.metrics
        cell = m.apply(lambda r: f"{r.estimate:.3f} [{r.lo:.3f}, {r.hi:.3f}]", axis=1)
        return pd.DataFrame({"model": m["model"], "metric": m["metric"], "value": cell}).pivot(
            index="metric", columns="model", values="value")

    def save(self, path: str | Path) -> Path:
        c = self.comparison
        frames = {
            "diagnostics": self.diag.metrics, "deltas": self.diag.deltas, "reliability": self.diag.reliability,
            "lift": self.diag.lift, "bands": self.diag.bands, "thresholds_curve": self.thresholds_curve,
            "leakage": self.leakage.table, "points_changes": c.points_changes, "stability": c.stability,
            "migration": c.migration,
        }
        texts = {"criteria.txt": criteria_sheet(self.in_use or self.points_table),
                 "challenger_criteria.txt": self.criteria_sheet}
        return write_artifact(path, self.in_use or self.points_table, self.meta, self.profile, frames,
                              challenger=self.points_table, texts=texts)


def run_refit(export: str | Path, mapping: str | Path | Mapping, previous: str | Path | None = None,
              **params) -> RefitResult:
    """Import, fit, score, compare. ``params`` are :class:`RefitConfig` fields
    (outcome, within_days, holdout, seed, scale, score_min, score_max, pdo, weekly_volume, capacity,
    score_both, ...)."""
    try:
        cfg = RefitConfig(**params)
    except ValidationError as exc:
        raise LabError(validation_message(exc, "refit parameters", unknown="unknown parameter")) from None
    if cfg.scale == "pdo" and cfg.pdo is None:
        raise LabError(f"refit parameters: pdo: the pdo scale needs the points that double the odds; got {cfg.pdo}")
    if cfg.scale == "minmax" and cfg.pdo is not None:
        raise LabError(f"refit parameters: pdo: give it only with the pdo scale; got {cfg.pdo}")
    scale = cfg.scale or ("pdo" if cfg.pdo is not None else "minmax")
    if scale == "minmax" and not cfg.score_max > cfg.score_min:
        raise LabError(f"refit parameters: score_max: must be above score_min ({cfg.score_min}); got {cfg.score_max}")
    data = import_export(export, mapping)
    tgt = data.target(cfg.outcome, cfg.within_days)
    frame = data.frame[tgt.mask].reset_index(drop=True)
    y = tgt.y[tgt.mask]
    train, test, split = make_split(frame, y, cfg.holdout, cfg.seed, data)
    Xtr, Xte = frame.iloc[train], frame.iloc[test]
    lk = data.mapping.leakage
    guard = check_leakage(Xtr[data.features], y[train], data.numeric, data.categorical,
                          max_single_auc=lk.max_single_auc, max_model_auc=lk.max_model_auc, allow=lk.allow,
                          seed=cfg.seed, max_rows=cfg.leakage_max_rows)
    guard.raise_if_refused(data.source)
    notes = []
    derived = derived_pairs(Xtr, data.categorical)
    dropped = [raw for raw, flag in derived if raw not in cfg.score_both]
    for raw, flag in derived:
        notes.append(f"'{raw}' and '{flag}' both scored (score_both)" if raw not in dropped else
                     f"'{raw}' left out: '{flag}' is derived from it and is scored instead "
                     "(list it under score_both to score both)")
    numeric = [c for c in data.numeric if c not in dropped]
    categorical = [c for c in data.categorical if c not in dropped]
    features = numeric + categorical
    model = LeadScoringModel(numeric=numeric, categorical=categorical, n_bins=cfg.n_bins, Cs=cfg.Cs,
                             random_state=cfg.seed).fit(Xtr[features], y[train])
    for m in model.monotone_merges_:
        if "tied" in m:
            notes.append(f"'{m['feature']}': {m['tied'][0]} and {m['tied'][1]} share one weight so its points "
                         "do not fall along its order (their weights ran against it with the other criteria)")
        else:
            notes.append(f"'{m['feature']}': ranges either side of {m['cut_removed']:g} merged so its points stay "
                         f"{m['trend']} (their weights ran against the trend with the other criteria in the model)")
    notes += missing_notes(model, Xtr[features], y[train])

    seed = load_model(None)
    champ = load_model(previous) if previous is not None else seed
    table, scaling = points_table_from_model(model, scale=scale, score_min=cfg.score_min, score_max=cfg.score_max,
                                             pdo=cfg.pdo, source="refit")
    new_train, new_test = table.score(Xtr), table.score(Xte)
    choice = None
    weekly = cfg.weekly_volume or _weekly_volume(frame)
    if cfg.capacity:
        choice = choose_thresholds(new_test, y[test], weekly, cfg.capacity, cfg.hot_capacity,
                                   cfg.value_per_qualified)
        table = PointsTable(table.rows, choice.thresholds, source="refit")
        curve = choice.curve
    else:
        curve = threshold_curve(new_test, y[test], weekly, None, cfg.value_per_qualified)

    a, b = platt(new_train, y[train], cfg.seed)
    scorers = {"model": {"score": model.decision_function(Xte), "proba": model.predict_proba(Xte)[:, 1]},
               "refit": {"score": new_test, "proba": _sigmoid(a + b * new_test), "points": True}}
    others = {"seed": seed} if champ is seed else {"seed": seed, "previous": champ}
    applicable = {}
    for name, art in others.items():
        ok, missing = table_applicability(art.table, frame)
        applicable[name] = (ok, missing)
        if ok:
            s_tr, s_te = art.table.score(Xtr), art.table.score(Xte)
            pa, pb = platt(s_tr, y[train], cfg.seed)
            scorers[name] = {"score": s_te, "proba": _sigmoid(pa + pb * s_te), "points": True,
                             "thresholds": art.table.thresholds}
    champ_name = "previous" if champ is not seed else "seed"
    ref = champ_name if champ_name in scorers else None
    diag = evaluate(y[test], scorers, table.thresholds, reference=ref, n_boot=cfg.n_boot, seed=cfg.seed)
    # Each table's own cut-offs for its band rates (evaluate bands with the new ones).
    comparison = compare(champ, champ_name, applicable[champ_name], table, frame, Xtr, Xte, model, diag)
    notes += check_bands(diag.bands[diag.bands["model"] == "refit"], table.thresholds, data.source)
    decay = decay_rule(frame, y, model, scaling["factor"])
    in_use = table if comparison.recommendation.startswith("promote") else champ.table

    profile = {"score_edges": "every 10 points", "score_shares": score_shares(new_train).tolist(),
               "features": {"bins": feature_bins(model),
                            "shares": feature_shares(Xtr, feature_bins(model))}}
    m = diag.metrics
    meta = {
        "name": f"refit-{now_utc()[:10]}-{data.sha256[:8]}",
        "created_at": now_utc(), "code_version": code_version(), "seed": cfg.seed,
        "parameters": cfg.model_dump(), "outcome": tgt.label,
        "data": {"path": data.source, "sha256": data.sha256},
        "mapping": {"path": data.mapping.source, "name": data.mapping.name},
        "split": split,
        "rows": {"read": int(len(data.frame)), "labelled": int(len(y)), "train": int(len(train)),
                 "test": int(len(test)), "excluded": tgt.excluded, "positive_rate": float(y.mean())},
        "features": {"numeric": numeric, "categorical": categorical,
                     "post_outcome_excluded": data.post_outcome, "derived_left_out": dropped,
                     "trends": model.trends_, "monotone_merges": model.monotone_merges_},
        "model": {"C": model.C_, "n_levels": int(len(model.coef_)), "intercept": model.intercept_,
                  "binning": "optbinning OptimalBinning (monotonic trend, max_pvalue 0.05) per numeric feature"},
        "scaling": {**scaling, "cutoffs": cutoff_meaning(table.thresholds, scaling),
                    "table_range": [table.min_points, table.max_points]},
        "decay": decay,
        "notes": notes,
        "thresholds": {"hot": table.thresholds.hot, "mql": table.thresholds.mql,
                       "nurture": table.thresholds.nurture,
                       "rule": choice.rule if choice else "seeds' 75 / 60 / 45 kept (no capacity given)",
                       "weekly_volume": weekly, "capacity": cfg.capacity, "hot_capacity": cfg.hot_capacity},
        "metrics": m.to_dict(orient="records"),
        "rounding": {"roc_auc_model": _metric(m, "model", "roc_auc"), "roc_auc_points": _metric(m, "refit", "roc_auc")},
        "leakage": {"refused": guard.refused, "model_auc": guard.model_auc},
        "champion": {"name": comparison.champion, "applicable": comparison.applicable,
                     "not_applicable_because_missing": applicable[champ_name][1]},
        "recommendation": comparison.recommendation, "recommendation_rule": comparison.rule,
        "in_use": "challenger" if in_use is table else comparison.champion,
        "score_psi": comparison.score_psi,
    }
    res = RefitResult(points_table=table, model=model, diag=diag, comparison=comparison, leakage=guard,
                      threshold_choice=choice, thresholds_curve=curve, split=split, meta=meta, profile=profile,
                      in_use=in_use, notes=notes, decay=decay)
    meta["decision"] = res.decision
    return res


def derived_pairs(X: pd.DataFrame, categorical: list[str], max_rows: int = 100_000) -> list[tuple[str, str]]:
    """(raw, flag) pairs of categorical columns where ``flag`` is a coarser function of
    ``raw`` on the training rows (``industry_fit`` of ``industry``): filled wherever raw is,
    one flag value per raw value, at least one flag value grouping several raw values,
    and no flag value rarer than 1% (a near-constant column is not a derived flag)."""
    X = X[categorical].iloc[:max_rows]
    text = {c: X[c].astype("string").str.strip().str.lower() for c in categorical}
    n = {c: text[c].nunique() for c in categorical}
    out = []
    for flag in categorical:
        shares = text[flag].value_counts(normalize=True)
        if not 1 < n[flag] or shares.min() < 0.01:
            continue
        for raw in categorical:
            has = text[raw].notna()
            if raw == flag or not n[flag] < n[raw] or has.mean() < 0.5:
                continue
            if text[flag][has].isna().mean() > 0.01:
                continue
            both = has & text[flag].notna()
            per_raw = text[flag][both].groupby(text[raw][both]).nunique()
            groups = text[raw][both].groupby(text[flag][both]).nunique()
            if (per_raw <= 1).all() and (groups >= 2).any():
                out.append((raw, flag))
    return out


def missing_notes(model, X: pd.DataFrame, y) -> list[str]:
    """Criteria whose (missing) level converts at MISSING_NOTE_RATIO x the average or more."""
    notes = []
    rate = float(np.mean(y))
    for c in model.feature_names_in_:
        miss = X[c].isna() | (X[c].astype("string").str.strip() == "")
        if miss.sum() >= 30 and rate > 0:
            r = float(np.mean(y[miss.to_numpy()]))
            if r >= MISSING_NOTE_RATIO * rate:
                notes.append(f"'{c}' is blank for {int(miss.sum()):,} training leads, who convert at {r:.1%}, "
                             f"{r / rate:.1f}x the average {rate:.1%}: '(missing)' is scored as a level of its own "
                             "(its points are in the table); the zero-point reference stays the weakest level")
    return notes


def check_bands(bands: pd.DataFrame, thresholds, source: str) -> list[str]:
    """Refuse a table whose higher band converts significantly below a lower band on the
    holdout (bootstrap 95% intervals apart); note inversions within the noise and cut-offs
    that leave nearly every lead in one band."""
    b = bands.set_index("band")
    notes = []
    names = [n for n in ("hot", "mql", "nurture", "cold") if n in b.index and b.loc[n, "n"] > 0]
    for i, hi in enumerate(names):
        for lo in names[i + 1:]:
            if b.loc[hi, "hi"] < b.loc[lo, "lo"]:
                raise LabError(
                    f"{source}: bands: a higher band must not convert below a lower one; got {hi} "
                    f"{b.loc[hi, 'rate']:.1%} [{b.loc[hi, 'lo']:.1%}, {b.loc[hi, 'hi']:.1%}] below {lo} "
                    f"{b.loc[lo, 'rate']:.1%} [{b.loc[lo, 'lo']:.1%}, {b.loc[lo, 'hi']:.1%}] on the holdout "
                    f"(cut-offs {thresholds.hot:g} / {thresholds.mql:g} / {thresholds.nurture:g})")
            if b.loc[hi, "rate"] < b.loc[lo, "rate"]:
                notes.append(f"band {hi} converts at {b.loc[hi, 'rate']:.1%} on the holdout, below {lo} "
                             f"({b.loc[lo, 'rate']:.1%}), within the noise of the bootstrap intervals")
    top = b["share"].idxmax()
    if b.loc[top, "share"] >= 0.95:
        notes.append(f"{b.loc[top, 'share']:.0%} of holdout leads fall in {top} at the cut-offs {thresholds.hot:g} / "
                     f"{thresholds.mql:g} / {thresholds.nurture:g}: give the team's capacity to set cut-offs that "
                     "route leads")
    return notes


def decay_rule(frame: pd.DataFrame, y, model, factor: float) -> dict:
    """Points a lead loses per week without engagement, with a 95% interval.

    With ``ENGAGEMENT_DATE`` in the export: the weeks from a lead's last engagement to
    its scoring (``mql_at``, else ``created_at``) enter a logistic regression with the
    model's log-odds as offset, ``logit p = eta(x) + a + b * weeks``; the rule is
    ``-b * factor`` points a week, its Wald interval ``(-b +- z se(b)) * factor``.
    Otherwise the documented default, which has no interval from this export."""
    if ENGAGEMENT_DATE not in frame or frame[ENGAGEMENT_DATE].notna().sum() < 100:
        return {"points_per_week": DEFAULT_DECAY_POINTS_PER_WEEK, "lo": None, "hi": None, "source": "default",
                "rule": f"default {DEFAULT_DECAY_POINTS_PER_WEEK:g} points a week (sim.scenario nurture default; "
                        f"interval n/a: the export has no '{ENGAGEMENT_DATE}' column to estimate it from)"}
    from scipy.optimize import minimize

    scored = frame["mql_at"].fillna(frame[CREATED]) if "mql_at" in frame else frame[CREATED]
    weeks = ((scored - pd.to_datetime(frame[ENGAGEMENT_DATE])).dt.total_seconds() / (7 * 86400)).clip(lower=0)
    ok = weeks.notna().to_numpy()
    eta = model.decision_function(frame.loc[ok, list(model.feature_names_in_)])
    wk, t = weeks.to_numpy()[ok], np.asarray(y, float)[ok]

    def nll(ab):
        z = eta + ab[0] + ab[1] * wk
        return float(np.sum(np.logaddexp(0, z) - t * z))

    fit = minimize(nll, np.zeros(2), method="BFGS")
    p = 1 / (1 + np.exp(-(eta + fit.x[0] + fit.x[1] * wk)))
    h = np.array([[np.sum(p * (1 - p)), np.sum(p * (1 - p) * wk)],
                  [np.sum(p * (1 - p) * wk), np.sum(p * (1 - p) * wk ** 2)]])
    se = float(np.sqrt(np.linalg.inv(h)[1, 1]))
    z = normal_quantile()
    b = float(fit.x[1])
    est, lo, hi = -b * factor, (-b - z * se) * factor, (-b + z * se) * factor
    return {"points_per_week": est, "lo": lo, "hi": hi, "source": "estimated",
            "rule": f"{est:.1f} points a week without engagement [95% CI {lo:.1f}, {hi:.1f}], estimated on "
                    f"{int(ok.sum()):,} leads from '{ENGAGEMENT_DATE}'"}


def make_split(frame: pd.DataFrame, y: np.ndarray, holdout: float, seed: int, data: LeadData):
    """Time split (train on earlier leads, test on the latest) when created_at exists,
    else a stratified random holdout; returns train and test positions and a record."""
    idx = np.arange(len(y))
    if data.has_dates and frame[CREATED].notna().all():
        t = frame[CREATED]
        cut = t.quantile(1 - holdout).floor("D")
        test = (t >= cut).to_numpy()
        split = {"kind": "time", "rule": f"train on leads created before {cut.date()}, test on the rest",
                 "train_window": [str(t[~test].min()), str(t[~test].max())],
                 "test_window": [str(t[test].min()), str(t[test].max())]}
        train, test = idx[~test], idx[test]
    else:
        train, test = train_test_split(idx, test_size=holdout, stratify=y, random_state=seed)
        why = "no created_at column" if not data.has_dates else "created_at has missing values"
        split = {"kind": "stratified_random",
                 "rule": f"stratified random {holdout:.0%} holdout (seed {seed}) because the export has {why}",
                 "train_window": None, "test_window": None}
    for name, part in (("training", train), ("test", test)):
        if len(part) == 0 or y[part].min() == y[part].max():
            raise LabError(f"{data.source}: the {name} split ({split['rule']}) holds a single outcome class; "
                           "use a larger holdout or an export covering more time")
    return np.sort(train), np.sort(test), split


def compare(champ: Artifact, champ_name: str, applicable, table: PointsTable, frame, Xtr, Xte, model,
            diag: Diagnostics) -> Comparison:
    """Points changes, PSI, stability, migration, metric deltas and the recommendation."""
    ok, missing = applicable
    old = champ.table.rows.rename(columns={"points": "previous_points"})
    new = table.rows.rename(columns={"points": "new_points"})
    changes = old.merge(new, on=["criterion", "value"], how="outer").fillna({"previous_points": 0, "new_points": 0})
    changes["change"] = changes["new_points"] - changes["previous_points"]
    changes = changes.sort_values(["criterion", "value"], ignore_index=True)

    if ok and champ.profile:
        score_psi = psi(champ.profile["score_shares"], score_shares(champ.table.score(frame)))
        ref = f"{champ_name}'s training data vs this export, scored by {champ_name}"
        bins = champ.profile["features"]["bins"]
        stab = stability_table(champ.profile["features"]["shares"], feature_shares(frame, bins))
    else:
        score_psi = psi(score_shares(table.score(Xtr)), score_shares(table.score(Xte)))
        ref = "training window vs test window of this export, scored by the new table"
        bins = feature_bins(model)
        stab = stability_table(feature_shares(Xtr, bins), feature_shares(Xte, bins))
    migration = band_migration(champ.table.band(Xte), table.band(Xte)) if ok else None
    deltas = diag.deltas[diag.deltas["model"] == "refit"].reset_index(drop=True)
    margin_rule = ("promote the refit if the champion cannot score this export, or if the paired-bootstrap 95% CI "
                   "of its holdout ROC AUC gain lies above 0; keep the champion if the CI lies below 0; when the "
                   "CI covers 0, promote only if the champion's score PSI is >= 0.25 (its population moved)")
    if not ok:
        rec = f"promote: the {champ_name} model's criteria {missing} are not in this export"
    else:
        d = deltas.set_index("metric").loc["roc_auc"]
        gain = f"ROC AUC {d.delta:+.3f} [{d.lo:+.3f}, {d.hi:+.3f}]"
        if d.lo > 0:
            rec = f"promote: {gain} vs {champ_name}"
        elif d.hi < 0:
            rec = f"keep {champ_name}: {gain}"
        elif score_psi >= 0.25:
            rec = f"promote: {gain} is not significant but the score PSI {score_psi:.2f} shows a major shift"
        else:
            rec = f"keep {champ_name}: {gain} is not significant and the score PSI {score_psi:.2f} is below 0.25"
    return Comparison(champion=champ_name, applicable=ok, points_changes=changes, score_psi=score_psi,
                      psi_reference=f"{ref} ({verdict(score_psi)})", stability=stab, migration=migration,
                      deltas=deltas, recommendation=rec, rule=margin_rule)


def _weekly_volume(frame: pd.DataFrame) -> float:
    if CREATED in frame and frame[CREATED].notna().any():
        days = (frame[CREATED].max() - frame[CREATED].min()).total_seconds() / 86400
        if days >= 7:
            return len(frame) / (days / 7)
    return float(len(frame))


def _metric(m: pd.DataFrame, model: str, metric: str):
    sel = m[(m["model"] == model) & (m["metric"] == metric)]
    return float(sel["estimate"].iloc[0]) if len(sel) else None


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, float)))
