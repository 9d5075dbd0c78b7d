"""The API contract (tests/api/contract.py) of the engine's read-only resources: each
tag's computation state and the history of runs, scoped like the tags."""

from __future__ import annotations

from django.utils import timezone

from tagportal.engine.models import TagComputation, TagRun

from ..api.contract import ReadContract, ReadOnlyContract, Resource, ScopedContract, once


class EngineResource(Resource, ReadContract, ScopedContract, ReadOnlyContract):
    def user(self, world):
        return world.operator


def _computation(tag) -> TagComputation:
    return TagComputation.objects.create(
        tag=tag, version=1, value_type=tag.value_type, last_calculated_at=timezone.now(), coverage=0.5
    )


class TestComputations(EngineResource):
    url = "/api/engine/computations/"
    model = TagComputation

    def permitted(self, world):
        return once(world, "_own_computation", lambda: _computation(world.own_tag))

    def other(self, world):
        return once(world, "_other_computation", lambda: _computation(world.other_tag))


def _run(tag) -> TagRun:
    now = timezone.now()
    return TagRun.objects.create(
        tag=tag, brand=tag.brand, tag_version=1, status="success", started_at=now, finished_at=now
    )


class TestRuns(EngineResource):
    url = "/api/engine/runs/"
    model = TagRun

    def permitted(self, world):
        return once(world, "_own_run", lambda: _run(world.own_tag))

    def other(self, world):
        return once(world, "_other_run", lambda: _run(world.other_tag))
