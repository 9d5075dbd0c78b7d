"""Held runs of algorithm models as change requests: a run below its model's floor, or
whose key metric fell too far, is not published; it comes here to be reviewed.

- :func:`propose_held_run` (the receiver of the predictive app's ``run_held``): a
  submitted change request in the model's business line and brand, proposed by the
  models' service account (:func:`models_account`, inactive, so that any data steward
  reviews it: four eyes), with one change of kind ``model_run`` per output tag of the
  model. Each change names the run (``model_run``, ``changes["run"]``) and shows the
  comparison as its diff: the last published run against this one, metric by metric
  (the first change carries every metric, the others the key metric). An older open
  request for a run of the same model is withdrawn: the newer run replaces it.
- Approving and applying publishes the run (:func:`publish`, the predictive app's
  ``publish_held_run``): its values go to the output tags; the tags' definitions do not
  change, so no tag version is made. Rejecting leaves the run held.
- A request whose run is no longer held, or was superseded by a later published run,
  is out of date like a request made on an old tag version (:func:`refusal`): approving
  or applying it answers 409 and records nothing.
- Nobody proposes or edits such a change by hand (the services refuse the kind).
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from tagportal.catalog.history import display
from tagportal.predictive import services as predictive
from tagportal.predictive import summaries
from tagportal.predictive.choices import ModelRunStatus
from tagportal.predictive.models import ModelRun

from .choices import AuditAction, ChangeKind, RequestState
from .models import ChangeItem, ChangeRequest, Comment

log = logging.getLogger(__name__)

#: The service account that proposes publishing held model runs.
SYSTEM_USERNAME = "tagportal-models"
SYSTEM_NAME = "算法模型"
#: States of a request that a newer held run of the same model withdraws.
REPLACEABLE_STATES = (RequestState.DRAFT, RequestState.SUBMITTED, RequestState.CHANGES_REQUESTED)


def models_account():
    """The proposer of held model runs (created on first use): inactive, with no usable
    password and no permissions, so nobody signs in as it and every steward may review
    what it proposes."""
    User = get_user_model()
    user, created = User.objects.get_or_create(
        username=SYSTEM_USERNAME, defaults={"display_name": SYSTEM_NAME, "is_active": False}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


# ---------------------------------------------------------------------------
# Proposing


def _when(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if moment else ""


def _number(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return display(value)


def _why(comparison: dict) -> str:
    metric = str(comparison.get("metric") or "").upper()
    cause = comparison.get("cause")
    if cause == predictive.FLOOR:
        return _("%(metric)s below its floor") % {"metric": metric}
    if cause == predictive.DROP:
        return _("%(metric)s dropped by more than %(margin)s") % {
            "metric": metric,
            "margin": _number(comparison.get("margin")),
        }
    if cause == predictive.MISSING:
        return _("no %(metric)s reported") % {"metric": metric}
    return _("refused by its own guard")


def diff_rows(run: ModelRun, comparison: dict, every_metric: bool = True) -> list[dict]:
    """The comparison as diff rows (the last published run → this run): the runs, then
    the metrics (only the key metric unless ``every_metric``)."""
    previous = comparison.get("previous") or {}
    rows = [
        {
            "field": "run",
            "label": _("Run"),
            "old": f"#{previous['run']} · {_when(dt.datetime.fromisoformat(previous['started_at']))}"
            if previous.get("run")
            else display(None),
            "new": f"#{run.pk} · {_when(run.started_at)}",
        }
    ]
    key = comparison.get("metric_path")
    for metric in comparison.get("metrics") or []:
        name = metric.get("name")
        if not every_metric and name != key:
            continue
        label = summaries.label_of(run.model.kind, name)
        if name == key:
            label = _("%(metric)s (key metric)") % {"metric": label}
        rows.append(
            {
                "field": f"metric:{name}",
                "label": label,
                "old": _number(metric.get("published")),
                "new": _number(metric.get("held")),
            }
        )
    return rows


def _description(run: ModelRun, reason: str, comparison: dict) -> str:
    model = run.model
    lines = [
        _(
            "The run #%(run)s (as of %(as_of)s) of the algorithm model “%(name)s” (%(brand)s) was held "
            "instead of published: %(reason)s"
        )
        % {
            "run": run.pk,
            "as_of": _when(run.as_of),
            "name": model.name,
            "brand": model.brand.name,
            "reason": reason,
        },
        _("Metric floor: %(floor)s. Largest drop: %(margin)s.")
        % {"floor": _number(comparison.get("floor")), "margin": _number(comparison.get("margin"))},
        _(
            "Approving and applying this request publishes the run: its output tags get the run's "
            "values (their definitions do not change). Rejecting it keeps their previous values."
        ),
    ]
    return "\n".join(lines)


def propose_held_run(run: ModelRun, reason: str, comparison: dict) -> ChangeRequest | None:
    """A submitted change request to publish the held ``run`` (module docstring); the
    request already made for it if any; ``None`` when the run is no longer held. Its
    texts are in the site's language, whatever language the code holding the run had."""
    with translation.override(settings.LANGUAGE_CODE):
        return _propose_held_run(run, reason, comparison)


