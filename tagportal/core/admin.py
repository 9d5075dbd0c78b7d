from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.core.exceptions import FieldDoesNotExist, PermissionDenied, ValidationError
from django.db import models
from django.http import Http404
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from simple_history.admin import SimpleHistoryAdmin
from simple_history.template_utils import HistoricalRecordContextHelper

from .days import beijing_text
from .filters import out_of_range
from .models import User, WorkClaim
from .permissions import may


class RestrictedAdminMixin:
    """Admin pages see and change only what ``restrict(user, action)`` allows."""

    def get_queryset(self, request):
        return super().get_queryset(request).restrict(request.user, "view")

    def has_view_permission(self, request, obj=None):
        if not super().has_view_permission(request, obj):
            return False
        return obj is None or may(request.user, obj, "view") or may(request.user, obj, "change")

    def has_change_permission(self, request, obj=None):
        if not super().has_change_permission(request, obj):
            return False
        return obj is None or may(request.user, obj, "change")

    def has_delete_permission(self, request, obj=None):
        if not super().has_delete_permission(request, obj):
            return False
        return obj is None or may(request.user, obj, "delete")

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        """Another business line's object (or none at all) is not found: a 404, not the
        admin's redirect to the list with "perhaps it was deleted"."""
        raise Http404(_("Nothing to show: it does not exist or you may not view it."))

    def get_changeform_initial_data(self, request):
        """The add form's values from the query string, without the related ids that
        are not ids at all (``?owner=abc``, ``?owner=1e309``, a number too large): the
        form starts empty there instead of failing to draw."""
        initial = super().get_changeform_initial_data(request)
        for name, value in list(initial.items()):
            try:
                field = self.model._meta.get_field(name)
            except FieldDoesNotExist:
                continue
            if not field.is_relation or field.target_field is None:
                continue
            try:
                ids = [
                    field.target_field.to_python(v) for v in (value if isinstance(value, list) else [value])
                ]
            except ValidationError:
                ids = None
            if ids is None or out_of_range(ids):
                del initial[name]
        return initial


class ReadOnlyAdminMixin:
    """An admin page (or inline) to look at: rows written only by services or tasks are
    never added, changed or deleted by hand."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadableHistory(HistoricalRecordContextHelper):
    """A history page's changes as a reader says them: a choice by its label (草稿 →
    已提交, not ``draft → submitted``), a moment in Beijing time, nothing as "—"."""

    def prepare_delta_change_value(self, change, value):
        field = self.model._meta.get_field(change.field)
        if value is None or value == "":
            return "—"
        if field.choices and not field.many_to_many:
            return str(dict(field.flatchoices).get(value, value))
        if isinstance(field, models.BooleanField):
            return gettext("yes") if value else gettext("no")
        if isinstance(field, models.DateTimeField):
            return beijing_text(value)
        return super().prepare_delta_change_value(change, value)


class HistoryAdmin(SimpleHistoryAdmin):
    """simple-history's admin (every change, who made it, each past version), whose past
    versions are only looked at when reverting is off (``SIMPLE_HISTORY_REVERT_DISABLED``)
    or the user may not change the object.

    simple-history saves a past version posted to its page after checking only that the
    user may view the history: a reader could put a published tag back to a draft, or a
    change request back to another state, past the services that own those changes."""

    def history_view(self, request, object_id, extra_context=None):
        """Another business line's object: a 404, as its change page (the history of a
        deleted object stays readable to whoever may view its model's history)."""
        pk = unquote(object_id)
        exists = self.model._default_manager.filter(pk=pk).exists() if pk.isdigit() else False
        if exists and self.get_object(request, pk) is None:
            raise Http404(_("Nothing to show: it does not exist or you may not view it."))
        return super().history_view(request, object_id, extra_context)

    def get_historical_record_context_helper(self, request, historical_record):
        return ReadableHistory(self.model, historical_record)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method == "POST":
            obj = self.get_object(request, unquote(object_id))
            if obj is None or self.revert_disabled(request, obj):
                raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)


class ScopedRelatedFieldListFilter(admin.RelatedFieldListFilter):
    """A related-object filter offering only objects the user may view that are used by
    the objects the user may view; tree objects (with a ``parent``) sorted by their path."""

    def field_choices(self, field, request, model_admin):
        related = field.related_model
        used = model_admin.get_queryset(request).values_list(f"{self.field_path}__pk", flat=True)
        queryset = related._default_manager.filter(pk__in=used)
        if hasattr(queryset, "restrict"):
            queryset = queryset.restrict(request.user, "view")
        is_tree = any(f.name == "parent" for f in related._meta.concrete_fields)
        if is_tree:
            queryset = queryset.select_related("parent__parent__parent")  # labels show their path
            return sorted(((obj.pk, str(obj)) for obj in queryset), key=lambda choice: choice[1])
        ordering = self.field_admin_ordering(field, request, model_admin)
        if ordering:
            queryset = queryset.order_by(*ordering)
        return [(obj.pk, str(obj)) for obj in queryset]


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    fieldsets = (
        *BaseUserAdmin.fieldsets,
        (_("TagPortal"), {"fields": ("display_name", "is_service_account")}),
    )
    list_display = (
        "username",
        "display_name",
        "email",
        "roles",
        "is_service_account",
        "is_active",
        "is_staff",
    )
    list_filter = ("is_service_account", "is_staff", "is_active", "groups")
    search_fields = ("username", "display_name", "email", "first_name", "last_name")

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description=_("roles and grants"))
    def roles(self, obj):
        return ", ".join(sorted(g.name for g in obj.groups.all()))


@admin.register(WorkClaim)
class WorkClaimAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Background work under way and the work of dead workers (abandoned, queued again)."""

    list_display = ("key", "kind", "status", "owner", "started_at", "heartbeat_at", "finished_at")
    list_filter = ("status", "kind")
    search_fields = ("key", "subject", "owner", "task_id")
    date_hierarchy = "started_at"

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser
