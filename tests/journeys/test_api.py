"""The journeys API: the contract (list, detail, create, rename, scoping), versions and
the lifecycle actions with their refusals (403 four eyes, 409 state, 400 graph)."""

from __future__ import annotations

from tagportal.journeys.choices import JourneyStatus, VersionState
from tagportal.journeys.models import Journey
from tests.api.contract import (
    CreateContract,
    ReadContract,
    ReadOnlyRoleContract,
    Resource,
    ScopedContract,
    ScopedUpdateContract,
    UnauthenticatedWriteContract,
    UpdateContract,
    once,
)
from tests.conftest import client_for

from .portal_helpers import draft, live, simple_graph

URL = "/api/journeys/journeys/"


class TestJourneys(
    Resource,
    ReadContract,
    CreateContract,
    UpdateContract,
    UnauthenticatedWriteContract,
    ScopedContract,
    ScopedUpdateContract,
    ReadOnlyRoleContract,
):
    url = URL
    model = Journey
    write_only_fields = ("graph",)

    def user(self, world):
        return world.operator

    def permitted(self, world):
        return once(world, "_own_journey", lambda: draft(world, "新客欢迎"))

    def other(self, world):
        return once(
            world,
            "_other_journey",
            lambda: Journey.objects.create(brand=world.other_brand, name="别家的旅程", owner=world.admin),
        )

    def create_data(self, world):
        return {
            "brand": world.own_brand.code,
            "name": "沉睡唤醒",
            "description": "30天未到店",
            "graph": simple_graph(),
        }

    def update_data(self, world):
        return {"name": "沉睡唤醒（二期）", "description": "60天未到店"}


def test_create_refuses_a_graph_with_problems(world):
    bad = simple_graph()
    bad["edges"] = []
    response = client_for(world.operator).post(
        URL, {"brand": world.own_brand.code, "name": "坏的", "graph": bad}, format="json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["graph"]
    assert not Journey.objects.filter(name="坏的").exists()


def test_the_whole_lifecycle_over_the_api(world):
    operator, steward = client_for(world.operator), client_for(world.steward)
    created = operator.post(
        URL, {"brand": world.own_brand.code, "name": "会员日", "graph": simple_graph()}, format="json"
    )
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    base = f"{URL}{pk}/"
    submitted = operator.post(f"{base}submit/")
    assert submitted.status_code == 200, submitted.content
    assert submitted.json()["state"] == VersionState.PENDING
    assert operator.get(base).json()["pending_version"] == 1
    # the operator may not approve; nor may the steward approve twice
    assert operator.post(f"{base}approve/").status_code == 403
    approved = steward.post(f"{base}approve/", {"note": "可以上线"}, format="json")
    assert approved.status_code == 200, approved.content
    assert approved.json()["approved_by"] == "st"
    assert steward.post(f"{base}approve/").status_code == 409
    body = operator.get(base).json()
    assert (body["status"], body["live_version"], body["pending_version"]) == (JourneyStatus.LIVE, 1, None)
    # an edit of a live journey is a new version
    edited = operator.post(f"{base}versions/", {"graph": simple_graph(minutes=30)}, format="json")
    assert edited.status_code == 201, edited.content
    assert edited.json()["number"] == 2
    versions = operator.get(f"{base}versions/").json()
    assert [(v["number"], v["state"]) for v in versions] == [(2, "draft"), (1, "approved")]
    assert operator.post(f"{base}pause/").json()["status"] == JourneyStatus.PAUSED
    assert operator.post(f"{base}pause/").status_code == 409
    assert operator.post(f"{base}resume/").json()["status"] == JourneyStatus.LIVE
    ended = operator.post(f"{base}end/")
    assert ended.json()["status"] == JourneyStatus.ENDED
    refused = operator.post(f"{base}versions/", {"graph": simple_graph()}, format="json")
    assert refused.status_code == 409
    assert refused.json()["detail"]


def test_four_eyes_over_the_api(world):
    journey = draft(world)
    steward = client_for(world.steward)
    assert steward.post(f"{URL}{journey.pk}/submit/").status_code == 200
    refused = steward.post(f"{URL}{journey.pk}/approve/")
    assert refused.status_code == 403
    assert "Four eyes" in refused.json()["detail"]
    assert client_for(world.admin).post(f"{URL}{journey.pk}/reject/", {}, format="json").status_code == 400


def test_reject_needs_a_note_and_sends_back(world):
    journey = draft(world)
    client_for(world.operator).post(f"{URL}{journey.pk}/submit/")
    steward = client_for(world.steward)
    assert steward.post(f"{URL}{journey.pk}/reject/", {"note": ""}, format="json").status_code == 400
    rejected = steward.post(f"{URL}{journey.pk}/reject/", {"note": "补充对照组"}, format="json")
    assert rejected.status_code == 200
    assert rejected.json()["review_note"] == "补充对照组"
    journey.refresh_from_db()
    assert journey.status == JourneyStatus.DRAFT


def test_actions_on_another_brands_journey_are_404(world):
    other = Journey.objects.create(brand=world.other_brand, name="别家的", owner=world.admin)
    client = client_for(world.operator)
    for action in ("submit", "pause", "end", "approve"):
        assert client.post(f"{URL}{other.pk}/{action}/").status_code == 404


def test_an_analyst_may_not_act(world):
    journey = live(world)
    response = client_for(world.analyst).post(f"{URL}{journey.pk}/pause/")
    assert response.status_code == 403
    journey.refresh_from_db()
    assert journey.status == JourneyStatus.LIVE


def test_a_journey_stays_in_its_brand(world):
    journey = draft(world)
    response = client_for(world.admin).patch(
        f"{URL}{journey.pk}/", {"brand": world.other_brand.code}, format="json"
    )
    assert response.status_code == 409
    journey.refresh_from_db()
    assert journey.brand_id == world.own_brand.pk


def test_the_schema_documents_the_journey_actions(db):
    from rest_framework.test import APIClient

    schema = APIClient().get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    for action in ("submit", "approve", "reject", "pause", "resume", "end"):
        operation = paths[f"/api/journeys/journeys/{{id}}/{action}/"]["post"]
        assert {"400", "403", "404", "409"} <= set(operation["responses"]), action
    assert {"get", "post"} <= set(paths["/api/journeys/journeys/{id}/versions/"])
