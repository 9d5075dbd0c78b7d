"""The rule document: how a tag's value is computed, as data (JSON), never code.

A definition is a JSON object with a ``type``::

    {"type": "condition", "condition": COND}                    -> yes/no tags
    {"type": "metric", "metric": METRIC}                        -> number tags
    {"type": "bucket", "metric": METRIC,
     "buckets": [{"value": CODE, "min": N, "max": N}, ...]}     -> enum tags (min <= x < max)
    {"type": "cases", "cases": [{"value": CODE, "when": COND}],
     "default": CODE}                                           -> enum tags (first match wins)
    {"type": "preference", "pick": "most_frequent"|"first"|"last",
     "source": "events"|"orders", "field": FIELD, "where": [PRED], "window": WINDOW,
     "map": {"raw value": CODE}}                                -> enum tags
    {"type": "attribute", "attribute": NAME, "map": {...}}      -> a profile attribute
    {"type": "manual"}                                          -> values set by lists

    COND   := {"all": [COND, ...]} | {"any": [COND, ...]} | {"not": COND}
            | {"attribute": NAME, "op": OP, "value": V}
            | {"metric": METRIC, "op": OP, "value": V}
            | {"tag": CODE, "op": OP, "value": V}             (composite: another tag's value)
    METRIC := {"agg": "count"|"count_distinct"|"sum"|"avg"|"min"|"max",
               "source": "events"|"orders", "field": FIELD, "where": [PRED], "window": WINDOW}
            | {"days_since": "first"|"last", "source": ..., "where": [PRED]}
            | {"attribute": NAME} | {"tag": CODE}
    PRED   := {"field": FIELD, "op": OP, "value": V}           (FIELD may be "properties.<key>")
    WINDOW := {"last_days": N >= 1} | {"between": ["YYYY-MM-DD", "YYYY-MM-DD"]}   (Beijing days)
    OP     := eq ne gt gte lt lte between in not_in is_set contains

:func:`validate_definition` returns every problem with the path of the node at
fault (``condition.all[1].metric.window.last_days``), so a form or an API
error can point at it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.utils.translation import gettext as _

from tagportal.core.exceptions import error_text

from . import vocabulary

DEFINITION_TYPES = ("condition", "metric", "bucket", "cases", "preference", "attribute", "manual")
AGGREGATIONS = ("count", "count_distinct", "sum", "avg", "min", "max")
PICKS = ("most_frequent", "first", "last")
NUMBER_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in", "is_set")
STRING_OPS = ("eq", "ne", "in", "not_in", "is_set", "contains")
ALL_OPS = tuple(dict.fromkeys(NUMBER_OPS + STRING_OPS))
#: Which value types a definition type produces.
PRODUCES = {
    "condition": {"boolean"},
    "metric": {"number"},
    "bucket": {"enum"},
    "cases": {"enum", "boolean"},
    "preference": {"enum"},
    "attribute": {"enum", "number", "boolean"},
    "manual": {"enum", "number", "boolean"},
}
MAX_DEPTH = 20


@dataclass(frozen=True)
class RuleError:
    path: str
    message: str

    def __str__(self):
        return f"{self.path or 'definition'}: {self.message}"


class RuleValidationError(ValueError):
    """Every problem of a rule document (a tag's definition, an audience's expression),
    each at its path. The problems of the document as a whole (path ``""``) are keyed by
    ``document`` in :meth:`as_dict` and named by ``label`` (``document`` unless given)
    in the message."""

    def __init__(self, errors: list[RuleError], document: str = "definition", label: str | None = None):
        self.errors = errors
        self.document = document
        name = label or document
        super().__init__("; ".join(f"{e.path or name}: {e.message}" for e in errors))

    def as_dict(self) -> dict[str, list[str]]:
        """``{path: [messages]}``: where each problem is, as an API answers it."""
        out: dict[str, list[str]] = {}
        for error in self.errors:
            out.setdefault(error.path or self.document, []).append(error.message)
        return out


@error_text.register
def _error_text(exc: RuleValidationError) -> str:
    """Each problem after its path, those of the whole document alone."""
    return " ".join(
        message if path == exc.document else f"{path}: {message}"
        for path, messages in exc.as_dict().items()
        for message in messages
    )


def join_path(path: str, part: str) -> str:
    """The path of a child node: ``join_path("condition", "all[1]")`` is ``condition.all[1]``."""
    if part.startswith("["):
        return f"{path}{part}"
    return f"{path}.{part}" if path else part


def is_number(value) -> bool:
    """A JSON number (not a boolean)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Validator:
    def __init__(self, value_type, value_codes, known_tag: Callable[[str], str | None] | None):
        self.value_type = value_type
        self.value_codes = set(value_codes) if value_codes is not None else None
        self.known_tag = known_tag
        self.errors: list[RuleError] = []
        self.tags: set[str] = set()
        self.fields: set[tuple[str, str]] = set()

    def error(self, path, message):
        self.errors.append(RuleError(path, message))

    def expect_object(self, node, path, keys: Iterable[str], required: Iterable[str] = ()) -> bool:
        if not isinstance(node, dict):
            self.error(path, _("expected an object, got %(got)s") % {"got": type(node).__name__})
            return False
        allowed = set(keys)
        for key in sorted(set(node) - allowed):
            self.error(
                join_path(path, key),
                _("unknown key; allowed: %(keys)s") % {"keys": ", ".join(sorted(allowed))},
            )
        for key in required:
            if key not in node:
                self.error(path, _("missing %(key)r") % {"key": key})
        return True

    # definitions -----------------------------------------------------------
    def definition(self, doc):
        if not isinstance(doc, dict):
            self.error("", _("a definition must be a JSON object with a 'type'"))
            return
        kind = doc.get("type")
        if kind not in DEFINITION_TYPES:
            self.error(
                "type",
                _("unknown definition type %(type)r; expected one of %(types)s")
                % {"type": kind, "types": ", ".join(DEFINITION_TYPES)},
            )
            return
        if self.value_type and self.value_type not in PRODUCES[kind]:
            self.error(
                "type",
                _("a %(type)r definition cannot produce %(value_type)s values; use one of: %(ok)s")
                % {
                    "type": kind,
                    "value_type": self.value_type,
                    "ok": ", ".join(k for k, v in PRODUCES.items() if self.value_type in v),
                },
            )
        getattr(self, f"def_{kind}")(doc)

    def def_condition(self, doc):
        if self.expect_object(doc, "", ("type", "condition", "description"), ("condition",)):
            if "condition" in doc:
                self.cond(doc["condition"], "condition", 0)

    def def_metric(self, doc):
        if self.expect_object(doc, "", ("type", "metric", "description"), ("metric",)):
            if "metric" in doc:
                self.metric(doc["metric"], "metric")

    def def_bucket(self, doc):
        if not self.expect_object(
            doc, "", ("type", "metric", "buckets", "description"), ("metric", "buckets")
        ):
            return
        if "metric" in doc:
            self.metric(doc["metric"], "metric")
        buckets = doc.get("buckets")
        if "buckets" in doc and (not isinstance(buckets, list) or not buckets):
            self.error("buckets", _("expected a non-empty list of buckets"))
            return
        for i, bucket in enumerate(buckets or []):
            path = f"buckets[{i}]"
            if not self.expect_object(bucket, path, ("value", "min", "max"), ("value",)):
                continue
            self.value_code(bucket.get("value"), join_path(path, "value"))
            low, high = bucket.get("min"), bucket.get("max")
            for key, bound in (("min", low), ("max", high)):
                if bound is not None and not is_number(bound):
                    self.error(join_path(path, key), _("expected a number"))
            if low is None and high is None:
                self.error(path, _("a bucket needs a 'min', a 'max' or both"))
            elif is_number(low) and is_number(high) and low >= high:
                self.error(path, _("'min' must be less than 'max'"))
        bounds = [
            (b.get("min"), b.get("max"))
            for b in buckets or []
            if isinstance(b, dict) and all(v is None or is_number(v) for v in (b.get("min"), b.get("max")))
        ]
        if len(bounds) == len(buckets or []):
            for i in range(1, len(bounds)):
                previous_high, low = bounds[i - 1][1], bounds[i][0]
                if previous_high is None or low is None or low < previous_high:
                    self.error(f"buckets[{i}]", _("buckets must be in ascending order and must not overlap"))
                    break

    def def_cases(self, doc):
        if not self.expect_object(doc, "", ("type", "cases", "default", "description"), ("cases",)):
            return
        cases = doc.get("cases")
        if "cases" in doc and (not isinstance(cases, list) or not cases):
            self.error("cases", _("expected a non-empty list of cases"))
            return
        for i, case in enumerate(cases or []):
            path = f"cases[{i}]"
            if self.expect_object(case, path, ("value", "when"), ("value", "when")):
                self.value_code(case.get("value"), join_path(path, "value"))
                if "when" in case:
                    self.cond(case["when"], join_path(path, "when"), 0)
        if doc.get("default") is not None:
            self.value_code(doc["default"], "default")

    def def_preference(self, doc):
        keys = ("type", "pick", "source", "field", "where", "window", "map", "description")
        if not self.expect_object(doc, "", keys, ("pick", "source", "field")):
            return
        if doc.get("pick") not in PICKS:
            self.error("pick", _("expected one of %(choices)s") % {"choices": ", ".join(PICKS)})
        source = self.source(doc.get("source"), "source")
        if source and "field" in doc:
            self.field(source, doc["field"], "field")
        if source and "where" in doc:
            self.where(source, doc["where"], "where")
        if "window" in doc:
            self.window(doc["window"], "window")
        self.mapping(doc.get("map"), "map")

    def def_attribute(self, doc):
        if not self.expect_object(doc, "", ("type", "attribute", "map", "description"), ("attribute",)):
            return
        self.attribute(doc.get("attribute"), "attribute")
        self.mapping(doc.get("map"), "map")

    def def_manual(self, doc):
        self.expect_object(doc, "", ("type", "description"))

    # parts -----------------------------------------------------------------
    def mapping(self, mapping, path):
        if mapping is None:
            return
        if not isinstance(mapping, dict) or not mapping:
            self.error(path, _("expected an object mapping raw values to value codes"))
            return
        for raw, code in mapping.items():
            self.value_code(code, join_path(path, str(raw)))

    def value_code(self, code, path):
        if self.value_type == "boolean":
            if not isinstance(code, bool):
                self.error(path, _("expected true or false"))
            return
        if not isinstance(code, str) or not code:
            self.error(path, _("expected a value code"))
        elif self.value_codes is not None and code not in self.value_codes:
            self.error(
                path,
                _("%(code)r is not one of the tag's values (%(codes)s)")
                % {"code": code, "codes": ", ".join(sorted(self.value_codes)) or _("none defined")},
            )

    def cond(self, node, path, depth):
        if depth > MAX_DEPTH:
            self.error(path, _("nested too deeply (more than %(n)s levels)") % {"n": MAX_DEPTH})
            return
        if not isinstance(node, dict) or not node:
            self.error(path, _("expected a condition object"))
            return
        for group in ("all", "any"):
            if group in node:
                if not self.expect_object(node, path, (group,)):
                    return
                items = node[group]
                if not isinstance(items, list) or not items:
                    self.error(join_path(path, group), _("expected a non-empty list of conditions"))
                    return
                for i, child in enumerate(items):
                    self.cond(child, join_path(join_path(path, group), f"[{i}]"), depth + 1)
                return
        if "not" in node:
            if self.expect_object(node, path, ("not",)):
                self.cond(node["not"], join_path(path, "not"), depth + 1)
            return
        if "attribute" in node:
            if self.expect_object(node, path, ("attribute", "op", "value"), ("op",)):
                kind = self.attribute(node["attribute"], join_path(path, "attribute"))
                self.comparison(node, path, kind)
            return
        if "metric" in node:
            if self.expect_object(node, path, ("metric", "op", "value"), ("op",)):
                self.metric(node["metric"], join_path(path, "metric"))
                self.comparison(node, path, vocabulary.NUMBER)
            return
        if "tag" in node:
            if self.expect_object(node, path, ("tag", "op", "value"), ("op",)):
                kind = self.tag(node["tag"], join_path(path, "tag"))
                self.comparison(node, path, kind)
            return
        self.error(
            path,
            _("a condition needs one of %(keys)s") % {"keys": "all, any, not, attribute, metric, tag"},
        )

    def comparison(self, node, path, kind):
        op = node.get("op")
        ops = (
            NUMBER_OPS if kind == vocabulary.NUMBER else STRING_OPS if kind == vocabulary.STRING else ALL_OPS
        )
        if op not in ops:
            self.error(join_path(path, "op"), _("expected one of %(ops)s") % {"ops": ", ".join(ops)})
            return
        value, vpath = node.get("value"), join_path(path, "value")
        if op == "is_set":
            if "value" in node and not isinstance(value, bool):
                self.error(vpath, _("expected true or false"))
            return
        if "value" not in node:
            self.error(path, _("missing 'value'"))
            return
        if op == "between":
            if not (isinstance(value, list) and len(value) == 2 and all(is_number(v) for v in value)):
                self.error(vpath, _("expected two numbers [low, high]"))
            elif value[0] > value[1]:
                self.error(vpath, _("the low end is greater than the high end"))
            return
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                self.error(vpath, _("expected a non-empty list"))
                return
            for i, item in enumerate(value):
                self.scalar(item, kind, join_path(vpath, f"[{i}]"))
            return
        if op == "contains":
            if not isinstance(value, str) or not value:
                self.error(vpath, _("expected a non-empty text"))
            return
        self.scalar(value, kind if op in ("eq", "ne") else vocabulary.NUMBER, vpath)

    def scalar(self, value, kind, path):
        if kind == vocabulary.NUMBER and not is_number(value):
            self.error(path, _("expected a number, got %(got)r") % {"got": value})
        elif kind == vocabulary.STRING and not isinstance(value, str):
            self.error(path, _("expected a text, got %(got)r") % {"got": value})
        elif kind in (vocabulary.ANY, None) and not isinstance(value, str | int | float | bool):
            self.error(path, _("expected a text, a number or true/false"))

    def attribute(self, name, path):
        kind = vocabulary.current().attributes.get(name) if isinstance(name, str) else None
        if kind is None:
            self.error(
                path,
                _("unknown profile attribute %(name)r; known: %(known)s")
                % {"name": name, "known": ", ".join(sorted(vocabulary.current().attributes))},
            )
        return kind

    def tag(self, code, path):
        if not isinstance(code, str) or not code:
            self.error(path, _("expected a tag code"))
            return None
        self.tags.add(code)
        if self.known_tag is None:
            return vocabulary.ANY
        value_type = self.known_tag(code)
        if value_type is None:
            self.error(path, _("unknown tag %(code)r") % {"code": code})
            return None
        return {"number": vocabulary.NUMBER, "boolean": vocabulary.ANY}.get(value_type, vocabulary.STRING)

    def source(self, source, path):
        if source not in vocabulary.current().sources:
            self.error(
                path, _("expected one of %(choices)s") % {"choices": ", ".join(vocabulary.current().sources)}
            )
            return None
        return source

    def field(self, source, field, path):
        kind = vocabulary.current().field_type(source, field) if isinstance(field, str) else None
        if kind is None:
            self.error(
                path,
                _("unknown %(source)s field %(field)r; known: %(known)s, or properties.<key>")
                % {
                    "source": source,
                    "field": field,
                    "known": ", ".join(sorted(vocabulary.current().sources[source])),
                },
            )
        else:
            self.fields.add((source, field))
        return kind

    def metric(self, node, path):
        if not isinstance(node, dict):
            self.error(path, _("expected a metric object"))
            return
        if "attribute" in node:
            if self.expect_object(node, path, ("attribute",)):
                if self.attribute(node["attribute"], join_path(path, "attribute")) not in (
                    vocabulary.NUMBER,
                    None,
                ):
                    self.error(join_path(path, "attribute"), _("a metric needs a numeric attribute"))
            return
        if "tag" in node:
            if self.expect_object(node, path, ("tag",)):
                if self.tag(node["tag"], join_path(path, "tag")) not in (
                    vocabulary.NUMBER,
                    vocabulary.ANY,
                    None,
                ):
                    self.error(join_path(path, "tag"), _("a metric needs a number tag"))
            return
        if "days_since" in node:
            if not self.expect_object(node, path, ("days_since", "source", "where"), ("source",)):
                return
            if node["days_since"] not in ("first", "last"):
                self.error(join_path(path, "days_since"), _("expected 'first' or 'last'"))
            source = self.source(node.get("source"), join_path(path, "source"))
            if source and "where" in node:
                self.where(source, node["where"], join_path(path, "where"))
            return
        if "agg" not in node:
            self.error(
                path, _("a metric needs one of %(keys)s") % {"keys": "agg, days_since, attribute, tag"}
            )
            return
        if not self.expect_object(node, path, ("agg", "source", "field", "where", "window"), ("source",)):
            return
        agg = node["agg"]
        if agg not in AGGREGATIONS:
            self.error(
                join_path(path, "agg"),
                _("expected one of %(choices)s") % {"choices": ", ".join(AGGREGATIONS)},
            )
        source = self.source(node.get("source"), join_path(path, "source"))
        if source:
            if agg != "count":
                if "field" not in node:
                    self.error(path, _("%(agg)r needs a 'field'") % {"agg": agg})
                else:
                    kind = self.field(source, node["field"], join_path(path, "field"))
                    if agg in ("sum", "avg", "min", "max") and kind not in (
                        vocabulary.NUMBER,
                        vocabulary.ANY,
                        None,
                    ):
                        self.error(
                            join_path(path, "field"), _("%(agg)r needs a numeric field") % {"agg": agg}
                        )
            elif "field" in node:
                self.error(join_path(path, "field"), _("'count' counts records and takes no field"))
            if "where" in node:
                self.where(source, node["where"], join_path(path, "where"))
        if "window" in node:
            self.window(node["window"], join_path(path, "window"))

    def where(self, source, preds, path):
        if not isinstance(preds, list):
            self.error(path, _("expected a list of field conditions"))
            return
        for i, pred in enumerate(preds):
            ppath = join_path(path, f"[{i}]")
            if not self.expect_object(pred, ppath, ("field", "op", "value"), ("field", "op")):
                continue
            kind = self.field(source, pred.get("field"), join_path(ppath, "field"))
            if kind is None:
                continue
            if pred.get("field") == "type":
                values = pred.get("value") if isinstance(pred.get("value"), list) else [pred.get("value")]
                unknown = [
                    v for v in values if isinstance(v, str) and v not in vocabulary.current().event_types()
                ]
                if source == "events" and unknown:
                    self.error(
                        join_path(ppath, "value"),
                        _("unknown event type(s): %(types)s") % {"types": ", ".join(map(str, unknown))},
                    )
            if pred.get("field") == "channel":
                values = pred.get("value") if isinstance(pred.get("value"), list) else [pred.get("value")]
                unknown = [v for v in values if isinstance(v, str) and v not in vocabulary.current().channels]
                if unknown:
                    self.error(
                        join_path(ppath, "value"),
                        _("unknown channel(s): %(channels)s; known: %(known)s")
                        % {"channels": ", ".join(unknown), "known": ", ".join(vocabulary.current().channels)},
                    )
            self.comparison(pred, ppath, kind)

    def window(self, node, path):
        if not isinstance(node, dict) or len(node) != 1 or not ({"last_days", "between"} & set(node)):
            self.error(path, _("expected {'last_days': N} or {'between': [start, end]}"))
            return
        if "last_days" in node:
            days = node["last_days"]
            if not isinstance(days, int) or isinstance(days, bool) or days < 1:
                self.error(join_path(path, "last_days"), _("expected a whole number of days, at least 1"))
            return
        bounds = node["between"]
        if not isinstance(bounds, list) or len(bounds) != 2:
            self.error(join_path(path, "between"), _("expected two dates [start, end]"))
            return
        dates = []
        for i, value in enumerate(bounds):
            try:
                dates.append(dt.date.fromisoformat(value))
            except (TypeError, ValueError):
                self.error(
                    join_path(join_path(path, "between"), f"[{i}]"), _("expected a date like 2026-01-31")
                )
        if len(dates) == 2 and dates[0] > dates[1]:
            self.error(join_path(path, "between"), _("the start date is after the end date"))


