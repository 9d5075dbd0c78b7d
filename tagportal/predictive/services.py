"""The model registry's state changes: the tags of a model's outputs, runs, publishing.

- :func:`ensure_outputs` creates a model's output tags in the dictionary where missing:
  kind algorithm, definition ``{"type": "manual"}`` (the engine leaves such tags out of
  its computations and reads their stored results; the model writes them), published so
  audiences can use them.
- :func:`run_model` loads the brand's frames (and, for a kind that reads tags — the churn
  warning's metric-tag features — the brand's published number tags' definitions, so the
  pure kind never touches the ORM), fits and scores the model (its kind's pure
  module, through :mod:`.kinds`), records the run (window, features, fitted parameters,
  metrics, chart data, the pickled artefact and its SHA-256, duration, peak memory) and
  publishes: a run whose key metric is below the model's floor, or fell by more than its
  largest drop against the last published run, is **held** — no tag is written and the
  brand's data stewards are told, with the comparison; otherwise each output is written
  to its tag with the engine's :func:`~tagportal.engine.results.store_values`, all of
  them in one transaction.
- :func:`due_models` and :func:`run_due_models`: the scheduled retraining.
- :func:`score_model` and :func:`on_results_updated`: after each computation of a
  brand's tags, its models score the new data — the churn warning with its last
  published fit (no training), the other kinds by fitting again (they are cheap).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import pickle
import time

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from tagportal.catalog.choices import RefreshMode, TagKind
from tagportal.catalog.models import Category, Tag
from tagportal.catalog.services import publish_tag
from tagportal.core import background
from tagportal.core.roles import reviewers_of
from tagportal.engine import results
from tagportal.engine import services as engine
from tagportal.engine.evaluate import TagSpec
from tagportal.notifications.services import notify
from tagportal.profiles import loaders

from .choices import ModelRunStatus
from .kinds import TAG_SPECS, Kind, kind_of
from .models import ModelOutput, ModelRun, PredictiveModel

log = logging.getLogger(__name__)

#: The root category of the tags models fill, created when missing.
CATEGORY_CODE = "algorithm"
MODEL_DEFINITION = {"type": "manual"}

#: django-celery-beat entries of this app (see :func:`ensure_default_schedules`).
DEFAULT_SCHEDULES = [
    {
        "name": "predictive: run due models",
        "task": "tagportal.predictive.tasks.run_due_models",
        "every_minutes": 15,
        "queue": "default",
    },
]


def ensure_default_schedules(periodic_task_model=None, interval_model=None) -> list[str]:
    """Register this app's periodic task (the engine's helper; existing entries stay)."""
    from tagportal.engine.services import ensure_default_schedules as ensure

    return ensure(periodic_task_model, interval_model, entries=DEFAULT_SCHEDULES)


# ---------------------------------------------------------------------------------------------
# Output tags


def output_category() -> Category:
    category = Category.objects.filter(parent=None, code=CATEGORY_CODE).first()
    if category is None:
        category = Category(code=CATEGORY_CODE, name="算法标签", name_en="Algorithm tags", order=900)
        category.full_clean()
        category._change_reason = _("Created for the tags of algorithm models")
        category.save()
    return category


def _tag_code(model: PredictiveModel, key: str) -> str:
    code = f"{model.brand.business_line.code}_{CATEGORY_CODE}_{model.kind}_{key}"[:56]
    if Tag.objects.filter(brand=model.brand, code=code).exists():
        code = f"{code}_{model.pk}"
    return code


@transaction.atomic
def ensure_outputs(model: PredictiveModel, user=None, category: Category | None = None) -> list[ModelOutput]:
    """The model's outputs, each with its published tag; missing ones are created
    (kind algorithm, the output's value type and values, definition
    :data:`MODEL_DEFINITION`) in ``category`` (default: :func:`output_category`)."""
    kind = kind_of(model.kind)
    existing = {o.key: o for o in ModelOutput.objects.filter(model=model).select_related("tag")}
    reason = _("Output of the algorithm model “%(name)s”") % {"name": model.name}
    outputs = []
    for spec in kind.outputs:
        if spec.key in existing:
            outputs.append(existing[spec.key])
            continue
        category = category or output_category()
        owner = user if user is not None and user.is_authenticated else model.created_by
        tag = Tag(
            code=_tag_code(model, spec.key),
            name=spec.name,
            name_en=spec.name_en,
            description=reason,
            category=category,
            business_line=model.brand.business_line,
            brand=model.brand,
            owner=owner,
            kind=TagKind.ALGORITHM,
            value_type=spec.value_type,
            values=list(spec.values),
            unit=spec.unit,
            refresh_mode=RefreshMode.BATCH,
            definition=dict(MODEL_DEFINITION),
        )
        tag.full_clean()
        tag._change_reason = reason
        tag.save()
        publish_tag(tag, user=user if user is not None and user.is_authenticated else None, note=reason)
        outputs.append(ModelOutput.objects.create(model=model, key=spec.key, tag=tag))
    return outputs


# ---------------------------------------------------------------------------------------------
# Runs


def last_published(model: PredictiveModel, before: ModelRun | None = None) -> ModelRun | None:
    runs = ModelRun.objects.filter(model=model, status=ModelRunStatus.PUBLISHED)
    if before is not None:
        runs = runs.exclude(pk=before.pk)
    return runs.order_by("-started_at", "-pk").first()


def hold_reason(model: PredictiveModel, kind: Kind, value: float | None, previous: ModelRun | None) -> str:
    """Why a run with key metric ``value`` must not be published ("" when it may)."""
    if kind.key_metric is None:
        return ""
    name = kind.key_metric
    if value is None:
        return _("The run reports no %(metric)s.") % {"metric": name}
    if model.metric_floor is not None and value < model.metric_floor:
        return _("%(metric)s %(value).4f is below the floor %(floor).4f.") % {
            "metric": name,
            "value": value,
            "floor": model.metric_floor,
        }
    if model.max_drop is not None and previous is not None and previous.key_metric is not None:
        drop = previous.key_metric - value
        if drop > model.max_drop:
            return _(
                "%(metric)s fell from %(before).4f (the run of %(when)s) to %(value).4f, "
                "by more than %(margin).4f."
            ) % {
                "metric": name,
                "before": previous.key_metric,
                "when": timezone.localtime(previous.started_at).strftime("%Y-%m-%d %H:%M"),
                "value": value,
                "margin": model.max_drop,
            }
    return ""


def number_tag_specs(brand) -> list[TagSpec]:
    """The brand's published number tags as their published versions define them, by
    code (what a kind that :attr:`~.kinds.Kind.reads_tags` chooses its features from)."""
    tags = list(Tag.objects.published().filter(brand=brand, value_type="number").order_by("code"))
    snapshots = engine.published_snapshots(tags)
    return [engine.spec_of(snapshots[tag.pk]) for tag in tags if tag.pk in snapshots]


def _population(frames) -> int:
    profiles = frames.get("profiles")
    ids = (
        set() if profiles is None or "oneid" not in profiles else set(profiles["oneid"].dropna().astype(int))
    )
    for name in ("events", "orders"):
        frame = frames.get(name)
        if frame is not None and "oneid" in frame:
            ids |= set(frame["oneid"].dropna().astype(int))
    return len(ids)


def run_model(model: PredictiveModel, as_of: dt.datetime | None = None, frames=None, user=None) -> ModelRun:
    """Fit and score ``model`` on its brand's data as of ``as_of`` (now by default), record
    the run and publish or hold it (module docstring). ``frames`` (a mapping with
    ``profiles``, ``events``, ``orders``) are loaded from the profiles app when not given.
    A failing fit gives a failed run (nothing written) and is not raised."""
    model = PredictiveModel.objects.select_related("brand__business_line").get(pk=model.pk)
    kind = kind_of(model.kind)
    started_at = timezone.now()
    as_of = as_of or started_at
    run = ModelRun.objects.create(
        model=model, status=ModelRunStatus.RUNNING, as_of=as_of, started_at=started_at
    )
    began = time.perf_counter()
    try:
        with results.PeakMemory() as memory:
            config = kind.config(model.parameters)
            if frames is None:
                frames = loaders.load_frames(model.brand)
            if kind.reads_tags:
                frames = {**frames, TAG_SPECS: number_tag_specs(model.brand)}
            fit = kind.fit(frames, config, as_of)
            run.peak_memory_mb = memory.peak_mb()
        artefact = pickle.dumps(fit.artefact, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        log.exception("model %s (%s) failed", model.pk, model.name)
        return _finish(run, began, ModelRunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
    run.window, run.features, run.parameters = fit.window, fit.features, fit.parameters
    run.metrics, run.charts, run.key_metric = _jsonable(fit.metrics), _jsonable(fit.charts), fit.key_metric
    run.artefact, run.artefact_sha256 = artefact, hashlib.sha256(artefact).hexdigest()
    run.people_scored = len(fit.scores)
    run.status = ModelRunStatus.SUCCEEDED
    run.save()
    reason = hold_reason(model, kind, fit.key_metric, last_published(model, before=run))
    if not reason and not fit.publishable:
        reason = fit.hold_reason or _("The run is not publishable.")
    if reason:
        _tell_stewards(model, run, reason)
        return _finish(run, began, ModelRunStatus.HELD, error=reason)
    try:
        _write_outputs(model, fit.scores, frames, started_at, user=user)
    except Exception as exc:
        log.exception("publishing model %s (%s) failed", model.pk, model.name)
        return _finish(run, began, ModelRunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
    return _finish(run, began, ModelRunStatus.PUBLISHED)


def _write_outputs(model: PredictiveModel, scores, frames, started_at, user=None) -> None:
    """Each output column of ``scores`` as its tag's result, all in one transaction."""
    with transaction.atomic():
        population = max(_population(frames), len(scores))
        for output in ensure_outputs(model, user=user):
            results.store_values(output.tag, scores[output.key], population=population, started_at=started_at)


