"""The workbench (工作台) at ``/``: what each person has to do, gathered from every app.

An operator sees their tags, their drafts and change requests, their audiences and the
tags of their business lines that read a stale source or are cold; a data steward sees
the review queue, the tags due for re-certification, the stale data sources and the
cleanup findings of the newest reports; an analyst (and everyone) a search of the
dictionary. What a person is comes from their permissions (``core.roles`` gives them to
the role groups), so an admin sees the steward's panels.

The home lives here because dashboards is the top layer: it may read catalog,
audiences, lineage and governance through their public querysets and services. Every
list is scoped with ``restrict`` like the pages it links to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.http import QueryDict
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from tagportal.audiences.choices import AudienceStatus
from tagportal.audiences.models import Audience
from tagportal.catalog.choices import TagStatus
from tagportal.catalog.models import Tag
from tagportal.catalog.services import recertification_due
from tagportal.core.days import beijing_text
from tagportal.governance import services as governance
from tagportal.governance.choices import ReportKind, RequestState
from tagportal.lineage.models import DataSource
from tagportal.lineage.services import stale_tag_ids

from .data import Viewer, finding_count, pick_report, viewer_for

#: Rows a panel lists; its count and its "all" link give the rest.
SHOWN = 5


@dataclass
class Row:
    label: str
    url: str
    note: str = ""
    code: str = ""


@dataclass
class Panel:
    key: str
    title: str
    count: int
    empty: str
    more_url: str = ""
    more_label: str = ""
    rows: list[Row] = field(default_factory=list)


def _tag_url(pk: int) -> str:
    return reverse("admin:catalog_tag_change", args=[pk])


def _tag_rows(tags) -> list[Row]:
    return [Row(tag.name, _tag_url(tag.pk), str(TagStatus(tag.status).label), tag.code) for tag in tags]


# ---------------------------------------------------------------------------
# An operator's panels


def my_tags(user) -> Panel:
    tags = Tag.objects.restrict(user, "view").active().filter(owner=user)
    return Panel(
        key="my-tags",
        title=_("My tags"),
        count=tags.count(),
        empty=_("You own no tags yet. Propose one from the dictionary."),
        more_url=reverse("admin:catalog_tag_changelist") + f"?owner__id__exact={user.pk}",
        more_label=_("All my tags"),
        rows=_tag_rows(tags.order_by("-last_updated", "-pk")[:SHOWN]),
    )


def my_requests(user) -> Panel:
    requests = governance.requests_for(user).filter(proposer=user).open()
    rows = [
        Row(
            cr.title,
            reverse("governance:request", args=[cr.pk]),
            str(RequestState(cr.state).label),
            f"#{cr.pk}",
        )
        for cr in requests.order_by("-last_updated", "-pk")[:SHOWN]
    ]
    return Panel(
        key="my-requests",
        title=_("My drafts and requests"),
        count=requests.count(),
        empty=_("No open drafts or change requests."),
        more_url=reverse("governance:mine"),
        more_label=_("All my requests"),
        rows=rows,
    )


def my_audiences(user) -> Panel:
    audiences = (
        Audience.objects.restrict(user, "view")
        .filter(owner=user)
        .exclude(status=AudienceStatus.ARCHIVED)
        .select_related("brand")
    )
    rows = [
        Row(audience.name, reverse("audiences:detail", args=[audience.pk]), audience.brand.name)
        for audience in audiences.order_by("-last_updated", "-pk")[:SHOWN]
    ]
    return Panel(
        key="my-audiences",
        title=_("My audiences"),
        count=audiences.count(),
        empty=_("You have built no audiences yet."),
        more_url=reverse("audiences:list"),
        more_label=_("All audiences"),
        rows=rows,
    )


def tags_needing_care(user, viewer: Viewer) -> Panel:
    """The tags of the user's business lines that read a stale source, then the cold ones
    of the newest cold-tag report."""
    tags = Tag.objects.restrict(user, "view").active()
    stale = stale_tag_ids(tags)
    cold: dict[int, dict] = {}
    source = pick_report(viewer, ReportKind.COLD)
    if source is not None:
        cold = {
            row["tag"]: row for row in viewer.visible_rows(ReportKind.COLD, source.rows) if row.get("cold")
        }
    rows = [
        Row(tag.name, _tag_url(tag.pk), _("stale source"), tag.code)
        for tag in tags.filter(pk__in=stale).order_by("code")[:SHOWN]
    ]
    for row in sorted(cold.values(), key=lambda r: (-float(r.get("score") or 0), str(r.get("code")))):
        if len(rows) >= SHOWN:
            break
        if row["tag"] not in stale:
            rows.append(
                Row(
                    str(row.get("name") or ""),
                    _tag_url(row["tag"]),
                    _("cold tag"),
                    str(row.get("code") or ""),
                )
            )
    return Panel(
        key="needs-care",
        title=_("Stale or cold tags in my lines"),
        count=len(stale | set(cold)),
        empty=_("No tag of your business lines reads a stale source or is cold."),
        more_url=reverse("dashboards:cold"),
        more_label=_("Cold tags"),
        rows=rows,
    )


# ---------------------------------------------------------------------------
# A steward's panels


def review_queue(user) -> Panel:
    queue = governance.review_queue(user)
    now = timezone.now()
    rows = []
    for cr in queue.order_by("submitted_at", "pk")[:SHOWN]:
        days = max((now - (cr.submitted_at or cr.created)).days, 0)
        note = _("%(proposer)s, waiting %(days)s day(s)") % {"proposer": cr.proposer, "days": days}
        rows.append(Row(cr.title, reverse("governance:request", args=[cr.pk]), note, f"#{cr.pk}"))
    return Panel(
        key="review-queue",
        title=_("Waiting for my review"),
        count=queue.count(),
        empty=_("Nothing waits for your review."),
        more_url=reverse("governance:queue"),
        more_label=_("Review queue"),
        rows=rows,
    )


def recertifications(user) -> Panel:
    tags = Tag.objects.restrict(user, "view").filter(
        business_line__in=governance.reviewable_business_lines(user)
    )
    due = recertification_due(tags.order_by("brand__code", "code"))
    return Panel(
        key="recertify",
        title=_("Due for re-certification"),
        count=len(due),
        empty=_("No tag is due for re-certification."),
        more_url=reverse("governance:recertify"),
        more_label=_("Re-certification"),
        rows=[
            Row(
                tag.name, _tag_url(tag.pk), _("never certified") if tag.certified_at is None else "", tag.code
            )
            for tag in due[:SHOWN]
        ],
    )


def stale_sources(user) -> Panel:
    sources = DataSource.objects.restrict(user, "view").stale().order_by("name", "pk")
    count = sources.count()
    return Panel(
        key="stale-sources",
        title=_("Stale data sources"),
        count=count,
        empty=_("Every data source is within its refresh SLA."),
        more_url=reverse("admin:lineage_datasource_changelist"),
        more_label=_("All data sources"),
        rows=[
            Row(
                source.name,
                reverse("admin:lineage_datasource_change", args=[source.pk]),
                _("loaded %(when)s, SLA %(sla)s h")
                % {
                    "when": beijing_text(source.last_loaded_at, "%m-%d %H:%M"),
                    "sla": source.refresh_sla_hours,
                }
                if source.last_loaded_at
                else _("never loaded"),
            )
            for source in sources[:SHOWN]
        ],
    )


def cleanup_findings(viewer: Viewer) -> Panel:
    pages = (
        (ReportKind.COLD, "dashboards:cold", _("Cold tags")),
        (ReportKind.MERGE, "dashboards:duplicates", _("Duplicate pairs")),
    )
    rows, total = [], 0
    for kind, url_name, label in pages:
        source = pick_report(viewer, kind)
        if source is None:
            continue
        if kind == ReportKind.COLD:
            count = sum(1 for row in viewer.visible_rows(kind, source.rows) if row.get("cold"))
        else:
            count = finding_count(viewer, source.report)
        total += count
        rows.append(Row(label, reverse(url_name), _("%(n)s finding(s)") % {"n": count}))
    return Panel(
        key="cleanup",
        title=_("Cleanup findings"),
        count=total,
        empty=_("No report has findings yet. Run the reports from the dashboards."),
        more_url=reverse("dashboards:index"),
        more_label=_("Cleanup dashboard"),
        rows=rows,
    )


# ---------------------------------------------------------------------------
# The page


def panels_for(request) -> tuple[list[str], list[Panel]]:
    """The roles the page speaks to and their panels, the steward's first."""
    user = request.user
    # the whole of what the user may see: the page's own parameters are not dashboard filters
    viewer = viewer_for(SimpleNamespace(user=user, GET=QueryDict()))
    roles, panels = [], []
    if user.has_perm("governance.review_changerequest"):
        roles.append("steward")
        panels += [review_queue(user), recertifications(user), stale_sources(user), cleanup_findings(viewer)]
        if user.has_perm("governance.add_changerequest"):
            panels.append(my_requests(user))
    elif user.has_perm("governance.add_changerequest"):
        roles.append("operator")
        panels += [my_tags(user), my_requests(user), my_audiences(user), tags_needing_care(user, viewer)]
    if not roles:
        roles.append("analyst")
    return roles, panels


@login_required
@require_GET
def home(request):
    roles, panels = panels_for(request)
    context = {
        **admin.site.each_context(request),
        "title": _("Workbench"),
        "is_nav_sidebar_enabled": False,  # the header and the panels are the navigation
        "roles": roles,
        "panels": panels,
        "dictionary_count": Tag.objects.restrict(request.user, "view").published().count(),
    }
    return TemplateResponse(request, "dashboards/home.html", context)
