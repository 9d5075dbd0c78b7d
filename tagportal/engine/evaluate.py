"""Batch evaluation of tag definitions (rule documents, see :mod:`.rules`) on pandas frames.

Plain pandas in, pandas out: no ORM here. A service loads the frames, calls
:func:`evaluate_tags` and persists the result (see :mod:`.bitmaps`).

Input frames
============

``profiles``
    One row per person: the OneID (int64) as the index or as a ``oneid`` column,
    and one column per profile attribute of :data:`tagportal.profiles.schema.PROFILE_ATTRIBUTES`
    (``gender``, ``age``, ``city``, ``member_level``, ``points``,
    ``registered_days``, ...). A missing column means the attribute is missing for
    everybody; an empty text counts as missing. The last row of a repeated OneID wins.

``events``
    One row per behaviour event: ``oneid`` (int64), ``time`` (tz-aware UTC datetime;
    naive values are taken as UTC), ``type``, ``channel``, ``store`` (texts), ``value``
    (float), and the free properties as columns named ``properties.<key>``
    (:func:`tagportal.profiles.loaders.flatten_properties` turns a column of dicts into those).

``orders``
    One row per order: ``oneid``, ``time``, ``amount``, ``quantity``, ``channel``,
    ``store``, ``category``, ``sku``, ``discount`` and ``properties.<key>`` columns.

Arrow-backed dtypes (``pd.ArrowDtype``, ``"string[pyarrow]"``) and plain numpy /
object dtypes are both accepted. Any column but ``oneid`` may be absent: a
predicate on an absent field matches nobody (except ``is_set: false``), an
aggregation over it is empty. ``None`` or an empty frame is an empty source.

Semantics
=========

- **Population**: the union of the OneIDs of the three frames (sorted), unless
  ``population`` is given; rows of other OneIDs are ignored.
- **Beijing days**: times are converted with ``tz_convert("Asia/Shanghai")`` before
  taking dates. ``{"last_days": N}`` covers the N Beijing calendar days ending on
  ``as_of``'s Beijing date, inclusive (N=1 is "today in Beijing"); ``{"between":
  [start, end]}`` covers Beijing dates start..end inclusive. ``days_since`` is the
  number of whole Beijing days between the event's date and ``as_of``'s date.
  Rows dated after ``as_of``'s Beijing date are ignored everywhere, so a past
  ``as_of`` recomputes what was known then.
- **Metrics** (float64, NaN = missing): ``count``, ``count_distinct`` and ``sum``
  are 0 for people without matching rows; ``avg``, ``min``, ``max`` and
  ``days_since`` are NaN for them.
- **Comparisons** on a missing value are false, whatever the operator (``ne`` and
  ``not_in`` included), except ``is_set: false``. ``{"not": C}`` is plain negation.
  So a ``condition`` tag is ``False`` (never NA) for people with no data.
- **bucket**: the first bucket with ``min <= x < max``; no bucket gives NA.
  **cases**: the first case that matches, else ``default``, else NA.
- **preference**: raw values go through ``map`` first (raw values the map does not
  name are ignored; without a map the raw value is the code), then ``most_frequent``
  (ties go to the value seen most recently), ``first`` or ``last`` (by time).
- **attribute**: the profile attribute, through ``map`` when given (unmapped
  values give NA). **manual**: an empty Series (values come from uploaded lists;
  pass them as ``known`` to let composites read them).

Output: for each tag a Series indexed by the population (``oneid``): nullable
``boolean`` for boolean tags, nullable strings (value codes) for enum tags,
float64 for number tags; NA / NaN = the person has no value.

All tags are evaluated in one pass, composites after the tags they read, and
identical aggregations (same source, where, window, agg and field) are computed
once: :attr:`EvaluationResult.metrics_reused` counts the reuses. A tag that fails
is reported in :attr:`EvaluationResult.errors` and does not stop the others.
Nothing loops over people: everything is a whole-column numpy / pandas operation.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from tagportal.rules.definitions import RuleValidationError, tag_references, validate_definition

from . import frames as fr

log = logging.getLogger(__name__)

VALUE_TYPES = ("boolean", "enum", "number")
STRING = pd.StringDtype("pyarrow")
ORDER_OPS = ("gt", "gte", "lt", "lte", "between")


class TagSpec(NamedTuple):
    """A tag to evaluate: its code, value type, rule document and declared values
    (``[{"code": ..., "min": ..., "max": ...}, ...]`` or plain codes)."""

    code: str
    value_type: str
    definition: dict
    values: list | None = None


@dataclass
class EvaluationResult:
    population: pd.Index
    as_of: dt.datetime | dt.date
    #: tag code -> Series indexed by the population; failed tags are left out.
    values: dict[str, pd.Series] = field(default_factory=dict)
    #: tag code -> why it failed.
    errors: dict[str, str] = field(default_factory=dict)
    #: codes in the order they were evaluated (composites after what they read).
    order: list[str] = field(default_factory=list)
    #: aggregations computed, and served again from the shared cache.
    metrics_computed: int = 0
    metrics_reused: int = 0
    #: tag code -> seconds spent on it (its share of shared aggregations included once).
    seconds: dict[str, float] = field(default_factory=dict)

    def __getitem__(self, code: str) -> pd.Series:
        return self.values[code]

    def __contains__(self, code: str) -> bool:
        return code in self.values


class EvaluationError(ValueError):
    """A definition cannot be evaluated (the message names the problem)."""


# ---------------------------------------------------------------------------
def canonical(node) -> str:
    """A canonical JSON text of a rule node (keys sorted), used as a cache key."""
    return json.dumps(node, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def metric_key(node: dict) -> str:
    """The cache key of an aggregation: ``where`` is an AND, so its order does not matter."""
    normal = {k: v for k, v in node.items() if k != "where"}
    where = node.get("where") or []
    if where:
        normal["where"] = sorted(canonical(p) for p in where)
    return canonical(normal)


def _text_key(value) -> str:
    """How a raw value is spelled when compared as text or looked up in a map."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _missing_result(op: str, target) -> bool:
    return op == "is_set" and target is False