@transaction.atomic
def _propose_held_run(run: ModelRun, reason: str, comparison: dict) -> ChangeRequest | None:
    from . import services

    run = ModelRun.objects.select_related("model__brand__business_line").get(pk=run.pk)
    if run.status != ModelRunStatus.HELD:
        return None
    existing = ChangeRequest.objects.filter(items__model_run=run).order_by("-pk").first()
    if existing is not None:
        return existing
    model = run.model
    outputs = predictive.ensure_outputs(model)
    if not outputs:  # pragma: no cover - every kind has outputs
        return None
    bot = models_account()
    title = _("Algorithm model “%(name)s”: run #%(run)s awaits publishing: %(why)s") % {
        "name": model.name,
        "run": run.pk,
        "why": _why(comparison),
    }
    now = timezone.now()
    cr = ChangeRequest(
        title=title[:200],
        description=_description(run, reason, comparison),
        business_line=model.brand.business_line,
        brand=model.brand,
        proposer=bot,
        state=RequestState.SUBMITTED,
        submitted_at=now,
    )
    cr._change_reason = _("Proposed")
    cr.save()
    for position, output in enumerate(outputs):
        ChangeItem.objects.create(
            change_request=cr,
            position=position,
            kind=ChangeKind.MODEL_RUN,
            tag=output.tag,
            model_run=run,
            changes={"run": run.pk, "model": model.pk, "output": output.key, "comparison": comparison},
            diff=diff_rows(run, comparison, every_metric=position == 0),
        )
    services._audit(cr, bot, AuditAction.PROPOSED, items=len(outputs), run=run.pk)
    services._audit(cr, bot, AuditAction.SUBMITTED, run=run.pk)
    _replace_older(cr, run, bot)
    services.ask_for_review(cr, bot)
    return cr


def _replace_older(cr: ChangeRequest, run: ModelRun, bot) -> None:
    """Withdraw the open requests for older runs of ``run``'s model, with a comment
    naming ``cr`` (an approved one stays: a steward decided it)."""
    from . import services

    older = (
        ChangeRequest.objects.filter(
            items__kind=ChangeKind.MODEL_RUN,
            items__model_run__model_id=run.model_id,
            state__in=REPLACEABLE_STATES,
        )
        .exclude(pk=cr.pk)
        .distinct()
    )
    for old in older:
        services.withdraw(bot, old)
        Comment.objects.create(
            change_request=old,
            author=bot,
            text=_("Replaced by change request #%(n)s for the newer held run #%(run)s.")
            % {"n": cr.pk, "run": run.pk},
        )


# ---------------------------------------------------------------------------
# Reviewing and applying


def refusal(item: ChangeItem) -> str:
    """Why the run of a ``model_run`` change can no longer be published ("" when it can)."""
    if item.model_run_id is None:
        return _("The model run of this request no longer exists.")
    run = ModelRun.objects.defer("artefact").get(pk=item.model_run_id)
    return predictive.held_run_refusal(run)


@transaction.atomic
def publish(user, cr: ChangeRequest, items: list[ChangeItem]) -> ModelRun:
    """Publish the run of an approved ``model_run`` request and record each change as
    applied (no tag version is made). Refused (409, nothing written) when the run is no
    longer held or was superseded."""
    from . import services

    run_ids = {item.model_run_id for item in items}
    if len(run_ids) != 1 or None in run_ids:
        raise services.OutOfDateChangeRequest(_("The model run of this request no longer exists."))
    try:
        run = predictive.publish_held_run(ModelRun(pk=run_ids.pop()), user=user)
    except predictive.HeldRunRefused as exc:
        raise services.OutOfDateChangeRequest(str(exc), **exc.extra) from exc
    for item in items:
        services._audit(
            cr, user, AuditAction.APPLIED, tag=item.tag, kind=item.kind, run=run.pk,
            version=item.tag.published_version, fields=[],
        )  # fmt: skip
    return run


# ---------------------------------------------------------------------------
# Links


def run_review_links(user, run_ids) -> dict[int, dict]:
    """For the model page: the latest change request ``user`` may view of each run
    (registered with the predictive app's hooks)."""
    visible = ChangeRequest.objects.restrict(user, "view")
    rows = (
        ChangeItem.objects.filter(kind=ChangeKind.MODEL_RUN, model_run_id__in=list(run_ids))
        .filter(change_request__in=visible)
        .values_list("model_run_id", "change_request_id", "change_request__state")
        .order_by("change_request_id")
    )
    links = {}
    for run_id, cr_id, state in rows:
        links[run_id] = {
            "url": reverse("governance:request", args=[cr_id]),
            "label": _("Change request #%(n)s (%(state)s)")
            % {"n": cr_id, "state": RequestState(state).label},
        }
    return links


def run_link(item: ChangeItem) -> dict | None:
    """Where the request page links the run of a ``model_run`` change: the model page
    with the run selected."""
    model_id = (item.changes or {}).get("model") if isinstance(item.changes, dict) else None
    if item.model_run_id is None or not model_id:
        return None
    return {
        "url": f"{reverse('predictive:detail', args=[model_id])}?run={item.model_run_id}",
        "label": _("Run #%(run)s of the model") % {"run": item.model_run_id},
    }
