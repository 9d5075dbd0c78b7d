"""Audience expressions: AND / OR / NOT groups of conditions on a brand's tags.

The JSON form (what the builder page and the API send) is the engine's condition
document restricted to tags::

    {"all": [
        {"tag": "yimei_skin_skin_type", "op": "eq", "value": "oily"},
        {"tag": "yimei_visit_last_visit_days", "op": "lte", "value": 30},
        {"not": {"tag": "yimei_churn_churn_risk", "op": "eq", "value": "high"}}
    ]}

and the text form is parsed by the engine's rule parser (:func:`tagportal.rules.syntax.parse_condition`)::

    @yimei_skin_skin_type = "oily" and @yimei_visit_last_visit_days <= 30
        and not @yimei_churn_churn_risk = "high"

Conditions, by the tag's value type:

- every tag: ``is_set`` (``true``: has any value; ``false``: has none);
- boolean tags: ``eq`` / ``ne`` ``true`` or ``false``;
- enum tags: ``eq`` / ``ne`` a value code, ``in`` / ``not_in`` a list of them;
- number tags: ``eq``, ``ne``, ``gt``, ``gte``, ``lt``, ``lte`` a number, ``between``
  ``[low, high]`` (both included), on each person's number; ``eq`` / ``in`` a bucket
  code (a string) pick bucket members. ``metric(tag(x)) >= 3`` means the same as
  ``@x >= 3`` and is normalised to it.

``ne`` and ``not_in`` select people who *have* a value other than the ones named; ``not``
takes the complement within the brand's people. :func:`validate` checks an expression
against the brand's published tags and returns every problem with its path, naming the
unknown tag or value; :func:`normalise` gives the canonical JSON (``metric`` spelled as
``tag``, one-element groups kept as written).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.utils.translation import gettext as _

from tagportal.rules.definitions import RuleError, RuleValidationError, is_number, join_path
from tagportal.rules.syntax import RuleSyntaxError, format_condition, parse_condition

MAX_DEPTH = 12
MAX_CONDITIONS = 64

BOOLEAN_OPS = ("eq", "ne", "is_set")
ENUM_OPS = ("eq", "ne", "in", "not_in", "is_set")
NUMBER_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "is_set")


@dataclass(frozen=True)
class TagInfo:
    """What validation needs to know of a tag."""

    pk: int
    code: str
    name: str
    value_type: str
    values: tuple  # value codes (enum), bucket codes (number)
    version: int | None


def invalid(errors: list[RuleError]) -> RuleValidationError:
    """The rule language's error for an expression that does not parse or does not fit
    the brand's tags: problems of the whole expression are keyed ``expression``."""
    return RuleValidationError(errors, document="expression", label=_("expression"))


def parse_text(text: str) -> dict:
    """The JSON form of an expression written as text; a
    :class:`~tagportal.rules.definitions.RuleValidationError` at path ``text`` if it does
    not parse (its message, from the :class:`~tagportal.rules.syntax.RuleSyntaxError`,
    says where)."""
    try:
        return normalise(parse_condition(text))
    except RuleSyntaxError as exc:
        raise invalid([RuleError("text", str(exc))]) from exc


def to_text(expression: dict) -> str:
    """The canonical text of an expression."""
    return format_condition(expression)


def normalise(node):
    """``metric(tag(x))`` comparisons spelled as tag comparisons; everything else as is."""
    if not isinstance(node, dict):
        return node
    if "all" in node or "any" in node:
        key = "all" if "all" in node else "any"
        items = node[key]
        return {key: [normalise(child) for child in items]} if isinstance(items, list) else node
    if "not" in node:
        return {"not": normalise(node["not"])}
    metric = node.get("metric")
    if isinstance(metric, dict) and set(metric) == {"tag"}:
        rest = {k: v for k, v in node.items() if k != "metric"}
        return {"tag": metric["tag"], **rest}
    return node


def tag_codes(expression) -> set[str]:
    """The codes of the tags an expression reads."""
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("tag"), str):
                found.add(node["tag"])
            metric = node.get("metric")
            if isinstance(metric, dict) and isinstance(metric.get("tag"), str):
                found.add(metric["tag"])
            for key in ("all", "any"):
                if isinstance(node.get(key), list):
                    for child in node[key]:
                        walk(child)
            if "not" in node:
                walk(node["not"])

    walk(expression)
    return found


def rename_tags(expression, mapping: dict[str, str]):
    """A copy of ``expression`` reading ``mapping[code]`` where it read ``code``."""
    if isinstance(expression, list):
        return [rename_tags(child, mapping) for child in expression]
    if not isinstance(expression, dict):
        return expression
    out = {}
    for key, value in expression.items():
        if key == "tag" and isinstance(value, str):
            out[key] = mapping.get(value, value)
        elif key in ("all", "any", "not", "metric"):
            out[key] = rename_tags(value, mapping)
        else:
            out[key] = value
    return out


def count_conditions(expression) -> int:
    if not isinstance(expression, dict):
        return 0
    for key in ("all", "any"):
        if isinstance(expression.get(key), list):
            return sum(count_conditions(child) for child in expression[key])
    if "not" in expression:
        return count_conditions(expression["not"])
    return 1


