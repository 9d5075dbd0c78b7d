"""Merge suggestions: duplicates by definition, by name (Chinese, pinyin, English) and
by members, within a brand only, with the tag to keep and a fingerprint."""

from __future__ import annotations

import pytest

from tagportal.governance.reports import build, merge
from tagportal.usage.choices import UsageKind

from .conftest import metric_def
from .test_reports import compute, days_before_end, make_tag, scope, use

#: Ordered more than once, in a first-tier city.
RULE = {
    "type": "condition",
    "condition": {
        "all": [
            {
                "metric": {"agg": "count", "source": "orders", "window": {"last_days": 30}},
                "op": "gte",
                "value": 2,
            },
            {"attribute": "city_level", "op": "in", "value": ["一线", "新一线"]},
        ]
    },
}
#: The same rule written another way: keys, AND children and IN values reordered,
#: an operator in capitals with spaces, 2 written 2.0.
RULE_REORDERED = {
    "condition": {
        "all": [
            {"value": ["新一线", "一线"], "op": " IN ", "attribute": "city_level"},
            {
                "op": "GTE",
                "value": 2.0,
                "metric": {"window": {"last_days": 30}, "source": "orders", "agg": "count"},
            },
        ]
    },
    "type": "condition",
}


def rule(days: int) -> dict:
    """A yes/no rule of its own (ordered in the last ``days`` days)."""
    return {
        "type": "condition",
        "condition": {
            "metric": {"agg": "count", "source": "orders", "window": {"last_days": days}},
            "op": "gte",
            "value": 1,
        },
    }


def enum_tag(brand, category, suffix, name, values, days):
    return make_tag(
        brand,
        category,
        suffix,
        name=name,
        value_type="enum",
        values=[{"code": v} for v in values],
        definition={
            "type": "preference",
            "pick": "most_frequent",
            "source": "events",
            "field": "channel",
            "window": {"last_days": days},
        },
    )


@pytest.fixture
def dupes(world):
    w = world
    b, c = w.own_brand, w.category
    # by definition (one deprecated: it is merged into the published one)
    w.d1 = make_tag(b, c, "d1", name="一线城市常购客", definition=RULE)
    w.d2 = make_tag(b, c, "d2", name="高频下单用户", definition=RULE_REORDERED, status="deprecated")
    use(w.d2, days_before_end(3), 100)  # more used, but not published
    w.d_other = make_tag(w.other_brand, c, "d1", name="一线城市常购客", definition=RULE)  # another brand
    w.d3 = make_tag(b, c, "d3", name="沉睡老客", definition=RULE, status="deprecated")  # two non-published
    w.d4 = make_tag(b, c, "d4", name="流失预警", definition=RULE, status="in_review")
    w.m1 = make_tag(b, c, "m1", name="手工名单甲", definition={"type": "manual"})
    w.m2 = make_tag(b, c, "m2", name="人工圈选乙", definition={"type": "manual"})  # manual: never the same
    # by name
    w.n1 = make_tag(b, c, "n1", name="高消费会员", value_type="number", definition=metric_def(30))
    w.n2 = make_tag(b, c, "n2", name="高消费 会员", value_type="number", definition=metric_def(60))
    use(w.n2, days_before_end(3), 5, UsageKind.AUDIENCE)
    w.p1 = make_tag(b, c, "p1", name="复购会员", definition=rule(11))
    w.p2 = make_tag(b, c, "p2", name="复够会员", definition=rule(12))  # a homophone typo
    w.e1 = make_tag(b, c, "e1", name="母婴人群", name_en="Mother & baby shoppers", definition=rule(13))
    w.e2 = make_tag(b, c, "e2", name="宝妈客群", name_en="mother and baby shoppers", definition=rule(14))
    w.t30 = make_tag(b, c, "t30", name="近30天消费人群", definition=rule(15))
    w.t90 = make_tag(b, c, "t90", name="近90天消费人群", definition=rule(16))  # numbers differ
    # by members
    w.o1 = make_tag(b, c, "o1", name="夜猫子用户", definition=rule(17))
    w.o2 = make_tag(b, c, "o2", name="深夜活跃人群", definition=rule(18))
    compute(w.o1, bitmaps={"true": range(0, 1000), "false": range(1000, 2000)})
    compute(w.o2, bitmaps={"true": range(5, 1000), "false": range(1000, 2000)})
    w.o3 = make_tag(b, c, "o3", name="白天活跃人群", definition=rule(19))
    compute(w.o3, bitmaps={"true": range(0, 900), "false": range(900, 2000)})  # too small
    w.v1 = enum_tag(b, c, "v1", "偏好渠道", ["online", "offline"], 20)
    w.v2 = enum_tag(b, c, "v2", "常用购买途径", ["web", "store"], 21)
    w.v3 = enum_tag(b, c, "v3", "尾号奇偶", ["even", "odd"], 22)
    compute(w.v1, bitmaps={"online": range(0, 500), "offline": range(500, 1000)})
    compute(w.v2, bitmaps={"web": range(0, 500), "store": range(500, 990)})
    compute(w.v3, bitmaps={"even": range(0, 1000, 2), "odd": range(1, 1000, 2)})  # same people, other split
    w.report = build("merge", scope(brand=b))
    w.pairs = {(row["a"]["tag"], row["b"]["tag"]): row for row in w.report["rows"]}
    return w


def pair(w, x, y) -> dict | None:
    return w.pairs.get((min(x.pk, y.pk), max(x.pk, y.pk)))


