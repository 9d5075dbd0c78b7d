"""The dashboards: cleanup overview, activity, usage, cold tags, quality, duplicates,
the reports list with downloads, running reports and the cleanup flow.

Every page needs a login and is filtered by business line, brand and region (GET
parameters). Rows come from the newest report covering the filters
(:func:`.data.pick_report`) and are narrowed to the tags the viewer may view, computed
once per request (:func:`.data.viewer_for`); figures are built server-side by
:mod:`.figures` and drawn by plotly.js served from static files. A filter on something
the viewer may not see answers with a message (404), a refused action with a message
(403), never a server error. State changes go through the governance services:
``request_report`` and the cleanup service.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import wraps

from django.contrib import admin, messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from tagportal.catalog.choices import TagStatus
from tagportal.catalog.models import Category, Tag
from tagportal.core import spreadsheets
from tagportal.core.exceptions import error_text
from tagportal.governance.choices import ChangeKind, ReportKind, ReportStatus, ReportTrigger
from tagportal.governance.models import Report

from . import figures as fig
from .data import (
    TREND_LABELS,
    PageError,
    Source,
    finding_count,
    pair_evidence,
    pick_report,
    psi_threshold,
    reasons_renderer,
    table,
    viewable_reports,
    viewer_for,
    visible_meta,
    with_data_text,
)

PAGE_SIZE = 50
#: Default and largest number of bars or table rows of a top-N list.
TOP_DEFAULT, TOP_MAX = 20, 100
COLD_TOP_DEFAULT = 30
DASHBOARD_TOP = 10
QUALITY_LIST = 50
CLIENTS_SHOWN = 3
NAV = [
    ("index", gettext_lazy("Cleanup dashboard")),
    ("activity", gettext_lazy("Activity")),
    ("usage", gettext_lazy("Usage")),
    ("cold", gettext_lazy("Cold tags")),
    ("quality", gettext_lazy("Coverage and drift")),
    ("duplicates", gettext_lazy("Duplicates")),
    ("reports", gettext_lazy("Reports")),
]
#: Which cleanups a page offers for its findings.
COLD_ACTIONS = (ChangeKind.DEPRECATE, ChangeKind.RETIRE)
CLEANUP_ACTIONS = (ChangeKind.DEPRECATE, ChangeKind.RETIRE, ChangeKind.MERGE)
FORMATS = ("csv", "json", "xlsx")
#: Parameters of a page kept when its filters change.
KEPT_PARAMS = ("measure", "top", "kind")


# ---------------------------------------------------------------------------
# Helpers


def dashboard_page(view):
    """Login required; a :class:`PageError` or a refusal becomes a page with its message."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except PageError as exc:
            return _error(request, exc.message, exc.status)
        except PermissionDenied as exc:
            return _error(request, str(exc) or _("You may not open this page."), 403)

    return login_required(wrapper)


def _error(request, message: str, status: int) -> TemplateResponse:
    context = {
        **admin.site.each_context(request),
        "title": _("Dashboards"),
        "message": message,
        "status": status,
        "nav_items": _nav(request, ""),
    }
    return TemplateResponse(request, "dashboards/error.html", context, status=status)


def _nav(request, active: str, query: str = "") -> list[dict]:
    suffix = f"?{query}" if query else ""
    return [
        {"key": key, "label": label, "url": reverse(f"dashboards:{key}") + suffix, "active": key == active}
        for key, label in NAV
    ]


#: What json_script escapes, so that the JSON is safe inside a <script> element.
_SCRIPT_ESCAPES = {ord(">"): "\\u003E", ord("<"): "\\u003C", ord("&"): "\\u0026"}


