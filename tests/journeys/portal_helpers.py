"""Journeys made through the lifecycle services, for the page, API and lifecycle tests."""

from __future__ import annotations

from tagportal.journeys import lifecycle
from tagportal.journeys.choices import VersionState


def simple_graph(event: str = "store_visit", minutes: int = 60) -> dict:
    """entry (an event) → wait → exit."""
    return {
        "nodes": [
            {"id": "n1", "type": "entry", "x": 40, "y": 40, "config": {"trigger": "event", "event": event}},
            {
                "id": "n2",
                "type": "wait",
                "x": 40,
                "y": 160,
                "config": {"mode": "duration", "minutes": minutes},
            },
            {"id": "n3", "type": "exit", "x": 40, "y": 280, "config": {}},
        ],
        "edges": [{"from": "n1", "to": "n2", "port": "next"}, {"from": "n2", "to": "n3", "port": "next"}],
        "goal": None,
    }


def draft(world, name: str = "复购召回", brand=None):
    return lifecycle.create(world.operator, brand or world.own_brand, name, simple_graph())


def live(world, name: str = "复购召回"):
    """A journey proposed by the operator and approved by the steward."""
    journey = draft(world, name)
    version = lifecycle.submit(world.operator, journey)
    lifecycle.approve(world.steward, version)
    journey.refresh_from_db()
    assert journey.live_version.state == VersionState.APPROVED
    return journey
