"""Admin pages of the contact vault (read-only, the mask only: never the number nor its
ciphertext), its access log, consent and the suppression list. Loaded by :mod:`.admin`."""

from __future__ import annotations

from django.contrib import admin

from tagportal.core.admin import ReadOnlyAdminMixin, RestrictedAdminMixin, ScopedRelatedFieldListFilter

from .models import Consent, ContactEntry, Suppression, VaultAccess


@admin.register(ContactEntry)
class ContactEntryAdmin(ReadOnlyAdminMixin, RestrictedAdminMixin, admin.ModelAdmin):
    list_display = ("oneid", "brand", "kind", "masked", "last_updated")
    list_filter = ("kind", ("brand", ScopedRelatedFieldListFilter))
    list_select_related = ("brand",)
    fields = ("brand", "oneid", "kind", "masked", "created", "last_updated")
    readonly_fields = fields
    search_fields = ("=oneid",)


@admin.register(VaultAccess)
class VaultAccessAdmin(ReadOnlyAdminMixin, RestrictedAdminMixin, admin.ModelAdmin):
    list_display = ("at", "entry", "purpose", "actor")
    list_select_related = ("entry", "entry__brand", "actor")
    fields = ("entry", "purpose", "actor", "at")
    readonly_fields = fields
    list_filter = (("entry__brand", ScopedRelatedFieldListFilter),)


@admin.register(Consent)
class ConsentAdmin(RestrictedAdminMixin, admin.ModelAdmin):
    list_display = ("oneid", "brand", "channel", "state", "source", "at")
    list_filter = ("channel", "state", "source", ("brand", ScopedRelatedFieldListFilter))
    list_select_related = ("brand",)
    search_fields = ("=oneid",)


@admin.register(Suppression)
class SuppressionAdmin(ReadOnlyAdminMixin, RestrictedAdminMixin, admin.ModelAdmin):
    list_display = ("masked", "key_type", "brand", "reason", "until", "created_by", "created")
    list_filter = ("key_type", ("brand", ScopedRelatedFieldListFilter))
    list_select_related = ("brand", "created_by")
    fields = ("brand", "key_type", "masked", "reason", "until", "created_by", "created")
    readonly_fields = fields

    def has_delete_permission(self, request, obj=None):
        return RestrictedAdminMixin.has_delete_permission(self, request, obj)
