"""The admin of the model registry: models (with their outputs and history) and runs
(read-only, the artefact's hash, never its bytes), for an admin and a steward; the
"run now" action queues a run."""

from __future__ import annotations

from unittest import mock

from django.test import Client

from tagportal.predictive import services, tasks
from tagportal.predictive.models import ModelRun

from .test_registry import AS_OF, FRAMES, make_model


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_models_and_runs_in_the_admin(world):
    model = make_model(world, "rfm")
    run = services.run_model(model, as_of=AS_OF, frames=FRAMES)
    for user in (world.admin, world.steward):
        client = logged_in(user)
        for url in (
            "/admin/predictive/predictivemodel/",
            f"/admin/predictive/predictivemodel/{model.pk}/change/",
            f"/admin/predictive/predictivemodel/{model.pk}/history/",
            "/admin/predictive/modelrun/",
            f"/admin/predictive/modelrun/{run.pk}/change/",
        ):
            response = client.get(url)
            assert response.status_code == 200, (user.username, url, response.status_code)
        page = client.get(f"/admin/predictive/modelrun/{run.pk}/change/").content.decode()
        assert run.artefact_sha256 in page
    assert (
        logged_in(world.steward).get("/admin/predictive/modelrun/add/").status_code == 403
    )  # runs are computed


def test_the_run_now_action_queues_a_run(world, django_capture_on_commit_callbacks):
    model = make_model(world, "rfm")
    with (
        mock.patch.object(tasks.run_model_task, "apply_async") as sent,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = logged_in(world.steward).post(
            "/admin/predictive/predictivemodel/",
            {"action": "run_now", "_selected_action": [model.pk]},
        )
    assert response.status_code == 302
    assert sent.call_args.kwargs["args"][0] == model.pk
    assert not ModelRun.objects.filter(model=model).exists()  # queued, not run in the request
