"""Held runs: the signal sent once the hold commits (with the comparison), the inbox notice
when nobody takes the run to review, publishing a held run after review (the churn
warning scores with the run's own fit, the other kinds fit again), refused once the run
is no longer held or a later fit was published; scoring keeps using the last fit."""

from __future__ import annotations

import datetime as dt

import pytest

from tagportal.engine.models import TagComputation
from tagportal.governance.signals import review_held_run
from tagportal.notifications.models import Notification
from tagportal.predictive import services
from tagportal.predictive.choices import ModelRunStatus
from tagportal.predictive.models import ModelOutput, ModelRun
from tagportal.predictive.signals import run_held

from . import test_registry
from .test_registry import AS_OF, FRAMES, make_model

#: The registry tests' quick churn (fitted once for the module).
churn_fit, quick_churn = test_registry.churn_fit, test_registry.quick_churn


@pytest.fixture
def heard(quick_churn):
    """The ``run_held`` signals sent, with governance's receiver out of the way."""
    sent = []

    def listen(sender, **kwargs):
        sent.append(kwargs)

    run_held.disconnect(dispatch_uid="governance_review_held_run")
    run_held.connect(listen, dispatch_uid="test_listen")
    yield sent
    run_held.disconnect(dispatch_uid="test_listen")
    run_held.connect(review_held_run, dispatch_uid="governance_review_held_run")


def held_churn(world, capture, **fields):
    model = make_model(world, "churn", metric_floor=fields.pop("metric_floor", 0.999), **fields)
    with capture(execute=True):
        run = services.run_model(model, as_of=AS_OF, frames=FRAMES)
    assert run.status == ModelRunStatus.HELD, run.error
    return model, run


def written(model) -> bool:
    return TagComputation.objects.filter(
        tag__model_output__model=model, last_calculated_at__isnull=False
    ).exists()


def test_a_held_run_is_announced_on_commit_with_the_comparison(
    world, heard, django_capture_on_commit_callbacks
):
    model = make_model(world, "churn", metric_floor=0.999)
    with django_capture_on_commit_callbacks() as callbacks:
        run = services.run_model(model, as_of=AS_OF, frames=FRAMES)
    assert heard == [] and len(callbacks) == 1  # nothing before the commit
    callbacks[0]()
    [sent] = heard
    assert sent["run"].pk == run.pk and "below the floor" in sent["reason"]
    comparison = sent["comparison"]
    assert comparison["metric"] == "auc" and comparison["cause"] == services.FLOOR
    assert comparison["value"] == run.key_metric and comparison["floor"] == 0.999
    assert comparison["previous"] is None and comparison["margin"] is None
    first = comparison["metrics"][0]
    assert first == {"name": "validation.auc", "held": run.key_metric, "published": None}
    names = {m["name"] for m in comparison["metrics"]}
    assert "validation.brier" in names and not any(n.startswith("seconds.") for n in names)
    # nobody took it to review: the stewards get the registry's own notice
    note = Notification.objects.get(recipient=world.steward)
    assert "below the floor" in note.body and note.url == f"/admin/predictive/modelrun/{run.pk}/change/"


def test_a_drop_names_the_last_published_fit_side_by_side(world, heard, django_capture_on_commit_callbacks):
    model = make_model(world, "churn")
    first = services.run_model(model, as_of=AS_OF, frames=FRAMES)
    ModelRun.objects.filter(pk=first.pk).update(key_metric=first.key_metric + 0.2)
    model.max_drop = 0.05
    model.save()
    with django_capture_on_commit_callbacks(execute=True):
        second = services.run_model(model, as_of=AS_OF, frames=FRAMES)
    comparison = heard[0]["comparison"]
    assert comparison["cause"] == services.DROP and comparison["margin"] == 0.05
    assert comparison["previous"]["run"] == first.pk
    assert comparison["previous"]["value"] == pytest.approx(first.key_metric + 0.2)
    row = comparison["metrics"][0]
    assert row["held"] == second.key_metric and row["published"] == first.metrics["validation"]["auc"]


def test_a_failing_receiver_still_leaves_the_stewards_a_notice(
    world, heard, django_capture_on_commit_callbacks
):
    def broken(sender, **kwargs):
        raise RuntimeError("down")

    run_held.connect(broken, dispatch_uid="test_broken")
    try:
        held_churn(world, django_capture_on_commit_callbacks)
    finally:
        run_held.disconnect(dispatch_uid="test_broken")
    assert Notification.objects.filter(recipient=world.steward).count() == 1


def test_publishing_a_held_churn_run_scores_with_its_own_fit(
    world, heard, django_capture_on_commit_callbacks
):
    model, run = held_churn(world, django_capture_on_commit_callbacks)
    assert not written(model)
    published = services.publish_held_run(run, user=world.steward, frames=FRAMES, as_of=AS_OF)
    assert published.status == ModelRunStatus.PUBLISHED and published.error == ""
    assert published.people_scored > 0
    assert written(model)
    assert services.last_published(model).pk == run.pk
    later = services.score_model(model, as_of=AS_OF + dt.timedelta(days=1), frames=FRAMES)
    assert later.window == {"scored_with_run": run.pk}
    again = services.score_model(model, as_of=AS_OF + dt.timedelta(days=2), frames=FRAMES)
    assert again is not None and again.window == {"scored_with_run": run.pk}  # scoring runs are not fits


def test_a_kind_whose_fit_is_its_scoring_fits_again_at_the_run_s_moment(world):
    model = make_model(world, "rfm")
    run = ModelRun.objects.create(
        model=model, status=ModelRunStatus.HELD, as_of=AS_OF, started_at=AS_OF, error="held by hand"
    )
    services.publish_held_run(run, frames=FRAMES)
    run.refresh_from_db()
    assert run.status == ModelRunStatus.PUBLISHED and run.people_scored > 0
    assert set(ModelOutput.objects.filter(model=model).values_list("key", flat=True)) == {
        "r",
        "f",
        "m",
        "segment",
    }
    assert written(model)


def test_a_run_no_longer_held_or_superseded_is_refused_and_nothing_is_written(
    world, heard, django_capture_on_commit_callbacks
):
    model, run = held_churn(world, django_capture_on_commit_callbacks)
    later = ModelRun.objects.create(
        model=model,
        status=ModelRunStatus.PUBLISHED,
        as_of=AS_OF,
        started_at=run.started_at + dt.timedelta(hours=1),
    )
    with pytest.raises(services.HeldRunRefused, match=f"superseded: the run #{later.pk}"):
        services.publish_held_run(run, frames=FRAMES)
    run.refresh_from_db()
    assert run.status == ModelRunStatus.HELD and not written(model)
    # a scoring run (an older fit on new data) does not supersede it
    later.window = {"scored_with_run": later.pk}
    later.save()
    assert services.held_run_refusal(run) == ""
    ModelRun.objects.filter(pk=run.pk).update(status=ModelRunStatus.FAILED)
    with pytest.raises(services.HeldRunRefused, match="not held"):
        services.publish_held_run(run, frames=FRAMES)
    assert not written(model)
