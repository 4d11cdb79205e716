"""Calibration benchmark, before and after the monotone points table (issue 10), side by
side in one run: import + refit + diagnostics on a 1,000,000-lead export and scoring
1,000,000 leads, then the binning comparison on X Education and a 60,000-lead export with
known monotone weights (holdout AUC, table size, monotone count criteria, refit time).
Targets (2 cores): refit under 60 s, scoring under 2 s.

    .venv/bin/python benchmarks/bench_calibration.py [--leads 1000000] [--out benchmarks/results_calibration.md]

"Before" is the package as of commit ``BEFORE`` (quantile integer bins, anchor scaling),
checked out from git into a temporary directory and run in its own process; "after" is
this checkout. Each side runs in a fresh interpreter on the same generated CSV; only the
lab's work is timed.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "d4f99a2"
TARGET_REFIT, TARGET_SCORE = 60.0, 2.0
#: Install cost of optbinning measured once (pip install into the project's .venv from the
#: local wheel index; fresh interpreter import time): it pulls ortools, cvxpy and solvers.
INSTALL = {"before": "0 MB (scikit-learn only)",
           "after": "+313 MB site-packages (scs 106, ortools 80, cvxpy 13, highspy 8, others); pip 7.6 s from a "
                    "local index; import optbinning 3.0 s"}


def worker(code_dir: str, export: str, mono: str, leads_n: int, n_boot: int, seed: int) -> dict:
    """Runs inside a subprocess whose sys.path starts with ``code_dir``."""
    import numpy as np

    from calibration.importer import import_export
    from calibration.refit import run_refit

    out = {}
    sim_map = str(Path(code_dir) / "data" / "mappings" / "sim_leads.yaml")
    if leads_n:
        t = time.perf_counter()
        data = import_export(export, sim_map)
        out["import_s"] = time.perf_counter() - t
        t = time.perf_counter()
        res = run_refit(export, sim_map, seed=seed, n_boot=n_boot)
        out["refit_s"] = time.perf_counter() - t
        table = res.points_table
        table.score(data.frame.iloc[:1000])
        t = time.perf_counter()
        table.score(data.frame)
        out["score_s"] = time.perf_counter() - t
        m = res.diagnostics.set_index(["model", "metric"])["estimate"]
        out["big_auc_points"] = float(m[("refit", "roc_auc")])
    # Binning comparison.
    xed = ROOT.parent / "shared" / "datasets" / "x_education_leads.csv"
    cases = {"x_education": (str(xed), str(Path(code_dir) / "data" / "mappings" / "x_education.yaml"))}
    cases["monotone_60k"] = (mono, sim_map)
    if True:
        for name, (path, mapping) in cases.items():
            if not Path(path).exists():
                continue
            t = time.perf_counter()
            res = run_refit(path, mapping, seed=seed, n_boot=50)
            sec = time.perf_counter() - t
            data = import_export(path, mapping)
            y = data.target().y
            model = res.model
            lv = model.levels()
            mono = []
            for c in model.cut_points_:
                beta = lv[(lv.criterion == c) & (lv.value != "__missing__")]["coef"].to_numpy()
                d = np.diff(beta)
                mono.append(bool((d >= -1e-9).all() or (d <= 1e-9).all()))
            ok = res.meta["rounding"]
            out[name] = {"refit_s": sec, "auc_model": ok["roc_auc_model"], "auc_points": ok["roc_auc_points"],
                         "rows": int(len(res.points_table.rows)), "levels": int(len(lv)),
                         "numeric_monotone": f"{sum(mono)}/{len(mono)}",
                         "min_max_total": [float(res.points_table.score(data.frame).min()),
                                           float(res.points_table.score(data.frame).max())]}
            if name == "x_education":
                out[name]["plain_lr_auc"] = _plain_lr(data, y, seed)
    return out


def _plain_lr(data, y, seed):
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X = data.frame[data.features]
    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=0.3, stratify=y, random_state=seed)
    ct = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), data.numeric),
        ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"),
                              OneHotEncoder(handle_unknown="ignore")), data.categorical)])
    lr = make_pipeline(ct, LogisticRegression(C=1.0, max_iter=3000)).fit(X.iloc[tr], y[tr])
    return float(roc_auc_score(y[te], lr.predict_proba(X.iloc[te])[:, 1]))


def run_side(code_dir: Path, export: Path, mono: Path, args) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(code_dir), "--export", str(export),
           "--mono", str(mono),
           "--leads", str(args.leads), "--n-boot", str(args.n_boot), "--seed", str(args.seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=code_dir)
    if proc.returncode:
        raise SystemExit(f"{code_dir}: worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leads", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--export", type=Path, default=None, help="reuse a CSV made by an earlier run")
    ap.add_argument("--out", type=Path, default=None, help="write the comparison as Markdown here")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--mono", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        sys.path.insert(0, args.worker)
        print(json.dumps(worker(args.worker, str(args.export), args.mono, args.leads, args.n_boot, args.seed)))
        return 0
    sys.path.insert(0, str(ROOT))
    from calibration.synthetic import make_export, make_monotone_export

    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        before.mkdir()
        archive = subprocess.run(["git", "archive", BEFORE, "calibration", "sim", "common", "data"], cwd=ROOT,
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
        path = args.export
        if path is None:
            path = Path(tmp) / "export.csv"
            t = time.perf_counter()
            make_export(args.leads, seed=args.seed).to_csv(path, index=False)
            print(f"export: {path.stat().st_size / 1e6:.0f} MB CSV in {time.perf_counter() - t:.1f} s (not timed)")
        mono = Path(tmp) / "monotone.csv"
        make_monotone_export(60_000, seed=2).to_csv(mono, index=False)
        res = {"before": run_side(before, path, mono, args), "after": run_side(ROOT, path, mono, args)}
    text = report(res, args)
    print(text)
    if args.out:
        args.out.write_text(text)
    a = res["after"]
    return 0 if a["refit_s"] < TARGET_REFIT and a["score_s"] < TARGET_SCORE else 1


def report(res: dict, args) -> str:
    import platform

    b, a = res["before"], res["after"]
    lines = [f"# Calibration benchmark: before ({BEFORE}) and after, one run", "",
             f"Machine: {platform.machine()}, Python {platform.python_version()}; {args.leads:,} leads, "
             f"B={args.n_boot} bootstrap resamples.", "",
             "| | before | after | target |", "|---|---|---|---|",
             f"| import alone | {b['import_s']:.1f} s | {a['import_s']:.1f} s | |",
             f"| import + refit + diagnostics | {b['refit_s']:.1f} s | {a['refit_s']:.1f} s | < {TARGET_REFIT:.0f} s |",
             f"| score {args.leads:,} leads (refit table) | {b['score_s']:.2f} s | {a['score_s']:.2f} s | "
             f"< {TARGET_SCORE:.0f} s |",
             f"| holdout ROC AUC of the points table | {b['big_auc_points']:.4f} | {a['big_auc_points']:.4f} | |",
             "", "## Binning: quantile integer bins (before) vs optbinning with monotonic trends (after)", "",
             "| data | measure | before | after |", "|---|---|---|---|"]
    for case in ("x_education", "monotone_60k"):
        if case not in b:
            continue
        for key, label in (("auc_model", "holdout AUC, unrounded model"), ("auc_points", "holdout AUC, points table"),
                           ("plain_lr_auc", "holdout AUC, plain logistic regression"),
                           ("rows", "points-table rows handed over"), ("levels", "model levels (incl. missing)"),
                           ("numeric_monotone", "numeric criteria with monotone weights"),
                           ("min_max_total", "lowest / highest total over the export"), ("refit_s", "refit time (s)")):
            if key in b[case]:
                f = (lambda v: f"{v:.4f}" if isinstance(v, float) and key.startswith(("auc", "plain")) else
                     f"{v:.1f}" if isinstance(v, float) else str(v))
                lines.append(f"| {case} | {label} | {f(b[case][key])} | {f(a[case][key])} |")
    lines += ["", f"Install cost: before {INSTALL['before']}; after {INSTALL['after']}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
