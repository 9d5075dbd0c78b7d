"""The audience pages: the list, the builder, one audience with its pinned versions,
membership history and actions, one snapshot's joined/left members, and the tag
picker's search.

Every page needs a login; audiences come from ``restrict``, so another business
line's audience answers 404. The builder offers the brands the user may add audiences
into (``containers_for_add``); a user who may not add audiences (an analyst) gets the
same builder for estimates, without the save form. Sizes are estimated by the REST API
(``POST /api/audiences/estimate/``) from ``static/audiences/builder.js``. Every action
calls a service of :mod:`.services` (or :mod:`.lookalike`) and answers with a message
and a redirect; a refused action is a message, never a server error.
"""

from __future__ import annotations

import json
import logging
import re
from itertools import islice

import plotly.graph_objects as go
from django import forms
from django.contrib import admin, messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import get_language, gettext_lazy, pgettext
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from tagportal.catalog.choices import TagStatus
from tagportal.catalog.models import Brand, BusinessLine, Category, Tag
from tagportal.core import pinyin, spreadsheets
from tagportal.core.days import beijing_text
from tagportal.core.exceptions import Conflict, error_text
from tagportal.core.filters import id_or_none
from tagportal.core.permissions import containers_for_add, may
from tagportal.profiles.choices import IdentityType
from tagportal.profiles.pii import can_view_pii
from tagportal.rules.definitions import RuleValidationError

from . import expressions as ex
from . import services
from .choices import AudienceKind, AudienceStatus
from .models import Audience, AudienceSnapshot
from .signals import DETAIL_SECTIONS
from .store import NoResult

log = logging.getLogger(__name__)

PAGE_SIZE = 50
HISTORY_PAGE_SIZE = 50
#: Snapshots drawn in the history chart (the newest ones).
CHART_SNAPSHOTS = 366
#: OneIDs listed per side on a snapshot's page.
DIFF_IDS = 100
#: Tags the picker lists per search.
TAG_RESULTS = 30
#: Error keys that belong to the whole expression, not one part of it.
GENERAL_KEYS = frozenset({"__all__", "expression", "non_field_errors"})

JOINED_COLOR = "#3a9a5b"
LEFT_COLOR = "#c62828"
SIZE_COLOR = "#2f6f9f"


# ---------------------------------------------------------------------------
# Helpers


def _render(request, template: str, context: dict, status: int = 200) -> TemplateResponse:
    context = {**admin.site.each_context(request), **context}
    return TemplateResponse(request, template, context, status=status)


def _visible(user, pk) -> Audience:
    return get_object_or_404(
        Audience.objects.restrict(user, "view").select_related("brand", "business_line", "owner", "seed"),
        pk=pk,
    )


def _int(value) -> int | None:
    return id_or_none(value) if isinstance(value, str) else None


def error_messages(exc: Exception) -> dict[str, list[str]]:
    """The messages of a refused action keyed by where the builder shows them: an
    expression path (``all[1].value``), a form field, or ``""`` for the whole thing."""
    if isinstance(exc, RuleValidationError):
        exc = ValidationError(exc.as_dict())
    if isinstance(exc, ValidationError):
        if hasattr(exc, "error_dict"):
            out = {}
            for key, errors in exc.message_dict.items():
                out.setdefault("" if key in GENERAL_KEYS else key, []).extend(str(m) for m in errors)
            return out
        return {"": [str(m) for m in exc.messages]}
    return {"": [error_text(exc)]}


def _percent(share) -> str:
    return "—" if share is None else f"{share * 100:.1f}%"


def beijing(value) -> str:
    return beijing_text(value, empty="—")


def _label(item: dict, english: bool) -> str:
    label = (item.get("label_en") if english else None) or item.get("label") or item.get("code")
    return str(label)


def _english() -> bool:
    return (get_language() or "").startswith("en")


# ---------------------------------------------------------------------------
# The tag picker: search on code, Chinese and English names and pinyin


_SPACES = re.compile(r"[\s_\-·]+")


def _normal(text: str) -> str:
    return _SPACES.sub("", (text or "").lower())


