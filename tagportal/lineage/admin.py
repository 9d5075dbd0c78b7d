from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tagportal.catalog.models import BusinessLine
from tagportal.core.admin import HistoryAdmin, RestrictedAdminMixin, ScopedRelatedFieldListFilter
from tagportal.core.permissions import containers_for_add, is_unrestricted, may

from . import services
from .models import DataField, DataSource, TagInput


class StaleFilter(admin.SimpleListFilter):
    title = gettext_lazy("stale")
    parameter_name = "stale"

    def lookups(self, request, model_admin):
        return [("yes", _("Yes")), ("no", _("No"))]

    def queryset(self, request, queryset):
        stale = DataSource.objects.stale().values("pk")
        if self.value() == "yes":
            return queryset.filter(pk__in=stale)
        if self.value() == "no":
            return queryset.exclude(pk__in=stale)
        return queryset


class SharedOrLineFilter(ScopedRelatedFieldListFilter):
    """Business lines the user may view, plus “shared” (no business line)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.empty_value_display = _("shared")


class DataFieldInline(admin.TabularInline):
    model = DataField
    fields = ("name", "data_type", "maps_to", "description")
    extra = 0
    show_change_link = True


class DependentInputsMixin:
    """Deleting a source or a field takes the tag inputs reading it along (the confirmation
    page lists them); that needs no permission on tag inputs, which nobody edits by hand."""

    def get_deleted_objects(self, objs, request):
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed = {name for name in perms_needed if name != TagInput._meta.verbose_name}
        return deleted, model_count, perms_needed, protected


@admin.register(DataSource)
class DataSourceAdmin(DependentInputsMixin, RestrictedAdminMixin, HistoryAdmin):
    list_display = (
        "code", "name", "name_en", "kind", "line", "owner", "refresh_sla_hours", "last_loaded_at",
        "stale", "field_count", "is_active",
    )  # fmt: skip
    list_display_links = ("code", "name")
    list_filter = ("kind", ("business_line", SharedOrLineFilter), StaleFilter, "is_active")
    list_select_related = ("business_line", "owner")
    search_fields = ("code", "name", "name_en", "description")
    autocomplete_fields = ("owner",)
    readonly_fields = ("last_loaded_at", "created", "last_updated")
    inlines = [DataFieldInline]
    actions = ["record_load_action"]
    fieldsets = (
        (None, {"fields": ("code", "name", "name_en", "kind", "description")}),
        (gettext_lazy("Ownership"), {"fields": ("owner", "business_line")}),
        (
            gettext_lazy("Freshness"),
            {"fields": ("refresh_sla_hours", "last_loaded_at", "is_active", "created", "last_updated")},
        ),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_fields=Count("fields"))

    @admin.display(description=gettext_lazy("business line"), ordering="business_line__name")
    def line(self, obj):
        return obj.business_line or _("shared")

    @admin.display(description=gettext_lazy("fields"), ordering="_fields")
    def field_count(self, obj):
        return obj._fields

    @admin.display(description=gettext_lazy("stale"), boolean=True)
    def stale(self, obj):
        return obj.is_stale()

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "business_line":
            kwargs["queryset"] = containers_for_add(request.user, DataSource, BusinessLine)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        if "business_line" in form.base_fields and not is_unrestricted(request.user):
            form.base_fields["business_line"].required = True  # shared sources are for admins
        return form

    def save_model(self, request, obj, form, change):
        if not services.may_use_business_line(request.user, obj.business_line) and (
            not change or "business_line" in form.changed_data
        ):
            raise PermissionDenied
        obj._change_reason = _("Edited in the portal") if change else _("Created in the portal")
        if not change and obj.owner_id is None:
            obj.owner = request.user
        obj.save()

    def delete_model(self, request, obj):
        # The confirmation page lists the tag inputs that go with the source.
        services.delete_source(request.user, obj, confirm=True, reason=_("Deleted in the portal"))

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            services.delete_source(request.user, obj, confirm=True, reason=_("Deleted in the portal"))

    @admin.action(description=gettext_lazy("Record a successful load now"), permissions=["change"])
    def record_load_action(self, request, queryset):
        done = 0
        for source in queryset:
            try:
                services.record_load(source, user=request.user)
            except (PermissionDenied, ValidationError) as exc:
                self.message_user(request, f"{source}: {exc}", messages.ERROR)
                continue
            done += 1
        if done:
            self.message_user(
                request,
                _("Recorded a successful load of %(n)s data source(s).") % {"n": done},
                messages.SUCCESS,
            )


@admin.register(DataField)
class DataFieldAdmin(DependentInputsMixin, RestrictedAdminMixin, HistoryAdmin):
    list_display = ("__str__", "source", "name", "data_type", "maps_to", "tag_count")
    list_filter = (("source", ScopedRelatedFieldListFilter), "source__kind", "data_type")
    list_select_related = ("source",)
    search_fields = ("name", "description", "maps_to", "source__code", "source__name")
    fields = ("source", "name", "data_type", "maps_to", "description")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_tags=Count("tag_inputs"))

    @admin.display(description=gettext_lazy("tags reading it"), ordering="_tags")
    def tag_count(self, obj):
        return obj._tags

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "source":
            kwargs["queryset"] = DataSource.objects.restrict(request.user, "change")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if not may(request.user, obj.source, "change"):
            raise PermissionDenied
        obj._change_reason = _("Edited in the portal") if change else _("Created in the portal")
        obj.save()

    def delete_model(self, request, obj):
        services.delete_field(request.user, obj, confirm=True, reason=_("Deleted in the portal"))

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            services.delete_field(request.user, obj, confirm=True, reason=_("Deleted in the portal"))


@admin.register(TagInput)
class TagInputAdmin(RestrictedAdminMixin, admin.ModelAdmin):
    """Read-only: inputs come from tag definitions and from declarations (API)."""

    list_display = ("tag", "reads", "origin", "last_updated")
    list_filter = ("origin", ("tag__business_line", ScopedRelatedFieldListFilter))
    list_select_related = ("tag", "field__source", "upstream")
    search_fields = ("tag__code", "tag__name", "upstream__code", "field__name", "field__source__code")

    @admin.display(description=gettext_lazy("reads"))
    def reads(self, obj):
        if obj.field_id:
            return format_html("{} <code>{}</code>", _("field"), obj.field)
        return format_html("{} <code>{}</code>", _("tag"), obj.upstream.code)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
