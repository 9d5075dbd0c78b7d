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
  largest drop against the last published run, is **held** — no tag is written and,
  once the transaction commits, :data:`~.signals.run_held` is sent with the reason and
  the comparison (:func:`held_comparison`; governance turns it into a change request;
  when nobody takes it, the brand's data stewards get an inbox notice); otherwise each
  output is written to its tag with the engine's
  :func:`~tagportal.engine.results.store_values`, all of them in one transaction.
- :func:`publish_held_run`: a held run published after review, its guard overridden
  (refused once a later fit has been published: :func:`held_run_refusal`).
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
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from tagportal.catalog.choices import RefreshMode, TagKind
from tagportal.catalog.models import Category, Tag
from tagportal.catalog.services import publish_tag
from tagportal.core import background
from tagportal.core.exceptions import Conflict
from tagportal.core.roles import reviewers_of
from tagportal.engine import results
from tagportal.engine import services as engine
from tagportal.engine.evaluate import TagSpec
from tagportal.notifications.services import notify
from tagportal.profiles import loaders, lookups
from tagportal.profiles.choices import IdentityType, LookupEndpoint
from tagportal.profiles.models import Customer

from . import byom, endpoints, signals, summaries
from .choices import ModelKind, ModelRunStatus
from .kinds import TAG_SPECS, EndpointConfig, Kind, ParametersRefused, kind_of, level_outputs
from .models import EndpointSecret, ModelOutput, ModelRun, PredictiveModel

log = logging.getLogger(__name__)

#: The key of a scoring run's window naming the fit it scored with (see :func:`score_model`).
SCORED_WITH = "scored_with_run"

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
        name, name_en = spec.name, spec.name_en
        if kind.names_from_model:
            name = f"{model.name}·{spec.name}"[:100]
            name_en = f"{model.name} {spec.name_en.lower()}"[:100]
        tag = Tag(
            code=_tag_code(model, spec.key),
            name=name,
            name_en=name_en,
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
    """The model's last published fit (a scoring run, which applies a fit to new data and
    names it in ``window["scored_with_run"]``, is not one)."""
    runs = ModelRun.objects.filter(model=model, status=ModelRunStatus.PUBLISHED).exclude(
        window__has_key=SCORED_WITH
    )
    if before is not None:
        runs = runs.exclude(pk=before.pk)
    return runs.order_by("-started_at", "-pk").first()


#: Why a run is held (``comparison["cause"]``): below the floor, fell too far against the
#: last published run, no key metric, or refused by the kind's own guard.
FLOOR, DROP, MISSING, REFUSED = "floor", "drop", "missing", "refused"


def hold_reason(model: PredictiveModel, kind: Kind, value: float | None, previous: ModelRun | None) -> str:
    """Why a run with key metric ``value`` must not be published ("" when it may)."""
    return _hold_cause(model, kind, value, previous)[1]


def _hold_cause(model, kind: Kind, value, previous) -> tuple[str, str]:
    """``(cause, reason)`` of :func:`hold_reason` (``("", "")`` when the run may be published)."""
    if kind.key_metric is None:
        return "", ""
    name = kind.key_metric.upper()  # "AUC"
    if value is None:
        return MISSING, _("The run reports no %(metric)s.") % {"metric": name}
    if model.metric_floor is not None and value < model.metric_floor:
        return FLOOR, _("%(metric)s %(value).4f is below the floor %(floor).4f.") % {
            "metric": name,
            "value": value,
            "floor": model.metric_floor,
        }
    if model.max_drop is not None and previous is not None and previous.key_metric is not None:
        drop = previous.key_metric - value
        if drop > model.max_drop:
            return DROP, _(
                "%(metric)s fell from %(before).4f (the run of %(when)s) to %(value).4f, "
                "by more than %(margin).4f."
            ) % {
                "metric": name,
                "before": previous.key_metric,
                "when": timezone.localtime(previous.started_at).strftime("%Y-%m-%d %H:%M"),
                "value": value,
                "margin": model.max_drop,
            }
    return "", ""


def held_comparison(run: ModelRun, previous: ModelRun | None, cause: str) -> dict:
    """What a steward compares before publishing a held run, as plain JSON: the key
    metric's name (``metric``), this run's value (``value``), the model's ``floor`` and
    largest drop (``margin``), the last published fit (``previous``: run id, value, start
    and as-of, or ``None``), why it was held (``cause``) and every number of the two
    runs' metrics side by side (``metrics``: ``[{"name", "held", "published"}]``, the key
    metric first)."""
    model = run.model
    kind = kind_of(model.kind)
    held = flat_metrics(run.metrics)
    published = flat_metrics(previous.metrics) if previous is not None else {}
    names = list(held) + [name for name in published if name not in held]
    main = [n.path for n in summaries.NUMBERS.get(model.kind, [])]
    if main:  # the kind's main numbers (the model page's), not every count and timing
        names = [name for name in main if name in held or name in published]
    key = kind.key_metric
    # the key metric's path: the one named so whose value is the run's key metric
    paths = [n for n in names if key and (n == key or n.endswith(f".{key}"))]
    key_name = next((n for n in paths if held.get(n) == run.key_metric), paths[0] if paths else None)
    if key_name is not None:
        names.remove(key_name)
        names.insert(0, key_name)
    return _jsonable(
        {
            "metric": key,
            "metric_path": key_name,
            "value": run.key_metric,
            "floor": model.metric_floor,
            "margin": model.max_drop,
            "cause": cause,
            "previous": None
            if previous is None
            else {
                "run": previous.pk,
                "value": previous.key_metric,
                "started_at": previous.started_at.isoformat(),
                "as_of": previous.as_of.isoformat(),
            },
            "metrics": [
                {"name": name, "held": held.get(name), "published": published.get(name)} for name in names
            ],
        }
    )


def flat_metrics(metrics, prefix: str = "") -> dict[str, float]:
    """The numbers of a run's metrics, nested keys joined with dots (timings, lists and
    texts left out).

    >>> flat_metrics({"validation": {"auc": 0.7, "roc_curve": {"fpr": [0, 1]}}, "rows": 9,
    ...               "seconds": {"train": 1.2}, "chosen": "lr", "ok": True})
    {'validation.auc': 0.7, 'rows': 9}
    """
    found: dict[str, float] = {}
    for name, value in (metrics or {}).items():
        path = f"{prefix}{name}"
        if path in TIMINGS:
            continue
        if isinstance(value, dict):
            found.update(flat_metrics(value, f"{path}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found[path] = value
    return found


#: Metrics that time a run rather than measure it.
TIMINGS = frozenset({"seconds"})


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
            if model.kind == ModelKind.ENDPOINT:
                config = _endpoint_config(model, config)
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
    previous = last_published(model, before=run)
    cause, reason = _hold_cause(model, kind, fit.key_metric, previous)
    if not reason and not fit.publishable:
        cause, reason = REFUSED, fit.hold_reason or _("The run is not publishable.")
    if reason:
        run = _finish(run, began, ModelRunStatus.HELD, error=reason)
        comparison = held_comparison(run, previous, cause)
        transaction.on_commit(lambda: announce_held(run, reason, comparison))
        return run
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


def announce_held(run: ModelRun, reason: str, comparison: dict) -> None:
    """Send :data:`~.signals.run_held`; when no receiver takes the run to review (none
    answers something true, or they fail), the brand's data stewards get an inbox notice:
    they always hear of a held run."""
    answers = signals.run_held.send_robust(sender=ModelRun, run=run, reason=reason, comparison=comparison)
    handled = False
    for receiver, answer in answers:
        if isinstance(answer, Exception):
            log.error("%r failed on the held run %s", receiver, run.pk, exc_info=answer)
        elif answer:
            handled = True
    if not handled:
        _tell_stewards(run.model, run, reason)


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


# ---------------------------------------------------------------------------------------------
# Publishing a held run


class HeldRunRefused(Conflict):
    """A held run that cannot be published: it is not held any more, a later run of its
    model has been published since (it is superseded), or scoring with it failed.
    Nothing was written."""


def later_published(run: ModelRun) -> ModelRun | None:
    """The first fit of ``run``'s model published after it started, if any (scoring runs
    apply an older fit to new data: they do not supersede a fit)."""
    return (
        ModelRun.objects.filter(model_id=run.model_id, status=ModelRunStatus.PUBLISHED)
        .exclude(window__has_key=SCORED_WITH)
        .filter(Q(started_at__gt=run.started_at) | Q(started_at=run.started_at, pk__gt=run.pk))
        .order_by("started_at", "pk")
        .first()
    )


def held_run_refusal(run: ModelRun) -> str:
    """Why ``run`` cannot be published now ("" when it can): see :class:`HeldRunRefused`."""
    if run.status != ModelRunStatus.HELD:
        return _("The run #%(run)s is %(status)s, not held: there is nothing to publish.") % {
            "run": run.pk,
            "status": run.get_status_display(),
        }
    later = later_published(run)
    if later is not None:
        return _(
            "The run #%(run)s is superseded: the run #%(later)s of %(when)s has been published since. "
            "Nothing was written."
        ) % {
            "run": run.pk,
            "later": later.pk,
            "when": timezone.localtime(later.started_at).strftime("%Y-%m-%d %H:%M"),
        }
    return ""


def publish_held_run(run: ModelRun, user=None, frames=None, as_of: dt.datetime | None = None) -> ModelRun:
    """Publish a held run after review, its guard overridden: a kind with something learnt
    (the churn warning) scores the brand's current data with this run's own fitted
    artefact; a kind whose fit is its scoring fits again at the run's as-of moment (with
    the model's parameters). The outputs are written and the run becomes published, so
    later scoring applies its fit. Refused with :class:`HeldRunRefused` (nothing written)
    when :func:`held_run_refusal` says so or scoring fails. ``frames`` as for
    :func:`run_model`; ``as_of``: the moment scored (now by default)."""
    with transaction.atomic():
        run = (
            ModelRun.objects.select_for_update().select_related("model__brand__business_line").get(pk=run.pk)
        )
        refusal = held_run_refusal(run)
        if refusal:
            raise HeldRunRefused(refusal, run=run.pk, status=run.status)
        model = run.model
        kind = kind_of(model.kind)
        started_at = timezone.now()
        try:
            if frames is None:
                frames = loaders.load_frames(model.brand)
            if kind.score is not None:
                artefact = pickle.loads(bytes(run.artefact))  # our own artefact
                scores = kind.score(frames, artefact, as_of or started_at)
            else:
                config = kind.config(model.parameters)
                if model.kind == ModelKind.ENDPOINT:
                    config = _endpoint_config(model, config)
                fit = kind.fit(frames, config, run.as_of)
                if model.kind == ModelKind.ENDPOINT and not fit.publishable:
                    # Batches the endpoint failed: publishing would leave people unscored.
                    raise ByomRefused(fit.hold_reason, code="partial")
                scores = fit.scores
            _write_outputs(model, scores, frames, started_at, user=user)
        except Exception as exc:
            log.exception("publishing the held run %s of model %s failed", run.pk, model.pk)
            raise HeldRunRefused(
                _("The run #%(run)s could not be published: %(error)s. Nothing was written.")
                % {"run": run.pk, "error": f"{type(exc).__name__}: {exc}"},
                run=run.pk,
                status=run.status,
            ) from exc
        run.status, run.error, run.people_scored = ModelRunStatus.PUBLISHED, "", len(scores)
        run.save(update_fields=["status", "error", "people_scored"])
    return run


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
    models = (
        PredictiveModel.objects.filter(is_active=True, brand__is_active=True)
        .exclude(schedule="")
        .exclude(kind__in=[k for k in ModelKind.values if not kind_of(k).runnable])
    )
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
        window={SCORED_WITH: fitted.pk},
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
        .exclude(kind__in=[k for k in ModelKind.values if not kind_of(k).scored_after_computation])
        .exclude(runs__started_at__gte=recent)
        .distinct()
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for model_id in models:
        background.queue_after_commit(tasks.score_model_task, model_id, queue=tasks.QUEUE)
    return models


# ---------------------------------------------------------------------------------------------
# Bring your own model


class ByomRefused(ValueError):
    """A request about a brand's own model that is refused whole (answered 400)."""

    def __init__(self, message: str, *, code: str = "invalid"):
        super().__init__(message)
        self.message = message
        self.code = code


#: Shortest and longest HMAC secret of a scoring endpoint.
SECRET_MIN_LENGTH, SECRET_MAX_LENGTH = 16, 256


def model_key(model: PredictiveModel) -> str:
    """The model's key in the scoring contract's requests."""
    return f"{model.brand.code}/{model.pk}"


def has_endpoint_secret(model: PredictiveModel) -> bool:
    return EndpointSecret.objects.filter(model_id=model.pk).exists()


@transaction.atomic
def set_endpoint_secret(model: PredictiveModel, secret: str, user=None) -> None:
    """Store (encrypted) the HMAC secret of a scoring endpoint model (replacing one set before)."""
    if model.kind != ModelKind.ENDPOINT:
        raise ByomRefused(_("Only a scoring endpoint model has a secret."), code="kind")
    if not isinstance(secret, str) or not SECRET_MIN_LENGTH <= len(secret) <= SECRET_MAX_LENGTH:
        raise ByomRefused(
            _("The secret must be %(low)d to %(high)d characters long.")
            % {"low": SECRET_MIN_LENGTH, "high": SECRET_MAX_LENGTH},
            code="secret",
        )
    EndpointSecret.objects.update_or_create(
        model=model,
        defaults={
            "secret": secret,
            "set_at": timezone.now(),
            "set_by": user if user is not None and user.is_authenticated else None,
        },
    )


def _endpoint_config(model: PredictiveModel, config: EndpointConfig) -> EndpointConfig:
    """The model's configuration with its secret and key, after checking its URL again."""
    import dataclasses

    endpoints.check_url(config.url)
    stored = EndpointSecret.objects.filter(model_id=model.pk).first()
    if stored is None:
        raise ByomRefused(_("The scoring endpoint has no secret: set one first."), code="no_secret")
    secret = stored.secret  # "" when no configured key decrypts it
    if not secret:
        raise ByomRefused(
            _("The scoring endpoint's secret cannot be read (the key changed?): set it again."),
            code="no_secret",
        )
    return dataclasses.replace(config, secret=secret, model_key=model_key(model))


def test_endpoint(model: PredictiveModel) -> dict:
    """Post one tiny signed batch (one made-up person, OneID 1, every feature ``null``) to
    the model's scoring endpoint, without retries: ``ok`` (the answer is the contract's
    and scores the person), ``status``, ``error`` (the client's error code), ``seconds``,
    the ``request`` body sent and the ``response`` body received when it is the contract's."""
    import json

    import pandas as pd

    from . import scoring_client
    from .scoring_contract import ScoringResponseSerializer

    if model.kind != ModelKind.ENDPOINT:
        raise ByomRefused(_("Only a scoring endpoint model can be tested."), code="kind")
    try:
        config = _endpoint_config(model, kind_of(model.kind).config(model.parameters))
    except (ParametersRefused, endpoints.EndpointRefused) as exc:
        raise ByomRefused(str(exc), code="endpoint") from exc
    features = pd.DataFrame(
        {name: [None] for name in config.features}, index=pd.Index([1], dtype="int64", name="oneid")
    ).astype("float64")
    sent = json.loads(scoring_client._body(config.model_key, 0, features, list(config.features)))
    seen: dict = {}
    session = scoring_client.scoring_session(retries=0)
    original = session.post

    def post(*args, **kwargs):
        response = original(*args, **kwargs)
        seen["status"] = response.status_code
        try:
            seen["body"] = response.json()
        except ValueError:
            seen["body"] = None
        return response

    session.post = post
    try:
        result = scoring_client.score_over_http(
            config.url,
            config.secret,
            features,
            model_key=config.model_key,
            batch_size=1,
            timeout=config.timeout,
            retries=0,
            session=session,
        )
    finally:
        session.close()
    report = result.report
    failed = report["failed_batches"][0] if report["failed_batches"] else None
    body = seen.get("body")
    if not (isinstance(body, dict) and ScoringResponseSerializer(data=body).is_valid()):
        body = None
    return {
        "ok": bool(report["complete"]),
        "status": seen.get("status"),
        "error": failed["error"] if failed else ("unscored" if not report["complete"] else None),
        "seconds": report["seconds"],
        "endpoint": report["endpoint"],
        "request": sent,
        "response": body,
    }


def _live_people(brand) -> int:
    return Customer.objects.filter(brand=brand, merged_into__isnull=True).count()


def upload_scores(
    model: PredictiveModel, upload, *, user=None, id_column: str = byom.ONEID, app: str = ""
) -> ModelRun:
    """Read a score file for a score file model and write its scores, all or nothing.

    Recorded as a run: published with the report in its metrics (``upload``) when every
    row is good; failed — nothing written — with the report and the first row errors
    (``errors``: row, column, message; ``upload.bad_rows`` counts them all) otherwise,
    or with the reason when the file is refused whole (too big, not CSV or Parquet).

    A file keyed by an identity type answers who holds those values: the caller must
    hold ``profiles.lookup_identity`` (``PermissionDenied`` before the file is read,
    recorded as a refused lookup); an accepted one is recorded as an
    :class:`~tagportal.profiles.models.IdentityLookup` (how many values, how many found;
    never the values)."""
    if model.kind != ModelKind.SCORE_FILE:
        raise ByomRefused(_("Scores are uploaded to a score file model only."), code="kind")
    kind = kind_of(model.kind)
    try:
        config = kind.config(model.parameters)
    except ParametersRefused as exc:
        raise ByomRefused(str(exc), code="parameters") from exc
    by_identity = id_column != byom.ONEID
    if by_identity and id_column not in IdentityType.values:
        raise ByomRefused(
            _("Unknown identity column “%(column)s”; expected oneid or one of %(types)s.")
            % {"column": id_column, "types": ", ".join(IdentityType.values)},
            code="id_column",
        )
    if by_identity:
        lookups.check(user, LookupEndpoint.SCORE_FILE, 0, brand=model.brand)
    started_at = timezone.now()
    run = ModelRun.objects.create(
        model=model,
        status=ModelRunStatus.RUNNING,
        as_of=started_at,
        started_at=started_at,
        parameters={**config.to_dict(), "id_column": id_column, "app": app or ""},
        window={"file": str(getattr(upload, "name", "") or "")[:200]},
    )
    began = time.perf_counter()
    try:
        scored = byom.read_score_file(
            model.brand, upload, id_column=id_column, app=app, score_range=config.score_range
        )
    except byom.ScoreFileError as exc:
        run.metrics = {"upload": {"refused": exc.code}}
        return _finish(run, began, ModelRunStatus.FAILED, error=exc.message)
    report = _jsonable(scored.report)
    if by_identity:
        lookups.record(
            user,
            LookupEndpoint.SCORE_FILE,
            report["identity_values"],
            found=report["matched"],
            brand=model.brand,
        )
    if not scored.ok:
        run.metrics = {"upload": report, "errors": scored.errors}
        return _finish(
            run,
            began,
            ModelRunStatus.FAILED,
            error=_("%(n)s bad rows: nothing was written.") % {"n": max(report["bad_rows"], 1)},
        )
    outputs = level_outputs(scored.scores, config.high, config.medium)
    run.metrics = {
        "upload": report,
        "levels": {str(k): int(v) for k, v in outputs["level"].value_counts().items()},
    }
    run.people_scored = len(outputs)
    try:
        with transaction.atomic():
            population = max(_live_people(model.brand), len(outputs))
            for output in ensure_outputs(model, user=user):
                results.store_values(
                    output.tag, outputs[output.key], population=population, started_at=started_at
                )
    except Exception as exc:
        log.exception("writing the scores of model %s (%s) failed", model.pk, model.name)
        return _finish(run, began, ModelRunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
    return _finish(run, began, ModelRunStatus.PUBLISHED)