def match_rank(tag: Tag, query: str) -> int | None:
    """How well ``tag`` matches ``query`` (0 best), or ``None``."""
    if not query:
        return 5
    q = _normal(query)
    names = [_normal(tag.code), _normal(tag.name), _normal(tag.name_en)]
    if q in names:
        return 0
    if any(n.startswith(q) for n in names):
        return 1
    if any(q in n for n in names):
        return 2
    full, initials = pinyin.search_keys(tag.name)
    if q in (full, initials):
        return 3
    if full.startswith(q) or initials.startswith(q):
        return 3
    if q in full or q in initials:
        return 4
    return None


def tag_info(tag: Tag, category_names: dict[int, str], english: bool) -> dict:
    """What the builder needs of a tag: names, value type, values (code and label)."""
    if tag.value_type == "boolean":
        values = []
    else:
        values = [
            {"code": str(item["code"]), "label": _label(item, english)}
            for item in tag.values or []
            if isinstance(item, dict) and item.get("code") is not None
        ]
    return {
        "code": tag.code,
        "name": tag.name,
        "name_en": tag.name_en,
        "value_type": tag.value_type,
        "unit": tag.unit,
        "values": values,
        "category": category_names.get(tag.category_id, ""),
        "version": tag.published_version,
    }


def pickable_tags(user, brand: Brand):
    """The brand's published tags ``user`` may view."""
    return Tag.objects.restrict(user, "view").filter(brand=brand, status=TagStatus.PUBLISHED)


def search_tags(user, brand: Brand, query: str, limit: int = TAG_RESULTS) -> tuple[list[dict], int]:
    """The best matches among the brand's tags, and how many matched in all."""
    query = (query or "").strip()[:100]
    ranked = []
    for tag in pickable_tags(user, brand).only(
        "code", "name", "name_en", "value_type", "values", "unit", "category_id", "published_version"
    ):
        rank = match_rank(tag, query)
        if rank is not None:
            ranked.append((rank, tag.name, tag.code, tag))
    ranked.sort(key=lambda row: row[:3])
    names = Category.path_names() if ranked else {}
    english = _english()
    return [tag_info(row[3], names, english) for row in ranked[:limit]], len(ranked)


def infos_for(user, brand: Brand, codes) -> dict[str, dict]:
    codes = set(codes)
    if not codes:
        return {}
    names = Category.path_names()
    english = _english()
    return {
        tag.code: tag_info(tag, names, english)
        for tag in Tag.objects.restrict(user, "view").filter(brand=brand, code__in=codes)
    }


@login_required
@require_GET
def tag_search(request):
    """``GET /audiences/tags/?brand=<code>&q=<text>``: the brand's published tags the
    user may view that match ``q`` (code, Chinese or English name, pinyin)."""
    brand = Brand.objects.restrict(request.user, "view").filter(code=request.GET.get("brand", "")).first()
    if brand is None:
        raise Http404(_("No such brand, or you may not view it."))
    results, count = search_tags(request.user, brand, request.GET.get("q", ""))
    return JsonResponse({"brand": brand.code, "count": count, "results": results})


# ---------------------------------------------------------------------------
# The list


@login_required
@require_GET
def audience_list(request):
    user = request.user
    if not user.has_perm("audiences.view_audience"):
        raise PermissionDenied(_("You may not open this page."))
    lines = BusinessLine.objects.restrict(user, "view")
    brands = Brand.objects.restrict(user, "view").select_related("business_line")
    audiences = Audience.objects.restrict(user, "view").select_related("brand", "business_line", "seed")
    selected = {
        "business_line": _int(request.GET.get("business_line")),
        "brand": _int(request.GET.get("brand")),
    }
    if selected["business_line"]:
        audiences = audiences.filter(business_line_id=selected["business_line"])
    if selected["brand"]:
        audiences = audiences.filter(brand_id=selected["brand"])
    query = request.GET.get("q", "").strip()
    if query:
        audiences = audiences.filter(name__icontains=query)
    page = Paginator(audiences.defer("expression"), PAGE_SIZE).get_page(request.GET.get("page"))
    stale = services.stale_pins_many(list(page))  # two queries for the page, not two per row
    rows = [
        {
            "audience": a,
            "share": _percent(a.share),
            "refreshed": beijing(a.last_calculated_at),
            "stale": stale.get(a.pk, []),
        }
        for a in page
    ]
    params = request.GET.copy()
    params.pop("page", None)
    context = {
        "title": _("Audiences"),
        "rows": rows,
        "page": page,
        "query_string": params.urlencode(),
        "q": query,
        "business_lines": lines,
        "brands": brands,
        "selected": selected,
        "may_add": containers_for_add(user, Audience, Brand).exists(),
    }
    return _render(request, "audiences/list.html", context)


