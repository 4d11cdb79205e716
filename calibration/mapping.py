"""The mapping file: how a real CRM export's columns and values become the lab's.

One YAML file per export layout (``data/mappings/*.yaml``), validated with pydantic;
unknown keys are errors, not silently ignored (STYLE.md practice 2). Lab column names
follow DOMAIN.md section 6.
"""
from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from common.errors import LabError, validation_message
from common.files import read_yaml

ID = "lead_id"
CREATED = "created_at"
OUTCOME = "outcome"
#: Stage timestamps, in funnel order; ``created_at`` comes first.
STAGE_DATES = ("mql_at", "sal_at", "sql_at", "opportunity_at", "closed_at")
#: Dates that are not stages: the first touch, the SDR's hand-off to sales and sales' decision.
DATES = (CREATED, "first_response_at", "handoff_at", "decided_at", "last_engagement_at") + STAGE_DATES
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
    #: Multi-table exports: the outcome read from a one-to-many table (``table.column``):
    #: ``any`` = success if any related row succeeds, else open if any is open, else
    #: failure; ``first`` / ``last`` by ``order_by``. ``unmatched``: the outcome of a lead
    #: with no related row (e.g. ``open``: a contact without a deal is not a loss).
    rule: Literal["any", "first", "last"] = "any"
    order_by: str | None = None
    unmatched: Value | None = None

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


class DateSpec(_Strict):
    """How one date column is written: a ``strptime`` format, the day/month order, and
    the time zone of naive values (an IANA name such as ``Europe/Paris``)."""

    format: str | None = None
    dayfirst: bool | None = None
    timezone: str | None = None


class JoinSpec(_Strict):
    """How a table's rows attach to the main table: this table's ``column`` equals
    ``to`` (``table.column`` of the main table or of a table joined one-to-one before).

    ``kind``: ``one_to_one`` (at most one row here per main row; a repeated key here is an
    error) or ``one_to_many`` (many rows per main row; lab columns come from them through
    ``derived`` with a rule). ``normalize`` compares keys after ``case`` (case-folded),
    ``spaces`` (every space removed) or both; ``keys`` maps this table's key values to the
    main table's spelling (``{GTXPro: GTX Pro}``)."""

    column: str
    to: str
    kind: Literal["one_to_one", "one_to_many"] = "one_to_one"
    normalize: list[Literal["case", "spaces"]] = []
    keys: dict[str, str] = {}


class TableSpec(_Strict):
    """One file of a multi-table export. ``file`` is relative to the export folder.
    The first table listed is the main one (one row per lead or per record) unless
    another says ``main: true``. Date settings apply to every date column of the table
    unless ``dates`` names the column; ``values`` rewrites raw values of a column before
    joining (``{product: {GTXPro: GTX Pro}}``); ``where`` keeps only rows whose column
    holds one of the values listed (test records out); ``recorded_from`` is the date from
    which the table was recorded (a migration): every date it feeds is complete only for
    records that reached the stage before it from then on (``calibration.recording``)."""

    file: str
    main: bool = False
    key: str | None = None
    join: JoinSpec | None = None
    date_format: str | None = None
    dayfirst: bool | None = None
    timezone: str | None = None
    dates: dict[str, DateSpec] = {}
    values: dict[str, dict[str, Value]] = {}
    where: dict[str, list[Value]] = {}
    recorded_from: date | None = None

    def date_spec(self, column: str) -> DateSpec:
        d = self.dates.get(column)
        return DateSpec(format=d.format if d and d.format else self.date_format,
                        dayfirst=d.dayfirst if d and d.dayfirst is not None else self.dayfirst,
                        timezone=d.timezone if d and d.timezone else self.timezone)


