"""Points tables: the lead-scoring model a CRM administrator can type in.

A points table is tidy: one row per (criterion, value, points). ``criterion`` names a
lead column; ``value`` is either a category (``director``) or a numeric range written
the way a CRM admin would (``100-1000``, ``>=3``, ``<100``, ``0``, ``>=0.5 and <2``). Two
values are special: ``(missing)`` matches a blank value (and, for a range criterion, text
that is not a number); ``(any other value)`` matches any non-blank value the criterion
does not list.
A lead earns, for each criterion, the points of the row its value matches (none matches:
0). The score is the sum. Bands follow DOMAIN.md section 2: Hot >= 75, MQL 60-74, Nurture 45-59, Cold < 45.
"""
from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from common.errors import LabError
from common.files import atomic_write_text, read_yaml

BANDS = ("hot", "mql", "nurture", "cold")
MISSING_VALUE, OTHER_VALUE = "(missing)", "(any other value)"

_RANGE = re.compile(
    r"^\s*(?:(?P<lo>-?\d+(?:\.\d+)?)\s*-\s*(?P<hi>-?\d+(?:\.\d+)?)"
    r"|(?P<op>>=|<=|>|<)\s*(?P<x>-?\d+(?:\.\d+)?)"
    r"|(?P<eq>-?\d+(?:\.\d+)?)"
    r"|>=\s*(?P<alo>-?\d+(?:\.\d+)?)\s+and\s+<\s*(?P<ahi>-?\d+(?:\.\d+)?))\s*$"
)


@dataclass(frozen=True)
class Thresholds:
    """Score cut-offs for the bands: Hot if score >= hot, MQL if >= mql, Nurture if
    >= nurture, else Cold."""

    hot: float = 75.0
    mql: float = 60.0
    nurture: float = 45.0

    def __post_init__(self):
        if not (self.hot >= self.mql >= self.nurture):
            raise LabError(
                f"thresholds must satisfy hot >= mql >= nurture; got hot={self.hot}, "
                f"mql={self.mql}, nurture={self.nurture}"
            )

    def band(self, scores) -> np.ndarray:
        """Band index per score: 0 hot, 1 mql, 2 nurture, 3 cold (see ``BANDS``)."""
        s = np.asarray(scores, dtype=float)
        return np.where(s >= self.hot, 0, np.where(s >= self.mql, 1, np.where(s >= self.nurture, 2, 3))).astype(np.int8)

    def band_names(self, scores) -> np.ndarray:
        return np.asarray(BANDS, dtype=object)[self.band(scores)]


def parse_range(text: str) -> tuple[float, float] | None:
    """Parse a numeric range label into a half-open interval ``[lo, hi)``.

    ``"100-1000"`` is inclusive of both ends for integers (``[100, 1001)``), ``">=3"`` is
    ``[3, inf)``, ``"<100"`` is ``(-inf, 100)``, ``"0"`` is ``[0, 1)``, ``">=0.5 and <2"`` is
    ``[0.5, 2)``. Returns None when the text is not numeric (it is then a category).
    """
    m = _RANGE.match(str(text))
    if not m:
        return None
    if m.group("alo") is not None:
        lo, hi = float(m.group("alo")), float(m.group("ahi"))
        if not hi > lo:
            raise LabError(f"range '{text}' has its upper end at or below its lower end")
        return lo, hi
    if m.group("lo") is not None:
        lo, hi = float(m.group("lo")), float(m.group("hi"))
        if hi < lo:
            raise LabError(f"range '{text}' has its upper end below its lower end")
        return lo, hi + 1.0 if hi.is_integer() and lo.is_integer() else math.nextafter(hi, math.inf)
    if m.group("op") is not None:
        x = float(m.group("x"))
        return {
            ">=": (x, math.inf),
            ">": (math.nextafter(x, math.inf) if not x.is_integer() else x + 1.0, math.inf),
            "<": (-math.inf, x),
            "<=": (-math.inf, x + 1.0 if x.is_integer() else math.nextafter(x, math.inf)),
        }[m.group("op")]
    x = float(m.group("eq"))
    return x, x + 1.0 if x.is_integer() else math.nextafter(x, math.inf)


