from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.utils.translation import gettext_lazy as _

from .models import User
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
