"""What a dashboard page reads: the viewer's filters and reach, the report behind the
page, and its rows narrowed to what the viewer may see; plus the words for cold-tag
reasons and merge evidence, and rows flattened for downloads.

A :class:`Viewer` is built once per request with a fixed number of queries (visible
tags, business lines, brands and regions); everything after that is plain Python over
the report's JSON, so a page costs the same number of queries for 5 tags or 10,000.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import urlencode

from django.db.models import Case, IntegerField, Q, TextField, Value, When
from django.db.models.functions import Cast
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tagportal.catalog.models import Brand, BusinessLine, Region, Tag
from tagportal.core import graphs
from tagportal.core.caches import LRU
from tagportal.core.filters import id_or_none
from tagportal.core.permissions import is_unrestricted
from tagportal.governance.choices import ReportKind, ReportStatus
from tagportal.governance.models import Report
from tagportal.governance.reports.service import visible_meta as visible_report_meta

#: The dimensions a page is filtered by, as GET parameters.
DIMENSIONS = ("business_line", "brand", "region")
#: How a row of a report names a tag (see ``tagportal.governance.reports.tag_brief``).
BRIEF_KEYS = (
    "tag",
    "code",
    "name",
    "name_en",
    "status",
    "version",
    "business_line",
    "brand",
    "category",
    "regions",
    "owner",
)
TREND_LABELS = {
    "rising": gettext_lazy("rising"),
    "falling": gettext_lazy("falling"),
    "flat": gettext_lazy("flat"),
    "unused": gettext_lazy("unused"),
}


class PageError(Exception):
    """A request the page cannot answer: a filter on something the viewer may not see,
    a parameter out of range. Shown as a page with the message and ``status``."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


def _int(value) -> int | None:
    return id_or_none(value)


def region_paths(rows: Iterable[tuple[int, str, int | None]]) -> dict[int, str]:
    """``{pk: "中国 › 上海"}`` from ``(pk, name, parent_id)`` rows, without a query per region."""
    rows = {pk: (name, parent) for pk, name, parent in rows}
    paths = {}
    for pk in rows:
        names, node, seen = [], pk, set()
        while node is not None and node in rows and node not in seen:
            seen.add(node)
            name, node = rows[node]
            names.append(name)
        paths[pk] = " › ".join(reversed(names))
    return dict(sorted(paths.items(), key=lambda item: item[1]))


def _descendants(parents: Mapping[int, int | None], root: int) -> frozenset[int]:
    children: dict = {}
    for pk, parent in parents.items():
        children.setdefault(parent, []).append(pk)
    return frozenset(graphs.reachable([root], children))


@dataclass
class Filters:
    business_line: BusinessLine | None = None
    brand: Brand | None = None
    region: Region | None = None
    #: The region and every region below it.
    region_ids: frozenset[int] | None = None

    def params(self) -> dict[str, int]:
        return {name: getattr(self, name).pk for name in DIMENSIONS if getattr(self, name) is not None}

    @property
    def query(self) -> str:
        return urlencode(self.params())

    @property
    def any(self) -> bool:
        return bool(self.params())