@dataclass
class DefinitionInfo:
    """What a valid definition reads: the tags and the source fields it names."""

    tags: set[str]
    fields: set[tuple[str, str]]


def validate_definition(
    doc,
    value_type: str | None = None,
    value_codes: Iterable[str] | None = None,
    known_tag: Callable[[str], str | None] | None = None,
) -> DefinitionInfo:
    """Validate a rule document; raise :class:`RuleValidationError` listing every problem.

    ``value_codes`` are the tag's enum value codes; ``known_tag(code)`` returns the
    value type of a tag the definition may read, or ``None`` for an unknown tag.
    """
    validator = _Validator(value_type, value_codes, known_tag)
    validator.definition(doc)
    if validator.errors:
        raise RuleValidationError(validator.errors)
    return DefinitionInfo(tags=validator.tags, fields=validator.fields)


def tag_references(doc) -> set[str]:
    """The codes of the tags a definition reads (without validating it)."""
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            code = node.get("tag")
            if isinstance(code, str):
                found.add(code)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    return found


def renamed_tag_references(doc, codes: dict[str, str]):
    """A copy of ``doc`` reading, for every tag code in ``codes``, the code it maps to
    (the rest of the document unchanged; ``doc`` itself is not modified)."""

    def walk(node):
        if isinstance(node, dict):
            copy = {key: walk(value) for key, value in node.items()}
            code = node.get("tag")
            if isinstance(code, str) and code in codes:
                copy["tag"] = codes[code]
            return copy
        if isinstance(node, list):
            return [walk(value) for value in node]
        return node

    return walk(doc) if codes else doc
