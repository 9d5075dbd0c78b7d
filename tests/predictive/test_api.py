"""The model registry's API: the contract (tests/api/contract.py) of models and runs,
bad parameters answering 400, another brand's model 404, and the run endpoint 202."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from tagportal.predictive.models import ModelRun, PredictiveModel
from tests.conftest import client_for

from ..api.contract import (
    CreateContract,
    ReadContract,
    ReadOnlyContract,
    Resource,
    ScopedContract,
    ScopedUpdateContract,
    UnauthenticatedWriteContract,
    UpdateContract,
    once,
)


def _model(brand, name="RFM") -> PredictiveModel:
    return PredictiveModel.objects.create(brand=brand, kind="rfm", name=name, parameters={"window_days": 180})


def _run(model) -> ModelRun:
    now = timezone.now()
    return ModelRun.objects.create(
        model=model,
        status="published",
        as_of=now,
        started_at=now,
        artefact=b"fitted",
        artefact_sha256="ab" * 32,
    )


class TestModels(
    Resource,
    ReadContract,
    CreateContract,
    UpdateContract,
    UnauthenticatedWriteContract,
    ScopedContract,
    ScopedUpdateContract,
):
    url = "/api/predictive/models/"
    model = PredictiveModel

    def user(self, world):
        return world.steward

    def permitted(self, world):
        return once(world, "_own_model", lambda: _model(world.own_brand))

    def other(self, world):
        return once(world, "_other_model", lambda: _model(world.other_brand))

    def create_data(self, world):
        return {
            "brand": world.own_brand.code,
            "kind": "aipl",
            "name": "AIPL",
            "parameters": {"purchase_days": 60},
            "schedule": "0 3 * * 1",
            "metric_floor": None,
            "max_drop": None,
            "is_active": True,
        }

    def update_data(self, world):
        return {"parameters": {"window_days": 90}, "schedule": "30 2 * * *", "is_active": False}


class TestRuns(Resource, ReadContract, ScopedContract, ReadOnlyContract):
    url = "/api/predictive/runs/"
    model = ModelRun

    def user(self, world):
        return world.operator

    def permitted(self, world):
        return once(world, "_own_run", lambda: _run(_model(world.own_brand)))

    def other(self, world):
        return once(world, "_other_run", lambda: _run(_model(world.other_brand)))


def test_a_run_shows_the_artefact_hash_not_its_bytes(world):
    run = _run(_model(world.own_brand))
    body = client_for(world.analyst).get(f"/api/predictive/runs/{run.pk}/").json()
    assert body["artefact_sha256"] == "ab" * 32
    assert "artefact" not in body


def test_bad_parameters_answer_400_and_nothing_is_saved(world):
    client = client_for(world.steward)
    data = {"brand": world.own_brand.code, "kind": "rfm", "name": "RFM", "parameters": {"window_days": -3}}
    response = client.post("/api/predictive/models/", data, format="json")
    assert response.status_code == 400
    assert "window_days" in " ".join(response.json()["parameters"])
    bad_cron = client.post(
        "/api/predictive/models/", {**data, "parameters": {}, "schedule": "soon"}, format="json"
    )
    assert bad_cron.status_code == 400 and "schedule" in bad_cron.json()
    assert not PredictiveModel.objects.exists()


def test_a_model_of_another_brand_cannot_be_created(world):
    data = {"brand": world.other_brand.code, "kind": "rfm", "name": "RFM", "parameters": {}}
    response = client_for(world.steward).post("/api/predictive/models/", data, format="json")
    assert response.status_code == 400
    assert not PredictiveModel.objects.exists()


def test_the_kind_of_a_model_does_not_change(world):
    model = _model(world.own_brand)
    response = client_for(world.steward).patch(
        f"/api/predictive/models/{model.pk}/", {"kind": "churn"}, format="json"
    )
    assert response.status_code == 200
    model.refresh_from_db()
    assert model.kind == "rfm"


def test_run_queues_the_model_and_answers_202(world, monkeypatch, django_capture_on_commit_callbacks):
    from tagportal.core import background

    sent = []
    monkeypatch.setattr(background, "send", lambda task, *args, **kwargs: sent.append((task.name, args)))
    model = _model(world.own_brand)
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(world.steward).post(
            f"/api/predictive/models/{model.pk}/run/", {"as_of": "2026-03-01T08:00:00Z"}, format="json"
        )
    assert response.status_code == 202, response.content
    [(name, (model_id, as_of))] = sent
    assert (name, model_id) == ("tagportal.predictive.tasks.run_model_task", model.pk)
    assert dt.datetime.fromisoformat(as_of) == dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "as_of, message",
    [("0025-08-14T01:52:09+08:00", "Before 1970."), ("2999-01-01T00:00:00Z", "In the future."), ("soon", "")],
)
def test_run_refuses_an_absurd_moment(world, monkeypatch, as_of, message):
    from tagportal.core import background

    sent = []
    monkeypatch.setattr(background, "send", lambda task, *args, **kwargs: sent.append(args))
    model = _model(world.own_brand)
    response = client_for(world.steward).post(
        f"/api/predictive/models/{model.pk}/run/", {"as_of": as_of}, format="json"
    )
    assert response.status_code == 400 and message in response.json()["as_of"][0]
    assert sent == [] and not model.runs.exists()


def test_run_is_refused_to_readers_and_unknown_for_other_brands(world, monkeypatch):
    from tagportal.core import background

    monkeypatch.setattr(background, "send", lambda *a, **k: (_ for _ in ()).throw(AssertionError("queued")))
    own, other = _model(world.own_brand), _model(world.other_brand)
    assert client_for(world.analyst).post(f"/api/predictive/models/{own.pk}/run/").status_code == 403
    assert client_for(world.operator).post(f"/api/predictive/models/{own.pk}/run/").status_code == 403
    assert client_for(world.steward).post(f"/api/predictive/models/{other.pk}/run/").status_code == 404
    assert client_for(world.steward).get(f"/api/predictive/models/{other.pk}/").status_code == 404


def test_analysts_read_models_but_change_nothing(world):
    model = _model(world.own_brand)
    client = client_for(world.analyst)
    assert client.get(f"/api/predictive/models/{model.pk}/").status_code == 200
    assert (
        client.patch(f"/api/predictive/models/{model.pk}/", {"name": "x"}, format="json").status_code == 403
    )
    data = {"brand": world.own_brand.code, "kind": "rfm", "name": "X", "parameters": {}}
    assert client.post("/api/predictive/models/", data, format="json").status_code == 403
    model.refresh_from_db()
    assert model.name == "RFM"


def test_runs_filter_by_model(world):
    first, second = _model(world.own_brand), _model(world.own_brand, "RFM 2")
    _run(first), _run(second)
    body = client_for(world.operator).get("/api/predictive/runs/", {"model": first.pk}).json()
    assert [row["model"] for row in body["results"]] == [first.pk]
    assert dt.datetime.fromisoformat(body["results"][0]["started_at"].replace("Z", "+00:00"))