def _finish(run: ModelRun, began: float, status: str, error: str = "") -> ModelRun:
    run.status, run.error = status, error
    run.finished_at = timezone.now()
    run.duration_s = round(time.perf_counter() - began, 3)
    run.save()
    return run


def _jsonable(value):
    """Numpy numbers and NaN in metrics as plain JSON (NaN → None)."""
    import json
    import math

    def clean(v):
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        if hasattr(v, "item"):
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    return json.loads(json.dumps(clean(value), default=str))


def _tell_stewards(model: PredictiveModel, run: ModelRun, reason: str) -> None:
    stewards = reviewers_of(model.brand.business_line)
    subject = _("Algorithm model “%(name)s” held: not published") % {"name": model.name}
    body = _(
        "The run of %(when)s of the model “%(name)s” (%(brand)s) was not published: %(reason)s "
        "Its tags keep their previous values. Review the run and its metrics."
    ) % {
        "when": timezone.localtime(run.started_at).strftime("%Y-%m-%d %H:%M"),
        "name": model.name,
        "brand": model.brand.name,
        "reason": reason,
    }
    notify(stewards, subject, body, topic=run, url=reverse("admin:predictive_modelrun_change", args=[run.pk]))


def request_run(model: PredictiveModel, as_of: dt.datetime | None = None) -> None:
    """Queue a run of ``model`` once the transaction commits."""
    from . import tasks

    background.queue_after_commit(
        tasks.run_model_task, model.pk, as_of.isoformat() if as_of else None, queue=tasks.QUEUE
    )


