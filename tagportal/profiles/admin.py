"""Admin pages of profiles: customers (read-only, identities masked unless the user
holds ``core.view_pii``), OneID merges with a split action, and import jobs with an
upload form, their progress and their row report."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tagportal.catalog.models import Brand
from tagportal.core.admin import (
    HistoryAdmin,
    ReadOnlyAdminMixin,
    RestrictedAdminMixin,
    ScopedRelatedFieldListFilter,
)
from tagportal.core.permissions import containers_for_add

from . import imports, lookups, pii, services
from .choices import IdentityType, LookupEndpoint
from .models import Customer, Identity, IdentityLookup, ImportJob, MergeRecord

#: Bad rows listed on an import job's page.
REPORT_ROWS = 200


class ReadOnlyMixin:
    """Rows written only by services (imports, merges): viewable, never edited by hand."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class IdentityInline(ReadOnlyMixin, admin.TabularInline):
    model = Identity
    fields = ("type", "app", "shown_value", "created")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_formset(self, request, obj=None, **kwargs):
        self.request = request  # inline instances are made per request
        return super().get_formset(request, obj, **kwargs)

    @admin.display(description=gettext_lazy("value"))
    def shown_value(self, obj):
        return obj.display_value(getattr(self, "request", None) and self.request.user)

    def has_delete_permission(self, request, obj=None):
        return False