def figures_script(figures: dict) -> str:
    """The figures as one ``<script type="application/json" id="tp-figures">``: each
    figure's own ``to_json()`` (numpy arrays as compact typed arrays), escaped like
    Django's ``json_script``; drawn by dashboards.js with ``Plotly.newPlot``."""
    if not figures:
        return ""
    body = ",".join(f"{json.dumps(name)}:{figure.to_json()}" for name, figure in figures.items())
    return format_html(
        '<script id="tp-figures" type="application/json">{}</script>',
        mark_safe(("{" + body + "}").translate(_SCRIPT_ESCAPES)),
    )


def _render(request, template, viewer, context, nav: str, figures=None, status: int = 200):
    user = request.user
    figures = {name: f for name, f in (figures or {}).items() if f is not None}
    selected = viewer.filters.params()
    context = {
        **admin.site.each_context(request),
        "nav_items": _nav(request, nav, viewer.filters.query),
        "nav": nav,
        "viewer": viewer,
        "filter_query": viewer.filters.query,
        "selected": selected,
        "business_lines": list(viewer.lines.values()),
        "brands": [
            (b.pk, b.name, viewer.lines[b.business_line_id].name)
            for b in viewer.brands.values()
            if b.business_line_id in viewer.lines
        ],
        "regions": list(viewer.regions.items()),
        "may_cleanup": user.has_perm("governance.add_changerequest"),
        "may_run": user.has_perm("governance.run_report"),
        "figures": figures,
        "figures_script": figures_script(figures),
        "keep_params": [(name, request.GET[name]) for name in KEPT_PARAMS if request.GET.get(name)],
        **context,
    }
    return TemplateResponse(request, template, context, status=status)