def test_same_definition_written_differently_is_a_pair(dupes):
    row = pair(dupes, dupes.d1, dupes.d2)
    digest = merge.definition_hash(RULE)
    assert row["evidence"] == [{"kind": "definition", "hash": digest}]
    assert row["score"] == 1.0
    assert row["target"] == dupes.d1.pk  # the published one, though the other is used more
    assert merge.normalise_definition(RULE) == merge.normalise_definition(RULE_REORDERED)
    assert merge.definition_hash(RULE_REORDERED) == digest and len(digest) == 40
    assert pair(dupes, dupes.d1, dupes.d4)["target"] == dupes.d1.pk  # in review pairs with published


def test_what_definitions_never_pair(dupes):
    w = dupes
    assert pair(w, w.d2, w.d3) is None  # neither is published
    assert pair(w, w.m1, w.m2) is None  # manual lists are not the same tag
    ids = {tag for row in w.report["rows"] for tag in (row["a"]["tag"], row["b"]["tag"])}
    assert w.d_other.pk not in ids  # the other brand's copy is no duplicate
    other = build("merge", scope(business_line=w.other_line))
    assert other["rows"] == [] and other["meta"]["pairs"] == 0


def test_normalised_definitions_still_tell_rules_apart():
    assert merge.normalise_definition({}) == merge.normalise_definition(None) == ""
    assert merge.normalise_definition(rule(30)) != merge.normalise_definition(rule(31))
    any_rule = {"type": "condition", "condition": {"any": RULE["condition"]["all"]}}
    assert merge.normalise_definition(any_rule) != merge.normalise_definition(RULE)
    nested = {
        "type": "condition",
        "condition": {"all": [RULE["condition"]["all"][0], {"all": [RULE["condition"]["all"][1]]}]},
    }
    assert merge.normalise_definition(nested) == merge.normalise_definition(RULE)
    between = {"type": "condition", "condition": {"attribute": "age", "op": "between", "value": [18, 30]}}
    swapped = {"type": "condition", "condition": {"attribute": "age", "op": "between", "value": [30, 18]}}
    assert merge.normalise_definition(between) != merge.normalise_definition(swapped)  # not a set


def test_near_identical_names_pair(dupes):
    w = dupes
    row = pair(w, w.n1, w.n2)
    assert row["evidence"] == [{"kind": "name", "field": "name", "score": 100.0}]
    assert row["score"] == 1.0
    assert row["target"] == w.n2.pk  # both published: the one used more
    homophones = pair(w, w.p1, w.p2)
    assert [(e["field"], e["score"]) for e in homophones["evidence"]] == [("pinyin", 100.0)]
    assert homophones["target"] == w.p1.pk  # unused both: the older one
    english = pair(w, w.e1, w.e2)
    assert [e["field"] for e in english["evidence"]] == ["name_en"]
    assert 90 <= english["evidence"][0]["score"] < 100
    assert pair(w, w.t30, w.t90) is None  # 近30天 is not 近90天


def test_overlapping_members_pair(dupes):
    w = dupes
    row = pair(w, w.o1, w.o2)
    assert row["evidence"] == [
        {"kind": "overlap", "jaccard": 0.995, "intersection": 995, "a_size": 1000, "b_size": 995}
    ]
    assert row["score"] == 0.995
    assert pair(w, w.o1, w.o3) is None and pair(w, w.o2, w.o3) is None  # 900 of 1000
    enums = pair(w, w.v1, w.v2)
    assert enums["evidence"] == [
        {
            "kind": "overlap",
            "jaccard": 0.99,
            "intersection": 990,
            "a_size": 1000,
            "b_size": 990,
            "agreement": 0.99,
        }
    ]
    # the same people split another way is no duplicate
    assert pair(w, w.v1, w.v3) is None and pair(w, w.v2, w.v3) is None


def test_rows_fingerprints_order_and_meta(dupes):
    w = dupes
    rows = w.report["rows"]
    keys = [(-row["score"], row["a"]["tag"], row["b"]["tag"]) for row in rows]
    assert keys == sorted(keys)
    assert all(row["a"]["tag"] < row["b"]["tag"] for row in rows)
    assert w.report["meta"]["pairs"] == len(rows) == 8  # d1 with d2, d3, d4; n, p, e, o, v
    assert w.report["meta"]["thresholds"]["name"] == 90
    row = pair(w, w.d1, w.d2)
    assert row["fingerprint"] == {
        str(w.d1.pk): {"version": 1, "status": "published", "definition": merge.definition_hash(RULE)},
        str(w.d2.pk): merge.fingerprint(w.d2),
    }
    w.d2.definition = rule(99)
    assert merge.fingerprint(w.d2) != row["fingerprint"][str(w.d2.pk)]


def test_evidence_is_combined_in_one_row(world):
    w = world
    a = make_tag(w.own_brand, w.category, "a", name="高净值客户", definition=RULE)
    b = make_tag(w.own_brand, w.category, "b", name="高净值客户", definition=RULE_REORDERED)
    compute(a, bitmaps={"true": range(100)})
    compute(b, bitmaps={"true": range(100)})
    rows = build("merge", scope(brand=w.own_brand))["rows"]
    assert len(rows) == 1
    assert [e["kind"] for e in rows[0]["evidence"]] == ["definition", "name", "overlap"]
    assert rows[0]["evidence"][2]["jaccard"] == 1.0
