"""The rule language described as data, for forms that build rule documents: the
definition types, aggregations, picks, operators and windows of :mod:`.definitions`
and the attributes, sources, fields, event types and channels of the registered
:mod:`.vocabulary`, each with a label. It is made from the same tuples the validator
checks against, so an editor built on it offers what the validator accepts.

>>> described = describe("number", vocabulary.Vocabulary(attributes={"age": "number"}))
>>> [t["code"] for t in described["types"]], described["attributes"]
(['attribute', 'metric', 'manual'], [{'name': 'age', 'type': 'number', 'label': 'age (age)'}])
"""

from __future__ import annotations

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from . import vocabulary
from .definitions import AGGREGATIONS, ALL_OPS, DEFINITION_TYPES, NUMBER_OPS, PICKS, PRODUCES, STRING_OPS

#: The pseudo-type of the editor: a condition (yes/no tags) or cases (enum tags) that
#: read other tags only; stored as a ``condition`` or ``cases`` document.
COMPOSITE = "composite"
#: The order an editor offers the types in.
EDITOR_TYPES = ("attribute", "metric", "bucket", "cases", "condition", "preference", COMPOSITE, "manual")
#: Lengths of ``last_days`` windows offered first.
WINDOW_PRESETS = (1, 7, 30, 90, 180, 365)

TYPE_LABELS = {
    "attribute": gettext_lazy("Profile attribute"),
    "metric": gettext_lazy("Metric (a number)"),
    "bucket": gettext_lazy("Buckets of a metric"),
    "cases": gettext_lazy("Cases (first match wins)"),
    "condition": gettext_lazy("Condition (yes/no)"),
    "preference": gettext_lazy("Preference (most frequent, first or last value)"),
    COMPOSITE: gettext_lazy("Composite (reads other tags)"),
    "manual": gettext_lazy("Manual (values from uploaded lists)"),
}
AGGREGATION_LABELS = {
    "count": gettext_lazy("count of records"),
    "count_distinct": gettext_lazy("count of distinct values"),
    "sum": gettext_lazy("sum"),
    "avg": gettext_lazy("average"),
    "min": gettext_lazy("minimum"),
    "max": gettext_lazy("maximum"),
}
PICK_LABELS = {
    "most_frequent": gettext_lazy("most frequent value"),
    "first": gettext_lazy("first value"),
    "last": gettext_lazy("last value"),
}
OPERATOR_LABELS = {
    "eq": gettext_lazy("equals (=)"),
    "ne": gettext_lazy("is not (≠)"),
    "gt": gettext_lazy("greater than (>)"),
    "gte": gettext_lazy("at least (≥)"),
    "lt": gettext_lazy("less than (<)"),
    "lte": gettext_lazy("at most (≤)"),
    "between": gettext_lazy("between"),
    "in": gettext_lazy("is any of"),
    "not_in": gettext_lazy("is none of"),
    "is_set": gettext_lazy("has a value"),
    "contains": gettext_lazy("contains"),
}
#: What each operator compares with: one value, two numbers, a list, a yes/no, a text.
OPERATOR_OPERANDS = {
    "eq": "one", "ne": "one", "gt": "number", "gte": "number", "lt": "number", "lte": "number",
    "between": "two", "in": "list", "not_in": "list", "is_set": "flag", "contains": "text",
}  # fmt: skip
SOURCE_LABELS = {"events": gettext_lazy("behaviour events"), "orders": gettext_lazy("orders")}
NAME_LABELS = {
    # profile attributes
    "gender": gettext_lazy("gender"),
    "age": gettext_lazy("age"),
    "birth_month": gettext_lazy("birth month"),
    "province": gettext_lazy("province"),
    "city": gettext_lazy("city"),
    "member_level": gettext_lazy("member level"),
    "points": gettext_lazy("points"),
    "registered_days": gettext_lazy("days since registration"),
    "source_channel": gettext_lazy("source channel"),
    "skin_type": gettext_lazy("skin type"),
    "wecom_added": gettext_lazy("added on WeCom"),
    # event and order fields
    "type": gettext_lazy("event type"),
    "channel": gettext_lazy("channel"),
    "store": gettext_lazy("store"),
    "value": gettext_lazy("value"),
    "amount": gettext_lazy("amount"),
    "quantity": gettext_lazy("quantity"),
    "category": gettext_lazy("product category"),
    "sku": gettext_lazy("SKU"),
    "discount": gettext_lazy("discount"),
}
EVENT_TYPE_LABELS = {
    "page_view": gettext_lazy("page view"),
    "product_view": gettext_lazy("product view"),
    "search": gettext_lazy("search"),
    "add_to_cart": gettext_lazy("add to cart"),
    "purchase": gettext_lazy("purchase"),
    "refund": gettext_lazy("refund"),
    "store_visit": gettext_lazy("store visit"),
    "consultation": gettext_lazy("consultation"),
    "appointment": gettext_lazy("appointment"),
    "treatment": gettext_lazy("treatment"),
    "follow_up": gettext_lazy("follow-up"),
    "coupon_received": gettext_lazy("coupon received"),
    "coupon_used": gettext_lazy("coupon used"),
    "sample_request": gettext_lazy("sample request"),
    "check_in": gettext_lazy("check-in"),
    "sign_in": gettext_lazy("daily sign-in"),
    "wecom_add": gettext_lazy("added on WeCom (event)"),
    "wecom_chat": gettext_lazy("WeCom chat"),
    "wecom_delete": gettext_lazy("deleted on WeCom"),
    "live_view": gettext_lazy("live stream view"),
    "content_view": gettext_lazy("content view"),
    "content_like": gettext_lazy("content like"),
    "content_share": gettext_lazy("content share"),
    "review": gettext_lazy("product review"),
    "survey": gettext_lazy("survey"),
    "subscribe": gettext_lazy("subscribe"),
    "unsubscribe": gettext_lazy("unsubscribe"),
    "member_join": gettext_lazy("member join"),
    "points_redeem": gettext_lazy("points redeemed"),
    "complaint": gettext_lazy("complaint"),
}
CHANNEL_LABELS = {
    "wechat_oa": gettext_lazy("WeChat official account"),
    "wecom": gettext_lazy("WeCom"),
    "miniprogram": gettext_lazy("mini program"),
    "wechat_channels": gettext_lazy("WeChat Channels"),
    "douyin": gettext_lazy("Douyin"),
    "xiaohongshu": gettext_lazy("Xiaohongshu"),
    "jd": gettext_lazy("JD"),
    "tmall": gettext_lazy("Tmall"),
    "store": gettext_lazy("store"),
    "crm": gettext_lazy("CRM"),
    "app": gettext_lazy("app"),
    "web": gettext_lazy("website"),
    "sms": gettext_lazy("SMS"),
    "call_center": gettext_lazy("call centre"),
}
VALUE_TYPE_LABELS = {
    vocabulary.NUMBER: gettext_lazy("number"),
    vocabulary.STRING: gettext_lazy("text"),
    vocabulary.DATE: gettext_lazy("date"),
    vocabulary.ANY: gettext_lazy("any"),
}