class _Validator:
    def __init__(self, tags: dict[str, TagInfo]):
        self.tags = tags
        self.errors: list[RuleError] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(RuleError(path, message))

    def node(self, node, path: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            self.error(path, _("nested too deeply (more than %(n)s levels)") % {"n": MAX_DEPTH})
            return
        if not isinstance(node, dict) or not node:
            self.error(path, _("expected a condition or a group"))
            return
        for key in ("all", "any"):
            if key in node:
                if set(node) != {key}:
                    self.error(path, _("a group holds only “%(key)s”") % {"key": key})
                    return
                items = node[key]
                if not isinstance(items, list) or not items:
                    self.error(join_path(path, key), _("expected a non-empty list of conditions"))
                    return
                for i, child in enumerate(items):
                    self.node(child, join_path(join_path(path, key), f"[{i}]"), depth + 1)
                return
        if "not" in node:
            if set(node) != {"not"}:
                self.error(path, _("“not” holds one condition and nothing else"))
                return
            self.node(node["not"], join_path(path, "not"), depth + 1)
            return
        if "tag" in node:
            self.condition(node, path)
            return
        self.error(path, _("a condition needs one of %(keys)s") % {"keys": "all, any, not, tag"})

    def condition(self, node: dict, path: str) -> None:
        extra = set(node) - {"tag", "op", "value"}
        if extra:
            self.error(path, _("unexpected keys: %(keys)s") % {"keys": ", ".join(sorted(extra))})
            return
        code = node.get("tag")
        tag = self.tags.get(code) if isinstance(code, str) else None
        if tag is None:
            self.error(
                join_path(path, "tag"),
                _("unknown tag “%(code)s”: no published tag of this brand has that code") % {"code": code},
            )
            return
        op = node.get("op")
        ops = {"boolean": BOOLEAN_OPS, "enum": ENUM_OPS, "number": NUMBER_OPS}.get(tag.value_type, ENUM_OPS)
        if op not in ops:
            self.error(
                join_path(path, "op"),
                _("“%(op)s” does not apply to the %(type)s tag “%(code)s”; use %(ops)s")
                % {"op": op, "type": tag.value_type, "code": code, "ops": ", ".join(ops)},
            )
            return
        value, vpath = node.get("value"), join_path(path, "value")
        if op == "is_set":
            if "value" in node and not isinstance(value, bool):
                self.error(vpath, _("expected true or false"))
            return
        if "value" not in node:
            self.error(path, _("missing “value”"))
            return
        if tag.value_type == "boolean":
            if not isinstance(value, bool):
                self.error(vpath, _("the yes/no tag “%(code)s” takes true or false") % {"code": code})
            return
        if tag.value_type == "number":
            self.number(tag, op, value, vpath)
            return
        items = value if op in ("in", "not_in") else [value]
        if op in ("in", "not_in") and (not isinstance(value, list) or not value):
            self.error(vpath, _("expected a non-empty list of values"))
            return
        for i, item in enumerate(items):
            self.value_code(tag, item, join_path(vpath, f"[{i}]") if op in ("in", "not_in") else vpath)

    def value_code(self, tag: TagInfo, value, path: str) -> None:
        if not isinstance(value, str) or value not in tag.values:
            self.error(
                path,
                _("“%(value)s” is not a value of the tag “%(code)s” (%(values)s)")
                % {"value": value, "code": tag.code, "values": ", ".join(tag.values) or _("none defined")},
            )

    def number(self, tag: TagInfo, op: str, value, path: str) -> None:
        if op == "between":
            if not (isinstance(value, list) and len(value) == 2 and all(is_number(v) for v in value)):
                self.error(path, _("expected two numbers [low, high]"))
            elif value[0] > value[1]:
                self.error(path, _("the low end is greater than the high end"))
            return
        if op == "in" or (op == "eq" and isinstance(value, str)):
            items = value if op == "in" else [value]
            if not isinstance(items, list) or not items:
                self.error(path, _("expected a non-empty list of bucket codes"))
                return
            for i, item in enumerate(items):
                self.value_code(tag, item, join_path(path, f"[{i}]") if op == "in" else path)
            return
        if not is_number(value):
            self.error(path, _("expected a number, got %(got)r") % {"got": value})


def validate(expression, tags: dict[str, TagInfo]) -> dict:
    """The normalised expression if it is valid against ``tags`` (code → :class:`TagInfo`,
    the brand's published tags); else a
    :class:`~tagportal.rules.definitions.RuleValidationError` listing every problem."""
    if isinstance(expression, str):
        expression = parse_text(expression)
    expression = normalise(expression)
    validator = _Validator(tags)
    validator.node(expression, "", 0)
    if not validator.errors and count_conditions(expression) > MAX_CONDITIONS:
        validator.error("", _("at most %(n)s conditions") % {"n": MAX_CONDITIONS})
    if validator.errors:
        raise invalid(validator.errors)
    return expression


def brand_tags(brand, codes: Iterable[str] | None = None) -> dict[str, TagInfo]:
    """The brand's published (and deprecated: still computed) tags as :class:`TagInfo`."""
    from tagportal.catalog.choices import TagStatus
    from tagportal.catalog.models import Tag

    tags = Tag.objects.filter(brand=brand, status__in=[TagStatus.PUBLISHED, TagStatus.DEPRECATED])
    if codes is not None:
        tags = tags.filter(code__in=list(codes))
    out = {}
    for pk, code, name, value_type, values, version in tags.values_list(
        "pk", "code", "name", "value_type", "values", "published_version"
    ):
        out[code] = TagInfo(pk, code, name, value_type, value_codes(value_type, values), version)
    return out


def value_codes(value_type: str, values) -> tuple:
    if value_type == "boolean":
        return ()
    codes = []
    for item in values or ():
        if isinstance(item, dict) and item.get("code") is not None:
            codes.append(str(item["code"]))
        elif isinstance(item, str):
            codes.append(item)
    return tuple(codes)