_LOADED: dict = {}  # (path, as given, mtime, size) -> the table read from it (``PointsTable.load``)


@dataclass
class PointsTable:
    """A tidy criterion / value / points table with a ``score`` method.

    Parameters
    ----------
    rows : DataFrame with columns ``criterion``, ``value``, ``points``.
    thresholds : band cut-offs that travel with the table.
    source : where the table came from (file path or model name), for messages.
    """

    rows: pd.DataFrame
    thresholds: Thresholds = field(default_factory=Thresholds)
    source: str = "<memory>"

    def __post_init__(self):
        missing = {"criterion", "value", "points"} - set(self.rows.columns)
        if missing:
            raise LabError(f"{self.source}: points table lacks column(s) {sorted(missing)}")
        rows = self.rows[["criterion", "value", "points"]].copy()
        rows["criterion"] = rows["criterion"].astype(str)
        rows["value"] = rows["value"].astype(str)
        pts = pd.to_numeric(rows["points"], errors="coerce")
        bad = pts.isna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise LabError(
                f"{self.source}: row {i + 1}: 'points' must be a number; got {self.rows['points'].iloc[i]!r}"
            )
        rows["points"] = pts.astype(float)
        dup = rows.duplicated(["criterion", "value"])
        if dup.any():
            r = rows[dup].iloc[0]
            raise LabError(f"{self.source}: criterion '{r.criterion}' lists value '{r.value}' twice")
        self.rows = rows.reset_index(drop=True)
        self._compiled = self._compile()

    def _compile(self):
        out = {}
        for crit, grp in self.rows.groupby("criterion", sort=False):
            key = grp["value"].str.strip().str.lower()
            special = {v: float(grp["points"][key == v].iloc[0]) for v in (MISSING_VALUE, OTHER_VALUE)
                       if (key == v).any()}
            grp = grp[~key.isin([MISSING_VALUE, OTHER_VALUE])]
            ranges = [parse_range(v) for v in grp["value"]]
            if len(grp) and all(r is not None for r in ranges):
                iv = sorted(zip(ranges, grp["points"], grp["value"]))
                for (a, b), (c, d) in zip([x[0] for x in iv], [x[0] for x in iv][1:]):
                    if c < b:
                        raise LabError(f"{self.source}: criterion '{crit}' has overlapping ranges")
                out[crit] = ("range", [x[0] for x in iv], np.array([x[1] for x in iv]), special)
            else:
                out[crit] = ("category", dict(zip(grp["value"].str.strip().str.lower(), grp["points"])), None,
                             special)
        return out

    def gaps(self, criterion: str) -> list[tuple[float, float]]:
        """Numeric values a range criterion does not cover, as half-open intervals (an
        empty list: every number earns the points of exactly one row)."""
        kind, spec, _, _ = self._compiled[criterion]
        if kind != "range":
            return []
        out, at = [], -math.inf
        for lo, hi in spec:
            if lo > at:
                out.append((at, lo))
            at = max(at, hi)
        if at < math.inf:
            out.append((at, math.inf))
        return out

    def is_complete(self, criterion: str) -> bool:
        """Every possible value (blank ones included) matches a row of ``criterion``."""
        kind, _, _, special = self._compiled[criterion]
        if MISSING_VALUE not in special:
            return False
        return not self.gaps(criterion) if kind == "range" else OTHER_VALUE in special

    @property
    def criteria(self) -> list[str]:
        return list(self._compiled)

    def points_matrix(self, leads: pd.DataFrame) -> pd.DataFrame:
        """Points earned per criterion, one column per criterion (missing column: error)."""
        missing = [c for c in self.criteria if c not in leads.columns]
        if missing:
            raise LabError(f"{self.source}: leads lack the scored column(s) {missing}")
        cols = {}
        for crit, (kind, spec, pts, special) in self._compiled.items():
            col = leads[crit]
            miss = special.get(MISSING_VALUE, 0.0)
            if kind == "range":
                x = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
                earned = np.zeros(len(x))
                for (lo, hi), p in zip(spec, pts):
                    earned[(x >= lo) & (x < hi)] = p
                if miss:
                    earned[np.isnan(x)] = miss
            else:
                # Look up the distinct values only (same result as mapping every cell).
                codes, uniq = pd.factorize(col, use_na_sentinel=True)
                text = pd.Series(uniq, dtype=object).astype(str).str.strip().str.lower()
                pts_u = text.map(spec).astype(float).fillna(special.get(OTHER_VALUE, 0.0))
                pts_u[(text == "").to_numpy()] = miss
                earned = np.where(codes >= 0, np.append(pts_u.to_numpy(), miss)[codes], miss)
            cols[crit] = earned
        return pd.DataFrame(cols, index=leads.index)

    def score(self, leads: pd.DataFrame) -> np.ndarray:
        """Total points per lead."""
        return self.points_matrix(leads).to_numpy().sum(axis=1)

    def band(self, leads: pd.DataFrame) -> np.ndarray:
        return self.thresholds.band(self.score(leads))

    def _extremes(self, how: str) -> float:
        total = 0.0
        for crit, grp in self.rows.groupby("criterion", sort=False):
            pts = grp["points"].to_numpy()
            # A criterion that leaves some value unlisted also yields 0 points.
            if not self.is_complete(crit):
                pts = np.append(pts, 0.0)
            total += float(pts.max() if how == "max" else pts.min())
        return total

    @property
    def max_points(self) -> float:
        """Highest total a lead can reach."""
        return self._extremes("max")

    @property
    def min_points(self) -> float:
        """Lowest total a lead can get."""
        return self._extremes("min")

    # ---- files -------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> "PointsTable":
        """Read a points table from CSV (criterion,value,points) or YAML.

        A file read before and unchanged since (same path, size and modification time) is
        not read again: every replication of a sweep loads its scenario's table. Each call
        still returns its own table object (``Scenario.points_table`` replaces its
        thresholds); the rows and their compiled lookups are shared, as nothing changes
        them after loading."""
        path = Path(path)
        if not path.exists():
            raise LabError(f"{path}: points table not found")
        st = path.stat()
        key = (str(path.resolve()), str(path), st.st_mtime_ns, st.st_size)
        proto = _LOADED.get(key)
        if proto is None:
            proto = cls._read(path)
            if len(_LOADED) >= 64:
                _LOADED.clear()
            _LOADED[key] = proto
        return copy.copy(proto)  # thresholds are frozen: replaced, never changed in place

    @classmethod
    def _read(cls, path: Path) -> "PointsTable":
        if path.suffix.lower() in {".yaml", ".yml"}:
            # Encodings, binary junk, repeated keys: one line naming the file (common.files).
            doc = read_yaml(path, allow_empty=False, what="points table")
            if not isinstance(doc, dict) or "points" not in doc:
                raise LabError(f"{path}: a YAML points table needs a 'points' list")
            rows = pd.DataFrame(doc["points"])
            th = doc.get("thresholds") or {}
            unknown = set(th) - {"hot", "mql", "nurture"}
            if unknown:
                raise LabError(f"{path}: thresholds: unknown key(s) {sorted(unknown)}; allowed hot, mql, nurture")
            return cls(rows, Thresholds(**th), source=str(path))
        rows = pd.read_csv(path, dtype={"value": str})
        return cls(rows, source=str(path))

    def to_yaml(self) -> str:
        doc = {
            "thresholds": {"hot": self.thresholds.hot, "mql": self.thresholds.mql, "nurture": self.thresholds.nurture},
            "points": [
                {"criterion": r.criterion, "value": r.value, "points": _num(r.points)}
                for r in self.rows.itertuples()
            ],
        }
        return yaml.safe_dump(doc, sort_keys=False)

    def save(self, path: str | Path) -> Path:
        """Write CSV or YAML (by suffix), atomically."""
        path = Path(path)
        if path.suffix.lower() in {".yaml", ".yml"}:
            atomic_write_text(path, self.to_yaml())
        else:
            out = self.rows.copy()
            out["points"] = [_num(p) for p in out["points"]]
            atomic_write_text(path, out.to_csv(index=False))
        return path


def _num(x: float):
    return int(x) if float(x).is_integer() else float(x)


def seed_table() -> PointsTable:
    """The seeds' aligned points table (DOMAIN.md section 2), shipped in data/scoring."""
    from common.paths import DATA

    return PointsTable.load(DATA / "scoring" / "seed_points.yaml")
