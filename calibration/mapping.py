"""The mapping file: how a real CRM export's columns and values become the lab's.

One YAML file per export layout (``data/mappings/*.yaml``), validated with pydantic;
unknown keys are errors, not silently ignored (STYLE.md practice 2). Lab column names
follow DOMAIN.md section 6.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from common.errors import LabError, validation_message
from common.files import read_yaml

ID = "lead_id"
CREATED = "created_at"
OUTCOME = "outcome"
#: Stage timestamps, in funnel order; ``created_at`` comes first.
STAGE_DATES = ("mql_at", "sal_at", "sql_at", "opportunity_at", "closed_at")
#: Dates that are not stages: the first touch, the SDR's hand-off to sales and sales' decision.
DATES = (CREATED, "first_response_at", "handoff_at", "decided_at") + STAGE_DATES
#: Pre-outcome lab columns that are scoring features.
NUMERIC_FEATURES = ("employee_count", "demo_requests", "pricing_page_visits", "content_downloads",
                    "web_visits", "webinars")
CATEGORICAL_FEATURES = ("channel", "industry", "industry_fit", "country", "region", "region_fit",
                        "seniority")
#: Lab columns known only after scoring or after the outcome: never features.
NON_FEATURES = ("owner_id", OUTCOME, "stage", "rejection_reason", "amount", "score", "band")
LAB_COLUMNS = (ID,) + DATES + NUMERIC_FEATURES + CATEGORICAL_FEATURES + NON_FEATURES

DEFAULT_PLACEHOLDERS = ("Select", "", "N/A", "NA", "n/a", "null", "NULL", "None", "-", "?")

Value = str | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutcomeSpec(_Strict):
    """Which export column holds the outcome and which of its values mean what.

    ``success`` values are the positive class of the default target. When ``failure`` is
    given, any value outside success + failure + open is an error (a new CRM stage the
    mapping does not know about must not silently count as a loss). ``open`` rows have
    no outcome yet and are left out of training.
    """

    column: str
    success: list[Value] = Field(min_length=1)
    failure: list[Value] | None = None
    open: list[Value] = []

    @model_validator(mode="after")
    def _disjoint(self):
        seen: dict[str, str] = {}
        for kind in ("success", "failure", "open"):
            for v in getattr(self, kind) or []:
                key = norm_value(v)
                if key in seen and seen[key] != kind:
                    raise ValueError(f"value {v!r} is listed under both {seen[key]} and {kind}")
                seen[key] = kind
        return self


class LeakageSpec(_Strict):
    """Limits of the leakage guard (see ``calibration.leakage``)."""

    max_single_auc: float = Field(0.95, gt=0.5, le=1.0)
    max_model_auc: float = Field(0.95, gt=0.5, le=1.0)
    allow: list[str] = []


class Mapping(_Strict):
    """A validated mapping file. Build it with :func:`load_mapping`.

    Keys: ``columns`` (export name -> lab name), ``values`` (lab column -> {export value:
    lab value}), ``outcome``, ``post_outcome`` (export columns filled only after the
    outcome: never features), ``features`` (extra export columns used as-is), ``numeric``
    (which of those are numbers; others are categories), ``ignore``, ``placeholders``
    (values that mean missing), ``date_format`` / ``dayfirst`` (for day/month dates),
    ``leakage`` (guard limits and the columns it must let through).
    """

    name: str
    description: str = ""
    columns: dict[str, str] = {}
    values: dict[str, dict[str, Value]] = {}
    outcome: OutcomeSpec
    post_outcome: list[str] = []
    features: list[str] = []
    numeric: list[str] = []
    ignore: list[str] = []
    placeholders: list[str] = list(DEFAULT_PLACEHOLDERS)
    date_format: str | None = None
    dayfirst: bool | None = None
    leakage: LeakageSpec = LeakageSpec()
    _source: str = PrivateAttr("<memory>")

    @property
    def source(self) -> str:
        """The file the mapping came from, for messages."""
        return self._source

    @field_validator("columns")
    @classmethod
    def _lab_names(cls, cols: dict[str, str]):
        bad = sorted(v for v in cols.values() if v not in LAB_COLUMNS)
        if bad:
            raise ValueError(f"unknown lab column(s) {bad}; allowed: {', '.join(LAB_COLUMNS)}")
        dup = sorted({v for v in cols.values() if list(cols.values()).count(v) > 1})
        if dup:
            raise ValueError(f"lab column(s) {dup} are targets of more than one export column")
        return cols

    @model_validator(mode="after")
    def _consistent(self):
        if self.outcome.column in self.columns and self.columns[self.outcome.column] != OUTCOME:
            raise ValueError(f"outcome column {self.outcome.column!r} is renamed to "
                             f"{self.columns[self.outcome.column]!r}; it must map to 'outcome' or not be renamed")
        both = sorted(set(self.features) & set(self.post_outcome))
        if both:
            raise ValueError(f"column(s) {both} are listed both as features and as post_outcome; "
                             "a post-outcome column is never a feature")
        renamed = sorted(set(self.features) & set(self.columns))
        if renamed:
            raise ValueError(f"column(s) {renamed} are both renamed in 'columns' and listed in "
                             "'features'; list extra features under their export names only")
        stray = sorted(set(self.numeric) - set(self.features))
        if stray:
            raise ValueError(f"'numeric' lists {stray}, which are not in 'features'")
        return self

    # ---- names after renaming --------------------------------------------------------
    def lab_name(self, export_name: str) -> str:
        """The column's name after import."""
        if export_name == self.outcome.column:
            return OUTCOME
        return self.columns.get(export_name, export_name)

    @property
    def required(self) -> list[str]:
        """Export columns that must be present: the renamed ones, the features, the outcome."""
        return list(dict.fromkeys([*self.columns, *self.features, self.outcome.column]))

    def outcome_kind(self, value) -> Literal["success", "failure", "open"] | None:
        key = norm_value(value)
        for kind in ("success", "open"):
            if key in {norm_value(v) for v in getattr(self.outcome, kind)}:
                return kind
        if self.outcome.failure is None:
            return "failure"
        return "failure" if key in {norm_value(v) for v in self.outcome.failure} else None


def norm_value(v) -> str:
    """Compare outcome values as text, so that ``1``, ``1.0``, ``"1"`` and ``True`` agree."""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    s = str(v).strip().lower()
    return {"true": "1", "false": "0", "yes": "1", "no": "0"}.get(s, s)


def load_mapping(path: str | Path | Mapping) -> Mapping:
    """Read and validate a mapping YAML file; errors name the file, the key and the rule."""
    if isinstance(path, Mapping):
        return path
    path = Path(path)
    if not path.exists():
        raise LabError(f"{path}: mapping file not found")
    doc = read_yaml(path)  # names the line and column of a YAML syntax error
    if not isinstance(doc, dict):
        raise LabError(f"{path}: a mapping file must be a YAML mapping of keys; got {type(doc).__name__}")
    try:
        m = Mapping(**doc)
    except ValidationError as exc:
        raise LabError(validation_message(exc, str(path), unknown="unknown key (not part of a mapping file; "
                                                             "check the spelling)")) from None
    m._source = str(path)
    return m