# ---------------------------------------------------------------------------
# The builder


def builder_brands(user):
    """Brands to build in, and whether the user may save there."""
    if user.has_perm("audiences.add_audience"):
        return containers_for_add(user, Audience, Brand).filter(is_active=True), True
    return Brand.objects.restrict(user, "view").filter(is_active=True), False


class SaveForm(forms.Form):
    brand = forms.CharField(label=gettext_lazy("Brand"), max_length=30)
    name = forms.CharField(label=gettext_lazy("Name"), max_length=200)
    description = forms.CharField(label=gettext_lazy("Description"), required=False, widget=forms.Textarea)
    expression = forms.CharField(label=gettext_lazy("Conditions"), widget=forms.HiddenInput)
    refresh_on_recompute = forms.BooleanField(
        label=gettext_lazy("Refresh when a tag it uses is recomputed"), required=False, initial=True
    )
    refresh_every_hours = forms.IntegerField(
        label=gettext_lazy("Refresh every (hours)"), required=False, min_value=1, max_value=24 * 31
    )

    def clean_expression(self):
        raw = self.cleaned_data["expression"]
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise ValidationError(_("Add at least one complete condition.")) from exc
        if not isinstance(value, dict) or not value:
            raise ValidationError(_("Add at least one complete condition."))
        return value


def _wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _builder_config(request, brands, may_save: bool, form: SaveForm | None) -> dict:
    lines: dict[int, dict] = {}
    brand_rows = []
    for brand in brands.select_related("business_line").order_by("business_line__code", "code"):
        line = brand.business_line
        lines.setdefault(line.pk, {"code": line.code, "name": line.name})
        brand_rows.append({"code": brand.code, "name": brand.name, "line": line.code})
    initial = None
    if form is not None and form.is_bound:
        code = form.data.get("brand", "")
        try:
            expression = json.loads(form.data.get("expression") or "null")
        except ValueError:
            expression = None
        brand = brands.filter(code=code).first()
        tags = infos_for(request.user, brand, ex.tag_codes(expression)) if brand and expression else {}
        initial = {"brand": code, "expression": expression, "tags": tags}
    elif request.GET.get("brand"):
        initial = {"brand": request.GET["brand"], "expression": None, "tags": {}}
    return {
        "lines": list(lines.values()),
        "brands": brand_rows,
        "canSave": may_save,
        "urls": {
            "estimate": reverse("audiences-estimate"),
            "tags": reverse("audiences:tags"),
            "save": reverse("audiences:new"),
        },
        "initial": initial,
        "strings": builder_strings(),
    }


def builder_strings() -> dict:
    """Every text builder.js shows, translated."""
    return {
        "all": _("all of these (AND)"),
        "any": _("any of these (OR)"),
        "match": _("Match"),
        "not": _("NOT"),
        "notGroupHelp": _("NOT: people who do not match this group"),
        "notConditionHelp": _("NOT: people who do not match this condition"),
        "addCondition": _("Add condition"),
        "addGroup": _("Add group"),
        "removeCondition": _("Remove condition"),
        "removeGroup": _("Remove group"),
        "group": _("Group"),
        "conditions": _("Conditions"),
        "and": _("AND"),
        "or": _("OR"),
        "seeConditions": _("see the messages next to the conditions."),
        "condition": _("Condition"),
        "tag": _("Tag"),
        "tagPlaceholder": _("Search tags: Chinese, English or pinyin"),
        "operator": pgettext("comparison", "Operator"),
        "value": _("Value"),
        "from": _("from"),
        "to": _("to"),
        "chooseValue": _("— choose a value —"),
        "chooseBrandFirst": _("Choose a brand first."),
        "noTags": _("No tag matches."),
        "moreTags": _("%(shown)s of %(count)s shown: type more to narrow down."),
        "searching": _("Searching…"),
        "yes": _("Yes"),
        "no": _("No"),
        "hasValue": _("has a value"),
        "hasNoValue": _("has no value"),
        "ops": {
            "eq": _("equals (=)"),
            "ne": _("is not (≠)"),
            "gt": _("greater than (>)"),
            "gte": _("at least (≥)"),
            "lt": _("less than (<)"),
            "lte": _("at most (≤)"),
            "between": _("between"),
            "in": _("is any of"),
            "not_in": _("is none of"),
            "bucket": _("in the bucket(s)"),
            "is_set": _("is set?"),
        },
        "types": {"boolean": _("yes/no"), "enum": _("enum"), "number": _("number")},
        "incomplete": _("Not counted yet: complete this condition."),
        "empty": _("Add a condition to see the size."),
        "size": _("%(size)s people"),
        "sizeOne": _("%(size)s person"),
        "share": _("%(share)s of the brand's %(population)s people"),
        "took": _("estimated in %(ms)s ms"),
        "estimating": _("Estimating…"),
        "failed": _("The estimate failed: %(error)s"),
        "network": _("The server could not be reached."),
        "saving": _("Saving…"),
        "nameRequired": _("Give the audience a name."),
        "nothingToSave": _("Add at least one complete condition."),
        "brandChanged": _("Brand changed: the conditions are checked against the new brand's tags."),
        "picked": _("%(name)s picked."),
        "options": _("%(count)s tags found. Use the up and down arrows, Enter to pick."),
    }


