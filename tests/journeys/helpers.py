"""Journeys built straight in the database (the lifecycle pages are elsewhere), people
with a profile, and graph builders."""

from __future__ import annotations

import datetime as dt
import itertools

from tagportal.catalog.services import publish_tag
from tagportal.journeys import services
from tagportal.journeys.graph import Graph
from tagportal.journeys.models import ContactPolicy, Journey, JourneyVersion
from tagportal.profiles.models import Customer
from tests.factories import TagFactory

#: Monday 2 March 2026, 10:00 in Beijing (02:00 UTC): outside the quiet hours.
T0 = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)
_names = itertools.count(1)


def make_journey(brand, graph: dict, *, status="live", owner=None, name=None) -> Journey:
    journey = Journey.objects.create(
        brand=brand, name=name or f"旅程{next(_names)}", owner=owner, status=status
    )
    version = JourneyVersion.objects.create(journey=journey, number=1, graph=graph, state="approved")
    journey.live_version = version
    journey.save(update_fields=["live_version"])
    return journey


def live(journey: Journey) -> services.Live:
    journey.refresh_from_db()
    return services.Live(journey, journey.live_version, Graph(journey.live_version.graph))


def enter(journey: Journey, oneids, now=T0) -> int:
    return services.enter(live(journey), oneids, now=now)


def customers(brand, oneids) -> None:
    Customer.objects.bulk_create([Customer(brand=brand, oneid=o) for o in oneids], ignore_conflicts=True)


def chain(*nodes, goal=None, edges=()) -> dict:
    """A graph of ``(id, type, config)`` nodes joined in order by their ``next`` port
    (plus ``edges``: ``(from, port, to)``)."""
    out = {
        "nodes": [{"id": nid, "type": kind, "config": config} for nid, kind, config in nodes],
        "edges": [],
        "goal": goal,
    }
    for (a, kind, config), (b, _kind, _config) in itertools.pairwise(nodes):
        if kind in ("entry", "send", "sync_tag", "set_tag") or (
            kind == "wait" and config.get("mode") != "event"
        ):
            out["edges"].append({"from": a, "to": b, "port": "next"})
    out["edges"] += [{"from": a, "to": b, "port": port} for a, port, b in edges]
    return out


def entry(trigger="event", **config) -> tuple:
    return ("in", "entry", {"trigger": trigger, "event": "signup", **config})


def send(nid, account, text="春季焕新", **extra) -> tuple:
    return (nid, "send", {"account": account.pk, "content": {"text": text}, **extra})


def no_quiet_hours(brand, **fields) -> ContactPolicy:
    policy, _ = ContactPolicy.objects.update_or_create(
        brand=brand, defaults={"quiet_start": dt.time(0, 0), "quiet_end": dt.time(0, 0), **fields}
    )
    return policy


def manual_tag(world, code: str, value_type="enum", values=None):
    tag = TagFactory(
        brand=world.own_brand,
        category=world.category,
        code=f"yimei_visit_{code}",
        name=code,
        kind="manual",
        value_type=value_type,
        values=values or [],
        definition={"type": "manual"},
    )
    publish_tag(tag)
    tag.refresh_from_db()
    return tag
