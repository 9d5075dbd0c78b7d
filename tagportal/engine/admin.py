"""Admin pages of tag results: read-only computation states and run history, and a
"compute now" action."""

from __future__ import annotations

import json
from collections import defaultdict

from django.contrib import admin, messages
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tagportal.catalog.choices import ValueType
from tagportal.core.admin import ReadOnlyAdminMixin, RestrictedAdminMixin, ScopedRelatedFieldListFilter

from . import services
from .api.views import may_run_compute
from .models import TagComputation, TagRun


def _pretty(data) -> str:
    return format_html("<pre>{}</pre>", json.dumps(data or {}, ensure_ascii=False, indent=2))


def _percent(value) -> str:
    return "—" if value is None else f"{value:.1%}"


class ReadOnlyAdmin(ReadOnlyAdminMixin, RestrictedAdminMixin, admin.ModelAdmin):
    pass


@admin.register(TagComputation)
class TagComputationAdmin(ReadOnlyAdmin):
    list_display = (
        "tag",
        "brand",
        "version",
        "coverage_display",
        "population",
        "psi",
        "drift_flag",
        "is_calculating",
        "last_calculated_at",
        "errors_calculating",
    )
    list_filter = (
        "drift_flag",
        "is_calculating",
        ("tag__brand", ScopedRelatedFieldListFilter),
        "tag__value_type",
    )
    list_select_related = ("tag", "tag__brand")
    search_fields = ("tag__code", "tag__name", "last_error")
    actions = ["compute_now"]
    fields = (
        "tag",
        "version",
        "pending_version",
        "value_type_display",
        "is_calculating",
        "calculation_started_at",
        "last_calculated_at",
        "population",
        "coverage_display",
        "distribution_pretty",
        "psi",
        "drift_flag",
        "errors_calculating",
        "last_error_at",
        "last_error",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).defer("numbers")

    @admin.display(description=gettext_lazy("brand"), ordering="tag__brand__code")
    def brand(self, obj):
        return obj.tag.brand

    @admin.display(description=gettext_lazy("value type"))
    def value_type_display(self, obj):
        return dict(ValueType.choices).get(obj.value_type, obj.value_type) or "—"

    @admin.display(description=gettext_lazy("coverage"), ordering="coverage")
    def coverage_display(self, obj):
        return _percent(obj.coverage)

    @admin.display(description=gettext_lazy("distribution"))
    def distribution_pretty(self, obj):
        return _pretty(obj.distribution)

    @admin.action(description=gettext_lazy("Compute now"), permissions=["run_compute"])
    def compute_now(self, request, queryset):
        by_brand = defaultdict(list)
        for computation in queryset.select_related("tag__brand"):
            by_brand[computation.tag.brand].append(computation.tag_id)
        for brand, tag_ids in by_brand.items():
            if not may_run_compute(request.user, brand):
                self.message_user(
                    request,
                    _("%(brand)s: you may not start computations of this brand's tags.") % {"brand": brand},
                    messages.ERROR,
                )
                continue
            pending = services.enqueue_compute(brand, tag_ids)
            if pending is None:
                self.message_user(
                    request,
                    _("%(brand)s: no published tags to compute.") % {"brand": brand},
                    messages.WARNING,
                )
            else:
                self.message_user(
                    request,
                    _("%(brand)s: computation of %(n)s tags requested (request %(pending)s).")
                    % {"brand": brand, "n": len(tag_ids), "pending": pending},
                    messages.SUCCESS,
                )

    def has_run_compute_permission(self, request):
        return request.user.has_perm("engine.run_compute")


@admin.register(TagRun)
class TagRunAdmin(ReadOnlyAdmin):
    list_display = (
        "started_at",
        "tag",
        "brand",
        "tag_version",
        "status",
        "duration_s",
        "rows_read",
        "peak_memory_mb",
        "coverage_display",
        "psi",
        "drift_flag",
        "short_error",
    )
    list_filter = (
        "status",
        "drift_flag",
        ("brand", ScopedRelatedFieldListFilter),
        "started_at",
    )
    list_select_related = ("tag", "brand")
    search_fields = ("tag__code", "tag__name", "error")
    date_hierarchy = "started_at"
    fields = (
        "tag",
        "brand",
        "tag_version",
        "pending_version",
        "status",
        "started_at",
        "finished_at",
        "duration_s",
        "evaluate_s",
        "rows_read",
        "peak_memory_mb",
        "partitions",
        "population",
        "coverage_display",
        "distribution_pretty",
        "psi",
        "drift_flag",
        "error",
    )
    readonly_fields = fields

    @admin.display(description=gettext_lazy("coverage"), ordering="coverage")
    def coverage_display(self, obj):
        return _percent(obj.coverage)

    @admin.display(description=gettext_lazy("distribution"))
    def distribution_pretty(self, obj):
        return _pretty(obj.distribution)

    @admin.display(description=gettext_lazy("error"))
    def short_error(self, obj):
        return (obj.error[:80] + "…") if len(obj.error) > 80 else obj.error
