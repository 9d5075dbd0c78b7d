"""The tag dictionary as a spreadsheet: Excel (.xlsx) and CSV, in Chinese by default.

:func:`dictionary_rows` turns the tags a user may view into one header row and one row
per tag: the tag's definition, its current coverage, and how much it was used over the
last 7, 30 and 90 Beijing days (every kind of use, all clients), when it was last used
and by whom most (over the last 90 days). It runs a fixed number of queries however
many tags there are. The one writer of :mod:`tagportal.core.spreadsheets` writes those rows;
:func:`export_response` is what the admin and the API answer.

Headers and choice labels (kind, status …) are translated into the export's language
(:data:`EXPORT_LANGUAGE` unless ``?lang=en`` asks for English); names of business
lines, brands, categories, regions and values are exported as entered. Exporting the
dictionary is not a use of its tags: nothing is recorded.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, transaction
from django.db.models import Max, Q, QuerySet, Sum
from django.http import HttpResponse
from django.utils import translation
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from tagportal.core import spreadsheets
from tagportal.core.days import BEIJING
from tagportal.core.filters import INT64_MAX
from tagportal.core.permissions import model_permission
from tagportal.usage import services as usage

from . import hooks
from .choices import TagStatus
from .models import Brand, BusinessLine, Category, Region, Tag

log = logging.getLogger(__name__)

#: The language of an export unless the caller asks for another one.
EXPORT_LANGUAGE = "zh-hans"
XLSX = spreadsheets.XLSX
FORMATS = ("xlsx", "csv")
#: Usage columns: uses over this many Beijing days, today included.
USAGE_WINDOWS = (7, 30, 90)
#: The window the top client is chosen over.
TOP_CLIENT_DAYS = 90
#: Query parameters narrowing an export; each takes ids or codes, several of them or
#: comma-separated. ``category`` includes its subcategories.
FILTERS = ("business_line", "brand", "region", "status", "category")


class ExportError(ValueError):
    """A parameter of an export request that cannot be honoured (the message says why)."""


def export_language(requested: str | None) -> str:
    """The language to export in: ``requested`` if it is one of the site's, else Chinese."""
    languages = {code for code, _name in settings.LANGUAGES}
    return requested if requested in languages else EXPORT_LANGUAGE


def filename(fmt: str, day: dt.date | None = None) -> str:
    return f"tag-dictionary-{(day or usage.beijing_today()).isoformat()}.{fmt}"


# ---------------------------------------------------------------------------
# Filters


def _param_values(params: Mapping, name: str) -> list[str]:
    if hasattr(params, "getlist"):
        raw = params.getlist(name)
    else:
        raw = params.get(name) or []
        raw = [raw] if isinstance(raw, str | int) else raw
    return [v.strip() for value in raw for v in str(value or "").split(",") if v.strip()]


def _ids_or_codes(values: Iterable[str]) -> Q:
    values = list(values)
    ids = [int(v) for v in values if v.isdigit() and len(v) <= 19]
    return Q(pk__in=[pk for pk in ids if pk <= INT64_MAX]) | Q(code__in=values)


def _category_ids(values: list[str]) -> set[int]:
    """The categories named by id or code and everything below them, in one query."""
    rows = list(Category.objects.values_list("pk", "parent_id", "code"))
    children: dict[int | None, list[int]] = defaultdict(list)
    for pk, parent, _code in rows:
        children[parent].append(pk)
    wanted = set(values)
    stack = [pk for pk, _parent, code in rows if str(pk) in wanted or code in wanted]
    found: set[int] = set()
    while stack:
        node = stack.pop()
        if node not in found:
            found.add(node)
            stack.extend(children.get(node, []))
    return found


def filter_tags(queryset: QuerySet, params: Mapping) -> QuerySet:
    """``queryset`` narrowed by the :data:`FILTERS` in ``params`` (a ``QueryDict`` or a
    dict). Raises :class:`ExportError` for an unknown status."""
    for name, model, lookup in (
        ("business_line", BusinessLine, "business_line"),
        ("brand", Brand, "brand"),
        ("region", Region, "regions"),
    ):
        values = _param_values(params, name)
        if values:
            matching = model.objects.filter(_ids_or_codes(values)).values("pk")
            queryset = queryset.filter(**{f"{lookup}__in": matching})
            if name == "region":
                queryset = queryset.distinct()
    statuses = _param_values(params, "status")
    if statuses:
        unknown = sorted(set(statuses) - set(TagStatus.values))
        if unknown:
            raise ExportError(
                _("Unknown status %(status)s; use one of %(known)s.")
                % {"status": ", ".join(unknown), "known": ", ".join(TagStatus.values)}
            )
        queryset = queryset.filter(status__in=statuses)
    categories = _param_values(params, "category")
    if categories:
        queryset = queryset.filter(category__in=_category_ids(categories))
    return queryset


