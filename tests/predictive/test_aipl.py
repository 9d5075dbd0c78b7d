"""AIPL stages: the rules and their windows in Beijing days, precedence, people without a
stage; the weekly stage flows (people conserved) and their Sankey."""

import datetime as dt
import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from django.utils import translation

from tagportal.core.days import BEIJING_ZONE
from tagportal.predictive.aipl import FLOW_COLUMNS, AiplConfig, sankey_figure, stage_flows, stages
from tagportal.predictive.choices import NO_STAGE, AiplStage

AS_OF = dt.date(2026, 3, 10)
RULES = AiplConfig(
    awareness_events=("page_view", "content_view"),
    awareness_days=7,
    interest_events=("add_to_cart",),
    interest_days=7,
    purchase_days=30,
    loyalty_days=90,
    loyalty_min_purchases=2,
    loyalty_events=("member_upgrade",),
)


def utc(text: str) -> pd.Timestamp:
    """A Beijing wall-clock time ("YYYY-MM-DD HH:MM") as a UTC moment."""
    return pd.Timestamp(text, tz=BEIJING_ZONE).tz_convert("UTC")


def events(*rows) -> pd.DataFrame:
    """Events from ``(oneid, Beijing time, type)``."""
    return pd.DataFrame(
        {
            "oneid": pd.Series([r[0] for r in rows], dtype="int64"),
            "time": pd.Series([utc(r[1]) for r in rows], dtype="datetime64[us, UTC]"),
            "type": pd.Series([r[2] for r in rows], dtype=object),
        }
    )


def orders(*rows) -> pd.DataFrame:
    """Orders from ``(oneid, Beijing time)``."""
    return pd.DataFrame(
        {
            "oneid": pd.Series([r[0] for r in rows], dtype="int64"),
            "time": pd.Series([utc(r[1]) for r in rows], dtype="datetime64[us, UTC]"),
            "amount": pd.Series([10.0] * len(rows), dtype="float64"),
        }
    )


def stage_dict(frames, config=RULES, as_of=AS_OF) -> dict[int, str]:
    return {oneid: str(stage) for oneid, stage in stages(frames, config, as_of).items()}


def test_the_highest_stage_reached_wins():
    frames = {
        "events": events(
            (1, "2026-03-09 10:00", "page_view"),
            (2, "2026-03-09 10:00", "page_view"),
            (2, "2026-03-09 11:00", "add_to_cart"),
            (3, "2026-03-09 10:00", "add_to_cart"),  # interest without awareness is interest
            (4, "2026-03-09 10:00", "page_view"),
            (6, "2026-01-20 10:00", "member_upgrade"),  # loyalty by member level, no purchase at all
            (7, "2026-03-09 10:00", "search"),  # a type no rule counts
        ),
        "orders": orders(
            (4, "2026-03-01 10:00"),  # purchase, and an exposure: purchase
            (5, "2026-01-01 10:00"),
            (5, "2026-02-01 10:00"),  # two purchase days, none in the last 30: loyalty
        ),
    }
    got = stages(frames, RULES, AS_OF)
    assert got.name == "aipl_stage" and got.index.name == "oneid" and got.index.tolist() == [1, 2, 3, 4, 5, 6]
    assert got.cat.ordered and list(got.cat.categories) == AiplStage.values
    assert stage_dict(frames) == {
        1: "awareness", 2: "interest", 3: "interest", 4: "purchase", 5: "loyalty", 6: "loyalty"
    }  # fmt: skip


def test_windows_are_beijing_days_ending_on_as_of():
    frames = {
        "events": events(
            (1, "2026-03-04 00:10", "page_view"),  # first day of a 7-day window ending 03-10: in
            (2, "2026-03-03 23:50", "page_view"),  # 15:50 UTC on 03-03, the day before: out
            (3, "2026-03-10 23:30", "content_view"),  # 15:30 UTC on 03-10: that Beijing day, in
            (4, "2026-03-11 00:30", "page_view"),  # 16:30 UTC on 03-10: the next Beijing day, out
        ),
        "orders": orders(
            (5, "2026-02-09 10:00"),  # 30-day window: 02-09 .. 03-10, in
            (6, "2026-02-08 23:59"),  # out of the purchase window, one order in the loyalty window
            (7, "2026-03-11 09:00"),  # after as_of
        ),
    }
    assert frames["events"]["time"].iloc[2] == pd.Timestamp("2026-03-10 15:30", tz="UTC")
    assert stage_dict(frames) == {1: "awareness", 3: "awareness", 5: "purchase"}
    # a moment as as_of counts by its Beijing date: 16:30 UTC on 03-10 is 03-11 in Beijing
    moment = dt.datetime(2026, 3, 10, 16, 30, tzinfo=dt.UTC)
    # (and the windows move with it: person 5's order of 02-09 leaves the 30-day window)
    assert stage_dict(frames, as_of=moment) == {3: "awareness", 4: "awareness", 7: "purchase"}


def test_repeat_purchases_count_distinct_beijing_days_in_the_loyalty_window():
    frames = {
        "orders": orders(
            (1, "2026-03-09 09:00"),
            (1, "2026-03-09 23:30"),  # two orders, one Beijing day
            (2, "2026-03-08 23:30"),
            (2, "2026-03-09 00:30"),  # an hour apart, two Beijing days
            (3, "2026-03-09 10:00"),
            (3, "2025-12-11 00:10"),  # first day of the 90-day window
            (4, "2026-03-09 10:00"),
            (4, "2025-12-10 23:50"),  # the day before it
        )
    }
    assert stage_dict(frames) == {1: "purchase", 2: "loyalty", 3: "loyalty", 4: "purchase"}
    three = AiplConfig(**{**RULES.to_dict(), "loyalty_min_purchases": 3})
    assert stage_dict(frames, three) == {1: "purchase", 2: "purchase", 3: "purchase", 4: "purchase"}
    # member level only: repeat purchases no longer make anyone loyal
    members_only = AiplConfig(**{**RULES.to_dict(), "loyalty_min_purchases": None})
    assert set(stage_dict(frames, members_only).values()) == {"purchase"}


def test_people_with_nothing_in_the_windows_have_no_stage():
    frames = {
        "events": events((1, "2025-01-01 10:00", "page_view"), (2, "2026-03-09 10:00", "search")),
        "orders": orders((3, "2025-01-01 10:00")),
        "profiles": pd.DataFrame({"oneid": [1, 2, 3, 4]}),
    }
    assert stages(frames, RULES, AS_OF).empty
    assert stages({}, RULES, AS_OF).empty
    assert stages({"events": None, "orders": None}, RULES, AS_OF).empty


def test_event_types_as_categories_or_arrow_strings_give_the_same_stages():
    base = events((1, "2026-03-09 10:00", "page_view"), (2, "2026-03-09 10:00", "add_to_cart"))
    expected = {1: "awareness", 2: "interest"}
    for dtype in ("category", "string[pyarrow]", object):
        assert stage_dict({"events": base.astype({"type": dtype})}) == expected


def test_stage_labels_in_chinese():
    with translation.override("zh-hans"):
        assert [str(label) for _, label in AiplStage.choices] == ["认知", "兴趣", "购买", "忠诚"]


def flows_example():
    frames = {
        "events": events(
            (1, "2026-03-02 10:00", "page_view"),  # week 1 awareness, then nothing
            (2, "2026-03-02 10:00", "page_view"),
            (2, "2026-03-09 10:00", "add_to_cart"),  # A → I
            (3, "2026-03-09 10:00", "page_view"),  # none → A
        ),
        "orders": orders((4, "2026-03-02 10:00"), (4, "2026-03-09 10:00")),  # P → L
    }
    return frames, [dt.date(2026, 3, 3), dt.date(2026, 3, 10)]