@dataclass
class Viewer:
    """Who looks, what they may see, and which part of it they asked for."""

    user: object
    tag_ids: frozenset[int]
    lines: dict[int, BusinessLine]
    brands: dict[int, Brand]
    regions: dict[int, str]
    filters: Filters = field(default_factory=Filters)
    unrestricted: bool = False

    # -- rows -------------------------------------------------------------

    def sees(self, brief: Mapping | None) -> bool:
        """Whether a tag row is shown: the viewer may view the tag and it matches the filters."""
        if not brief or brief.get("tag") not in self.tag_ids:
            return False
        return self.matches(brief)

    def matches(self, brief: Mapping) -> bool:
        f = self.filters
        if f.business_line is not None and brief.get("business_line") != f.business_line.pk:
            return False
        if f.brand is not None and brief.get("brand") != f.brand.pk:
            return False
        if f.region_ids is not None and not (set(brief.get("regions") or ()) & f.region_ids):
            return False
        return True

    def sees_pair(self, pair: Mapping) -> bool:
        """A merge pair is shown when the viewer may view both tags and one of them matches."""
        a, b = pair.get("a") or {}, pair.get("b") or {}
        if a.get("tag") not in self.tag_ids or b.get("tag") not in self.tag_ids:
            return False
        return self.matches(a) or self.matches(b)

    def sees_activity(self, row: Mapping) -> bool:
        """An activity row counts tags of a business line (and brand, region): shown when
        the viewer sees that line and, for a brand's row, that brand."""
        line, brand, region = row.get("business_line"), row.get("brand"), row.get("region")
        if line not in self.lines or (brand is not None and brand not in self.brands):
            return False
        f = self.filters
        if f.business_line is not None and line != f.business_line.pk:
            return False
        if f.brand is not None and brand != f.brand.pk:
            return False
        if f.region_ids is not None and region not in f.region_ids:
            return False
        return True

    def visible_rows(self, kind: str, rows: Iterable[Mapping]) -> list[dict]:
        if kind == ReportKind.MERGE:
            return [row for row in rows if self.sees_pair(row)]
        if kind == ReportKind.ACTIVITY:
            return [row for row in rows if self.sees_activity(row)]
        return [row for row in rows if self.sees(row)]

    # -- names ------------------------------------------------------------

    @property
    def line_names(self) -> dict[int, str]:
        """The business lines a page draws: the visible ones, narrowed by the filters."""
        f = self.filters
        if f.brand is not None:
            wanted = {f.brand.business_line_id}
        elif f.business_line is not None:
            wanted = {f.business_line.pk}
        else:
            wanted = set(self.lines)
        return {pk: line.name for pk, line in self.lines.items() if pk in wanted}

    def scope_label(self, report: Report) -> str:
        parts = []
        if report.business_line_id:
            line = self.lines.get(report.business_line_id)
            parts.append(line.name if line else report.business_line.name)
        if report.brand_id:
            brand = self.brands.get(report.brand_id)
            parts.append(brand.name if brand else report.brand.name)
        if report.region_id:
            parts.append(self.regions.get(report.region_id) or str(report.region_id))
        return " / ".join(parts) if parts else _("All business lines")


def viewer_for(request) -> Viewer:
    """The viewer of ``request`` with the filters of its GET parameters; a filter on
    something that does not exist or that the viewer may not see is a :class:`PageError`."""
    user, params = request.user, request.GET
    lines = {line.pk: line for line in BusinessLine.objects.restrict(user, "view").order_by("code", "pk")}
    brands = {
        brand.pk: brand
        for brand in Brand.objects.restrict(user, "view").order_by("business_line__code", "code", "pk")
    }
    region_rows = list(Region.objects.restrict(user, "view").values_list("pk", "name", "parent_id"))
    viewer = Viewer(
        user=user,
        tag_ids=frozenset(Tag.objects.restrict(user, "view").values_list("pk", flat=True)),
        lines=lines,
        brands=brands,
        regions=region_paths(region_rows),
        unrestricted=is_unrestricted(user),
    )
    filters = Filters()
    labels = {
        "business_line": _("business line"),
        "brand": _("brand"),
        "region": _("region"),
    }
    for name in DIMENSIONS:
        raw = str(params.get(name, "")).strip()
        if not raw:
            continue
        pk = _int(raw)
        if pk is None:
            raise PageError(_("“%(value)s” is not a valid %(what)s.") % {"value": raw, "what": labels[name]})
        if name == "region":
            found = pk in viewer.regions
            if found:
                filters.region = Region(pk=pk, name=viewer.regions[pk])
                filters.region_ids = _descendants({r[0]: r[2] for r in region_rows}, pk)
        else:
            obj = (lines if name == "business_line" else brands).get(pk)
            found = obj is not None
            setattr(filters, name, obj)
        if not found:
            raise PageError(
                _("There is no %(what)s %(value)s, or you may not see it: nothing is shown.")
                % {"what": labels[name], "value": raw},
                status=404,
            )
    if filters.brand is not None and filters.business_line is not None:
        if filters.brand.business_line_id != filters.business_line.pk:
            raise PageError(
                _("The brand “%(brand)s” belongs to another business line.") % {"brand": filters.brand}
            )
    viewer.filters = filters
    return viewer


# ---------------------------------------------------------------------------
# Reports


#: Decoded report data kept per process, by report, run and finish time (a report run
#: again gets a new key), up to this many rows in all: decoding the JSON of a report of
#: 10,000 tags is most of a page's time, and the same report serves every filter.
CACHE_ROWS = 40_000
_cache = LRU(CACHE_ROWS, getsizeof=lambda data: len(data.get("rows") or ()))


def with_data_text(reports):
    """``reports`` with their data as JSON text (``data_text``), decoded by
    :func:`report_data` only when it is not cached."""
    return reports.defer("data").annotate(data_text=Cast("data", output_field=TextField()))