# ---------------------------------------------------------------------------------------------
# Schedules


def due_models(now: dt.datetime | None = None) -> list[PredictiveModel]:
    """Active scheduled models whose cron fired since their last run started, with no
    run under way."""
    now = now or timezone.now()
    due = []
    models = PredictiveModel.objects.filter(is_active=True, brand__is_active=True).exclude(schedule="")
    for model in models.order_by("pk"):
        fired = results.last_fire(model.schedule, now)
        if fired is None:
            continue
        last = ModelRun.objects.filter(model=model).order_by("-started_at").first()
        if last is not None and last.status == ModelRunStatus.RUNNING:
            continue
        if last is None or last.started_at < fired:
            due.append(model)
    return due


def run_due_models(now: dt.datetime | None = None) -> list[int]:
    """Queue a run of every due model; their ids."""
    due = due_models(now)
    with transaction.atomic():
        for model in due:
            request_run(model)
    return [m.pk for m in due]


# ---------------------------------------------------------------------------------------------
# Scoring after the engine's computations


def score_model(model: PredictiveModel, as_of: dt.datetime | None = None, frames=None) -> ModelRun | None:
    """Score ``model`` on the brand's current data without training it again: a kind with
    something learnt (the churn warning) applies its last published run's fitted
    artefact and writes the outputs, recorded as a run that names the run it scored with
    (its fitted parameters, metrics and charts carried over); a kind whose fit is its
    scoring (RFM, lifetime value, AIPL) runs again (:func:`run_model`). A model never
    published is not scored (``None``): a steward publishes its first run."""
    kind = kind_of(model.kind)
    if kind.score is None:
        return run_model(model, as_of=as_of, frames=frames)
    fitted = last_published(model)
    if fitted is None or not fitted.artefact:
        return None
    started_at = timezone.now()
    as_of = as_of or started_at
    run = ModelRun.objects.create(
        model=model,
        status=ModelRunStatus.RUNNING,
        as_of=as_of,
        started_at=started_at,
        window={"scored_with_run": fitted.pk},
        features=fitted.features,
        parameters=fitted.parameters,
        metrics=fitted.metrics,
        charts=fitted.charts,
        key_metric=fitted.key_metric,
        artefact_sha256=fitted.artefact_sha256,
    )
    began = time.perf_counter()
    try:
        with results.PeakMemory() as memory:
            if frames is None:
                frames = loaders.load_frames(model.brand)
            scores = kind.score(frames, pickle.loads(bytes(fitted.artefact)), as_of)  # our own artefact
            run.peak_memory_mb = memory.peak_mb()
        run.people_scored = len(scores)
        _write_outputs(model, scores, frames, started_at)
    except Exception as exc:
        log.exception("scoring model %s (%s) failed", model.pk, model.name)
        return _finish(run, began, ModelRunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
    return _finish(run, began, ModelRunStatus.PUBLISHED)


def on_results_updated(brand_id: int, tag_ids) -> list[int]:
    """After the engine stored new results of a brand's tags, queue the scoring of its
    active models (:func:`score_model`) that have been published once (a model's first
    run is started by its schedule or a steward) and have not run in the last
    ``TAGPORTAL_MODEL_SCORE_INTERVAL_MINUTES`` (a computation of a few dependent tags
    right after a run does not score again); the results models write themselves start
    nothing. The ids of the models queued."""
    from . import tasks

    written_by_models = set(ModelOutput.objects.filter(tag_id__in=tag_ids).values_list("tag_id", flat=True))
    if not set(tag_ids) - written_by_models:
        return []
    recent = timezone.now() - dt.timedelta(minutes=settings.TAGPORTAL_MODEL_SCORE_INTERVAL_MINUTES)
    models = list(
        PredictiveModel.objects.filter(
            brand_id=brand_id, is_active=True, runs__status=ModelRunStatus.PUBLISHED
        )
        .exclude(runs__started_at__gte=recent)
        .distinct()
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for model_id in models:
        background.queue_after_commit(tasks.score_model_task, model_id, queue=tasks.QUEUE)
    return models
