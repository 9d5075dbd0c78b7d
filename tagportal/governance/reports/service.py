"""Requesting, running and keeping reports.

:func:`request_report` checks the parameters and the user's right to them, stores (or
finds) the :class:`Report` for that kind, scope and period, and hands it to Celery
(``run_report`` task; in-process without a broker). :func:`run` builds it: it folds
buffered usage first, so a report sees every use recorded before it started, then
stores the data, the number of findings and the run time. Running a report again for
the same parameters rewrites the same row with the same data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Mapping

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from tagportal.catalog.models import Brand, BusinessLine, Region
from tagportal.core.claims import pause_point
from tagportal.core.days import beijing_date
from tagportal.core.permissions import may
from tagportal.usage import services as usage

from ..choices import ReportKind, ReportStatus, ReportTrigger
from ..models import Report
from . import ReportScope, build
from .activity import MEASURES

log = logging.getLogger(__name__)

#: Days a report covers when no start is given, by kind.
DEFAULT_DAYS = {
    ReportKind.USAGE: 90,
    ReportKind.COLD: 90,
    ReportKind.MERGE: 90,
    ReportKind.ACTIVITY: 182,
}
#: The longest period a report may cover.
MAX_DAYS = 400


def _coerce_date(value, name: str) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        return beijing_date(value)
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValidationError({name: _("Not a date: use YYYY-MM-DD.")}) from None


def _dimension(model, value, name: str):
    if value in (None, ""):
        return None
    if isinstance(value, model):
        return value
    field = "pk" if isinstance(value, int) or str(value).isdigit() else "code"
    found = model.objects.filter(**{field: value}).first()
    if found is None:
        raise ValidationError({name: _("No such %(what)s: “%(value)s”.") % {"what": name, "value": value}})
    return found


def make_scope(
    kind: str,
    *,
    start=None,
    end=None,
    business_line=None,
    brand=None,
    region=None,
    params: dict | None = None,
    today: dt.date | None = None,
) -> ReportScope:
    """Check and complete a report's parameters. The period defaults to the last
    ``DEFAULT_DAYS[kind]`` Beijing days up to yesterday; an empty period (start after
    end), a period ending after today and one longer than ``MAX_DAYS`` are refused."""
    if kind not in ReportKind.values:
        raise ValidationError({"kind": _("Unknown report kind “%(kind)s”.") % {"kind": kind}})
    today = today or usage.beijing_today()
    end_date = _coerce_date(end, "period_end") or today - dt.timedelta(days=1)
    start_date = _coerce_date(start, "period_start") or end_date - dt.timedelta(days=DEFAULT_DAYS[kind] - 1)
    if end_date > today:
        raise ValidationError(
            {
                "period_end": _("The period ends in the future (%(end)s); today is %(today)s in Beijing.")
                % {"end": end_date, "today": today}
            }
        )
    if start_date > end_date:
        raise ValidationError(
            {
                "period_start": _("The period is empty: it starts (%(start)s) after it ends (%(end)s).")
                % {"start": start_date, "end": end_date}
            }
        )
    if (end_date - start_date).days + 1 > MAX_DAYS:
        raise ValidationError(
            {"period_start": _("A report covers at most %(days)s days.") % {"days": MAX_DAYS}}
        )
    line = _dimension(BusinessLine, business_line, "business_line")
    brand_obj = _dimension(Brand, brand, "brand")
    region_obj = _dimension(Region, region, "region")
    if brand_obj is not None:
        if line is not None and brand_obj.business_line_id != line.pk:
            raise ValidationError({"brand": _("This brand belongs to another business line.")})
        line = brand_obj.business_line
    return ReportScope(
        start=start_date,
        end=end_date,
        business_line=line,
        brand=brand_obj,
        region=region_obj,
        params=dict(sorted((params or {}).items())),
    )


def scope_key(kind: str, scope: ReportScope) -> str:
    identity = {
        "kind": kind,
        "start": scope.start.isoformat(),
        "end": scope.end.isoformat(),
        "business_line": scope.business_line.pk if scope.business_line else None,
        "brand": scope.brand.pk if scope.brand else None,
        "region": scope.region.pk if scope.region else None,
        "params": scope.params,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def check_may_run(user, scope: ReportScope) -> None:
    """Reports are run by those holding ``governance.run_report``, on what they may view:
    a report of every business line needs the ``core.unrestricted`` reach."""
    if user is None:  # the schedule
        return
    if not user.has_perm("governance.run_report"):
        raise PermissionDenied(_("You may not run reports."))
    if scope.brand is not None and not may(user, scope.brand, "view"):
        raise PermissionDenied(_("You may not see the brand “%(brand)s”.") % {"brand": scope.brand})
    if scope.business_line is not None:
        if not may(user, scope.business_line, "view"):
            raise PermissionDenied(
                _("You may not see the business line “%(line)s”.") % {"line": scope.business_line}
            )
    elif not (user.is_superuser or user.has_perm("core.unrestricted")):
        raise PermissionDenied(
            _("Choose a business line: you may not run a report over every business line.")
        )


def scope_of(report: Report) -> ReportScope:
    return ReportScope(
        start=report.period_start,
        end=report.period_end,
        business_line=report.business_line,
        brand=report.brand,
        region=report.region,
        params=report.params.get("extra", {}),
    )


def request_report(
    user,
    kind: str,
    *,
    trigger: str = ReportTrigger.PORTAL,
    run_now: bool | None = None,
    **parameters,
) -> Report:
    """Store (or find) the report for these parameters and have it built: by the Celery
    task, or at once when ``run_now`` (the default without a broker)."""
    scope = make_scope(kind, **parameters)
    check_may_run(user, scope)
    key = scope_key(kind, scope)
    now = timezone.now()
    with transaction.atomic():
        report, _created = Report.objects.select_for_update().get_or_create(
            key=key,
            defaults={
                "kind": kind,
                "business_line": scope.business_line,
                "brand": scope.brand,
                "region": scope.region,
                "period_start": scope.start,
                "period_end": scope.end,
                "params": _describe(scope),
                "trigger": trigger,
                "requested_by": user,
                "requested_at": now,
            },
        )
        if report.status == ReportStatus.RUNNING and not _is_stuck(report, now):
            return report
        report.status = ReportStatus.PENDING
        report.trigger = trigger
        report.requested_by = user
        report.requested_at = now
        report.save(update_fields=["status", "trigger", "requested_by", "requested_at"])
    if run_now is None:
        run_now = bool(getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False))
    if run_now:
        return run(report)
    from ..tasks import run_report as task

    transaction.on_commit(lambda: task.delay(report.pk))
    return report


def _describe(scope: ReportScope) -> dict:
    return {
        "business_line": scope.business_line.code if scope.business_line else None,
        "brand": scope.brand.code if scope.brand else None,
        "region": scope.region.code if scope.region else None,
        "extra": scope.params,
    }


#: A report still "running" after this long was interrupted; it may be requested again.
STUCK_AFTER = dt.timedelta(minutes=30)


def _is_stuck(report: Report, now: dt.datetime) -> bool:
    return report.started_at is None or now - report.started_at > STUCK_AFTER


#: The kind of the claims report tasks hold (:mod:`tagportal.core.claims`).
CLAIM_KIND = "governance.report"


def claim_of(report: Report) -> tuple[str, str, str, dict]:
    """``(kind, key, subject, payload)`` of the claim of a report's current request: each
    request (its time) is one unit of work, so a request made again after an abandoned
    one is claimed anew."""
    requested = report.requested_at.isoformat() if report.requested_at else ""
    return (
        CLAIM_KIND,
        f"report:{report.pk}:{requested}",
        f"report:{report.pk}",
        {"report_id": report.pk, "requested_at": requested},
    )


def abandon_claimed_report(claim, requeue: bool) -> None:
    """The reaper's handler of report claims: the report's worker died. The report is
    marked failed with the reason (so it may be requested again) and, when ``requeue``,
    requested again at once."""
    now = timezone.now()
    report_id = (claim.payload or {}).get("report_id")
    with transaction.atomic():
        report = Report.objects.select_for_update().filter(pk=report_id).first()
        if report is None or report.status not in (ReportStatus.RUNNING, ReportStatus.PENDING):
            return
        requested = report.requested_at.isoformat() if report.requested_at else ""
        if requested != (claim.payload or {}).get("requested_at"):
            return  # requested again meanwhile: that request is under way
        report.status = ReportStatus.FAILED
        report.finished_at = now
        report.error = _("The worker %(owner)s building the report was lost.") % {"owner": claim.owner}
        report.save(update_fields=["status", "finished_at", "error"])
        log.warning("report %s abandoned by %s", report.pk, claim.owner)
        if not requeue:
            return
        report.status = ReportStatus.PENDING
        report.requested_at = now
        report.save(update_fields=["status", "requested_at"])
        from ..tasks import run_report as task

        transaction.on_commit(lambda: task.delay(report.pk))


def run(report: Report) -> Report:
    """Build ``report`` now and store the result (or the error)."""
    started = timezone.now()
    Report.objects.filter(pk=report.pk).update(status=ReportStatus.RUNNING, started_at=started)
    clock = time.perf_counter()
    try:
        pause_point("governance.report")  # test hook: the report running, nothing built
        usage.aggregate()
        data = build(report.kind, scope_of(report))
    except Exception as exc:
        log.exception("report %s failed", report.pk)
        Report.objects.filter(pk=report.pk).update(
            status=ReportStatus.FAILED,
            finished_at=timezone.now(),
            duration_s=round(time.perf_counter() - clock, 3),
            error=f"{type(exc).__name__}: {exc}",
        )
        report.refresh_from_db()
        return report
    report.refresh_from_db()
    report.data = data
    report.row_count = len(data.get("rows", []))
    report.status = ReportStatus.SUCCESS
    report.finished_at = timezone.now()
    report.duration_s = round(time.perf_counter() - clock, 3)
    report.runs += 1
    report.error = ""
    report.save()
    if report.kind == ReportKind.COLD and getattr(settings, "TAGPORTAL_AUTO_DEPRECATE_COLD", False):
        from ..cleanup import propose_cold_deprecations

        try:
            propose_cold_deprecations(report)
        except Exception:  # the report stands; the proposals are retried with the next one
            log.exception("could not propose deprecations from report %s", report.pk)
    return report


def latest(kind: str, user=None, **filters) -> Report | None:
    """The newest successful report of ``kind`` (for the given scope) the user may view."""
    reports = Report.objects.filter(kind=kind, status=ReportStatus.SUCCESS, **filters)
    if user is not None:
        reports = reports.restrict(user, "view")
    return reports.order_by("-period_end", "-finished_at", "-pk").first()


def schedule_all(kinds: list[str] | None = None) -> list[Report]:
    """Request every kind of report (or ``kinds``) for each active business line and
    for all of them together, over the default period ending yesterday."""
    reports = []
    lines = [None, *BusinessLine.objects.filter(is_active=True).order_by("code")]
    for kind in kinds or ReportKind.values:
        for line in lines:
            reports.append(request_report(None, kind, trigger=ReportTrigger.SCHEDULE, business_line=line))
    return reports


#: The periodic tasks created with the database (editable in the admin afterwards).
DEFAULT_SCHEDULES = [
    {
        "name": "Weekly usage, cold-tag, merge and activity reports",
        "task": "tagportal.governance.tasks.scheduled_reports",
        "crontab": {"minute": "30", "hour": "2", "day_of_week": "1"},
    },
]


def ensure_report_schedules(periodic_task_model=None, crontab_model=None) -> list[str]:
    """Create the governance periodic tasks (Beijing time) if missing; existing ones,
    possibly edited in the admin, are left alone. Answers the names created."""
    from tagportal.core.schedules import ensure_crontab_tasks

    return ensure_crontab_tasks(DEFAULT_SCHEDULES, periodic_task_model, crontab_model, queue="default")


def visible_tag_ids(user) -> set[int] | None:
    """The tags ``user`` may view (``None``: every tag)."""
    from tagportal.catalog.models import Tag

    tags = Tag.objects.all()
    visible = tags.restrict(user, "view")
    return None if visible is tags else set(visible.values_list("pk", flat=True))


def visible_rows(user, report: Report, tag_ids: set[int] | bool | None = False) -> list[dict]:
    """The rows of ``report`` about what ``user`` may view: rows naming tags the user
    may not view are left out (a pair needs both tags); activity rows by brand."""
    rows = report.data.get("rows", [])
    if tag_ids is False:
        tag_ids = visible_tag_ids(user)
    if tag_ids is None:
        return list(rows)
    if report.kind == ReportKind.MERGE:
        return [r for r in rows if r["a"]["tag"] in tag_ids and r["b"]["tag"] in tag_ids]
    if report.kind == ReportKind.ACTIVITY:
        brands = set(Brand.objects.restrict(user, "view").values_list("pk", flat=True))
        from tagportal.catalog.models import Tag

        brands |= set(Tag.objects.filter(pk__in=tag_ids).values_list("brand_id", flat=True).distinct())
        return [r for r in rows if r.get("brand") in brands]
    return [r for r in rows if r.get("tag") in tag_ids]


def visible_meta(kind: str, meta: Mapping | None, rows: list[dict], whole_brands: bool = True) -> dict:
    """The meta of a report for a viewer of ``rows`` (the rows they may see): counts and
    totals over these rows only, and only the business lines, brands, regions and
    clients these rows name. ``whole_brands``: ``rows`` hold every activity row of their
    brands (not narrowed by region), so the totals are their brands' totals, each tag
    counted once; else the sums of the rows."""
    meta = dict(meta or {})
    if kind == ReportKind.COLD:
        meta["cold_count"] = sum(1 for row in rows if row.get("cold"))
    elif kind == ReportKind.MERGE:
        meta["pairs"] = len(rows)
    elif kind == ReportKind.USAGE:
        clients = {str(client) for row in rows for client in row.get("by_client") or {}}
        meta["clients"] = {k: v for k, v in (meta.get("clients") or {}).items() if k in clients}
    elif kind == ReportKind.ACTIVITY:
        named = {"business_lines": "business_line", "brands": "brand", "regions": "region"}
        for name, key in named.items():
            seen = {str(row.get(key)) for row in rows}
            meta[name] = {k: v for k, v in (meta.get(name) or {}).items() if k in seen}
        brands = {str(row.get("brand")) for row in rows}
        by_brand = {k: v for k, v in (meta.get("brand_totals") or {}).items() if k in brands}
        if "brand_totals" in meta:
            meta["brand_totals"] = by_brand
        if "week_brand_totals" in meta:
            meta["week_brand_totals"] = {k: v for k, v in meta["week_brand_totals"].items() if k in brands}
        if whole_brands and "brand_totals" in meta:
            meta["totals"] = {m: sum(int(t.get(m) or 0) for t in by_brand.values()) for m in MEASURES}
        else:
            meta["totals"] = {m: sum(int(row.get(m) or 0) for row in rows) for m in MEASURES}
    return meta


def visible_report(user, report: Report, tag_ids: set[int] | bool | None = False) -> tuple[dict, list[dict]]:
    """``(meta, rows)`` of ``report`` as ``user`` may see them (see :func:`visible_rows`
    and :func:`visible_meta`)."""
    rows = visible_rows(user, report, tag_ids)
    return visible_meta(report.kind, report.data.get("meta"), rows), rows
