"""Admin pages of the journeys: read-only lists (journeys change through their services
and pages); the brands' contact policies are edited here."""

from __future__ import annotations

from django.contrib import admin

from tagportal.core.admin import ReadOnlyAdminMixin, RestrictedAdminMixin, ScopedRelatedFieldListFilter

from .models import ContactPolicy, Conversion, Journey, JourneyInstance


@admin.register(Journey)
class JourneyAdmin(ReadOnlyAdminMixin, RestrictedAdminMixin, admin.ModelAdmin):
    list_display = ("name", "brand", "status", "live_version", "owner", "updated")
    list_filter = ("status", ("brand", ScopedRelatedFieldListFilter))
    list_select_related = ("brand", "live_version", "owner")
    search_fields = ("name",)


@admin.register(JourneyInstance)
class JourneyInstanceAdmin(ReadOnlyAdminMixin, RestrictedAdminMixin, admin.ModelAdmin):
    list_display = ("journey", "oneid", "entry_seq", "node", "state", "group", "next_run_at", "entered_at")
    list_filter = ("state", ("brand", ScopedRelatedFieldListFilter))
    list_select_related = ("journey",)
    search_fields = ("=oneid",)


@admin.register(Conversion)
class ConversionAdmin(ReadOnlyAdminMixin, RestrictedAdminMixin, admin.ModelAdmin):
    list_display = ("journey", "instance", "kind", "amount", "attributed_node", "attributed_variant", "at")
    list_filter = ("kind",)
    list_select_related = ("journey",)


@admin.register(ContactPolicy)
class ContactPolicyAdmin(RestrictedAdminMixin, admin.ModelAdmin):
    list_display = ("brand", "quiet_start", "quiet_end", "global_day", "global_week")
    list_select_related = ("brand",)