def report_data(report: Report) -> dict:
    """The report's ``{"meta", "rows"}``, shared: callers must not change it."""

    def decode() -> dict:
        text = getattr(report, "data_text", None)
        data = json.loads(text) if text else (report.data if text is None else {})
        return data if isinstance(data, dict) else {}

    return _cache.get_or_load((report.pk, report.runs, report.finished_at), decode)


def clear_cache() -> None:
    _cache.clear()


@dataclass
class Source:
    """The report a page draws and whether it covers the whole filtered scope."""

    report: Report
    covers: bool = True

    @property
    def meta(self) -> dict:
        return report_data(self.report).get("meta") or {}

    @property
    def rows(self) -> list[dict]:
        return report_data(self.report).get("rows") or []


def viewable_reports(user, kind: str | None = None):
    reports = Report.objects.restrict(user, "view").filter(status=ReportStatus.SUCCESS)
    return reports.filter(kind=kind) if kind else reports


def pick_report(viewer: Viewer, kind: str, report_id=None) -> Source | None:
    """The report a page shows: ``report_id`` if given (it must be a finished report of
    this kind the viewer may view), else the newest one covering the filters, the most
    specific first (a report of the chosen business line before the one of every line).
    Without one, the newest report inside the filters, marked as partial."""
    reports = with_data_text(viewable_reports(viewer.user, kind).select_related("business_line", "brand"))
    if report_id not in (None, ""):
        pk = _int(report_id)
        report = reports.filter(pk=pk).first() if pk else None
        if report is None:
            raise PageError(_("There is no such finished report, or you may not see it."), status=404)
        return Source(report, covers=True)
    f = viewer.filters
    covering = reports
    specific = []
    for name in DIMENSIONS:
        value = getattr(f, name)
        if value is None:
            covering = covering.filter(**{f"{name}__isnull": True})
        else:
            covering = covering.filter(Q(**{f"{name}__isnull": True}) | Q(**{name: value.pk}))
            specific.append(
                Case(
                    When(**{f"{name}__isnull": False}, then=Value(1)),
                    default=Value(0),
                    output_field=IntegerField(),
                )
            )
    if specific:
        specificity = specific[0]
        for more in specific[1:]:
            specificity = specificity + more
        covering = covering.annotate(specificity=specificity).order_by(
            "-specificity", "-period_end", "-finished_at", "-pk"
        )
    else:
        covering = covering.order_by("-period_end", "-finished_at", "-pk")
    report = covering.first()
    if report is not None:
        return Source(report, covers=True)
    inside = reports
    if f.business_line is not None:
        inside = inside.filter(business_line=f.business_line.pk)
    if f.brand is not None:
        inside = inside.filter(brand=f.brand.pk)
    if f.region_ids is not None:
        inside = inside.filter(region__in=f.region_ids)
    report = inside.order_by("-period_end", "-finished_at", "-pk").first()
    return Source(report, covers=False) if report is not None else None


def visible_meta(kind: str, meta: Mapping, rows: list[dict], viewer: Viewer) -> dict:
    """The report's meta recomputed over the rows the viewer is shown (see
    ``tagportal.governance.reports.service.visible_meta``)."""
    return visible_report_meta(kind, meta, rows, whole_brands=viewer.filters.region_ids is None)


def finding_count(viewer: Viewer, report: Report) -> int:
    """How many findings of ``report`` the viewer may see, whatever the page's filters."""
    if viewer.unrestricted:
        return report.row_count
    unfiltered = replace(viewer, filters=Filters())
    return len(unfiltered.visible_rows(report.kind, report_data(report).get("rows") or []))


def psi_threshold(meta: Mapping) -> float:
    """The PSI above which a tag drifts: the report's, else the engine's setting."""
    value = (meta or {}).get("psi_threshold")
    if isinstance(value, int | float):
        return float(value)
    from tagportal.engine.results import drift_threshold

    return drift_threshold()


# ---------------------------------------------------------------------------
# Words


def reasons_renderer() -> Callable[[Mapping], list[str]]:
    """``row -> [reason in words]`` for cold-tag rows: the report's own wording
    (``tagportal.governance.reports.cold.reasons_text``), else the codes and parameters."""
    try:
        from tagportal.governance.reports.cold import reasons_text
    except ImportError:  # the builders are not installed
        reasons_text = None
    if reasons_text is not None:
        return lambda row: [str(text) for text in reasons_text(row)]
    return _plain_reasons


