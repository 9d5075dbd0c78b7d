"""The template packs' message-feedback tags (营销互动 / 触达反馈) computed on a few people
whose events are shaped as activation's feedback writes them."""

import datetime as dt

import pandas as pd
import pytest

from tagportal.activation.feedback import properties
from tagportal.catalog.templates import available_packs, resolve_references
from tagportal.engine.evaluate import TagSpec, evaluate_tags
from tagportal.profiles.loaders import flatten_properties

AS_OF = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.UTC)  # 10:00 in Beijing
JOURNEY = {"journey": 12, "version": 1, "node": "n3", "variant": "A"}


def days_ago(n: float) -> dt.datetime:
    return AS_OF - dt.timedelta(days=n)


def message(oneid, type_, when, topic=None, journey=True):
    context = {**JOURNEY, "topic": topic} if journey else {"topic": topic}
    return {
        "oneid": oneid,
        "time": when,
        "type": type_,
        "channel": "wecom",
        "properties": properties("wecom", 501, context),
    }


def visit(oneid, when):
    return {"oneid": oneid, "time": when, "type": "store_visit", "channel": "store", "properties": {}}


EVENTS = [
    # 1: three journey messages in 30 days (one more 40 days ago), a visit 2 days ago
    message(1, "message_sent", days_ago(3)),
    message(1, "message_sent", days_ago(12)),
    message(1, "message_sent", days_ago(25)),
    message(1, "message_sent", days_ago(40)),
    message(1, "message_clicked", days_ago(3), "新品上市"),
    message(1, "message_clicked", days_ago(12), "新品"),
    message(1, "message_clicked", days_ago(25), "促销优惠"),
    visit(1, days_ago(2)),
    # 2: a mass send (no journey) 2 days ago and a visit: not recalled
    message(2, "message_sent", days_ago(2), journey=False),
    message(2, "message_clicked", days_ago(2), "护肤知识", journey=False),
    visit(2, days_ago(1)),
    # 3: recalled 10 days ago (outside the 7 days), visited today
    message(3, "message_sent", days_ago(10)),
    visit(3, days_ago(0.1)),
    # 4: recalled yesterday, no visit; clicked a topic nobody maps
    message(4, "message_sent", days_ago(1)),
    message(4, "message_clicked", days_ago(1), "别的主题"),
    # 5: only a visit
    visit(5, days_ago(1)),
]


def reach_specs(pack) -> dict[str, TagSpec]:
    codes = {t["name"]: f"demo_{t['category'].split('/')[-1]}_{t['name']}" for t in pack.tags}
    return {
        t["name"]: TagSpec(
            codes[t["name"]], t["value_type"], resolve_references(t["definition"], codes), t.get("values")
        )
        for t in pack.ordered_tags()
        if t["category"] == "marketing/reach"
    }


@pytest.mark.parametrize("key", sorted(available_packs()))
def test_feedback_tags_of_the_pack(key):
    specs = reach_specs(available_packs()[key])
    assert set(specs) == {
        "touches_30d",
        "clicks_30d",
        "recalled_7d",
        "recalled_and_visited_7d",
        "content_preference",
    }
    events = flatten_properties(pd.DataFrame(EVENTS))
    result = evaluate_tags(list(specs.values()), None, events, None, AS_OF)
    assert result.errors == {}

    def values(name):
        return result.values[specs[name].code].to_dict()

    assert values("touches_30d") == {1: 3.0, 2: 1.0, 3: 1.0, 4: 1.0, 5: 0.0}
    assert values("clicks_30d") == {1: 3.0, 2: 1.0, 3: 0.0, 4: 1.0, 5: 0.0}
    assert values("recalled_7d") == {1: True, 2: False, 3: False, 4: True, 5: False}
    assert values("recalled_and_visited_7d") == {1: True, 2: False, 3: False, 4: False, 5: False}
    preference = {k: (None if pd.isna(v) else v) for k, v in values("content_preference").items()}
    expected_2 = "knowledge" if key == "beauty" else None  # 护肤知识: the beauty pack's know-how
    assert preference == {1: "new_product", 2: expected_2, 3: None, 4: None, 5: None}
