"""One versioned model directory per refit, written atomically, loadable as ``--previous``.

Layout::

    points.csv / points.yaml   the points table in use (YAML carries the thresholds): the
                               refitted table if it won, else the champion's
    challenger_points.yaml     the refitted table, whether or not it won
    criteria.txt               the table in use in plain language, with the band rules
    model.json                 provenance: code version, seed, parameters, outcome, split,
                               training window, row counts, data and mapping sha256,
                               scaling, metrics, recommendation
    profile.json               training score and feature distributions (for next PSI)
    *.csv                      diagnostics, reliability, lift, bands, thresholds curve,
                               leakage evidence, points changes, stability, migration
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from common.errors import LabError
from common.files import atomic_dir, atomic_write_json
from sim.scoring import PointsTable, seed_table

FORMAT = 1


@dataclass
class Artifact:
    """A loaded model: its points table, and when it is a refit directory, its metadata
    and training profile."""

    table: PointsTable
    meta: dict = field(default_factory=dict)
    profile: dict | None = None
    path: str = "seed"

    @property
    def name(self) -> str:
        return self.meta.get("name") or Path(self.path).name


def write_artifact(path: str | Path, table: PointsTable, meta: dict, profile: dict,
                   frames: dict[str, pd.DataFrame], challenger: PointsTable | None = None,
                   texts: dict[str, str] | None = None) -> Path:
    """Write the whole directory under a temporary name, then swap it in (``atomic_dir``)."""
    path = Path(path)
    with atomic_dir(path) as tmp:
        table.save(tmp / "points.csv")
        table.save(tmp / "points.yaml")
        if challenger is not None:
            challenger.save(tmp / "challenger_points.yaml")
        for name, text in (texts or {}).items():
            (tmp / name).write_text(text)
        atomic_write_json(tmp / "model.json", {"format": FORMAT, **meta})
        atomic_write_json(tmp / "profile.json", profile)
        for name, frame in frames.items():
            if frame is not None:
                frame.to_csv(tmp / f"{name}.csv", index=name == "migration")
    return path


def load_model(path: str | Path | None) -> Artifact:
    """A refit directory, a points table file (CSV / YAML), or None for the seeds' table."""
    if path is None or str(path) == "seed":
        return Artifact(table=seed_table(), meta={"name": "seed"}, path="seed")
    path = Path(path)
    if path.is_dir():
        if not (path / "points.yaml").exists() or not (path / "model.json").exists():
            raise LabError(f"{path}: not a refit model directory (rule: it holds points.yaml and model.json)")
        meta = json.loads((path / "model.json").read_text())
        if meta.get("format") != FORMAT:
            raise LabError(f"{path}/model.json: field 'format': expected {FORMAT}; got {meta.get('format')!r}")
        profile_file = path / "profile.json"
        profile = json.loads(profile_file.read_text()) if profile_file.exists() else None
        return Artifact(table=PointsTable.load(path / "points.yaml"), meta=meta, profile=profile, path=str(path))
    if not path.exists():
        raise LabError(f"{path}: previous model not found (give a refit directory or a points table file)")
    return Artifact(table=PointsTable.load(path), meta={"name": path.stem}, path=str(path))