# ---------------------------------------------------------------------------
# Rows


def _headers() -> list[str]:
    """The column headers, in the active language."""
    return [
        capfirst(_("code")),
        capfirst(_("Chinese name")),
        capfirst(_("English name")),
        capfirst(_("category")),
        capfirst(_("business line")),
        capfirst(_("brand")),
        capfirst(_("regions")),
        capfirst(_("kind")),
        capfirst(_("value type")),
        _("Values"),
        capfirst(_("refresh mode")),
        capfirst(_("status")),
        capfirst(_("published version")),
        capfirst(_("owner")),
        _("Data sources"),
        capfirst(_("coverage")),
        capfirst(_("last calculated")),
        *(_("Uses, last %(days)s days") % {"days": days} for days in USAGE_WINDOWS),
        _("Last used"),
        _("Top client"),
    ]


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _values_text(values, separator: str) -> str:
    """``低(low) <2、高(high) ≥2``: each value's label and code, and its range for buckets
    (``min <= x < max``)."""
    parts = []
    for value in values or []:
        if not isinstance(value, dict):
            parts.append(str(value))
            continue
        code, label = value.get("code", ""), value.get("label") or ""
        text = f"{label}({code})" if label and label != code else str(code)
        low, high = value.get("min"), value.get("max")
        if low is not None and high is not None:
            text += f" [{_number(low)}, {_number(high)})"
        elif low is not None:
            text += f" ≥{_number(low)}"
        elif high is not None:
            text += f" <{_number(high)}"
        parts.append(text)
    return separator.join(parts)


def _beijing(moment: dt.datetime | None) -> dt.datetime | None:
    """A naive Beijing time (spreadsheets know no time zones), to the minute."""
    if moment is None:
        return None
    return moment.astimezone(BEIJING).replace(tzinfo=None, second=0, microsecond=0)


def _fold_buffer() -> None:
    """Fold buffered uses into the daily counters first, so that the export counts them;
    an export still answers (with the counters as they are) if that fails."""
    try:
        with transaction.atomic():
            usage.aggregate()
    except DatabaseError:
        log.exception("could not fold the usage buffer before an export")


def _may_view_computations(user) -> bool:
    """Whether ``user`` may see the tags' computation state (coverage, last calculated):
    the model permission of the model behind the reverse relation; the tags are scoped."""
    computation_model = Tag.related_model(hooks.COMPUTATION)
    return computation_model is not None and user.has_perm(model_permission(computation_model, "view"))


def _usage_stats(user, tag_ids: QuerySet, as_of: dt.date) -> dict[int, dict] | None:
    """``{tag id: {7: uses, 30: uses, 90: uses, "last": day, "top": client id}}`` in one
    query; ``None`` if the user may not view usage."""
    if not user.has_perm(model_permission(usage.TagUsage, "view")):
        return None
    starts = {days: as_of - dt.timedelta(days=days - 1) for days in USAGE_WINDOWS}
    top_start = as_of - dt.timedelta(days=TOP_CLIENT_DAYS - 1)
    rows = (
        usage.TagUsage.objects.restrict(user, "view")
        .filter(tag__in=tag_ids, day__lte=as_of)
        .order_by()
        .values("tag_id", "client")
        .annotate(
            **{f"uses_{days}": Sum("count", filter=Q(day__gte=start)) for days, start in starts.items()},
            uses_top=Sum("count", filter=Q(day__gte=top_start)),
            last=Max("day"),
        )
    )
    stats: dict[int, dict] = {}
    for row in rows:
        entry = stats.setdefault(
            row["tag_id"], {**dict.fromkeys(USAGE_WINDOWS, 0), "last": None, "top": None, "rank": (0, 0)}
        )
        for days in USAGE_WINDOWS:
            entry[days] += row[f"uses_{days}"] or 0
        if entry["last"] is None or row["last"] > entry["last"]:
            entry["last"] = row["last"]
        rank = (row["uses_top"] or 0, -row["client"])  # most uses; on a tie, the lowest id
        if rank[0] and rank > entry["rank"]:
            entry["top"], entry["rank"] = row["client"], rank
    return stats


