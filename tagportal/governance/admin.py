"""Admin pages of governance: change requests and reports, to look at.

A change request changes only through :mod:`.services` (propose, submit, review, apply:
the review pages, the API and bulk uploads call them), so here it is read-only: its
state, its changes and comments, its history, and a link to its review page. Reports
are built by tasks (:mod:`.tasks`); here they are listed with links to download them
from the dashboards. Both lists show what ``restrict(user, "view")`` allows.
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from tagportal.core.admin import (
    HistoryAdmin,
    ReadOnlyAdminMixin,
    RestrictedAdminMixin,
    ScopedRelatedFieldListFilter,
)
from tagportal.core.permissions import may, model_permission

from .choices import ReportStatus
from .models import ChangeItem, ChangeRequest, Comment, Report
from .reports import service as report_service

#: The formats a finished report downloads in (the dashboards' download page).
DOWNLOAD_FORMATS = (("xlsx", "Excel"), ("csv", "CSV"), ("json", "JSON"))


class ChangeRequestPartInline(ReadOnlyAdminMixin, admin.TabularInline):
    """A part of a change request (its changes, its comments): seen by whoever may view
    the request, whatever their permissions on the part's own model."""

    extra = 0

    def has_view_permission(self, request, obj=None):
        if not request.user.has_perm(model_permission(ChangeRequest, "view")):
            return False
        return obj is None or may(request.user, obj, "view")


class ChangeItemInline(ChangeRequestPartInline):
    model = ChangeItem
    fields = (
        "position", "kind", "tag", "base_version", "changed_fields", "merge_target", "rollback_to",
        "produced_version", "model_run",
    )  # fmt: skip
    readonly_fields = fields
    ordering = ("position", "pk")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("tag", "merge_target", "produced_version", "model_run__model")
            .defer("model_run__artefact")
        )

    @admin.display(description=_("changed fields"))
    def changed_fields(self, obj):
        return ", ".join(str(row.get("label", row.get("field", ""))) for row in obj.diff or []) or "—"


class CommentInline(ChangeRequestPartInline):
    model = Comment
    fields = ("created", "author", "text")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("author")


@admin.register(ChangeRequest)
class ChangeRequestAdmin(ReadOnlyAdminMixin, RestrictedAdminMixin, HistoryAdmin):
    list_display = (
        "__str__", "state", "business_line", "brand", "proposer", "reviewer", "is_bulk", "submitted_at",
        "decided_at", "applied_at", "review_link",
    )  # fmt: skip
    list_filter = (
        "state",
        ("business_line", ScopedRelatedFieldListFilter),
        ("brand", ScopedRelatedFieldListFilter),
        "is_bulk",
        "created",
    )
    list_select_related = ("business_line", "brand", "proposer", "reviewer")
    search_fields = ("title", "description", "items__tag__code", "items__tag__name")
    search_help_text = _("Search titles, descriptions and the codes and names of the tags changed.")
    date_hierarchy = "created"
    fieldsets = (
        (None, {"fields": ("title", "description", "review_link")}),
        (
            _("Scope"),
            {"fields": ("business_line", "brand", "is_bulk", "source_file", "confirm_dependents")},
        ),
        (
            _("Review"),
            {
                "fields": (
                    "state",
                    "proposer",
                    "reviewer",
                    "decision_reason",
                    "created",
                    "submitted_at",
                    "decided_at",
                    "applied_at",
                    "last_updated",
                )
            },
        ),
    )
    readonly_fields = [name for _title, options in fieldsets for name in options["fields"]]
    inlines = [ChangeItemInline, CommentInline]

    @admin.display(description=_("review page"))
    def review_link(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("governance:request", args=[obj.pk]), _("Open"))


@admin.register(Report)
class ReportAdmin(ReadOnlyAdminMixin, RestrictedAdminMixin, admin.ModelAdmin):
    list_display = (
        "__str__", "kind", "business_line", "brand", "region", "status", "trigger", "requested_by",
        "finished_at", "duration_s", "row_count", "download",
    )  # fmt: skip
    list_filter = (
        "kind",
        "status",
        "trigger",
        ("business_line", ScopedRelatedFieldListFilter),
        ("brand", ScopedRelatedFieldListFilter),
        "period_end",
    )
    list_select_related = ("business_line", "brand", "region", "requested_by")
    date_hierarchy = "period_end"
    fields = (
        "kind", "business_line", "brand", "region", "period_start", "period_end", "params", "status",
        "trigger", "requested_by", "requested_at", "started_at", "finished_at", "duration_s", "runs",
        "row_count", "error", "download",
    )  # fmt: skip
    readonly_fields = fields

    def get_queryset(self, request):
        reports = super().get_queryset(request)
        if self._tag_ids(request) is None:
            return reports.defer("data")  # the findings: downloaded, not shown
        return reports  # counted for the viewer (see _findings)

    @staticmethod
    def _tag_ids(request) -> set[int] | None:
        """The tags the user may view (``None``: every tag), once per request."""
        if not hasattr(request, "_report_tag_ids"):
            request._report_tag_ids = report_service.visible_tag_ids(request.user)
        return request._report_tag_ids

    def _findings(self, request):
        """The ``row_count`` column as the user may see it: the findings about tags they
        may view (a report of every business line counts every line). One per request,
        so that the list, the fields and the read-only fields name the same column."""
        if not hasattr(request, "_report_findings"):

            def findings(report):
                tag_ids = self._tag_ids(request)
                if tag_ids is None:
                    return report.row_count
                return len(report_service.visible_rows(request.user, report, tag_ids))

            findings.short_description = Report._meta.get_field("row_count").verbose_name
            request._report_findings = findings
        return request._report_findings

    def _with_findings(self, request, names):
        counted = self._findings(request)
        return type(names)(counted if name == "row_count" else name for name in names)

    def get_list_display(self, request):
        return self._with_findings(request, super().get_list_display(request))

    def get_fields(self, request, obj=None):
        return self._with_findings(request, super().get_fields(request, obj))

    def get_readonly_fields(self, request, obj=None):
        return self._with_findings(request, super().get_readonly_fields(request, obj))

    @admin.display(description=_("download"))
    def download(self, obj):
        if obj.status != ReportStatus.SUCCESS:
            return "—"
        try:
            url = reverse("dashboards:download", args=[obj.pk])
        except NoReverseMatch:  # the dashboards are not installed
            return "—"
        return format_html_join(
            " · ", '<a href="{}?format={}">{}</a>', ((url, fmt, label) for fmt, label in DOWNLOAD_FORMATS)
        )