@login_required
@require_http_methods(["GET", "POST"])
def builder(request):
    user = request.user
    if not user.has_perm("audiences.view_audience"):
        raise PermissionDenied(_("You may not open this page."))
    brands, may_save = builder_brands(user)
    form = None
    status = 200
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        if not may_save:
            raise PermissionDenied(_("You may not add audiences."))
        form = SaveForm(request.POST)
        audience = None
        if form.is_valid():
            brand = brands.filter(code=form.cleaned_data["brand"]).first()
            if brand is None:
                errors = {"brand": [_("Choose a brand you may add audiences into.")]}
            else:
                try:
                    audience = services.create_audience(
                        user,
                        brand=brand,
                        name=form.cleaned_data["name"].strip(),
                        expression=form.cleaned_data["expression"],
                        description=form.cleaned_data["description"],
                        refresh_on_recompute=form.cleaned_data["refresh_on_recompute"],
                        refresh_every_hours=form.cleaned_data["refresh_every_hours"],
                    )
                except (ValidationError, PermissionDenied, RuleValidationError, NoResult, Conflict) as exc:
                    errors = error_messages(exc)
        else:
            errors = {
                ("" if key == "__all__" else key): [str(m) for m in messages_]
                for key, messages_ in form.errors.items()
            }
        if audience is not None:
            url = reverse("audiences:detail", args=[audience.pk])
            if _wants_json(request):
                return JsonResponse({"id": audience.pk, "url": url}, status=201)
            messages.success(request, _("Audience “%(name)s” saved.") % {"name": audience.name})
            return redirect(url)
        if _wants_json(request):
            return JsonResponse({"errors": errors}, status=400)
        status = 400
    config = _builder_config(request, brands, may_save, form)
    if config["initial"] is not None:
        config["initial"]["errors"] = errors
    context = {
        "title": _("New audience"),
        "form": form or SaveForm(initial={"refresh_on_recompute": True}),
        "errors": errors,
        "may_save": may_save,
        "has_brands": brands.exists(),
        "config": config,
    }
    return _render(request, "audiences/builder.html", context, status=status)


# ---------------------------------------------------------------------------
# One audience


