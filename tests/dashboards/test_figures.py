"""The figures as pure functions of a few hand-written rows."""

import pytest

from tagportal.dashboards import figures as fig

WEEKS = ["2026-03-09", "2026-03-16"]


def brief(pk, code, name="标签", category=1, **extra):
    return {"tag": pk, "code": code, "name": name, "category": category, **extra}


def test_activity_one_stacked_trace_per_line_in_the_given_order():
    rows = [
        {"week": WEEKS[0], "business_line": 1, "changed": 2, "created": 5},
        {"week": WEEKS[0], "business_line": 1, "changed": 1},  # another brand of the line
        {"week": WEEKS[1], "business_line": 2, "changed": 4},
        {"week": WEEKS[1], "business_line": 3, "changed": 9},  # not a line drawn
    ]
    figure = fig.activity(rows, WEEKS, {2: "食品饮料", 1: "医美"}, "changed")
    assert [t.type for t in figure.data] == ["bar", "bar"]
    assert [t.name for t in figure.data] == ["食品饮料", "医美"]
    assert list(figure.data[0].y) == [0, 4]
    assert list(figure.data[1].y) == [3, 0]
    assert list(figure.data[1].x) == WEEKS
    assert figure.layout.barmode == "stack"
    assert list(fig.activity(rows, WEEKS, {1: "医美"}, "created").data[0].y) == [5, 0]


def test_activity_refuses_an_unknown_measure():
    with pytest.raises(ValueError):
        fig.activity([], WEEKS, {}, "deleted")


def test_usage_heatmap_sums_weekly_uses_per_category():
    rows = [
        {**brief(1, "a", category=10), "weekly": [1, 2]},
        {**brief(2, "b", category=10), "weekly": [3, 4]},
        {**brief(3, "c", category=20), "weekly": [0, 7]},
    ]
    figure = fig.usage_heatmap(rows, WEEKS, {10: "行为 › 到店", 20: "基础属性"})
    (heatmap,) = figure.data
    assert heatmap.type == "heatmap"
    assert list(heatmap.y) == ["基础属性", "行为 › 到店"]
    assert [list(r) for r in heatmap.z] == [[0, 7], [4, 6]]
    assert list(heatmap.x) == WEEKS


def test_cold_ranking_orders_by_score_and_stacks_weighted_components():
    weights = {"usage": 0.4, "coverage": 0.2, "computation": 0.15, "lineage": 0.15, "cost": 0.1}
    rows = [
        {**brief(1, "low", "冷"), "cold": True, "score": 60, "components": {"usage": 1.0, "coverage": 1.0}},
        {
            **brief(2, "high", "更冷"),
            "cold": True,
            "score": 75,
            "components": {"usage": 1.0, "lineage": 1.0, "coverage": 1.0},
        },
        {**brief(3, "warm", "热"), "cold": False, "score": 10, "components": {"cost": 1.0}},
    ]
    figure = fig.cold_ranking(rows, weights, {2: ["没人用"]}, top=10)
    assert [t.legendgroup for t in figure.data] == list(fig.COMPONENTS)
    assert all(t.type == "bar" and t.orientation == "h" for t in figure.data)
    assert list(figure.data[0].y) == ["更冷 (high)", "冷 (low)"]
    by_component = {t.legendgroup: list(t.x) for t in figure.data}
    assert by_component["usage"] == [40.0, 40.0]
    assert by_component["lineage"] == [15.0, 0.0]
    assert by_component["cost"] == [0.0, 0.0]
    assert list(figure.data[0].customdata) == ["没人用", "—"]
    assert len(fig.cold_ranking(rows, weights, top=1).data[0].y) == 1


def test_same_labels_get_their_id():
    assert fig.unique_labels(["a", "a", "b"], [1, 2, 3]) == ["a #1", "a #2", "b"]


def test_histograms_and_the_drift_threshold():
    coverage = fig.coverage_histogram([0.0, 0.5, None, 1.0])
    assert coverage.data[0].type == "histogram"
    assert list(coverage.data[0].x) == [0.0, 0.5, 1.0]
    psi = fig.psi_histogram([0.01, 0.3], threshold=0.2)
    assert list(psi.data[0].x) == [0.01, 0.3]
    assert psi.layout.shapes[0].x0 == 0.2


def test_duplicate_scores_has_score_and_overlap_bars():
    pairs = [
        {
            "a": brief(1, "a"),
            "b": brief(2, "b"),
            "score": 0.9,
            "evidence": [{"kind": "overlap", "jaccard": 0.5}],
        },
        {"a": brief(3, "c"), "b": brief(4, "d"), "score": 0.7, "evidence": [{"kind": "definition"}]},
    ]
    figure = fig.duplicate_scores(pairs)
    assert [t.type for t in figure.data] == ["bar", "bar"]
    assert list(figure.data[0].x) == [0.9, 0.7]
    assert list(figure.data[1].x) == [0.5, None]