class MergedFilter(admin.SimpleListFilter):
    title = gettext_lazy("merged into another person")
    parameter_name = "merged"

    def lookups(self, request, model_admin):
        return [("no", _("No")), ("yes", _("Yes"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(merged_into__isnull=False)
        if self.value() == "no":
            return queryset.filter(merged_into__isnull=True)
        return queryset


@admin.register(Customer)
class CustomerAdmin(ReadOnlyMixin, RestrictedAdminMixin, HistoryAdmin):
    list_display = (
        "oneid",
        "brand",
        "gender",
        "city",
        "member_level",
        "identity_count",
        "merged_into",
        "created",
    )
    list_filter = (("brand", ScopedRelatedFieldListFilter), MergedFilter)
    list_select_related = ("brand", "merged_into")
    search_fields = ("=oneid",)
    search_help_text = gettext_lazy(
        "A OneID; with the permission to look people up by identity value, also an identifier "
        "such as a phone number or a unionid (exact)."
    )
    fields = (
        "brand",
        "oneid",
        "attributes_table",
        "merged_into",
        "recent_activity",
        "created",
        "last_updated",
    )
    readonly_fields = fields
    inlines = [IdentityInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_identities=Count("identities"))

    def get_search_results(self, request, queryset, search_term):
        """Searching by an identifier compares its keyed hash; values are never searched in
        clear. It is a lookup by identity value (:mod:`.lookups`): only with its permission,
        at its rate, and recorded; without the permission only OneIDs are searched."""
        found, distinct = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if not term or not lookups.may_look_up(request.user):
            return found, distinct
        hashes = []
        for type_ in IdentityType.values:
            value, problem = pii.normalise_one(type_, term)
            if value and not problem:
                hashes.append(pii.hash_value(type_, value))
        if not hashes:
            return found, distinct
        if not lookups.LookupThrottle().allow_request(request, None):
            self.message_user(
                request, _("Too many lookups by identity value; only OneIDs were searched."), messages.WARNING
            )
            return found, distinct
        holders = queryset.filter(pk__in=Identity.objects.filter(value_hash__in=hashes).values("customer_id"))
        lookups.record(request.user, LookupEndpoint.ADMIN_SEARCH, 1, found=int(holders.exists()), brand=None)
        return found | holders, distinct

    def _attribute(self, obj, name):
        return (obj.attributes or {}).get(name, "")

    @admin.display(description=gettext_lazy("gender"))
    def gender(self, obj):
        return self._attribute(obj, "gender")

    @admin.display(description=gettext_lazy("city"))
    def city(self, obj):
        return self._attribute(obj, "city")

    @admin.display(description=gettext_lazy("member level"))
    def member_level(self, obj):
        return self._attribute(obj, "member_level")

    @admin.display(description=gettext_lazy("identities"), ordering="_identities")
    def identity_count(self, obj):
        return obj._identities

    @admin.display(description=gettext_lazy("attributes"))
    def attributes_table(self, obj):
        rows = sorted((obj.attributes or {}).items())
        if not rows:
            return "—"
        # as the sources sent them: keys and values are data, not words of the portal
        body = format_html_join("", "<tr><th><code>{}</code></th><td>{}</td></tr>", ((k, v) for k, v in rows))
        return format_html('<table class="tp-stored">{}</table>', body)

    @admin.display(description=gettext_lazy("recent activity"))
    def recent_activity(self, obj):
        events = obj.events.order_by("-time")[:10]
        orders = obj.orders.order_by("-time")[:10]
        rows = [(e.time, _("event"), e.type, e.channel, e.store, "") for e in events]
        rows += [(o.time, _("order"), o.category, o.channel, o.store, f"¥{o.amount}") for o in orders]
        if not rows:
            return "—"
        rows.sort(key=lambda r: r[0], reverse=True)
        body = format_html_join(
            "",
            # the event type and the channel as the source sent them
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            ((f"{t:%Y-%m-%d %H:%M}", *rest) for t, *rest in rows[:15]),
        )
        return format_html("<table>{}</table>", body)


@admin.register(MergeRecord)
class MergeRecordAdmin(ReadOnlyMixin, RestrictedAdminMixin, HistoryAdmin):
    list_display = ("merged_oneid", "kept_oneid", "rule", "brand", "identity_count", "created", "undone_at")
    list_filter = (("brand", ScopedRelatedFieldListFilter), "rule", ("undone_at", admin.EmptyFieldListFilter))
    list_select_related = ("brand",)
    search_fields = ("=kept_oneid", "=merged_oneid")
    readonly_fields = (
        "brand", "kept", "merged", "kept_oneid", "merged_oneid", "rule", "reason", "identities_moved",
        "events_moved", "orders_moved", "kept_attributes_before", "import_job", "created", "undone_at",
        "undone_by", "undo_reason",
    )  # fmt: skip
    fields = readonly_fields
    actions = ["split_action"]

    @admin.display(description=gettext_lazy("identities moved"))
    def identity_count(self, obj):
        return len(obj.identities_moved or [])

    @admin.action(description=gettext_lazy("Split: undo the selected merges"), permissions=["split"])
    def split_action(self, request, queryset):
        done = 0
        for merge in queryset.restrict(request.user, "change").order_by("-created", "-pk"):
            try:
                services.split(merge, user=request.user, reason=_("Split in the admin"))
                done += 1
            except ValidationError as exc:
                self.message_user(request, f"{merge}: {' '.join(exc.messages)}", messages.ERROR)
        if done:
            self.message_user(request, _("%(count)d merges split.") % {"count": done}, messages.SUCCESS)

    def has_split_permission(self, request):
        return request.user.has_perm("profiles.change_mergerecord")


class ImportUploadForm(forms.ModelForm):
    file = forms.FileField(
        label=gettext_lazy("file"),
        help_text=gettext_lazy(
            "CSV (UTF-8 or GB18030) or Parquet. Identities go in columns named after their type "
            "(phone, wechat_unionid, crm_member_id, …); events and orders need client_id and time "
            "(without an offset, Beijing time). Nothing is written if a row is bad."
        ),
    )

    class Meta:
        model = ImportJob
        fields = ["brand", "kind"]

    def clean(self):
        """The cheap checks of the file (size, format, header, row and column caps) as a
        form error, before anything is stored."""
        data = super().clean()
        upload, kind = data.get("file"), data.get("kind")
        if upload is not None and kind:
            try:
                imports.check_upload(kind, upload)
            except imports.UploadRefused as exc:
                self.add_error("file", exc.messages)
        return data


@admin.register(ImportJob)
class ImportJobAdmin(RestrictedAdminMixin, HistoryAdmin):
    list_display = (
        "id", "brand", "kind", "file_name", "status", "progress_bar", "rows_total", "rows_ok", "rows_skipped",
        "rows_bad", "created_by", "created",
    )  # fmt: skip
    list_display_links = ("id", "file_name")
    list_filter = (("brand", ScopedRelatedFieldListFilter), "kind", "status")
    list_select_related = ("brand", "created_by")
    search_fields = ("file_name",)
    readonly_fields = (
        "brand", "kind", "file_name", "status", "progress_bar", "stage", "rows_total", "rows_ok", "rows_skipped",
        "rows_bad", "created_counts", "message", "report", "created_by", "created", "started_at", "finished_at",
    )  # fmt: skip

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["brand", "kind", "file"]
        return list(self.readonly_fields)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ImportUploadForm
            kwargs["fields"] = ["brand", "kind"]
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None:
            form.base_fields["brand"].queryset = containers_for_add(request.user, ImportJob, Brand)
        return form

    def has_add_permission(self, request):
        return (
            super().has_add_permission(request)
            and containers_for_add(request.user, ImportJob, Brand).exists()
        )

    def has_change_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if change:
            raise PermissionDenied
        try:
            imports.queue_import(
                form.cleaned_data["brand"],
                form.cleaned_data["kind"],
                form.cleaned_data["file"],
                user=request.user,
                job=obj,
            )
        except ValidationError as exc:
            raise PermissionDenied(" ".join(exc.messages)) from exc

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(
            request,
            _("The import of “%(file)s” was queued; this page shows its progress and report.")
            % {"file": obj.file_name},
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:profiles_importjob_change", args=[obj.pk]))

    @admin.display(description=gettext_lazy("progress"))
    def progress_bar(self, obj):
        bar = format_html(
            '<progress value="{}" max="100" style="width:8em"></progress> {}%', obj.progress, obj.progress
        )
        if obj.is_finished or obj.pk is None:
            return bar
        # refresh the page while the import runs
        return format_html(
            "{} {}<script>setTimeout(function(){{location.reload()}}, 2000)</script>", bar, obj.stage
        )

    @admin.display(description=gettext_lazy("bad rows"))
    def report(self, obj):
        if not obj.errors:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (e.get("row") or "", e.get("column") or "", e.get("message") or "")
                for e in obj.errors[:REPORT_ROWS]
            ),
        )
        more = ""
        if obj.rows_bad > REPORT_ROWS or len(obj.errors) > REPORT_ROWS:
            more = _("Only the first %(count)d problems are listed.") % {"count": REPORT_ROWS}
        return format_html(
            "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>{}",
            _("row"),
            _("column"),
            _("problem"),
            rows,
            more,
        )


@admin.register(IdentityLookup)
class IdentityLookupAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Who looked people up by identity value, where, how many values, how many found
    (the values are never kept)."""

    list_display = ("at", "user", "endpoint", "brand", "candidates", "found", "refused")
    list_filter = ("endpoint", "refused", ("at", admin.DateFieldListFilter))
    list_select_related = ("user", "brand")
    search_fields = ("user__username", "user__display_name")
    date_hierarchy = "at"
    fields = list_display
    readonly_fields = list_display