def compare(values, op: str, target) -> np.ndarray:
    """``values <op> target`` element-wise as a bool array; missing values never
    match, except for ``is_set: false``. ``values`` is a Series or a float array."""
    if op == "is_set":
        mask = fr.present(values)
        return ~mask if target is False else mask
    if op in ORDER_OPS:
        x = fr.numbers(values)
        try:
            if op == "between":
                low, high = (float(v) for v in target)
            else:
                bound = float(target)
        except (TypeError, ValueError) as exc:
            raise EvaluationError(f"{op!r} needs numbers, got {target!r}") from exc
        with np.errstate(invalid="ignore"):
            if op == "between":
                return (x >= low) & (x <= high)
            return {"gt": np.greater, "gte": np.greater_equal, "lt": np.less, "lte": np.less_equal}[op](
                x, bound
            )
    if op == "contains":
        text = fr.texts(values)
        return text.str.contains(str(target), regex=False).fillna(False).to_numpy(dtype=bool)
    if op in ("eq", "ne"):
        targets = [target]
    elif op in ("in", "not_in"):
        targets = list(target) if isinstance(target, list | tuple | set) else [target]
    else:
        raise EvaluationError(f"unknown operator {op!r}")
    if targets and all(isinstance(t, bool) for t in targets):
        is_true, is_false = fr.booleans(values)
        hit = np.zeros(len(is_true), dtype=bool)
        if any(t is True for t in targets):
            hit |= is_true
        if any(t is False for t in targets):
            hit |= is_false
    elif targets and all(isinstance(t, int | float) and not isinstance(t, bool) for t in targets):
        hit = np.isin(fr.numbers(values), [float(t) for t in targets])
    else:
        hit = fr.texts(values).isin([_text_key(t) for t in targets]).to_numpy(dtype=bool)
    if op in ("ne", "not_in"):
        hit = fr.present(values) & ~hit
    return hit


