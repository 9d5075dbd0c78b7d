"""The algorithm model pages (算法模型), mounted at ``/models/`` with the namespace
``predictive``: the list of the models the user may view (filtered by brand and kind)
and one model's page — its definition, output tags, last runs and the selected run's
metrics and charts (:mod:`.figures`), with a "run now" button — or, for a score file
model, a form to upload a score file (what the API's ``scores`` action does: all or
nothing, the first bad rows shown; a file keyed by an identity type needs the lookup
permission, 403 otherwise).

Every page needs a login; models come from ``restrict(user, "view")``, so another
brand's model answers 404. Running needs what the API's ``run`` action needs: the
``change`` scope on the model and the permission ``predictive.run_predictivemodel``; a
refused run is a 403. Figures are drawn by ``static/predictive/predictive.js`` with the
plotly.js served from static files (no CDN). Times are shown in Beijing time.
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from tagportal.catalog.models import Brand
from tagportal.core.days import beijing_text
from tagportal.core.filters import id_or_none
from tagportal.core.permissions import may

from . import figures as fg
from . import hooks, services, summaries
from .choices import ModelKind, ModelRunStatus
from .models import ModelOutput, ModelRun, PredictiveModel

PAGE_SIZE = 50
#: Runs listed on a model's page, and drawn in its parameter history.
RUNS_SHOWN = 20
STATUS_CLASSES = {
    ModelRunStatus.PUBLISHED: "tp-ok",
    ModelRunStatus.SUCCEEDED: "tp-ok",
    ModelRunStatus.RUNNING: "tp-running",
    ModelRunStatus.HELD: "tp-held",
    ModelRunStatus.FAILED: "tp-failed",
}
#: What json_script escapes, so that the JSON is safe inside a <script> element.
_SCRIPT_ESCAPES = {ord(">"): "\\u003E", ord("<"): "\\u003C", ord("&"): "\\u0026"}
#: Figures in the order the model page draws them, with their widths ("wide": a full row).
FIGURE_ORDER = (
    "roc",
    "calibration",
    "lift",
    "importances",
    "candidates",
    "levels",
    "segments",
    "scores",
    "intent_levels",
    "intent",
    "clv",
    "stages",
    "sankey",
)
WIDE_FIGURES = frozenset({"sankey", "history"})


def figures_script(figures: dict) -> str:
    """The figures as one ``<script type="application/json" id="tp-figures">`` (each
    figure's own ``to_json()``), escaped like Django's ``json_script``."""
    if not figures:
        return ""
    body = ",".join(f"{json.dumps(name)}:{figure.to_json()}" for name, figure in figures.items())
    return format_html(
        '<script id="tp-figures" type="application/json">{}</script>',
        mark_safe(("{" + body + "}").translate(_SCRIPT_ESCAPES)),
    )


def _render(request, template: str, context: dict, status: int = 200) -> TemplateResponse:
    return TemplateResponse(request, template, {**admin.site.each_context(request), **context}, status=status)


def _may_run(user, model: PredictiveModel) -> bool:
    return user.has_perm("predictive.run_predictivemodel") and may(user, model, "change")


def _run_row(run: ModelRun | None) -> dict | None:
    if run is None:
        return None
    window = run.window or {}
    return {
        "run": run,
        "status_class": STATUS_CLASSES.get(run.status, ""),
        "started": beijing_text(run.started_at),
        "as_of": beijing_text(run.as_of),
        "window": _window_text(window),
        "headline": fg.headline(run.model.kind, run.metrics, run.key_metric),
    }


def _window_text(window: dict) -> str:
    if window.get("start") and window.get("end"):
        return f"{window['start']} – {window['end']}"
    if window.get("validation"):
        return _("validation %(day)s") % {"day": window["validation"]}
    return ""


@login_required
@require_GET
def model_list(request):
    user = request.user
    if not user.has_perm("predictive.view_predictivemodel"):
        raise PermissionDenied(_("You may not open this page."))
    models = PredictiveModel.objects.restrict(user, "view").select_related("brand__business_line")
    brands = Brand.objects.restrict(user, "view").select_related("business_line")
    selected = {"brand": id_or_none(request.GET.get("brand")), "kind": request.GET.get("kind", "")}
    if selected["brand"]:
        models = models.filter(brand_id=selected["brand"])
    if selected["kind"] in ModelKind.values:
        models = models.filter(kind=selected["kind"])
    else:
        selected["kind"] = ""
    page = Paginator(models.order_by("brand__code", "name", "pk"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    ids = [m.pk for m in page]
    last = {}
    for run in (
        ModelRun.objects.filter(model_id__in=ids)
        .select_related("model")
        .defer("artefact", "charts")
        .order_by("model_id", "-started_at", "-pk")
    ):
        last.setdefault(run.model_id, run)
    outputs: dict[int, list] = {}
    for output in (
        ModelOutput.objects.filter(model_id__in=ids).select_related("tag").order_by("model_id", "key")
    ):
        outputs.setdefault(output.model_id, []).append(output)
    rows = [{"model": m, "last": _run_row(last.get(m.pk)), "outputs": outputs.get(m.pk, [])} for m in page]
    params = request.GET.copy()
    params.pop("page", None)
    context = {
        "title": _("Algorithm models"),
        "rows": rows,
        "page": page,
        "query_string": params.urlencode(),
        "brands": brands,
        "kinds": ModelKind.choices,
        "selected": selected,
    }
    return _render(request, "predictive/list.html", context)


@login_required
@require_GET
def model_detail(request, pk: int):
    user = request.user
    model = get_object_or_404(
        PredictiveModel.objects.restrict(user, "view").select_related("brand__business_line", "created_by"),
        pk=pk,
    )
    runs = list(ModelRun.objects.filter(model=model).select_related("model").defer("artefact")[:RUNS_SHOWN])
    chosen = id_or_none(request.GET.get("run"))
    selected = next((r for r in runs if r.pk == chosen), None) if chosen else None
    if chosen and selected is None:
        selected = get_object_or_404(ModelRun.objects.filter(model=model).defer("artefact"), pk=chosen)
    if selected is None:  # the newest run that fitted, else the newest
        selected = next((r for r in runs if r.status != ModelRunStatus.FAILED and r.metrics), None)
        selected = selected or (runs[0] if runs else None)
    outputs = list(ModelOutput.objects.filter(model=model).select_related("tag").order_by("key"))
    figures, numbers_note = {}, ""
    if selected is not None:
        numbers = None
        if model.kind == ModelKind.CLV:
            if selected.pk == getattr(services.last_published(model), "pk", None):
                numbers = fg.output_numbers(
                    {o.key: o.tag_id for o in outputs if o.key in ("purchase_intent", "clv")}
                )
            else:
                numbers_note = _(
                    "The distributions of purchase intent and CLV are drawn from the published tags: "
                    "open the last published run to see them."
                )
        figures = fg.run_figures(model.kind, selected.metrics, selected.charts, numbers)
    history = fg.parameter_history(
        [
            {
                "label": f"#{r.pk} · {beijing_text(r.as_of, '%m-%d')}",
                "parameters": r.parameters,
                "key_metric": r.key_metric,
            }
            for r in reversed(runs)
            if r.status != ModelRunStatus.FAILED
        ]
    )
    if history is not None:
        figures["history"] = history
    ordered = [name for name in (*FIGURE_ORDER, "history") if name in figures]
    reviews = hooks.run_links(user, [r.pk for r in runs])
    validation = (selected.metrics or {}).get("validation") or {} if selected is not None else {}
    context = {
        "title": model.name,
        "model": model,
        "parameters_text": json.dumps(model.parameters or {}, ensure_ascii=False, indent=2, sort_keys=True),
        "outputs": outputs,
        "runs": [{**_run_row(r), "reviews": reviews.get(r.pk, [])} for r in runs],
        "selected": _run_row(selected),
        "selected_parameters": json.dumps(
            selected.parameters if selected is not None else {}, ensure_ascii=False, indent=2, sort_keys=True
        ),
        "summary": _summary(model.kind, selected) if selected is not None else [],
        "validation": validation,
        "no_roc": model.kind == ModelKind.CHURN and selected is not None and "roc" not in figures,
        "numbers_note": numbers_note,
        "figure_names": [(name, name in WIDE_FIGURES) for name in ordered],
        "figures_script": figures_script({name: figures[name] for name in ordered}),
        "may_run": _may_run(user, model),
        "created": beijing_text(model.created),
    }
    return _render(request, "predictive/detail.html", context)


def _summary(kind: str, run: ModelRun) -> list[tuple[str, str]]:
    """The selected run's main numbers as (label, text)."""
    metrics = run.metrics or {}
    rows = [
        (str(number.label), number.format.format(value)) for number, value in summaries.numbers(kind, metrics)
    ]
    if kind == ModelKind.CHURN and metrics.get("chosen"):
        rows.insert(
            len(rows) - 1 if rows else 0,
            (_("Chosen model"), summaries.candidate_label(str(metrics["chosen"]))),
        )
    if run.people_scored is not None:
        rows.append((_("People scored"), f"{run.people_scored:,}"))
    return rows


@login_required
@require_POST
def run_now(request, pk: int):
    user = request.user
    model = get_object_or_404(PredictiveModel.objects.restrict(user, "view"), pk=pk)
    if not _may_run(user, model):
        raise PermissionDenied(_("You may not run algorithm models."))
    services.request_run(model)
    messages.success(
        request,
        _("A run of “%(name)s” is queued; it appears in the runs below once it starts.")
        % {"name": model.name},
    )
    return redirect("predictive:detail", pk=model.pk)


#: Row errors of a refused score file shown on the page (the run keeps the first ones).
ERRORS_SHOWN = 10


@login_required
@require_POST
def upload_scores(request, pk: int):
    user = request.user
    model = get_object_or_404(PredictiveModel.objects.restrict(user, "view"), pk=pk)
    if not _may_run(user, model) or model.kind != ModelKind.SCORE_FILE:
        raise PermissionDenied(_("You may not upload scores to this model."))
    upload = request.FILES.get("file")
    if upload is None:
        messages.error(request, _("Upload a CSV or Parquet file."))
        return redirect("predictive:detail", pk=model.pk)
    id_column = (request.POST.get("id_column") or "oneid").strip()
    try:
        run = services.upload_scores(
            model, upload, user=user, id_column=id_column, app=request.POST.get("app", "")
        )
    except services.ByomRefused as exc:
        messages.error(request, exc.message)
        return redirect("predictive:detail", pk=model.pk)
    if run.status == ModelRunStatus.PUBLISHED:
        messages.success(
            request, _("%(n)s people scored; the model's tags are updated.") % {"n": f"{run.people_scored:,}"}
        )
    else:
        messages.error(request, run.error)
        for error in (run.metrics or {}).get("errors", [])[:ERRORS_SHOWN]:
            messages.error(
                request,
                _("Row %(row)s, %(column)s: %(message)s")
                % {"row": error["row"], "column": error["column"] or "—", "message": error["message"]},
            )
    return redirect(f"{reverse('predictive:detail', args=[model.pk])}?run={run.pk}")