def _top(request, default: int = TOP_DEFAULT) -> int:
    raw = request.GET.get("top", "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= TOP_MAX:
        raise PageError(_("Show between 1 and %(max)s rows.") % {"max": TOP_MAX})
    return int(raw)


def _source(viewer, request, kind: str) -> tuple[Source | None, list[dict], dict]:
    """The report of ``kind`` behind a page, its visible rows and meta."""
    source = pick_report(viewer, kind, request.GET.get("report"))
    if source is None:
        return None, [], {}
    rows = viewer.visible_rows(kind, source.rows)
    return source, rows, visible_meta(kind, source.meta, rows, viewer)


def _drawn_lines(viewer, source: Source) -> dict[int, str]:
    """The business lines an activity chart draws: those the viewer sees and chose,
    within the report's scope."""
    line = source.report.business_line_id
    return {pk: name for pk, name in viewer.line_names.items() if line is None or pk == line}


def activity_series(viewer, rows: list[dict], meta: dict) -> list[dict]:
    """What an activity chart and its totals count: per week and brand, each tag once
    (the report's ``week_brand_totals``) when the page is not narrowed to regions, else
    the report's rows (there a tag of several regions counts in each of them)."""
    weekly = meta.get("week_brand_totals")
    if not isinstance(weekly, dict) or viewer.filters.region_ids is not None:
        return rows
    line_of = {str(row.get("brand")): row.get("business_line") for row in rows}
    return [
        {"week": week, "business_line": line_of[brand], "brand": int(brand), **values}
        for brand, weeks in weekly.items()
        if brand in line_of
        for week, values in weeks.items()
    ]


def default_measure(series: list[dict]) -> str:
    """The measure an activity chart opens on: the usual one, else the first with data."""
    for measure in (fig.DEFAULT_MEASURE, *fig.MEASURES):
        if any(int(row.get(measure) or 0) for row in series):
            return measure
    return fig.DEFAULT_MEASURE


def _report_info(viewer, source: Source | None) -> dict | None:
    if source is None:
        return None
    report = source.report
    return {
        "report": report,
        "scope": viewer.scope_label(report),
        "covers": source.covers,
        "kind": report.get_kind_display(),
    }


def _page(request, items):
    return Paginator(items, PAGE_SIZE).get_page(request.GET.get("page"))


def _query_without(request, *names) -> str:
    query = request.GET.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()


def _uses(row, window: str) -> int:
    return int(((row.get("uses") or {}).get(window) or {}).get("total") or 0)


def _status_label(status) -> str:
    return str(TagStatus(status).label) if status in TagStatus.values else str(status or "")


# ---------------------------------------------------------------------------
# The cleanup dashboard


@dashboard_page
@require_GET
def index(request):
    viewer = viewer_for(request)
    sources, rows = {}, {}
    for kind in ReportKind.values:
        sources[kind] = pick_report(viewer, kind)
        rows[kind] = viewer.visible_rows(kind, sources[kind].rows) if sources[kind] else []
    tags = Tag.objects.restrict(request.user, "view").active()
    f = viewer.filters
    if f.business_line is not None:
        tags = tags.filter(business_line=f.business_line.pk)
    if f.brand is not None:
        tags = tags.filter(brand=f.brand.pk)
    if f.region_ids is not None:
        tags = tags.filter(regions__in=f.region_ids).distinct()
    if sources[ReportKind.USAGE] is not None:
        unused = sum(1 for row in rows[ReportKind.USAGE] if _uses(row, "90") == 0)
    elif sources[ReportKind.COLD] is not None:
        unused = sum(1 for row in rows[ReportKind.COLD] if not row.get("uses_90"))
    else:
        unused = None
    headline = {
        "tags": tags.count(),
        "cold": sum(1 for row in rows[ReportKind.COLD] if row.get("cold"))
        if sources[ReportKind.COLD]
        else None,
        "pairs": len(rows[ReportKind.MERGE]) if sources[ReportKind.MERGE] else None,
        "unused": unused,
    }
    figures = {}
    activity_measure = None
    if sources[ReportKind.ACTIVITY] is not None:
        series = activity_series(
            viewer,
            rows[ReportKind.ACTIVITY],
            visible_meta(
                ReportKind.ACTIVITY, sources[ReportKind.ACTIVITY].meta, rows[ReportKind.ACTIVITY], viewer
            ),
        )
        activity_measure = default_measure(series)
        figures["activity"] = fig.compact(
            fig.activity(
                series,
                sources[ReportKind.ACTIVITY].meta.get("weeks") or [],
                _drawn_lines(viewer, sources[ReportKind.ACTIVITY]),
                activity_measure,
            )
        )
    if sources[ReportKind.USAGE] is not None and rows[ReportKind.USAGE]:
        figures["usage"] = fig.compact(
            fig.usage_heatmap(
                rows[ReportKind.USAGE],
                sources[ReportKind.USAGE].meta.get("weeks") or [],
                Category.path_names(),
            )
        )
    if sources[ReportKind.COLD] is not None and headline["cold"]:
        figures["cold"] = fig.compact(
            fig.cold_ranking(
                rows[ReportKind.COLD], sources[ReportKind.COLD].meta.get("weights") or {}, top=DASHBOARD_TOP
            ),
            height=320,
        )
    if rows[ReportKind.MERGE]:
        figures["duplicates"] = fig.compact(fig.duplicate_scores(rows[ReportKind.MERGE][:DASHBOARD_TOP]))
    reports = [
        {
            "kind": kind,
            "label": ReportKind(kind).label,
            "url": reverse(f"dashboards:{page}"),
            "info": _report_info(viewer, sources[kind]),
        }
        for kind, page in (
            (ReportKind.ACTIVITY, "activity"),
            (ReportKind.USAGE, "usage"),
            (ReportKind.COLD, "cold"),
            (ReportKind.MERGE, "duplicates"),
        )
    ]
    # A report over every business line needs the unrestricted reach: others run one line.
    run_line = f.business_line.pk if f.business_line else None
    if run_line is None and not viewer.unrestricted and viewer.lines:
        run_line = next(iter(viewer.lines))
    context = {
        "title": _("Cleanup dashboard"),
        "headline": headline,
        "run_line": run_line,
        "activity_measure": fig.MEASURE_LABELS[activity_measure] if activity_measure else "",
        "reports": reports,
        "kinds": ReportKind.choices,
    }
    return _render(request, "dashboards/index.html", viewer, context, "index", figures)


@dashboard_page
@require_POST
def run_reports(request):
    """Run the chosen reports now for the chosen scope; a message per outcome."""
    user, post = request.user, request.POST
    if not user.has_perm("governance.run_report"):
        raise PermissionDenied(_("You may not run reports."))
    from tagportal.governance.reports import service

    kinds = post.getlist("kind")
    unknown = [k for k in kinds if k not in ReportKind.values]
    scope = {name: post.get(name, "").strip() or None for name in ("business_line", "brand", "region")}
    back = reverse("dashboards:index")
    query = "&".join(f"{k}={v}" for k, v in scope.items() if v and v.isdigit())
    back = f"{back}?{query}" if query else back
    if unknown or not kinds:
        messages.error(request, _("Choose which reports to run."))
        return redirect(back)
    failures: dict[str, list[str]] = {}
    for kind in kinds:
        label = str(ReportKind(kind).label)
        try:
            report = service.request_report(
                user,
                kind,
                trigger=ReportTrigger.PORTAL,
                start=post.get("start", "").strip() or None,
                end=post.get("end", "").strip() or None,
                **scope,
            )
        except (ValidationError, PermissionDenied) as exc:
            failures.setdefault(error_text(exc) or _("You may not do this."), []).append(label)
            continue
        if report.status == ReportStatus.SUCCESS:
            messages.success(
                request,
                _("%(kind)s report for %(start)s – %(end)s: done in %(seconds)s s, %(n)s finding(s).")
                % {
                    "kind": label,
                    "start": report.period_start,
                    "end": report.period_end,
                    "seconds": report.duration_s,
                    "n": len(service.visible_rows(user, report)),
                },
            )
        elif report.status == ReportStatus.FAILED:
            failures.setdefault(_("The report failed: %(error)s") % {"error": report.error}, []).append(label)
        else:
            messages.info(
                request, _("%(kind)s report requested: it runs in the background.") % {"kind": label}
            )
    for text, labels in failures.items():
        messages.error(request, f"{', '.join(labels)}: {text}")
    return redirect(back)


# ---------------------------------------------------------------------------
# Activity


@dashboard_page
@require_GET
def activity(request):
    viewer = viewer_for(request)
    measure = request.GET.get("measure", "").strip()
    if measure and measure not in fig.MEASURES:
        raise PageError(_("Unknown measure “%(measure)s”.") % {"measure": measure})
    source, rows, meta = _source(viewer, request, ReportKind.ACTIVITY)
    rows = activity_series(viewer, rows, meta)
    measure = measure or default_measure(rows)
    figures, totals = {}, []
    if source is not None:
        lines = _drawn_lines(viewer, source)
        figures["activity"] = fig.activity(rows, meta.get("weeks") or [], lines, measure)
        sums = {pk: Counter() for pk in lines}
        for row in rows:
            if row.get("business_line") in sums:
                for name in fig.MEASURES:
                    sums[row["business_line"]][name] += int(row.get(name) or 0)
        totals = [{"name": name, "values": [sums[pk][m] for m in fig.MEASURES]} for pk, name in lines.items()]
    context = {
        "title": _("Tag activity"),
        "report_info": _report_info(viewer, source),
        "measure": measure,
        "measures": [(m, fig.MEASURE_LABELS[m]) for m in fig.MEASURES],
        "totals": totals,
        "grand_total": [meta.get("totals", {}).get(m, 0) for m in fig.MEASURES] if meta else [],
    }
    return _render(request, "dashboards/activity.html", viewer, context, "activity", figures)


# ---------------------------------------------------------------------------
# Usage


def _usage_row(row, clients: dict) -> dict:
    by_client = sorted((row.get("by_client") or {}).items(), key=lambda item: (-item[1], item[0]))
    return {
        "brief": row,
        "uses_7": _uses(row, "7"),
        "uses_30": _uses(row, "30"),
        "uses_90": _uses(row, "90"),
        "total": row.get("total") or 0,
        "trend": str(TREND_LABELS.get(row.get("trend"), row.get("trend") or "—")),
        "trend_key": row.get("trend") or "",
        "trend_change": row.get("trend_change"),
        "last_used": row.get("last_used"),
        "clients": [(clients.get(str(c)) or f"#{c}", n) for c, n in by_client[:CLIENTS_SHOWN]],
        "more_clients": max(len(by_client) - CLIENTS_SHOWN, 0),
    }


@dashboard_page
@require_GET
def usage(request):
    viewer = viewer_for(request)
    top = _top(request)
    source, rows, meta = _source(viewer, request, ReportKind.USAGE)
    figures, most, least, clients = {}, [], [], []
    if source is not None:
        figures["heatmap"] = fig.usage_heatmap(rows, meta.get("weeks") or [], Category.path_names())
        names = meta.get("clients") or {}
        ranked = sorted(
            rows, key=lambda r: (-_uses(r, "90"), -(r.get("total") or 0), str(r.get("code")), r["tag"])
        )
        most = [_usage_row(r, names) for r in ranked[:top]]
        least = [_usage_row(r, names) for r in reversed(ranked[-top:])]
        per_client = Counter()
        for row in rows:
            for client, count in (row.get("by_client") or {}).items():
                per_client[str(client)] += int(count or 0)
        clients = [
            {"name": names.get(c) or f"#{c}", "uses": n}
            for c, n in sorted(per_client.items(), key=lambda item: (-item[1], item[0]))[:TOP_DEFAULT]
        ]
    context = {
        "title": _("Tag usage"),
        "report_info": _report_info(viewer, source),
        "top": top,
        "most": most,
        "least": least,
        "tables": [
            ("tp-usage-most", _("Most used tags"), most),
            ("tp-usage-least", _("Least used tags"), least),
        ],
        "clients": clients,
        "row_count": len(rows),
        "kinds": meta.get("kinds") or [],
    }
    return _render(request, "dashboards/usage.html", viewer, context, "usage", figures)


# ---------------------------------------------------------------------------
# Cold tags


@dashboard_page
@require_GET
def cold(request):
    viewer = viewer_for(request)
    top = _top(request, COLD_TOP_DEFAULT)
    source, rows, meta = _source(viewer, request, ReportKind.COLD)
    figures, page, weights = {}, None, meta.get("weights") or {}
    findings = []
    if source is not None:
        reasons = reasons_renderer()
        cold_rows = sorted(
            (r for r in rows if r.get("cold")),
            key=lambda r: (-float(r.get("score") or 0), str(r.get("code"))),
        )
        shown = cold_rows[:top]
        figures["ranking"] = fig.cold_ranking(shown, weights, {r["tag"]: reasons(r) for r in shown}, top=top)
        page = _page(request, cold_rows)
        for row in page.object_list:
            parts = row.get("components") or {}
            findings.append(
                {
                    "brief": row,
                    "status": _status_label(row.get("status")),
                    "reasons": reasons(row),
                    "parts": [
                        (
                            fig.COMPONENT_LABELS.get(c, c),
                            round(float(weights.get(c) or 0) * float(parts.get(c) or 0) * 100, 1),
                        )
                        for c in fig.COMPONENTS
                    ],
                }
            )
    context = {
        "title": _("Cold tags"),
        "report_info": _report_info(viewer, source),
        "top": top,
        "page": page,
        "findings": findings,
        "cold_count": meta.get("cold_count", 0),
        "threshold": meta.get("threshold"),
        "actions": [(a, ChangeKind(a).label) for a in COLD_ACTIONS],
        "query": _query_without(request, "page"),
    }
    return _render(request, "dashboards/cold.html", viewer, context, "cold", figures)


# ---------------------------------------------------------------------------
# Coverage and drift


@dashboard_page
@require_GET
def quality(request):
    viewer = viewer_for(request)
    source, rows, meta = _source(viewer, request, ReportKind.COLD)
    figures, lists, threshold = {}, {}, psi_threshold(meta)
    counts = {}
    if source is not None:
        coverage = [r["coverage"] for r in rows if r.get("coverage") is not None]
        psi = [r["psi"] for r in rows if r.get("psi") is not None]
        figures["coverage"] = fig.coverage_histogram(coverage)
        if psi:
            figures["psi"] = fig.psi_histogram(psi, threshold)
        by_code = sorted(rows, key=lambda r: (str(r.get("code")), r["tag"]))
        empty = [r for r in by_code if r.get("coverage") is not None and float(r["coverage"]) <= 0]
        full = [r for r in by_code if r.get("coverage") is not None and float(r["coverage"]) >= 1]
        drifting = sorted(
            (r for r in rows if r.get("drift") or (r.get("psi") is not None and float(r["psi"]) > threshold)),
            key=lambda r: (-float(r.get("psi") or 0), str(r.get("code"))),
        )
        lists = {
            "empty": empty[:QUALITY_LIST],
            "full": full[:QUALITY_LIST],
            "drifting": drifting[:QUALITY_LIST],
        }
        counts = {
            "empty": len(empty),
            "full": len(full),
            "drifting": len(drifting),
            "no_result": sum(1 for r in rows if r.get("coverage") is None),
            "rows": len(rows),
        }
    context = {
        "title": _("Coverage and drift"),
        "report_info": _report_info(viewer, source),
        "lists": lists,
        "counts": counts,
        "quality_lists": [
            (
                "tp-quality-empty",
                _("Tags nobody has a value of"),
                counts.get("empty", 0),
                lists.get("empty", []),
            ),
            (
                "tp-quality-full",
                _("Tags everybody has a value of"),
                counts.get("full", 0),
                lists.get("full", []),
            ),
            ("tp-quality-drifting", _("Drifting tags"), counts.get("drifting", 0), lists.get("drifting", [])),
        ]
        if source is not None
        else [],
        "threshold": threshold,
        "list_size": QUALITY_LIST,
    }
    return _render(request, "dashboards/quality.html", viewer, context, "quality", figures)


# ---------------------------------------------------------------------------
# Duplicates


@dashboard_page
@require_GET
def duplicates(request):
    viewer = viewer_for(request)
    source, rows, _meta = _source(viewer, request, ReportKind.MERGE)
    figures, page, pairs = {}, None, []
    if source is not None:
        ranked = sorted(
            rows,
            key=lambda r: (
                -float(r.get("score") or 0),
                (r.get("a") or {}).get("tag"),
                (r.get("b") or {}).get("tag"),
            ),
        )
        page = _page(request, ranked)
        if page.object_list:
            figures["scores"] = fig.duplicate_scores(list(page.object_list))
        for row in page.object_list:
            a, b = row["a"], row["b"]
            target = row.get("target") if row.get("target") in (a["tag"], b["tag"]) else a["tag"]
            pairs.append(
                {
                    "row": row,
                    "a": a,
                    "b": b,
                    "key": f"{a['tag']}-{b['tag']}",
                    "value": f"{a['tag']}:{b['tag']}",
                    "target": target,
                    "score": float(row.get("score") or 0),
                    "score_pct": round(100 * float(row.get("score") or 0)),
                    "jaccard": fig.jaccard_of(row),
                    "jaccard_pct": round(100 * fig.jaccard_of(row))
                    if fig.jaccard_of(row) is not None
                    else None,
                    "evidence": pair_evidence(row),
                }
            )
    context = {
        "title": _("Duplicate tags"),
        "report_info": _report_info(viewer, source),
        "page": page,
        "pairs": pairs,
        "pair_count": len(rows),
        "query": _query_without(request, "page"),
    }
    return _render(request, "dashboards/duplicates.html", viewer, context, "duplicates", figures)


# ---------------------------------------------------------------------------
# Reports and downloads


@dashboard_page
@require_GET
def reports(request):
    viewer = viewer_for(request)
    kind = request.GET.get("kind", "").strip()
    if kind and kind not in ReportKind.values:
        raise PageError(_("Unknown report kind “%(kind)s”.") % {"kind": kind})
    queryset = (
        Report.objects.restrict(request.user, "view")
        .select_related("business_line", "brand", "requested_by")
        .order_by("-period_end", "-requested_at", "-pk")
    )
    # The stored count is every finding; others count the findings they may see.
    queryset = queryset.defer("data") if viewer.unrestricted else with_data_text(queryset)
    if kind:
        queryset = queryset.filter(kind=kind)
    f = viewer.filters
    if f.business_line is not None:
        queryset = queryset.filter(business_line=f.business_line.pk)
    if f.brand is not None:
        queryset = queryset.filter(brand=f.brand.pk)
    if f.region_ids is not None:
        queryset = queryset.filter(region__in=f.region_ids)
    page = _page(request, queryset)
    pages = {
        ReportKind.ACTIVITY: "activity",
        ReportKind.USAGE: "usage",
        ReportKind.COLD: "cold",
        ReportKind.MERGE: "duplicates",
    }
    rows = [
        {
            "report": report,
            "scope": viewer.scope_label(report),
            "url": reverse(f"dashboards:{pages[report.kind]}") + f"?report={report.pk}",
            "findings": finding_count(viewer, report),
        }
        for report in page.object_list
    ]
    context = {
        "title": _("Reports"),
        "page": page,
        "rows": rows,
        "kind": kind,
        "kinds": ReportKind.choices,
        "formats": FORMATS,
        "query": _query_without(request, "page"),
    }
    return _render(request, "dashboards/reports.html", viewer, context, "reports")


@dashboard_page
@require_GET
def download(request, pk: int):
    viewer = viewer_for(request)
    fmt = request.GET.get("format", "csv").strip().lower()
    if fmt not in FORMATS:
        raise PageError(_("Unknown format “%(format)s”: choose csv, json or xlsx.") % {"format": fmt})
    report = (
        with_data_text(viewable_reports(request.user))
        .select_related("business_line", "brand")
        .filter(pk=pk)
        .first()
    )
    if report is None:
        raise PageError(_("There is no such finished report, or you may not see it."), status=404)
    source = Source(report)
    kind = report.kind
    rows = viewer.visible_rows(kind, source.rows)
    meta = visible_meta(kind, source.meta, rows, viewer)
    reasons = reasons_renderer() if kind == ReportKind.COLD else None
    name = f"tagportal-{kind}-{report.period_start:%Y%m%d}-{report.period_end:%Y%m%d}"
    if fmt == "json":
        if reasons is not None:
            rows = [{**row, "reasons_text": reasons(row)} for row in rows]
        body = {
            "report": {
                "id": report.pk,
                "kind": kind,
                "scope": viewer.scope_label(report),
                "period_start": report.period_start.isoformat(),
                "period_end": report.period_end.isoformat(),
                "finished_at": report.finished_at.isoformat() if report.finished_at else None,
            },
            "meta": meta,
            "rows": rows,
        }
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return spreadsheets.attachment(content, f"{name}.json")
    names = None
    if kind == ReportKind.ACTIVITY:
        names = {
            "business_line": {pk: line.name for pk, line in viewer.lines.items()},
            "brand": {pk: brand.name for pk, brand in viewer.brands.items()},
            "region": viewer.regions,
        }
    header, values = table(kind, rows, meta, reasons, names)
    if fmt == "csv":
        return spreadsheets.attachment(spreadsheets.csv_bytes(header, values), f"{name}.csv")
    info = [
        (_("kind"), str(report.get_kind_display())),
        (_("scope"), viewer.scope_label(report)),
        (_("from"), report.period_start.isoformat()),
        (_("to"), report.period_end.isoformat()),
        (_("rows"), str(len(values))),
    ]
    content = spreadsheets.xlsx_bytes(
        spreadsheets.Sheet(_("data"), header, values), spreadsheets.Sheet(_("report"), None, info)
    )
    return spreadsheets.attachment(content, f"{name}.xlsx")


# ---------------------------------------------------------------------------
# Cleanup


def _finding_values(post) -> list[str]:
    """The posted findings: ``finding`` values as they are, and merge pairs (``pair`` =
    ``"a:b"``) completed with the tag chosen to keep (``keep-a-b``)."""
    values = [v.strip() for v in post.getlist("finding") if v.strip()]
    for pair in post.getlist("pair"):
        parts = pair.strip().split(":")
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            keep = post.get(f"keep-{parts[0]}-{parts[1]}", "").strip() or parts[0]
            values.append(f"{parts[0]}:{parts[1]}:{keep}")
        elif pair.strip():
            values.append(pair.strip())
    return list(dict.fromkeys(values))


@dashboard_page
@require_POST
def cleanup(request):
    """Selected findings → a preview with the lineage impact → change requests."""
    user, post = request.user, request.POST
    if not user.has_perm("governance.add_changerequest"):
        raise PermissionDenied(_("You may not propose changes."))
    from tagportal.governance import cleanup as service

    pk = str(post.get("report", "")).strip()
    report = viewable_reports(user).filter(pk=int(pk)).first() if pk.isdigit() else None
    if report is None:
        raise PageError(_("There is no such finished report, or you may not see it."), status=404)
    action = post.get("action", "").strip()
    if action not in CLEANUP_ACTIONS:
        raise PageError(_("Unknown cleanup action “%(action)s”.") % {"action": action})
    values = _finding_values(post)
    if not values:
        raise PageError(_("Select at least one finding."))
    reason = post.get("reason", "").strip()
    back = reverse("dashboards:duplicates" if report.kind == ReportKind.MERGE else "dashboards:cold")
    back += f"?report={report.pk}"
    context = {
        "title": _("Clean up: %(action)s") % {"action": ChangeKind(action).label},
        "report": report,
        "action": action,
        "action_label": ChangeKind(action).label,
        "values": values,
        "reason": reason,
        "back": back,
        "rows": [],
        "nav_items": _nav(request, ""),
    }
    try:
        findings = service.parse_findings(user, report, action, values)
        context["rows"] = service.preview(user, findings)
    except ValidationError as exc:
        return _cleanup_page(request, context, error=error_text(exc))
    if post.get("confirm") != "1":
        return _cleanup_page(request, context)
    try:
        created = service.propose_cleanup(user, report, findings, reason=reason)
    except ValidationError as exc:
        return _cleanup_page(request, context, error=error_text(exc))
    if len(created) == 1:
        messages.success(
            request,
            _("Change request #%(n)s is submitted for review (%(count)s tag(s)).")
            % {"n": created[0].pk, "count": len(findings)},
        )
        return redirect("governance:request", created[0].pk)
    messages.success(
        request,
        _("%(n)s change requests are submitted for review, one per business line: %(ids)s.")
        % {"n": len(created), "ids": ", ".join(f"#{cr.pk}" for cr in created)},
    )
    return redirect("governance:mine")


def _cleanup_page(request, context, error: str = "") -> TemplateResponse:
    context = {**admin.site.each_context(request), **context, "error": error}
    return TemplateResponse(request, "dashboards/cleanup.html", context, status=400 if error else 200)
