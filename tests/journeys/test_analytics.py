"""The journey's numbers: Wilson and Newcombe intervals against published values, the
uplift of a journey from its instances, people per node, paths and variants."""

from __future__ import annotations

import math

import pytest
from django.utils import timezone

from tagportal.journeys import analytics
from tagportal.journeys.models import Conversion, InstanceStep, JourneyInstance

from .portal_helpers import live


@pytest.mark.parametrize(
    "x1, n1, x2, n2, low, high",
    [
        # Newcombe (1998), Statistics in Medicine 17:873, table II, method 10
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (6, 7, 2, 7, 0.0582, 0.8062),
        (5, 56, 0, 29, -0.0381, 0.1926),
    ],
)
def test_newcombe_interval_matches_the_paper(x1, n1, x2, n2, low, high):
    u = analytics.uplift(n1, x1, n2, x2)
    assert math.isclose(u.difference, x1 / n1 - x2 / n2)
    assert round(u.low, 4) == pytest.approx(low, abs=1e-4)
    assert round(u.high, 4) == pytest.approx(high, abs=1e-4)


def test_wilson_interval_stays_inside_zero_and_one():
    assert analytics.wilson(0, 10)[0] == 0.0
    assert analytics.wilson(10, 10)[1] == pytest.approx(1.0)
    low, high = analytics.wilson(81, 263)  # Wilson (1927) style example: 0.308 ± …
    assert 0.25 < low < 0.308 < high < 0.37


def test_significance_needs_the_interval_to_leave_out_zero():
    assert analytics.uplift(1000, 200, 1000, 100).significant
    assert not analytics.uplift(20, 3, 20, 2).significant
    assert analytics.uplift(100, 0, 0, 0).difference is None


def _people(journey, rows):
    now = timezone.now()
    made = []
    for oneid, group, node, state, path in rows:
        made.append(
            JourneyInstance.objects.create(
                journey=journey,
                version=journey.live_version,
                brand=journey.brand,
                oneid=oneid,
                node=node,
                state=state,
                group=group,
                path=path,
                entered_at=now,
            )
        )
    return made


def test_journey_uplift_counts_people_once(world):
    journey = live(world)
    people = _people(
        journey,
        [
            (1, "treatment", "n3", "converted", ["n1", "n2", "n3"]),
            (2, "treatment", "n3", "done", ["n1", "n2", "n3"]),
            (3, "holdout", "n3", "done", ["n1", "n3"]),
            (4, "holdout", "n3", "converted", ["n1", "n3"]),
            (5, "", "n2", "waiting", ["n1", "n2"]),
        ],
    )
    now = timezone.now()
    Conversion.objects.create(
        instance=people[0], journey=journey, at=now, kind="order", source_id=1, amount=99
    )
    Conversion.objects.create(instance=people[3], journey=journey, at=now, kind="event", source_id=2)
    u = analytics.journey_uplift(journey)
    assert (u.treated, u.treated_converted, u.held_out, u.held_out_converted) == (2, 1, 2, 1)
    assert u.difference == 0
    money = analytics.conversions(journey)
    assert (money["n"], money["revenue"], money["people"], money["converted_people"]) == (2, 99, 5, 2)


def test_no_holdout_no_uplift(world):
    journey = live(world)
    _people(journey, [(1, "", "n2", "waiting", ["n1", "n2"])])
    assert analytics.journey_uplift(journey) is None


def test_node_counts_and_paths(world):
    journey = live(world)
    people = _people(
        journey,
        [
            (1, "", "n2", "waiting", ["n1", "n2"]),
            (2, "", "n3", "exited", ["n1", "n2", "n3"]),
            (3, "", "n3", "done", ["n1", "n2"]),  # the path without its last node
        ],
    )
    now = timezone.now()
    for person in people:
        InstanceStep.objects.create(instance=person, node="n1", outcome="entered", at=now)
    InstanceStep.objects.create(instance=people[1], node="n2", outcome="sent", at=now)
    counts = analytics.node_counts(journey)
    assert counts["n1"] == {"waiting": 0, "passed": 3, "sent": 0, "converted": 0}
    assert counts["n2"] == {"waiting": 1, "passed": 1, "sent": 1, "converted": 0}
    links = analytics.path_links(journey)
    assert links[("n1", "n2")] == 3
    assert links[("n2", "n3")] == 2
    assert links[("n3", "state:exited")] == 1 and links[("n3", "state:done")] == 1


def test_variant_rows_read_the_variants_module(world, monkeypatch):
    from tagportal.journeys import variants

    journey = live(world)
    graph = {
        "nodes": [
            {
                "id": "s",
                "type": "send",
                "config": {"variants": [{"key": "A"}, {"key": "B"}], "learning": "thompson"},
            },
            {"id": "t", "type": "send", "config": {}},
        ]
    }
    monkeypatch.setattr(
        variants,
        "stats",
        lambda j, node: {"A": {"sent": 10, "clicked": 2}, "B": {"sent": 10, "clicked": 5}},
        raising=False,
    )
    monkeypatch.delattr(variants, "decision", raising=False)
    rows = analytics.variant_rows(journey, graph)
    assert [block["node"] for block in rows] == ["s"]
    assert [(r["key"], r["sent"], r["clicked"]) for r in rows[0]["rows"]] == [("A", 10, 2), ("B", 10, 5)]
    assert rows[0]["learning"] == "thompson"


def test_a_journey_without_messages_has_no_sends(world):
    assert analytics.sends(live(world)) == []
