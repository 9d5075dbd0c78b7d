"""Admin pages of audiences: the list with size, share, last refresh and a warning when
a tag an audience uses has a newer version than the one pinned; actions to refresh,
re-pin and archive (through :mod:`.services`); read-only snapshots.

Audiences are built in the audience builder or through the API, not here: the admin
edits only the name, description and refresh settings (through
:func:`.services.update_audience`) and never writes an expression or a snapshot itself.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tagportal.core.admin import HistoryAdmin, RestrictedAdminMixin, ScopedRelatedFieldListFilter
from tagportal.core.exceptions import Conflict

from . import services
from .choices import AudienceStatus
from .models import Audience, AudienceSnapshot

EDITABLE = ("name", "description", "refresh_on_recompute", "refresh_every_hours")


def _pretty(data) -> str:
    return format_html("<pre>{}</pre>", json.dumps(data or {}, ensure_ascii=False, indent=2))


def _percent(value) -> str:
    return "—" if value is None else f"{value:.1%}"


class AudienceForm(forms.ModelForm):
    class Meta:
        model = Audience
        fields = list(EDITABLE)

    def clean_refresh_every_hours(self):
        hours = self.cleaned_data.get("refresh_every_hours")
        if hours is not None and hours < 1:
            raise ValidationError(_("A whole number of hours, at least 1, or empty."))
        return hours


@admin.register(Audience)
class AudienceAdmin(RestrictedAdminMixin, HistoryAdmin):
    form = AudienceForm
    list_display = (
        "name",
        "brand",
        "kind",
        "status",
        "size",
        "share_display",
        "last_calculated_at",
        "stale_warning",
    )
    list_filter = (
        "status",
        "kind",
        "is_live",
        ("brand", ScopedRelatedFieldListFilter),
        ("business_line", ScopedRelatedFieldListFilter),
    )
    list_select_related = ("brand", "business_line")
    search_fields = ("name", "description", "expression_text")
    actions = ["refresh_now", "repin_selected", "archive_selected"]
    readonly_fields = (
        "brand",
        "business_line",
        "kind",
        "status",
        "owner",
        "expression_text",
        "expression_pretty",
        "tags_display",
        "pinned_pretty",
        "stale_warning",
        "is_live",
        "repin_requested_by",
        "repin_requested_at",
        "seed",
        "model_params_pretty",
        "model_metrics_pretty",
        "size",
        "population",
        "share_display",
        *Audience.STATE_FIELDS,
        "snapshots_link",
    )
    fieldsets = (
        (None, {"fields": ("name", "description", "brand", "business_line", "kind", "status", "owner")}),
        (
            gettext_lazy("Expression"),
            {
                "fields": (
                    "expression_text",
                    "expression_pretty",
                    "tags_display",
                    "pinned_pretty",
                    "stale_warning",
                )
            },
        ),
        (
            gettext_lazy("Refresh"),
            {
                "fields": (
                    "refresh_on_recompute",
                    "refresh_every_hours",
                    "size",
                    "population",
                    "share_display",
                    "last_calculated_at",
                    "snapshots_link",
                    "pending_version",
                    "is_calculating",
                    "calculation_started_at",
                    "errors_calculating",
                    "last_error_at",
                    "last_error",
                )
            },
        ),
        (
            gettext_lazy("Journeys and re-pinning"),
            {"fields": ("is_live", "repin_requested_by", "repin_requested_at")},
        ),
        (
            gettext_lazy("Lookalike"),
            {"fields": ("seed", "model_params_pretty", "model_metrics_pretty"), "classes": ("collapse",)},
        ),
    )

    def has_add_permission(self, request):
        return False  # audiences are built in the audience builder or through the API

    def has_delete_permission(self, request, obj=None):
        return False  # deleting an audience is archiving it (an action)

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status == AudienceStatus.ARCHIVED:
            return (*EDITABLE, *self.readonly_fields)
        return self.readonly_fields

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        stale = services.stale_pins_many(changelist.result_list)
        for audience in changelist.result_list:
            audience._stale_pins = stale.get(audience.pk, [])
        return changelist

    def save_model(self, request, obj, form, change):
        changes = {name: form.cleaned_data[name] for name in form.changed_data if name in EDITABLE}
        if changes:
            services.update_audience(request.user, obj, **changes)

    def save_related(self, request, form, formsets, change):
        pass  # the tags are the expression's, written by the services

    # -- columns -----------------------------------------------------------------

    @admin.display(description=gettext_lazy("share"), ordering="size")
    def share_display(self, obj):
        return _percent(obj.share)

    @admin.display(description=gettext_lazy("newer tag versions"))
    def stale_warning(self, obj):
        stale = getattr(obj, "_stale_pins", None)
        if stale is None:
            stale = services.stale_pins(obj)
        if not stale:
            return "—"
        return format_html(
            '<span style="color:#ba2121">⚠ {}</span>',
            ", ".join(f"{s['name']} ({s['code']}) v{s['pinned']}→v{s['current']}" for s in stale),
        )

    @admin.display(description=gettext_lazy("expression"))
    def expression_pretty(self, obj):
        return _pretty(obj.expression)

    @admin.display(description=gettext_lazy("pinned tag versions"))
    def pinned_pretty(self, obj):
        return _pretty(obj.pinned_versions)

    @admin.display(description=gettext_lazy("model parameters"))
    def model_params_pretty(self, obj):
        return _pretty(obj.model_params)

    @admin.display(description=gettext_lazy("model validation"))
    def model_metrics_pretty(self, obj):
        return _pretty(obj.model_metrics)

    @admin.display(description=gettext_lazy("tags used"))
    def tags_display(self, obj):
        return format_html_join(", ", "{} ({})", obj.tags.values_list("name", "code")) or "—"

    @admin.display(description=gettext_lazy("snapshots"))
    def snapshots_link(self, obj):
        url = (
            reverse("admin:audiences_audiencesnapshot_changelist")
            + "?"
            + urlencode({"audience__id__exact": obj.pk})
        )
        return format_html('<a href="{}">{}</a>', url, _("%(n)s snapshots") % {"n": obj.snapshots.count()})

    # -- actions -----------------------------------------------------------------

    def _each(self, request, queryset, do, done: str) -> None:
        ok = 0
        for audience in queryset:
            try:
                do(audience)
                ok += 1
            except (Conflict, PermissionDenied) as exc:
                self.message_user(request, f"{audience}: {exc}", messages.ERROR)
            except ValidationError as exc:
                self.message_user(request, f"{audience}: {'; '.join(exc.messages)}", messages.ERROR)
        if ok:
            self.message_user(request, done % {"n": ok}, messages.SUCCESS)

    @admin.action(description=gettext_lazy("Refresh now"), permissions=["change"])
    def refresh_now(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda a: services.refresh(a, "manual", request.user),
            _("%(n)s audiences refreshed."),
        )

    @admin.action(description=gettext_lazy("Re-pin to the newer tag versions"), permissions=["change"])
    def repin_selected(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda a: services.repin(request.user, a),
            _("%(n)s audiences re-pinned (live ones wait for a data steward's approval)."),
        )

    @admin.action(description=gettext_lazy("Archive"), permissions=["change"])
    def archive_selected(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda a: services.archive_audience(request.user, a),
            _("%(n)s audiences archived."),
        )


@admin.register(AudienceSnapshot)
class AudienceSnapshotAdmin(RestrictedAdminMixin, admin.ModelAdmin):
    list_display = ("audience", "number", "taken_at", "trigger", "size", "joined", "left", "duration_ms")
    list_filter = ("trigger", ("audience__brand", ScopedRelatedFieldListFilter))
    list_select_related = ("audience",)
    search_fields = ("audience__name",)
    fields = (
        "audience",
        "number",
        "taken_at",
        "trigger",
        "size",
        "population",
        "joined",
        "left",
        "duration_ms",
        "tag_versions_pretty",
        "expression_pretty",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).defer("bitmap")

    @admin.display(description=gettext_lazy("tag versions"))
    def tag_versions_pretty(self, obj):
        return _pretty(obj.tag_versions)

    @admin.display(description=gettext_lazy("expression"))
    def expression_pretty(self, obj):
        return _pretty(obj.expression)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
