"""The quarterly refit: export -> model -> points table -> thresholds -> comparison.

One call for a notebook or the CLI::

    res = run_refit("crm.csv", "data/mappings/x_education.yaml", previous=None, seed=0)
    res.points_table; res.diagnostics; res.lift; res.comparison.recommendation
    res.save("models/2024Q3")

Validation respects time: with ``created_at`` the model trains on the earlier leads and
is tested on the latest ``holdout`` share; without dates a stratified random holdout is
used, and the result says which (``res.split``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sklearn.model_selection import train_test_split

from calibration.artifact import Artifact, load_model, write_artifact
from calibration.diagnostics import Diagnostics, evaluate, platt
from calibration.importer import LeadData, import_export
from calibration.leakage import LeakageReport, check_leakage
from calibration.mapping import CREATED, Mapping
from calibration.model import LeadScoringModel
from calibration.points import points_table_from_model, share_at_or_above, table_applicability
from calibration.stability import band_migration, feature_bins, feature_shares, psi, score_shares, \
    stability_table, verdict
from calibration.thresholds import ThresholdChoice, choose_thresholds, threshold_curve
from common.errors import LabError, validation_message
from common.files import code_version, now_utc
from sim.scoring import PointsTable

DEFAULT_MQL_SHARE = 0.25
SEED_MQL = 60.0


class RefitConfig(BaseModel):
    """Refit parameters; unknown names are errors."""

    model_config = ConfigDict(extra="forbid")
    outcome: str = "success"
    within_days: float | None = Field(None, gt=0)
    holdout: float = Field(0.3, gt=0, lt=1)
    seed: int = 0
    n_bins: int = Field(10, ge=2, le=50)
    Cs: list[float] = [0.01, 0.1, 1.0, 10.0]
    pdo: float | None = Field(None, gt=0)
    mql_share: float | None = Field(None, gt=0, lt=1)
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
    points_table: PointsTable
    model: LeadScoringModel
    diag: Diagnostics
    comparison: Comparison
    leakage: LeakageReport
    threshold_choice: ThresholdChoice | None
    thresholds_curve: pd.DataFrame
    split: dict
    meta: dict
    profile: dict = field(repr=False, default_factory=dict)

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
        return write_artifact(path, self.points_table, self.meta, self.profile, frames)


def run_refit(export: str | Path, mapping: str | Path | Mapping, previous: str | Path | None = None,
              **params) -> RefitResult:
    """Import, fit, score, compare. ``params`` are :class:`RefitConfig` fields
    (outcome, within_days, holdout, seed, pdo, mql_share, weekly_volume, capacity, ...)."""
    try:
        cfg = RefitConfig(**params)
    except ValidationError as exc:
        raise LabError(validation_message(exc, "refit parameters", unknown="unknown parameter")) from None
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
    model = LeadScoringModel(numeric=data.numeric, categorical=data.categorical, n_bins=cfg.n_bins, Cs=cfg.Cs,
                             random_state=cfg.seed).fit(Xtr[data.features], y[train])

    seed = load_model(None)
    champ = load_model(previous) if previous is not None else seed
    mql_share, share_from = _mql_share(cfg, champ, seed, Xtr)
    try:
        table, scaling = points_table_from_model(model, X_train=Xtr[data.features], mql_share=mql_share,
                                                 pdo=cfg.pdo, source="refit")
    except LabError:
        if cfg.pdo is not None or cfg.mql_share is not None:
            raise
        # The inherited share is too large for this model's zero levels: use the default.
        mql_share, share_from = DEFAULT_MQL_SHARE, f"default {DEFAULT_MQL_SHARE} ({share_from} was not usable)"
        table, scaling = points_table_from_model(model, X_train=Xtr[data.features], mql_share=mql_share,
                                                 source="refit")
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
        "features": {"numeric": data.numeric, "categorical": data.categorical,
                     "post_outcome_excluded": data.post_outcome},
        "model": {"C": model.C_, "n_levels": int(len(model.coef_)), "intercept": model.intercept_},
        "scaling": {**scaling, "mql_share_from": share_from},
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
        "score_psi": comparison.score_psi,
    }
    return RefitResult(points_table=table, model=model, diag=diag, comparison=comparison, leakage=guard,
                       threshold_choice=choice, thresholds_curve=curve, split=split, meta=meta, profile=profile)


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


def _mql_share(cfg: RefitConfig, champ: Artifact, seed: Artifact, Xtr) -> tuple[float, str]:
    if cfg.mql_share is not None:
        return cfg.mql_share, "parameter"
    # The share at or above the seeds' 60 points (not the table's own, possibly
    # capacity-driven, cut-off): that is the meaning the new 60 must keep.
    for name, art in (("champion", champ), ("seed", seed)):
        share = share_at_or_above(art.table, Xtr, SEED_MQL)
        if share is not None and 0.01 <= share <= 0.8:
            return share, f"{name} table's share at or above {SEED_MQL:g} points on the training data"
    return DEFAULT_MQL_SHARE, f"default {DEFAULT_MQL_SHARE} (no earlier table applies to this export)"


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