def test_stage_flows_by_hand():
    frames, weeks = flows_example()
    flows = stage_flows(frames, RULES, weeks)
    assert list(flows.columns) == list(FLOW_COLUMNS)
    assert flows.to_dict("records") == [
        {"from_week": "2026-03-03", "to_week": "2026-03-10", "from_stage": "none", "to_stage": "awareness", "people": 1},
        {"from_week": "2026-03-03", "to_week": "2026-03-10", "from_stage": "awareness", "to_stage": "none", "people": 1},
        {"from_week": "2026-03-03", "to_week": "2026-03-10", "from_stage": "awareness", "to_stage": "interest",
         "people": 1},
        {"from_week": "2026-03-03", "to_week": "2026-03-10", "from_stage": "purchase", "to_stage": "loyalty",
         "people": 1},
    ]  # fmt: skip
    json.dumps(flows.to_dict("records"))


def test_stage_flows_conserve_people():
    rng = np.random.default_rng(12)
    n_events, n_orders = 3000, 600
    start = pd.Timestamp("2026-01-01", tz=BEIJING_ZONE)
    types = np.array(["page_view", "content_view", "add_to_cart", "search", "member_upgrade"])
    frames = {
        "events": pd.DataFrame(
            {
                "oneid": rng.integers(1, 500, n_events),
                "time": (
                    start + pd.to_timedelta(rng.integers(0, 70 * 24 * 60, n_events), unit="min")
                ).tz_convert("UTC"),
                "type": pd.Categorical(types[rng.choice(5, n_events, p=[0.4, 0.3, 0.2, 0.09, 0.01])]),
            }
        ),
        "orders": pd.DataFrame(
            {
                "oneid": rng.integers(1, 500, n_orders),
                "time": (
                    start + pd.to_timedelta(rng.integers(0, 70 * 24 * 60, n_orders), unit="min")
                ).tz_convert("UTC"),
                "amount": 1.0,
            }
        ),
    }
    weeks = [dt.date(2026, 2, 1) + dt.timedelta(days=7 * k) for k in range(5)]
    flows = stage_flows(frames, RULES, weeks)
    assert (flows["people"] > 0).all()
    per_week = [stages(frames, RULES, week).value_counts() for week in weeks]
    counted = set().union(*(set(stages(frames, RULES, week).index) for week in weeks))
    for k, week in enumerate(weeks):
        iso = week.isoformat()
        out_of = flows[flows["from_week"] == iso].groupby("from_stage")["people"].sum()
        into = flows[flows["to_week"] == iso].groupby("to_stage")["people"].sum()
        expected = {stage: int(per_week[k].get(stage, 0)) for stage in AiplStage.values}
        expected[NO_STAGE] = len(counted) - int(per_week[k].sum())
        expected = {stage: people for stage, people in expected.items() if people}
        if k < len(weeks) - 1:
            assert out_of.to_dict() == expected
            assert out_of.sum() == len(counted)
        if k > 0:
            assert into.to_dict() == expected
    assert len(counted) > 100 and expected[NO_STAGE] > 0


@pytest.mark.parametrize(
    "weeks",
    [[dt.date(2026, 3, 3)], [], [dt.date(2026, 3, 10), dt.date(2026, 3, 3)], [dt.date(2026, 3, 3)] * 2],
)
def test_stage_flows_need_increasing_weeks(weeks):
    with pytest.raises(ValueError, match="week"):
        stage_flows({}, RULES, weeks)


