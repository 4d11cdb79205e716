"""Figures of a refit, for notebooks and reports: each returns a matplotlib Figure and
never calls ``plt.show``."""
from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure


def reliability(frame: pd.DataFrame) -> Figure:
    """Observed conversion (with its bootstrap 95% CI) against mean predicted probability,
    one line per model; the diagonal is perfect calibration."""
    fig = Figure(figsize=(5, 4.5))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.7", lw=1, ls="--")
    for name, g in frame.groupby("model", sort=False):
        ax.errorbar(g["mean_predicted"], g["observed"], yerr=[g["observed"] - g["lo"], g["hi"] - g["observed"]],
                    marker="o", ms=3, capsize=2, label=name)
    ax.set(xlabel="mean predicted probability", ylabel="observed conversion rate", title="Reliability")
    ax.legend()
    return fig


def lift(frame: pd.DataFrame) -> Figure:
    """Lift by decile (1 = top 10% by score) with bootstrap 95% CIs, one series per model."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    models = list(dict.fromkeys(frame["model"]))
    width = 0.8 / max(len(models), 1)
    for i, name in enumerate(models):
        g = frame[frame["model"] == name]
        x = g["decile"] + (i - (len(models) - 1) / 2) * width
        ax.bar(x, g["lift"], width, yerr=[g["lift"] - g["lo"], g["hi"] - g["lift"]], capsize=2, label=name)
    ax.axhline(1, color="0.5", lw=1)
    ax.set(xlabel="decile (1 = highest scores)", ylabel="lift over the base rate", title="Lift by decile")
    ax.legend()
    return fig


def threshold_curve(curve: pd.DataFrame, capacity: float | None = None) -> Figure:
    """Routed leads per week against their conversion rate, the seeds' 75 / 60 / 45 and
    the chosen cut-offs marked; the capacity as a vertical line."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    ax.plot(curve["routed_per_week"], curve["precision"], color="C0")
    for _, r in curve[curve["seed_band"] != ""].iterrows():
        ax.scatter(r.routed_per_week, r.precision, color="C1", zorder=3)
        ax.annotate(f"seed {r.seed_band} {r.cutoff:g}", (r.routed_per_week, r.precision), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    if "chosen" in curve:
        for _, r in curve[curve["chosen"] != ""].iterrows():
            ax.scatter(r.routed_per_week, r.precision, color="C2", marker="s", zorder=3)
            ax.annotate(f"{r.chosen} {r.cutoff:g}", (r.routed_per_week, r.precision), fontsize=8,
                        xytext=(4, -10), textcoords="offset points")
    if capacity:
        ax.axvline(capacity, color="C3", ls="--", lw=1, label="capacity")
        ax.legend()
    ax.set(xlabel="leads routed to SDRs per week", ylabel="conversion rate of routed leads",
           title="Volume vs quality by cut-off")
    return fig


def points_changes(changes: pd.DataFrame, top: int = 25) -> Figure:
    """The largest changes in points per criterion value, previous -> new."""
    c = changes.reindex(changes["change"].abs().sort_values(ascending=False).index).head(top)[::-1]
    fig = Figure(figsize=(6, 0.25 * len(c) + 1))
    ax = fig.add_subplot()
    ax.barh([f"{a} = {b}" for a, b in zip(c["criterion"], c["value"])], c["change"],
            color=["C2" if v > 0 else "C3" for v in c["change"]])
    ax.axvline(0, color="0.5", lw=1)
    ax.set(xlabel="points change (new - previous)", title="Points changes")
    fig.tight_layout()
    return fig
