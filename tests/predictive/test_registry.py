"""The model registry: each kind fitted on a small generated brand publishes its
outputs as ordinary tag results (readable through the engine's results API and usable in
an audience expression); a run below its floor or dropped too far is held, writes
nothing and goes to the stewards; parameters are checked by the kind; schedules."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import pickle

import pytest
from django.core.exceptions import ValidationError

from tagportal.catalog.choices import TagKind, TagStatus
from tagportal.engine import results
from tagportal.engine.models import TagComputation, TagRun
from tagportal.notifications.models import Notification
from tagportal.predictive import kinds, services
from tagportal.predictive.choices import ModelRunStatus
from tagportal.predictive.models import ModelOutput, ModelRun, PredictiveModel
from tagportal.profiles import generator

END = dt.date(2026, 3, 1)
AS_OF = dt.datetime(2026, 3, 1, 15, 59, tzinfo=dt.UTC)  # 23:59 in Beijing
_DATA = generator.generate(7, 600, 30, end=END)
FRAMES = {"profiles": _DATA["customers"], "events": _DATA["events"], "orders": _DATA["orders"]}
#: A quick churn model (one candidate, few rows); its floor low enough to publish.
CHURN = {"candidates": ["logistic_regression"], "max_training_rows": 20_000, "auc_floor": 0.0}
OUTPUTS = {
    "rfm": {"r", "f", "m", "segment"},
    "clv": {"p_alive", "purchase_intent", "purchase_intent_level", "expected_order_value", "clv"},
    "aipl": {"aipl_stage"},
    "churn": {"churn_probability", "churn_level"},
}


@pytest.fixture(scope="module")
def churn_fit():
    """The quick churn model fitted on :data:`FRAMES` once (fitting is pure)."""
    kind = services.kind_of("churn")
    return kind.fit(FRAMES, kind.config(CHURN), AS_OF)


@pytest.fixture
def quick_churn(churn_fit, monkeypatch):
    """The churn kind answering :func:`churn_fit` instead of training again (its scoring
    is the real one, with that fit)."""
    quick = dataclasses.replace(kinds.KINDS["churn"], fit=lambda frames, config, as_of: churn_fit)
    monkeypatch.setitem(kinds.KINDS, "churn", quick)


def make_model(world, kind, parameters=None, **fields) -> PredictiveModel:
    model = PredictiveModel(
        brand=world.own_brand,
        kind=kind,
        name=fields.pop("name", kind),
        parameters=parameters if parameters is not None else (CHURN if kind == "churn" else {}),
        created_by=world.steward,
        **fields,
    )
    model.full_clean()
    model.save()
    return model


@pytest.mark.parametrize("kind", ["rfm", "clv", "aipl", "churn"])
def test_a_run_publishes_every_output_as_a_tag_result(world, kind):
    results.NUMBERS.clear()
    results.BITMAPS.clear()
    model = make_model(world, kind)
    run = services.run_model(model, as_of=AS_OF, frames=FRAMES)
    assert run.status == ModelRunStatus.PUBLISHED, run.error
    assert run.people_scored > 0
    assert run.duration_s is not None and run.peak_memory_mb > 0
    assert run.artefact_sha256 == hashlib.sha256(bytes(run.artefact)).hexdigest()
    assert pickle.loads(bytes(run.artefact)) is not None
    outputs = {o.key: o.tag for o in ModelOutput.objects.filter(model=model).select_related("tag")}
    assert set(outputs) == OUTPUTS[kind]
    for tag in outputs.values():
        assert tag.kind == TagKind.ALGORITHM
        assert tag.status == TagStatus.PUBLISHED
        assert tag.definition == {"type": "manual"}
        computation = TagComputation.objects.get(tag=tag)
        assert computation.has_result and computation.population == len(
            set(FRAMES["profiles"]["oneid"]) | set(FRAMES["events"]["oneid"]) | set(FRAMES["orders"]["oneid"])
        )
    fit_values = services.kind_of(kind).fit(FRAMES, services.kind_of(kind).config(model.parameters), AS_OF)
    someone = int(fit_values.scores.index[0])
    stored = results.values_for(world.own_brand, [someone], [t.code for t in outputs.values()])[someone]
    for key, tag in outputs.items():
        expected = fit_values.scores.loc[someone, key]
        got = stored[tag.code]["value"]
        assert got == pytest.approx(expected) if tag.value_type == "number" else got == expected


def test_a_second_run_reuses_the_tags_and_replaces_their_values(world):
    model = make_model(world, "rfm")
    services.run_model(model, as_of=AS_OF, frames=FRAMES)
    tags = set(ModelOutput.objects.filter(model=model).values_list("tag_id", flat=True))
    later = services.run_model(model, as_of=AS_OF + dt.timedelta(days=30), frames=FRAMES)
    assert later.status == ModelRunStatus.PUBLISHED
    assert set(ModelOutput.objects.filter(model=model).values_list("tag_id", flat=True)) == tags
    assert TagRun.objects.filter(tag_id__in=tags).count() == 2 * len(tags)


def test_an_audience_expression_reads_an_output_tag(world):
    from tagportal.audiences import services as audiences
    from tagportal.profiles.models import Customer

    Customer.objects.bulk_create(
        Customer(brand=world.own_brand, oneid=int(oneid)) for oneid in FRAMES["profiles"]["oneid"]
    )
    model = make_model(world, "rfm")
    services.run_model(model, as_of=AS_OF, frames=FRAMES)
    segment = ModelOutput.objects.get(model=model, key="segment").tag
    counts = results.value_counts([segment.pk])[segment.pk]
    expected = counts["important_value"]
    assert expected > 0
    result = audiences.estimate(
        world.operator, world.own_brand, {"tag": segment.code, "op": "eq", "value": "important_value"}
    )
    assert result["size"] == expected


def test_a_run_below_the_floor_is_held_writes_nothing_and_goes_to_the_stewards(
    world, django_capture_on_commit_callbacks
):
    model = make_model(world, "churn", metric_floor=0.999)
    with django_capture_on_commit_callbacks(execute=True):
        run = services.run_model(model, as_of=AS_OF, frames=FRAMES)
    assert run.status == ModelRunStatus.HELD
    assert "below the floor" in run.error
    assert run.key_metric is not None and run.key_metric < 0.999
    assert run.metrics["validation"]["auc"] == run.key_metric
    assert not TagRun.objects.filter(tag__brand=world.own_brand, tag__kind=TagKind.ALGORITHM).exists()
    assert not TagComputation.objects.filter(
        tag__model_output__model=model, last_calculated_at__isnull=False
    ).exists()
    notes = Notification.objects.filter(recipient=world.steward)
    assert notes.count() == 1  # the review request governance made of it
    assert model.name in notes.get().subject and notes.get().url.startswith("/review/")
    assert not Notification.objects.filter(recipient=world.operator).exists()


def test_a_run_that_dropped_too_far_is_held_and_the_tags_keep_their_values(
    world, django_capture_on_commit_callbacks
):
    model = make_model(world, "churn")
    first = services.run_model(model, as_of=AS_OF, frames=FRAMES)
    assert first.status == ModelRunStatus.PUBLISHED
    ModelRun.objects.filter(pk=first.pk).update(key_metric=first.key_metric + 0.2)
    model.max_drop = 0.05
    model.save()
    before = {
        c.tag_id: c.last_calculated_at for c in TagComputation.objects.filter(tag__model_output__model=model)
    }
    with django_capture_on_commit_callbacks(execute=True):
        second = services.run_model(model, as_of=AS_OF, frames=FRAMES)
    assert second.status == ModelRunStatus.HELD
    assert "fell from" in second.error
    after = {
        c.tag_id: c.last_calculated_at for c in TagComputation.objects.filter(tag__model_output__model=model)
    }
    assert after == before
    assert Notification.objects.filter(recipient=world.steward).count() == 1


def test_a_run_that_cannot_fit_fails_and_writes_nothing(world):
    model = make_model(world, "clv")
    empty = {"profiles": FRAMES["profiles"], "events": FRAMES["events"], "orders": FRAMES["orders"].iloc[:0]}
    run = services.run_model(model, as_of=AS_OF, frames=empty)
    assert run.status == ModelRunStatus.FAILED
    assert "no orders" in run.error
    assert not ModelOutput.objects.filter(model=model).exists()


@pytest.mark.parametrize(
    ("kind", "parameters", "message"),
    [
        ("rfm", {"window_days": 0}, "window_days"),
        ("rfm", {"colour": "blue"}, "unknown RFM parameters"),
        ("clv", {"high": 0.1, "low": 0.5}, "thresholds"),
        ("aipl", {"loyalty_min_purchases": 1}, "loyalty_min_purchases"),
        ("churn", {"horizon_days": 7, "cutoff_spacing_days": 3}, "at least the horizon apart"),
        ("churn", {"tea": 1}, "Unknown churn parameters"),
        ("rfm", ["window_days"], "JSON object"),
    ],
)
def test_parameters_are_checked_by_the_kind(world, kind, parameters, message):
    with pytest.raises(ValidationError) as caught:
        make_model(world, kind, parameters)
    assert message in " ".join(caught.value.message_dict["parameters"])


def test_a_schedule_must_be_a_cron_expression(world):
    with pytest.raises(ValidationError) as caught:
        make_model(world, "rfm", schedule="every day")
    assert "schedule" in caught.value.message_dict


def test_scheduled_models_are_due_once_their_cron_fired(world, monkeypatch):
    queued = []
    monkeypatch.setattr(services, "request_run", lambda model, as_of=None: queued.append(model.pk))
    scheduled = make_model(world, "rfm", schedule="0 3 * * *")  # 03:00 Beijing = 19:00 UTC
    make_model(world, "aipl", name="by hand")
    make_model(world, "clv", schedule="0 3 * * *", is_active=False)
    now = dt.datetime(2026, 3, 2, 20, 0, tzinfo=dt.UTC)
    assert services.run_due_models(now) == [scheduled.pk]
    assert queued == [scheduled.pk]
    ModelRun.objects.create(
        model=scheduled, status=ModelRunStatus.PUBLISHED, as_of=now, started_at=now - dt.timedelta(minutes=30)
    )
    assert services.due_models(now) == []
    assert services.due_models(now + dt.timedelta(days=1)) == [scheduled]


def test_the_periodic_task_is_registered(db):
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(name="predictive: run due models")
    assert task.task == "tagportal.predictive.tasks.run_due_models"
    assert services.ensure_default_schedules() == []


def test_the_task_runs_a_model(world):
    from tagportal.predictive import tasks

    model = make_model(world, "aipl")
    missing = tasks.run_model_task(987654)
    assert missing["status"] == "missing"
    original = services.run_model
    try:
        services.run_model = lambda m, as_of=None: original(m, as_of=as_of, frames=FRAMES)
        out = tasks.run_model_task(model.pk, AS_OF.isoformat())
    finally:
        services.run_model = original
    assert out["status"] == ModelRunStatus.PUBLISHED
    assert ModelRun.objects.get(pk=out["run"]).as_of == AS_OF