def test_sankey_nodes_and_links():
    frames, weeks = flows_example()
    weeks = [dt.date(2026, 2, 24), *weeks]  # a first week where nobody has a stage: none → none is not drawn
    flows = stage_flows(frames, RULES, weeks)
    assert ((flows["from_stage"] == NO_STAGE) & (flows["to_stage"] == NO_STAGE)).any()
    with translation.override("zh-hans"):
        figure = sankey_figure(flows)
    assert isinstance(figure, go.Figure) and len(figure.data) == 1
    sankey = figure.data[0]
    assert isinstance(sankey, go.Sankey)
    nodes = list(zip(sankey.node.customdata, sankey.node.label, strict=True))
    assert nodes == [
        ("2026-02-24", "无阶段"),
        ("2026-03-03", "无阶段"), ("2026-03-03", "认知"), ("2026-03-03", "购买"),
        ("2026-03-10", "无阶段"), ("2026-03-10", "认知"), ("2026-03-10", "兴趣"), ("2026-03-10", "忠诚"),
    ]  # fmt: skip
    links = sorted(
        (nodes[s], nodes[t], v)
        for s, t, v in zip(sankey.link.source, sankey.link.target, sankey.link.value, strict=True)
    )
    assert links == sorted(
        [
            (("2026-02-24", "无阶段"), ("2026-03-03", "认知"), 2),
            (("2026-02-24", "无阶段"), ("2026-03-03", "购买"), 1),
            (("2026-03-03", "无阶段"), ("2026-03-10", "认知"), 1),
            (("2026-03-03", "认知"), ("2026-03-10", "无阶段"), 1),
            (("2026-03-03", "认知"), ("2026-03-10", "兴趣"), 1),
            (("2026-03-03", "购买"), ("2026-03-10", "忠诚"), 1),
        ]
    )
    assert [a.text for a in figure.layout.annotations] == ["2026-02-24", "2026-03-03", "2026-03-10"]
    # columns left to right by week
    xs = dict(zip(sankey.node.customdata, sankey.node.x, strict=False))
    assert xs["2026-02-24"] < xs["2026-03-03"] < xs["2026-03-10"]
    # English when English is active
    with translation.override("en"):
        assert sankey_figure(flows).data[0].node.label[0] == "No stage"


def test_sankey_of_no_flows_is_an_empty_figure():
    figure = sankey_figure(stage_flows({}, RULES, [dt.date(2026, 3, 3), dt.date(2026, 3, 10)]))
    assert list(figure.data[0].link.value) == [] and list(figure.data[0].node.label) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"awareness_days": 0}, "awareness_days"),
        ({"purchase_days": "30"}, "purchase_days"),
        ({"loyalty_min_purchases": 1}, "loyalty_min_purchases"),
        ({"interest_events": "add_to_cart"}, "interest_events"),
        ({"awareness_events": ["page_view", ""]}, "awareness_events"),
        ({"loyalty_min_purchases": None, "loyalty_events": []}, "loyalty needs a rule"),
        ({"loyalty_member_levels": "金卡"}, "loyalty_member_levels"),
        ({"member_level_attribute": ""}, "member_level_attribute"),
        ({"purchase_window": 30}, "unknown AIPL parameters: purchase_window"),
    ],
)
def test_bad_configurations_are_refused(params, message):
    with pytest.raises(ValueError, match=message):
        AiplConfig.from_dict(params)


def test_configuration_round_trips_through_json():
    assert AiplConfig.from_dict(json.loads(json.dumps(RULES.to_dict()))) == RULES


def test_a_member_level_counts_as_loyalty_at_every_date():
    """The profile's current level (no history) makes a person loyal, even without any
    dated activity; other levels and people without the attribute go by their activity."""
    config = AiplConfig.from_dict({**RULES.to_dict(), "loyalty_member_levels": ["金卡", "铂金卡"]})
    profiles = pd.DataFrame({"oneid": [1, 2, 3, 4], "member_level": ["金卡", "普卡", None, "铂金卡"]})
    frames = {
        "profiles": profiles,
        "events": events((2, "2026-03-09 10:00", "page_view"), (3, "2026-03-09 10:00", "add_to_cart")),
        "orders": orders(),
    }
    assert stage_dict(frames, config) == {1: "loyalty", 2: "awareness", 3: "interest", 4: "loyalty"}
    assert stage_dict(frames) == {2: "awareness", 3: "interest"}  # no member-level rule
    flows = stage_flows(frames, config, [AS_OF - dt.timedelta(days=14), AS_OF])
    stayed = flows[(flows.from_stage == "loyalty") & (flows.to_stage == "loyalty")]
    assert stayed["people"].sum() == 2
    only_levels = AiplConfig.from_dict(
        {"loyalty_min_purchases": None, "loyalty_member_levels": ["金卡"], "member_level_attribute": "tier"}
    )
    assert stages(
        {"profiles": profiles.rename(columns={"member_level": "tier"})}, only_levels, AS_OF
    ).to_dict() == {1: "loyalty"}