def _plain_reasons(row: Mapping) -> list[str]:
    texts = []
    for reason in row.get("reasons") or []:
        params = reason.get("params") or {}
        details = ", ".join(f"{key} {value}" for key, value in sorted(params.items()))
        texts.append(f"{reason.get('code')}" + (f" ({details})" if details else ""))
    return texts


def evidence_text(evidence: Mapping) -> str:
    kind = evidence.get("kind")
    if kind == "definition":
        return _("same definition")
    if kind == "name":
        score = evidence.get("score")
        score = f"{float(score):.2f}" if score is not None else "—"
        if evidence.get("field") in (None, "", "name"):
            return _("similar names (%(score)s)") % {"score": score}
        return _("similar names (%(field)s, %(score)s)") % {"field": evidence["field"], "score": score}
    if kind == "overlap":
        jaccard = evidence.get("jaccard")
        return _("members overlap (Jaccard %(jaccard)s)") % {
            "jaccard": f"{float(jaccard):.0%}" if jaccard is not None else "—"
        }
    return str(kind or "")


def pair_evidence(pair: Mapping) -> list[str]:
    return [evidence_text(e) for e in pair.get("evidence") or []]


# ---------------------------------------------------------------------------
# Downloads


def _flatten(prefix: str, value, out: dict) -> None:
    # Rows come from JSON: plain dicts and lists (checked by type, faster than the ABCs).
    if type(value) is dict:
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    elif type(value) is list or type(value) is tuple:
        if all(type(item) not in (dict, list, tuple) for item in value):
            out[prefix] = "; ".join("" if item is None else str(item) for item in value)
        else:
            out[prefix] = json.dumps(value, ensure_ascii=False, sort_keys=True)
    else:
        out[prefix] = value


def flat_row(kind: str, row: Mapping, meta: Mapping, reasons: Callable | None = None, names=None) -> dict:
    """One report row as ``{column: scalar}``: nested keys joined by dots, lists of
    values by "; ", weekly counts under their week, clients by name, cold reasons and
    merge evidence in words."""
    row = dict(row)
    out: dict = {}
    if kind == ReportKind.USAGE:
        weeks = list(meta.get("weeks") or [])
        weekly = list(row.pop("weekly", None) or [])
        if weeks and len(weekly) <= len(weeks):
            row["weekly"] = dict(zip(weeks, weekly, strict=False))
        else:
            row["weekly"] = weekly
        clients = meta.get("clients") or {}
        row["by_client"] = {
            clients.get(str(client)) or f"#{client}": count
            for client, count in (row.pop("by_client", None) or {}).items()
        }
    elif kind == ReportKind.COLD:
        texts = (reasons or _plain_reasons)(row)
        row.pop("reasons", None)
        row["reasons"] = "; ".join(texts)
    elif kind == ReportKind.MERGE:
        row["evidence"] = "; ".join(pair_evidence(row))
        a, b = row.get("a") or {}, row.get("b") or {}
        target = row.get("target")
        row["target_code"] = a.get("code") if target == a.get("tag") else b.get("code") if target else ""
        row.pop("fingerprint", None)
    elif kind == ReportKind.ACTIVITY and names:
        for name in DIMENSIONS:
            value = row.get(name)
            row[f"{name}_name"] = names.get(name, {}).get(value, "") if value is not None else ""
    _flatten("", row, out)
    return out


#: The columns that name a tag (or a pair, an activity cell), in the order they are shown.
LEADING_COLUMNS = (
    "week", "a", "b", "tag", "code", "name", "name_en", "status", "version",
    "business_line", "brand", "region", "category", "regions", "owner",
)  # fmt: skip


def _column_rank(column: str) -> tuple:
    parts = column.split(".")[:2]
    return tuple(LEADING_COLUMNS.index(p) if p in LEADING_COLUMNS else len(LEADING_COLUMNS) for p in parts)


def table(
    kind: str, rows: list[dict], meta: Mapping, reasons=None, names=None
) -> tuple[list[str], list[list]]:
    """Columns and values of the flattened rows. The columns naming a tag come first in
    a fixed order, the others by name: stored rows do not keep their keys' order
    (PostgreSQL's jsonb sorts them)."""
    flat = [flat_row(kind, row, meta, reasons, names) for row in rows]
    columns: dict[str, None] = {}
    for row in flat:
        for key in row:
            columns.setdefault(key, None)
    header = sorted(columns, key=lambda column: (_column_rank(column), column))
    return header, [[row.get(key) for key in header] for row in flat]