# ---------------------------------------------------------------------------
class _Source:
    """The usable rows of one events / orders frame, with per-row arrays:
    population position, Beijing day and time. Field values are read lazily and
    cached (numbers as float arrays, other values factorized)."""

    def __init__(self, name, frame, ids, valid, population: pd.Index, as_of_day: int):
        self.name = name
        self.frame = frame
        valid = valid.copy()
        pos = population.get_indexer(ids) if len(ids) else np.array([], dtype="int64")
        valid &= pos >= 0
        if "time" in frame.columns and len(frame):
            times = fr.utc_times(frame["time"])
            valid &= times.notna().to_numpy(dtype=bool)
            day = fr.beijing_days(times)
            valid &= day <= as_of_day
            ns = times.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").view("int64")
        else:
            valid[:] = False
            day = ns = np.zeros(len(frame), dtype="int64")
        self.all_rows = bool(valid.all())
        self.rows = None if self.all_rows else np.flatnonzero(valid)
        self.pos = self.take(pos)
        self.day = self.take(day)
        self.ns = self.take(ns)
        self.row = self.take(np.arange(len(frame), dtype="int64"))
        self.n = len(self.pos)
        self._numbers: dict[str, np.ndarray] = {}
        self._codes: dict[str, tuple[np.ndarray, pd.Series]] = {}
        self._preds: dict[str, np.ndarray] = {}
        self._masks: dict[str, np.ndarray] = {}

    def take(self, array: np.ndarray) -> np.ndarray:
        return array if self.rows is None else array[self.rows]

    def has(self, field: str) -> bool:
        return isinstance(field, str) and field in self.frame.columns

    def numeric(self, field: str) -> bool:
        return fr.is_number_dtype(self.frame[field].dtype)

    def numbers(self, field: str) -> np.ndarray:
        if field not in self._numbers:
            self._numbers[field] = self.take(fr.numbers(self.frame[field]))
        return self._numbers[field]

    def codes(self, field: str) -> tuple[np.ndarray, pd.Series]:
        """Factorized values: codes per usable row (-1 = missing) and the distinct values."""
        if field not in self._codes:
            column = self.frame[field]
            try:
                codes, uniques = pd.factorize(column)
            except TypeError:  # unhashable values (lists, dicts): compare their text
                codes, uniques = pd.factorize(column.astype(str).where(column.notna()))
            self._codes[field] = (self.take(np.asarray(codes, dtype="int64")), pd.Series(uniques))
        return self._codes[field]

    def predicate(self, pred) -> np.ndarray:
        key = canonical(pred)
        if key in self._preds:
            return self._preds[key]
        if not isinstance(pred, dict) or "field" not in pred or "op" not in pred:
            raise EvaluationError(f"a {self.name} condition needs a field and an op, got {pred!r}")
        field_name, op = pred["field"], pred["op"]
        target = pred.get("value", True if op == "is_set" else None)
        if not self.has(field_name):
            mask = np.full(self.n, _missing_result(op, target))
        elif self.numeric(field_name):
            mask = compare(self.numbers(field_name), op, target)
        else:
            codes, uniques = self.codes(field_name)
            table = np.append(compare(uniques, op, target), _missing_result(op, target))
            mask = table[codes]
        self._preds[key] = mask
        return mask

    def mask(self, where, window, as_of_day: int) -> np.ndarray:
        """Which usable rows match all of ``where`` within ``window``."""
        where = where or []
        if not isinstance(where, list):
            raise EvaluationError(f"'where' must be a list, got {where!r}")
        key = canonical([sorted(canonical(p) for p in where), window])
        if key in self._masks:
            return self._masks[key]
        mask = np.ones(self.n, dtype=bool)
        if window:
            low, high = window_days(window, as_of_day)
            mask &= (self.day >= low) & (self.day <= high)
        for pred in where:
            mask &= self.predicate(pred)
        self._masks[key] = mask
        return mask


def window_days(window, as_of_day: int) -> tuple[int, int]:
    """The first and last Beijing day (days since 1970-01-01) of a window, inclusive."""
    if not isinstance(window, dict):
        raise EvaluationError(f"a window must be an object, got {window!r}")
    if "last_days" in window:
        days = window["last_days"]
        if not isinstance(days, int) or isinstance(days, bool) or days < 1:
            raise EvaluationError(f"'last_days' must be a whole number >= 1, got {days!r}")
        return as_of_day - days + 1, as_of_day
    if "between" in window:
        try:
            start, end = window["between"]
            return fr.date_to_day(start), fr.date_to_day(end)
        except (TypeError, ValueError) as exc:
            raise EvaluationError(f"'between' needs two dates, got {window['between']!r}") from exc
    raise EvaluationError(f"unknown window {window!r}")