def _label(name: str) -> str:
    label = NAME_LABELS.get(name)
    return f"{label} ({name})" if label else name


def _labelled(code: str, labels) -> str:
    label = labels.get(code)
    return f"{label} ({code})" if label else code


def types_for(value_type: str | None) -> list[str]:
    """The editor types that can produce ``value_type`` values (all without one)."""
    out = []
    for code in EDITOR_TYPES:
        produces = PRODUCES["condition"] | PRODUCES["cases"] if code == COMPOSITE else PRODUCES[code]
        if not value_type or value_type in produces:
            out.append(code)
    return out


def describe(value_type: str | None = None, vocab: vocabulary.Vocabulary | None = None) -> dict:
    """The language as plain data (labels in the active language), with the registered
    vocabulary unless ``vocab`` is given."""
    current = vocab or vocabulary.current()
    assert set(EDITOR_TYPES) - {COMPOSITE} == set(DEFINITION_TYPES)
    return {
        "types": [
            {"code": code, "label": str(TYPE_LABELS[code]), "document": code if code != COMPOSITE else None}
            for code in types_for(value_type)
        ],
        "aggregations": [
            {
                "code": agg,
                "label": str(AGGREGATION_LABELS[agg]),
                "field": "none"
                if agg == "count"
                else "number"
                if agg in ("sum", "avg", "min", "max")
                else "any",
            }
            for agg in AGGREGATIONS
        ],
        "picks": [{"code": pick, "label": str(PICK_LABELS[pick])} for pick in PICKS],
        "days_since": [
            {"code": "first", "label": _("days since the first record")},
            {"code": "last", "label": _("days since the last record")},
        ],
        "operators": [
            {"code": op, "label": str(OPERATOR_LABELS[op]), "operand": OPERATOR_OPERANDS[op]}
            for op in ALL_OPS
        ],
        "number_ops": list(NUMBER_OPS),
        "string_ops": list(STRING_OPS),
        "attributes": [
            {"name": name, "type": kind, "label": _label(name)} for name, kind in current.attributes.items()
        ],
        "sources": [
            {
                "name": source,
                "label": str(SOURCE_LABELS.get(source, source)),
                "fields": [
                    {"name": name, "type": kind, "label": _label(name)} for name, kind in fields.items()
                ],
            }
            for source, fields in current.sources.items()
        ],
        "value_types": {kind: str(label) for kind, label in VALUE_TYPE_LABELS.items()},
        "event_types": [
            {"code": code, "label": _labelled(code, EVENT_TYPE_LABELS)}
            for code in sorted(current.event_types())
        ],
        "channels": [{"code": code, "label": _labelled(code, CHANNEL_LABELS)} for code in current.channels],
        "window_presets": list(WINDOW_PRESETS),
    }