class DerivedSpec(_Strict):
    """A lab column computed from a one-to-many table: the ``column`` of the rows of
    ``table`` that belong to the lead, restricted by ``where`` (column -> values kept)
    and ``after`` (a lab date column: only rows dated at or after it, by ``order_by``),
    reduced by ``rule``: ``first`` / ``last`` (by ``order_by``, default ``column``),
    ``any`` (any non-missing value), ``min`` / ``max``, ``count`` (rows)."""

    table: str
    column: str
    rule: Literal["first", "last", "any", "min", "max", "count"] = "first"
    order_by: str | None = None
    where: dict[str, list[Value]] = {}
    after: str | None = None


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
    ``leakage`` (guard limits and the columns it must let through), ``recorded_from``
    (date column, by export or lab name -> the date from which it was recorded; see
    ``calibration.recording``).
    """

    name: str
    description: str = ""
    tables: dict[str, TableSpec] = {}
    derived: dict[str, DerivedSpec] = {}
    as_of: str | None = None
    columns: dict[str, str | list[str]] = {}
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
    recorded_from: dict[str, date] = {}
    _source: str = PrivateAttr("<memory>")

    @property
    def source(self) -> str:
        """The file the mapping came from, for messages."""
        return self._source

    @field_validator("columns")
    @classmethod
    def _lab_names(cls, cols: dict[str, str | list[str]]):
        targets = [t for v in cols.values() for t in ([v] if isinstance(v, str) else v)]
        bad = sorted(v for v in targets if v not in LAB_COLUMNS)
        if bad:
            raise ValueError(f"unknown lab column(s) {bad}; allowed: {', '.join(LAB_COLUMNS)}")
        dup = sorted({v for v in targets if targets.count(v) > 1})
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
        self._check_tables()
        lab_of = dict(self.renames)
        lab = set(lab_of.values()) | set(self.derived)
        odd = sorted(c for c in self.recorded_from if lab_of.get(c, c) not in lab or lab_of.get(c, c) not in DATES)
        if odd:
            raise ValueError(f"recorded_from names {odd}, which are not date columns the mapping provides "
                             f"(export names under 'columns' or lab dates among {', '.join(DATES)})")
        return self

    def _check_tables(self):
        if not self.tables:
            if self.derived:
                raise ValueError("'derived' needs 'tables' (a multi-table export)")
            return
        mains = [n for n, t in self.tables.items() if t.main]
        if len(mains) > 1:
            raise ValueError(f"tables {mains} all say main: true; one table is the main one")
        main = self.main_table
        if self.tables[main].join is not None:
            raise ValueError(f"table {main!r} is the main table and cannot have a 'join'")
        seen = {main}
        for name, t in self.tables.items():
            if name == main:
                continue
            if t.join is None:
                raise ValueError(f"table {name!r}: no 'join' (rule: every table but the main one says how it joins)")
            other = t.join.to.split(".", 1)[0] if "." in t.join.to else main
            if other not in seen or (other != main and self.tables[other].join.kind != "one_to_one"):
                raise ValueError(f"table {name!r}: join.to {t.join.to!r} must name a column of the main table or of "
                                 f"a table joined one-to-one listed before it ({sorted(seen)})")
            if t.join.kind == "one_to_one":
                seen.add(name)
        many = {n for n, t in self.tables.items() if t.join is not None and t.join.kind == "one_to_many"}
        for col in [*self.columns, *self.features, *self.post_outcome]:
            table = col.split(".", 1)[0] if "." in col else None
            if table in many:
                raise ValueError(f"column {col!r} comes from one-to-many table {table!r}: define it under "
                                 "'derived' with a rule (first, last, any, min, max, count)")
        for lab, d in self.derived.items():
            if lab not in LAB_COLUMNS:
                raise ValueError(f"derived: unknown lab column {lab!r}; allowed: {', '.join(LAB_COLUMNS)}")
            if d.table not in many:
                raise ValueError(f"derived.{lab}: table {d.table!r} is not a one-to-many table of 'tables' "
                                 f"({sorted(many)})")
            if lab in [t for v in self.columns.values() for t in ([v] if isinstance(v, str) else v)]:
                raise ValueError(f"lab column {lab!r} is both derived and mapped in 'columns'")
        if "." in self.outcome.column:
            table = self.outcome.column.split(".", 1)[0]
            if table not in self.tables:
                raise ValueError(f"outcome.column {self.outcome.column!r}: no table {table!r}")

    @property
    def main_table(self) -> str:
        return next((n for n, t in self.tables.items() if t.main), next(iter(self.tables), ""))

    @property
    def renames(self) -> list[tuple[str, str]]:
        """(export column, lab column) pairs; one export column may feed several."""
        return [(k, t) for k, v in self.columns.items() for t in ([v] if isinstance(v, str) else v)]

    # ---- names after renaming --------------------------------------------------------
    def lab_name(self, export_name: str) -> str:
        """The column's name after import."""
        if export_name == self.outcome.column:
            return OUTCOME
        v = self.columns.get(export_name, export_name)
        return v if isinstance(v, str) else v[0]

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
    _refuse_duplicate_keys(path)
    if not isinstance(doc, dict):
        raise LabError(f"{path}: a mapping file must be a YAML mapping of keys; got {type(doc).__name__}")
    try:
        m = Mapping(**doc)
    except ValidationError as exc:
        raise LabError(validation_message(exc, str(path), unknown="unknown key (not part of a mapping file; "
                                                             "check the spelling)")) from None
    m._source = str(path)
    return m




class _DupLoader(yaml.SafeLoader):
    pass


def _mapping_no_dups(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            continue
        if key in seen:
            raise LabError(f"{loader.name}: line {key_node.start_mark.line + 1}: duplicate key {key!r} "
                           f"(rule: each key once; first at line {seen[key] + 1})")
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_DupLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_no_dups)


def _refuse_duplicate_keys(path: Path):
    """YAML keeps the last of two equal keys silently; a mapping file refuses them."""
    with open(path) as fh:
        loader = _DupLoader(fh)
        loader.name = str(path)
        try:
            loader.get_single_data()
        except LabError:
            raise
        except ValueError:  # a value YAML cannot build (a date 2026-13-01): the validation names it
            pass
        finally:
            loader.dispose()