def _client_names(client_ids: set[int]) -> dict[int, str]:
    """Display names of the users and service accounts that used tags, in one query;
    an account deleted since shows as its id."""
    if not client_ids:
        return {}
    users = get_user_model().objects.filter(pk__in=client_ids)
    names = {user.pk: str(user) for user in users}
    return {client: names.get(client, f"#{client}") for client in client_ids}


def dictionary_rows(
    user, tags_queryset: QuerySet, as_of_day: dt.date | None = None
) -> tuple[list[str], list[list]]:
    """``(headers, rows)`` of the tags of ``tags_queryset`` that ``user`` may view, in
    its order, with headers in the active language.

    Values are typed for spreadsheets: numbers, a
    :class:`~tagportal.core.spreadsheets.Percent` for coverage, dates for the last use,
    naive Beijing times for the last computation, ``None`` for nothing.
    Usage counts the uses up to ``as_of_day`` (today in Beijing), the buffered ones too.
    """
    as_of = as_of_day or usage.beijing_today()
    _fold_buffer()
    scoped = tags_queryset.restrict(user, "view")
    tags = list(
        scoped.with_computation()
        .select_related("brand", "business_line", "owner")
        .prefetch_related("regions")
    )
    if not tags:
        return _headers(), []
    tag_ids = scoped.order_by().values("pk")
    separator = "、" if translation.get_language().startswith("zh") else ", "
    paths = Category.path_names()
    show_computations = _may_view_computations(user)
    stats = _usage_stats(user, tag_ids, as_of)
    names = _client_names({s["top"] for s in (stats or {}).values() if s["top"] is not None})
    sources = hooks.source_names(user, tag_ids)

    rows = []
    for tag in tags:
        computation = hooks.computation_of(tag) if show_computations else None
        coverage, calculated = (
            (computation.coverage, computation.last_calculated_at) if computation else (None, None)
        )
        if stats is None:
            used = [None] * (len(USAGE_WINDOWS) + 2)
        else:
            entry = stats.get(tag.pk, {})
            top = entry.get("top")
            used = [
                *(entry.get(days, 0) for days in USAGE_WINDOWS),
                entry.get("last"),
                names.get(top, "") if top is not None else "",
            ]
        rows.append(
            [
                tag.code,
                tag.name,
                tag.name_en,
                paths.get(tag.category_id, ""),
                tag.business_line.name,
                tag.brand.name,
                separator.join(region.name for region in tag.regions.all()),
                tag.get_kind_display(),
                tag.get_value_type_display(),
                _values_text(tag.values, separator),
                tag.get_refresh_mode_display(),
                tag.get_status_display(),
                tag.published_version,
                str(tag.owner) if tag.owner_id else "",
                separator.join(sources.get(tag.pk, [])),
                spreadsheets.Percent(coverage) if coverage is not None else None,
                _beijing(calculated),
                *used,
            ]
        )
    return _headers(), rows


# ---------------------------------------------------------------------------
# Files


def export_xlsx(headers: Sequence[str], rows: Sequence[Sequence]) -> bytes:
    """An Excel workbook of one sheet (标签字典), written by :mod:`tagportal.core.spreadsheets`."""
    return spreadsheets.xlsx_bytes(spreadsheets.Sheet(_("Tag dictionary"), headers, rows))


def export_response(
    user, tags_queryset: QuerySet, fmt: str = "xlsx", language: str | None = None, as_of_day=None
) -> HttpResponse:
    """The dictionary of ``tags_queryset`` (scoped to ``user``) as a file download."""
    if fmt not in FORMATS:
        raise ExportError(
            _("Unknown format “%(format)s”; use one of %(known)s.")
            % {"format": fmt, "known": ", ".join(FORMATS)}
        )
    as_of = as_of_day or usage.beijing_today()
    with translation.override(export_language(language)):
        headers, rows = dictionary_rows(user, tags_queryset, as_of)
        content = export_xlsx(headers, rows) if fmt == "xlsx" else spreadsheets.csv_bytes(headers, rows)
    return spreadsheets.attachment(content, filename(fmt, as_of))