def _choose(choice: np.ndarray, labels: Sequence, index: pd.Index) -> pd.Series:
    """A Series holding ``labels[choice[i]]``, NA where ``choice`` is -1."""
    table = np.empty(len(labels) + 1, dtype=object)
    table[: len(labels)] = list(labels)
    table[len(labels)] = None
    return pd.Series(table[choice], index=index)


def _as_boolean(values: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("boolean")
    is_true, is_false = fr.booleans(values)
    out = pd.array(is_true, dtype="boolean")
    out[~(is_true | is_false)] = pd.NA
    return pd.Series(out, index=values.index)


def cast(values, value_type: str, index: pd.Index) -> pd.Series:
    """Values (array or Series over ``index``) in the dtype of ``value_type``."""
    if not isinstance(values, pd.Series):
        values = pd.Series(values, index=index)
    if value_type == "boolean":
        return _as_boolean(values)
    if value_type == "number":
        return pd.Series(fr.numbers(values), index=index, dtype="float64")
    if value_type == "enum":
        return fr.texts(values)
    raise EvaluationError(f"unknown value type {value_type!r}; expected one of {', '.join(VALUE_TYPES)}")


def empty_values(value_type: str) -> pd.Series:
    dtype = {"boolean": "boolean", "number": "float64"}.get(value_type, STRING)
    return pd.Series([], index=pd.Index([], dtype="int64", name="oneid"), dtype=dtype)


def _value_type_of(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series.dtype):
        return "boolean"
    return "number" if fr.is_number_dtype(series.dtype) else "enum"


def _value_codes(values) -> list[str]:
    return [str(v["code"]) if isinstance(v, dict) else str(v) for v in values or () if v is not None]


# ---------------------------------------------------------------------------
class _Evaluator:
    def __init__(self, profiles, events, orders, as_of, population, known, specs):
        self.as_of_day = fr.beijing_day(as_of)
        self.profiles = fr.profile_frame(profiles)
        frames = {
            "events": fr.activity_frame(events, "events"),
            "orders": fr.activity_frame(orders, "orders"),
        }
        ids = {name: fr.oneids(frame["oneid"]) for name, frame in frames.items()}
        if population is None:
            population = fr.default_population(
                self.profiles.index.to_numpy(), *(i[v] for i, v in ids.values())
            )
        else:
            population = pd.Index(np.asarray(population, dtype="int64"), name="oneid").unique()
        self.population = population
        self.n = len(population)
        self.sources = {
            name: _Source(name, frame, *ids[name], population, self.as_of_day)
            for name, frame in frames.items()
        }
        self._profile_rows = self.profiles.index.get_indexer(population)
        self._attributes: dict[str, pd.Series] = {}
        self._metrics: dict[str, np.ndarray] = {}
        self.computed = 0
        self.reused = 0
        self.known = dict(known or {})
        self.specs = specs
        self.results: dict[str, pd.Series] = {}
        self.errors: dict[str, str] = {}

    # inputs ------------------------------------------------------------
    def source(self, name) -> _Source:
        if name not in self.sources:
            raise EvaluationError(f"unknown source {name!r}; expected events or orders")
        return self.sources[name]

    def attribute(self, name) -> pd.Series:
        if not isinstance(name, str):
            raise EvaluationError(f"expected an attribute name, got {name!r}")
        if name not in self._attributes:
            if name in self.profiles.columns:
                column = self.profiles[name].array
                taken = pd.api.extensions.take(column, self._profile_rows, allow_fill=True)
                self._attributes[name] = pd.Series(taken, index=self.population)
            else:
                self._attributes[name] = pd.Series(None, index=self.population, dtype=object)
        return self._attributes[name]

    def tag_values(self, code) -> pd.Series:
        spec = self.specs.get(code)
        if code in self.results and not (code in self.known and spec and _is_manual(spec)):
            series = self.results[code]
        elif code in self.known:
            series = self.known[code]
        elif code in self.errors:
            raise EvaluationError(f"reads tag {code!r}, which failed")
        else:
            raise EvaluationError(f"reads tag {code!r}, which is neither evaluated nor known")
        if not series.index.equals(self.population):
            series = series.reindex(self.population)
        return series

    # metrics -----------------------------------------------------------
    def metric(self, node) -> np.ndarray:
        if not isinstance(node, dict):
            raise EvaluationError(f"expected a metric object, got {node!r}")
        if "attribute" in node:
            return fr.numbers(self.attribute(node["attribute"]))
        if "tag" in node:
            return fr.numbers(self.tag_values(node["tag"]))
        key = metric_key(node)
        if key in self._metrics:
            self.reused += 1
            return self._metrics[key]
        if "days_since" in node:
            values = self.days_since(node)
        elif "agg" in node:
            values = self.aggregate(node)
        else:
            raise EvaluationError(f"a metric needs agg, days_since, attribute or tag: {node!r}")
        values.flags.writeable = False
        self._metrics[key] = values
        self.computed += 1
        return values

    def aggregate(self, node) -> np.ndarray:
        agg = node["agg"]
        src = self.source(node.get("source"))
        rows = src.mask(node.get("where"), node.get("window"), self.as_of_day)
        pos = src.pos[rows]
        if agg == "count":
            return np.bincount(pos, minlength=self.n).astype("float64")
        if agg not in ("count_distinct", "sum", "avg", "min", "max"):
            raise EvaluationError(f"unknown aggregation {agg!r}")
        field_name = node.get("field")
        if not isinstance(field_name, str):
            raise EvaluationError(f"{agg!r} needs a 'field'")
        if not src.has(field_name):
            fill = 0.0 if agg in ("count_distinct", "sum") else np.nan
            return np.full(self.n, fill)
        if agg == "count_distinct":
            codes, uniques = src.codes(field_name)
            codes = codes[rows]
            keep = codes >= 0
            width = len(uniques) + 1
            pairs = np.unique(pos[keep] * width + codes[keep])
            return np.bincount(pairs // width, minlength=self.n).astype("float64")
        x = src.numbers(field_name)[rows]
        keep = ~np.isnan(x)
        pos, x = pos[keep], x[keep]
        if agg == "sum":
            return np.bincount(pos, weights=x, minlength=self.n)
        counts = np.bincount(pos, minlength=self.n)
        if agg == "avg":
            with np.errstate(invalid="ignore", divide="ignore"):
                out = np.bincount(pos, weights=x, minlength=self.n) / counts
        else:
            out = np.full(self.n, np.inf if agg == "min" else -np.inf)
            (np.minimum if agg == "min" else np.maximum).at(out, pos, x)
        out[counts == 0] = np.nan
        return out

    def days_since(self, node) -> np.ndarray:
        which = node["days_since"]
        if which not in ("first", "last"):
            raise EvaluationError(f"days_since must be 'first' or 'last', got {which!r}")
        src = self.source(node.get("source"))
        rows = src.mask(node.get("where"), None, self.as_of_day)
        pos, day = src.pos[rows], src.day[rows]
        empty = np.iinfo("int64").max if which == "first" else np.iinfo("int64").min
        found = np.full(self.n, empty, dtype="int64")
        (np.minimum if which == "first" else np.maximum).at(found, pos, day)
        out = (self.as_of_day - found).astype("float64")
        out[found == empty] = np.nan
        return out

    # conditions --------------------------------------------------------
    def condition(self, node) -> np.ndarray:
        if not isinstance(node, dict) or not node:
            raise EvaluationError(f"expected a condition object, got {node!r}")
        for group, combine in (("all", np.logical_and), ("any", np.logical_or)):
            if group in node:
                items = node[group]
                if not isinstance(items, list) or not items:
                    raise EvaluationError(f"{group!r} needs a non-empty list of conditions")
                out = self.condition(items[0]).copy()
                for item in items[1:]:
                    combine(out, self.condition(item), out=out)
                return out
        if "not" in node:
            return ~self.condition(node["not"])
        op = node.get("op")
        target = node.get("value", True if op == "is_set" else None)
        if "attribute" in node:
            values = self.attribute(node["attribute"])
        elif "metric" in node:
            values = self.metric(node["metric"])
        elif "tag" in node:
            values = self.tag_values(node["tag"])
        else:
            raise EvaluationError(f"a condition needs all, any, not, attribute, metric or tag: {node!r}")
        return compare(values, op, target)

    # definitions -------------------------------------------------------
    def evaluate(self, spec: TagSpec) -> pd.Series:
        doc = spec.definition
        kind = doc.get("type") if isinstance(doc, dict) else None
        method: Callable | None = getattr(self, f"def_{kind}", None) if isinstance(kind, str) else None
        if method is None:
            raise EvaluationError(f"unknown definition type {kind!r}")
        if spec.value_type not in VALUE_TYPES:
            raise EvaluationError(f"unknown value type {spec.value_type!r}")
        if kind == "manual":
            return empty_values(spec.value_type).rename(spec.code)
        return cast(method(doc), spec.value_type, self.population).rename(spec.code)

    def def_condition(self, doc):
        return self.condition(doc.get("condition"))

    def def_metric(self, doc):
        return self.metric(doc.get("metric"))

    def def_bucket(self, doc):
        buckets = doc.get("buckets")
        if not isinstance(buckets, list) or not buckets:
            raise EvaluationError("a bucket definition needs a non-empty list of buckets")
        x = self.metric(doc.get("metric"))
        choice = fr.bucket_index(x, [(b.get("min"), b.get("max")) for b in buckets])
        return _choose(choice, [b.get("value") for b in buckets], self.population)

    def def_cases(self, doc):
        cases = doc.get("cases")
        if not isinstance(cases, list) or not cases:
            raise EvaluationError("a cases definition needs a non-empty list of cases")
        choice = np.full(self.n, -1, dtype="int64")
        labels = []
        for i, case in enumerate(cases):
            if not isinstance(case, dict) or "when" not in case:
                raise EvaluationError(f"case {i} needs 'value' and 'when'")
            labels.append(case.get("value"))
            choice[(choice < 0) & self.condition(case["when"])] = i
        if doc.get("default") is not None:
            labels.append(doc["default"])
            choice[choice < 0] = len(labels) - 1
        return _choose(choice, labels, self.population)

    def def_preference(self, doc):
        pick = doc.get("pick")
        if pick not in ("most_frequent", "first", "last"):
            raise EvaluationError(f"unknown pick {pick!r}")
        src = self.source(doc.get("source"))
        field_name = doc.get("field")
        if not src.has(field_name):
            return pd.Series(None, index=self.population, dtype=object)
        rows = src.mask(doc.get("where"), doc.get("window"), self.as_of_day)
        codes, uniques = src.codes(field_name)
        labels = fr.texts(uniques)
        mapping = doc.get("map")
        if mapping:
            labels = labels.map({_text_key(k): v for k, v in mapping.items()})
        label_codes, categories = pd.factorize(labels)
        table = np.append(np.asarray(label_codes, dtype="int64"), -1)
        label = table[codes[rows]]
        keep = label >= 0
        label = label[keep]
        pos, ns, row = (a[rows][keep] for a in (src.pos, src.ns, src.row))
        choice = np.full(self.n, -1, dtype="int64")
        if pick == "most_frequent":
            if len(pos):
                # per (person, value): how often, latest time, latest row — in numpy, no groupby
                order = np.lexsort((label, pos))
                p, lab, t, r = pos[order], label[order], ns[order], row[order]
                starts = np.r_[0, np.flatnonzero((np.diff(p) != 0) | (np.diff(lab) != 0)) + 1]
                n = np.diff(np.r_[starts, len(p)])
                group_pos, group_label = p[starts], lab[starts]
                latest, last_row = np.maximum.reduceat(t, starts), np.maximum.reduceat(r, starts)
                # the most frequent value per person; ties go to the latest occurrence
                best = np.lexsort((last_row, latest, n, group_pos))
                group_pos, group_label = group_pos[best], group_label[best]
                ends = np.r_[np.flatnonzero(np.diff(group_pos)), len(group_pos) - 1]
                choice[group_pos[ends]] = group_label[ends]
        else:
            order = np.lexsort((row, ns, pos))
            pos, label = pos[order], label[order]
            if len(pos):
                edge = np.flatnonzero(np.diff(pos)) + 1
                ends = np.r_[0, edge] if pick == "first" else np.r_[edge - 1, len(pos) - 1]
                choice[pos[ends]] = label[ends]
        return _choose(choice, list(categories), self.population)

    def def_attribute(self, doc):
        values = self.attribute(doc.get("attribute"))
        mapping = doc.get("map")
        if mapping:
            values = fr.texts(values).map({_text_key(k): v for k, v in mapping.items()})
        return values

    def def_manual(self, doc):  # pragma: no cover - handled in evaluate()
        return None


def _is_manual(spec: TagSpec) -> bool:
    return isinstance(spec.definition, dict) and spec.definition.get("type") == "manual"


def dependency_order(tags: Sequence[TagSpec]) -> tuple[list[TagSpec], dict[str, str]]:
    """Tags with every tag after the tags it reads (among ``tags``), and errors for
    repeated codes and cycles."""
    by_code: dict[str, TagSpec] = {}
    errors: dict[str, str] = {}
    for spec in tags:
        if spec.code in by_code:
            errors[spec.code] = "the tag is listed twice"
        else:
            by_code[spec.code] = spec
    reads = {code: sorted(tag_references(spec.definition) & set(by_code)) for code, spec in by_code.items()}
    ordered: list[TagSpec] = []
    state: dict[str, str] = {}

    def visit(code, trail):
        if state.get(code) == "done":
            return
        if state.get(code) == "visiting":
            cycle = [*trail[trail.index(code) :], code]
            for member in cycle:
                errors[member] = "reads itself through a cycle: " + " -> ".join(cycle)
            return
        state[code] = "visiting"
        for ref in reads[code]:
            visit(ref, [*trail, code])
        state[code] = "done"
        ordered.append(by_code[code])

    for code in by_code:
        visit(code, [])
    return ordered, errors


def evaluate_tags(
    tags: Sequence[TagSpec | tuple],
    profiles: pd.DataFrame | None,
    events: pd.DataFrame | None,
    orders: pd.DataFrame | None,
    as_of: dt.datetime | dt.date,
    population: pd.Index | None = None,
    *,
    known: Mapping[str, pd.Series] | None = None,
    validate: bool = True,
) -> EvaluationResult:
    """Evaluate all ``tags`` together (see the module docstring for the frames and
    the semantics).

    ``as_of`` is the moment of the computation (a naive datetime is taken as UTC, a
    date as a Beijing date). ``known`` holds values of tags that are not evaluated
    here but may be read by composites (manual tags' uploaded lists, earlier
    results). With ``validate`` every definition is first checked with
    :func:`.rules.validate_definition`; an invalid one fails that tag only.
    """
    specs = [t if isinstance(t, TagSpec) else TagSpec(*t) for t in tags]
    ordered, errors = dependency_order(specs)
    by_code = {s.code: s for s in ordered}
    evaluator = _Evaluator(profiles, events, orders, as_of, population, known, by_code)
    evaluator.errors = errors
    types = {code: _value_type_of(series) for code, series in (known or {}).items()}
    types.update({s.code: s.value_type for s in ordered})
    result = EvaluationResult(population=evaluator.population, as_of=as_of, errors=errors)
    for spec in ordered:
        if spec.code in errors:
            continue
        result.order.append(spec.code)
        started = time.perf_counter()
        try:
            if validate:
                codes = _value_codes(spec.values) if spec.value_type == "enum" and spec.values else None
                validate_definition(spec.definition, spec.value_type, codes, known_tag=types.get)
            evaluator.results[spec.code] = evaluator.evaluate(spec)
        except RuleValidationError as exc:
            errors[spec.code] = f"invalid definition: {exc}"
        except EvaluationError as exc:
            errors[spec.code] = str(exc)
        except Exception as exc:
            log.warning("tag %s failed", spec.code, exc_info=True)
            errors[spec.code] = f"{type(exc).__name__}: {exc}"
        result.seconds[spec.code] = time.perf_counter() - started
    result.values = evaluator.results
    result.metrics_computed = evaluator.computed
    result.metrics_reused = evaluator.reused
    return result
