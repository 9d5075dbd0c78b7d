"""Scoring after the engine's computations: a churn model applies its last published
fit to the current data (no training, a run naming the run it scored with); RFM, CLV and
AIPL fit again; a model never published is not scored; the engine's results start the
scoring, the results models write start nothing."""

from __future__ import annotations

import datetime as dt
from unittest import mock

from tagportal.engine import results
from tagportal.engine.signals import results_updated
from tagportal.predictive import churn, services, tasks
from tagportal.predictive.choices import ModelRunStatus
from tagportal.predictive.models import ModelOutput, ModelRun

from .test_registry import AS_OF, FRAMES, make_model


def test_a_churn_model_scores_with_its_published_fit_without_training(world):
    model = make_model(world, "churn")
    fitted = services.run_model(model, as_of=AS_OF, frames=FRAMES)
    assert fitted.status == ModelRunStatus.PUBLISHED, fitted.error
    later = AS_OF + dt.timedelta(days=3)
    with mock.patch.object(churn, "train_churn", side_effect=AssertionError("trained again")):
        run = services.score_model(model, as_of=later, frames=FRAMES)
    assert run.status == ModelRunStatus.PUBLISHED, run.error
    assert run.window == {"scored_with_run": fitted.pk}
    assert run.artefact_sha256 == fitted.artefact_sha256 and run.key_metric == fitted.key_metric
    expected = pickle_model(fitted).score(FRAMES, later)  # the model and its extra features
    assert run.people_scored == len(expected) > 0
    tag = ModelOutput.objects.get(model=model, key="churn_probability").tag
    someone = int(expected.index[0])
    results.NUMBERS.clear()
    stored = results.values_for(world.own_brand, [someone], [tag.code])[someone][tag.code]["value"]
    assert stored == float(expected.loc[someone, "probability"])


def pickle_model(run):
    import pickle

    return pickle.loads(bytes(run.artefact))


def test_a_model_never_published_is_not_scored(world):
    model = make_model(world, "churn")
    assert services.score_model(model, as_of=AS_OF, frames=FRAMES) is None
    assert not ModelRun.objects.filter(model=model).exists()


def test_a_kind_whose_fit_is_its_scoring_fits_again(world):
    model = make_model(world, "rfm")
    run = services.score_model(model, as_of=AS_OF, frames=FRAMES)
    assert run.status == ModelRunStatus.PUBLISHED and "scored_with_run" not in run.window


def test_the_engine_s_results_start_the_scoring_and_the_models_own_results_do_not(
    world, settings, django_capture_on_commit_callbacks
):
    rfm = make_model(world, "rfm")
    never_published = make_model(world, "churn")
    services.run_model(rfm, as_of=AS_OF, frames=FRAMES)
    # right after a run a computation of dependent tags does not score again
    with mock.patch.object(tasks.score_model_task, "apply_async") as soon:
        with django_capture_on_commit_callbacks(execute=True):
            results_updated.send(sender=None, brand_id=world.own_brand.pk, tag_ids=[world.own_tag.pk])
    assert not soon.called
    settings.TAGPORTAL_MODEL_SCORE_INTERVAL_MINUTES = 0
    own_tags = list(ModelOutput.objects.filter(model=rfm).values_list("tag_id", flat=True))
    with mock.patch.object(tasks.score_model_task, "apply_async") as sent:
        with django_capture_on_commit_callbacks(execute=True):
            results_updated.send(sender=None, brand_id=world.own_brand.pk, tag_ids=own_tags)
        assert not sent.called  # a model's own results start nothing (no loop)
        with django_capture_on_commit_callbacks(execute=True):
            results_updated.send(
                sender=None, brand_id=world.own_brand.pk, tag_ids=[*own_tags, world.own_tag.pk]
            )
    # the published model only: a model's first run is its schedule's or a steward's
    assert [c.kwargs["args"] for c in sent.call_args_list] == [(rfm.pk,)] and never_published.pk != rfm.pk
    assert sent.call_args.kwargs["queue"] == tasks.QUEUE
    with mock.patch.object(tasks.score_model_task, "apply_async") as other:
        with django_capture_on_commit_callbacks(execute=True):
            results_updated.send(sender=None, brand_id=world.other_brand.pk, tag_ids=[world.other_tag.pk])
    assert not other.called  # another brand's results: not this brand's models