class ExportForm(forms.Form):
    identity_type = forms.ChoiceField(label=gettext_lazy("Export"), required=False)

    def __init__(self, *args, with_identities: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [("", _("OneIDs"))]
        if with_identities:
            choices += [
                (value, _("Identities: %(type)s") % {"type": label}) for value, label in IdentityType.choices
            ]
        self.fields["identity_type"].choices = choices


class LookalikeForm(forms.Form):
    SIZE, THRESHOLD = "size", "threshold"
    mode = forms.ChoiceField(
        label=gettext_lazy("Expand by"),
        choices=[(SIZE, gettext_lazy("Size")), (THRESHOLD, gettext_lazy("Score threshold"))],
        widget=forms.RadioSelect,
        initial=SIZE,
    )
    size = forms.IntegerField(label=gettext_lazy("Size (people)"), required=False, min_value=1)
    threshold = forms.FloatField(
        label=gettext_lazy("Score threshold (0–1)"), required=False, min_value=0.0, max_value=1.0
    )
    name = forms.CharField(label=gettext_lazy("Name"), required=False, max_length=200)

    def clean(self):
        data = super().clean()
        if data.get("mode") == self.SIZE and not data.get("size"):
            self.add_error("size", _("Give the number of people to find."))
        if data.get("mode") == self.THRESHOLD and data.get("threshold") is None:
            self.add_error("threshold", _("Give the score threshold."))
        return data


def _pins(audience: Audience, stale: list[dict]) -> list[dict]:
    stale_by_code = {row["code"]: row for row in stale}
    tags = {
        t.code: t
        for t in Tag.objects.filter(brand_id=audience.brand_id, code__in=list(audience.pinned_versions or {}))
    }
    rows = []
    for code, version in sorted((audience.pinned_versions or {}).items()):
        tag = tags.get(code)
        row = stale_by_code.get(code)
        rows.append(
            {
                "code": code,
                "name": tag.name if tag else (row or {}).get("name", ""),
                "tag": tag,
                "pinned": version,
                "current": row["current"] if row else (tag.published_version if tag else None),
                "stale": row is not None,
            }
        )
    return rows


def history_figure(snapshots: list[AudienceSnapshot]) -> go.Figure | None:
    """Size as a line, joined and left as bars (left below zero), per snapshot."""
    if not snapshots:
        return None
    numbers = [f"#{s.number}" for s in snapshots]
    times = [beijing(s.taken_at) for s in snapshots]
    figure = go.Figure()
    figure.add_trace(
        go.Bar(
            name=_("Joined"),
            x=numbers,
            y=[s.joined for s in snapshots],
            marker_color=JOINED_COLOR,
            customdata=times,
            hovertemplate="%{x} · %{customdata}<br>" + _("Joined") + ": %{y}<extra></extra>",
            yaxis="y2",
        )
    )
    figure.add_trace(
        go.Bar(
            name=_("Left"),
            x=numbers,
            y=[-s.left for s in snapshots],
            marker_color=LEFT_COLOR,
            customdata=[[t, s.left] for t, s in zip(times, snapshots, strict=True)],
            hovertemplate="%{x} · %{customdata[0]}<br>" + _("Left") + ": %{customdata[1]}<extra></extra>",
            yaxis="y2",
        )
    )
    figure.add_trace(
        go.Scatter(
            name=_("Size"),
            x=numbers,
            y=[s.size for s in snapshots],
            mode="lines+markers",
            line={"color": SIZE_COLOR, "width": 2},
            customdata=times,
            hovertemplate="%{x} · %{customdata}<br>" + _("Size") + ": %{y}<extra></extra>",
        )
    )
    figure.update_layout(
        barmode="relative",
        height=340,
        margin={"l": 50, "r": 50, "t": 20, "b": 40},
        legend={"orientation": "h", "y": -0.2},
        xaxis={"title": {"text": _("Snapshot")}, "type": "category"},
        yaxis={"title": {"text": _("Size")}, "rangemode": "tozero"},
        yaxis2={"title": {"text": _("Joined / left")}, "overlaying": "y", "side": "right", "zeroline": True},
        hovermode="x unified",
    )
    return figure


METRIC_LABELS = {
    "auc": gettext_lazy("AUC (ROC, hold-out)"),
    "average_precision": gettext_lazy("Average precision (hold-out)"),
    "positives": gettext_lazy("Seed members learned from"),
    "negatives": gettext_lazy("Other people sampled"),
    "holdout_positives": gettext_lazy("Seed members held out"),
    "holdout_negatives": gettext_lazy("Others held out"),
    "validation": gettext_lazy("Validation"),
    "score_threshold_used": gettext_lazy("Lowest score in the audience"),
}


def _metric_rows(metrics: dict) -> tuple[list[dict], list[dict]]:
    """The lookalike model's validation: named numbers, and the top features."""
    rows = []
    for key, value in (metrics or {}).items():
        if key == "top_features" or isinstance(value, dict | list):
            continue
        if isinstance(value, float):
            value = f"{value:.3f}"
        elif isinstance(value, str):
            value = _(value)
        rows.append({"key": key, "label": str(METRIC_LABELS.get(key, key.replace("_", " "))), "value": value})
    features = []
    for item in (metrics or {}).get("top_features") or []:
        if not isinstance(item, dict):
            continue
        name = item.get("tag_name") or item.get("tag") or item.get("feature", "")
        kind = item.get("kind")
        if kind == "rank":
            what = _("%(tag)s: the higher the number") % {"tag": name}
        elif kind == "missing":
            what = _("%(tag)s: no value") % {"tag": name}
        else:
            what = f"{name} = {item.get('value')}" if item.get("value") is not None else str(name)
        coefficient = item.get("coefficient")
        features.append(
            {
                "label": what,
                "feature": item.get("feature", ""),
                "coefficient": coefficient,
                "direction": _("more like the seed") if (coefficient or 0) > 0 else _("less like the seed"),
            }
        )
    return rows, features


def _lookalike_module():
    try:
        from . import lookalike
    except ImportError:
        return None
    return lookalike if hasattr(lookalike, "create_lookalike") else None


@login_required
@require_GET
def detail(request, pk: int):
    user = request.user
    audience = _visible(user, pk)
    stale = services.stale_pins(audience)
    snapshots = audience.snapshots.defer("bitmap", "expression")
    history = Paginator(snapshots.order_by("-number"), HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    charted = list(reversed(snapshots.order_by("-number")[:CHART_SNAPSHOTS]))
    figure = history_figure(charted)
    may_change = may(user, audience, "change")
    refreshable = audience.kind == AudienceKind.RULE and audience.status != AudienceStatus.ARCHIVED
    may_export = user.has_perm("audiences.export_audience")
    may_identities = may_export and user.has_perm("audiences.export_identities")
    may_lookalike = (
        _lookalike_module() is not None
        and audience.size is not None
        and containers_for_add(user, Audience, Brand).filter(pk=audience.brand_id).exists()
    )
    metrics, features = _metric_rows(audience.model_metrics)
    context = {
        "title": audience.name,
        "audience": audience,
        "share": _percent(audience.share),
        "last_refreshed": beijing(audience.last_calculated_at),
        "pins": _pins(audience, stale),
        "stale": stale,
        "history": history,
        "history_rows": [{"snapshot": s, "taken_at": beijing(s.taken_at)} for s in history],
        "figures": {"history": json.loads(figure.to_json())} if figure is not None else None,
        "may_change": may_change,
        "may_refresh": may_change and refreshable,
        "may_repin": may_change and refreshable and bool(stale),
        "repin_requested": audience.repin_requested_at is not None,
        "repin_requested_at": beijing(audience.repin_requested_at),
        "may_approve_repin": audience.repin_requested_at is not None
        and services.may_approve_repin(user, audience),
        "may_export": may_export,
        "may_identities": may_identities,
        "sees_pii": can_view_pii(user),
        "export_form": ExportForm(with_identities=may_identities),
        "may_lookalike": may_lookalike,
        "lookalike_form": LookalikeForm(initial={"size": audience.size or None}),
        "metrics": metrics,
        "features": features,
        "is_lookalike": audience.kind == AudienceKind.LOOKALIKE,
        "lookalikes": audience.lookalikes.restrict(user, "view").order_by("-created")[:20],
    }
    context["sections"] = detail_sections(request, audience)
    return _render(request, "audiences/detail.html", context)


def detail_sections(request, audience: Audience) -> list[dict]:
    """The sections higher apps add to the audience page (:data:`.signals.DETAIL_SECTIONS`);
    one that fails is logged and left out, the page still answers."""
    sections = []
    for section in DETAIL_SECTIONS:
        try:
            answer = section(request, audience)
        except Exception:
            log.exception("audience page section %r failed", section)
            continue
        if answer:
            sections.append(answer)
    return sections


@login_required
@require_GET
def snapshot(request, pk: int, number: int):
    audience = _visible(request.user, pk)
    snap = get_object_or_404(
        AudienceSnapshot.objects.restrict(request.user, "view"), audience=audience, number=number
    )
    previous = audience.snapshots.filter(number__lt=number).order_by("-number").first()
    following = (
        audience.snapshots.filter(number__gt=number).order_by("number").values_list("number", flat=True)
    )
    diff = services.snapshot_diff(snap, previous)
    context = {
        "title": _("%(audience)s · snapshot #%(n)s") % {"audience": audience.name, "n": number},
        "audience": audience,
        "snapshot": snap,
        "taken_at": beijing(snap.taken_at),
        "previous": previous,
        "next_number": following.first(),
        "joined_count": len(diff["joined"]),
        "left_count": len(diff["left"]),
        "joined": list(islice(iter(diff["joined"]), DIFF_IDS)),
        "left": list(islice(iter(diff["left"]), DIFF_IDS)),
        "limit": DIFF_IDS,
        "share": _percent(snap.size / snap.population if snap.population else None),
    }
    return _render(request, "audiences/snapshot.html", context)


# ---------------------------------------------------------------------------
# Actions on one audience (post, then redirect to its page)


def _back(audience: Audience):
    return redirect("audiences:detail", pk=audience.pk)


@login_required
@require_POST
def refresh_now(request, pk: int):
    audience = _visible(request.user, pk)
    if not may(request.user, audience, "change"):
        messages.error(request, _("You may not refresh this audience."))
        return _back(audience)
    try:
        snap = services.refresh(audience, trigger="manual", user=request.user)
    except (ValidationError, PermissionDenied, NoResult, Conflict, RuleValidationError) as exc:
        messages.error(request, error_text(exc))
    else:
        if snap is None:
            messages.warning(request, _("Not refreshed: a newer refresh was requested meanwhile."))
        else:
            messages.success(
                request,
                _("Refreshed: snapshot #%(n)s, %(size)s people (%(joined)s joined, %(left)s left).")
                % {"n": snap.number, "size": snap.size, "joined": snap.joined, "left": snap.left},
            )
    return _back(audience)


@login_required
@require_POST
def repin(request, pk: int):
    audience = _visible(request.user, pk)
    try:
        services.repin(request.user, audience)
    except (ValidationError, PermissionDenied, NoResult, Conflict, RuleValidationError) as exc:
        messages.error(request, error_text(exc))
        return _back(audience)
    audience.refresh_from_db()
    if audience.repin_requested_at is not None:
        messages.success(
            request, _("Re-pin requested: the audience is live in a journey, a data steward approves it.")
        )
    else:
        messages.success(request, _("Re-pinned to the newest published versions."))
    return _back(audience)


@login_required
@require_POST
def approve_repin(request, pk: int):
    audience = _visible(request.user, pk)
    try:
        services.approve_repin(request.user, audience)
    except (ValidationError, PermissionDenied, NoResult, Conflict, RuleValidationError) as exc:
        messages.error(request, error_text(exc))
    else:
        messages.success(request, _("Re-pin approved: the audience now uses the newest published versions."))
    return _back(audience)


def _filename(audience: Audience, identity_type: str | None) -> str:
    stamp = beijing_text(timezone.now(), "%Y%m%d-%H%M")
    safe = re.sub(r'[\\/:*?"<>|\s]+', "_", audience.name).strip("_") or f"audience-{audience.pk}"
    return f"{safe}-{identity_type or 'oneid'}-{stamp}.csv"


@login_required
@require_POST
def export(request, pk: int):
    user = request.user
    audience = _visible(user, pk)
    may_identities = user.has_perm("audiences.export_identities")
    form = ExportForm(request.POST, with_identities=may_identities)
    if not form.is_valid():
        messages.error(request, _("Choose what to export."))
        return _back(audience)
    identity_type = form.cleaned_data["identity_type"] or None
    try:
        chunks = services.export_csv_chunks(user, audience, identity_type=identity_type)
    except (ValidationError, PermissionDenied, NoResult, Conflict) as exc:
        messages.error(request, error_text(exc))
        return _back(audience)
    return spreadsheets.streaming_attachment(chunks, _filename(audience, identity_type))


@login_required
@require_POST
def lookalike(request, pk: int):
    user = request.user
    seed = _visible(user, pk)
    module = _lookalike_module()
    if module is None:
        messages.error(request, _("Lookalike expansion is not available."))
        return _back(seed)
    form = LookalikeForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(m) for errors in form.errors.values() for m in errors))
        return _back(seed)
    data = form.cleaned_data
    by_size = data["mode"] == LookalikeForm.SIZE
    try:
        created = module.create_lookalike(
            user,
            seed,
            size=data["size"] if by_size else None,
            threshold=None if by_size else data["threshold"],
            name=data["name"].strip(),
        )
    except (ValidationError, PermissionDenied, NoResult, Conflict, ValueError) as exc:
        messages.error(request, error_text(exc))
        return _back(seed)
    messages.success(request, _("Lookalike audience “%(name)s” created.") % {"name": created.name})
    return redirect("audiences:detail", pk=created.pk)
