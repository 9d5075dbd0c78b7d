"""Admin pages of the channel accounts: settings checked per kind, one password input
per secret name (never shown back; blank keeps the stored one), a "test connection"
action; the webhook receipts read-only."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.functional import lazy
from django.utils.translation import gettext, gettext_lazy

from tagportal.core.admin import (
    HistoryAdmin,
    ReadOnlyAdminMixin,
    RestrictedAdminMixin,
    ScopedRelatedFieldListFilter,
)
from tagportal.core.secrets import SecretFormField

from . import deliveries, services
from .choices import ChannelKind
from .kinds import ALL_SECRETS, SECRET_LABELS, SPECS
from .models import (
    AudienceSync,
    ChannelAccount,
    DeadLetter,
    Delivery,
    DeliveryState,
    Send,
    Subscription,
    SyncBatch,
    WebhookReceipt,
)


def _help(name: str) -> str:
    kinds = "、".join(str(ChannelKind(kind).label) for kind, spec in SPECS.items() if name in spec.secrets)
    return gettext("Used by: %(kinds)s. Stored encrypted and never shown again; leave blank to keep it.") % {
        "kinds": kinds
    }


class _AccountForm(forms.ModelForm):
    class Meta:
        model = ChannelAccount
        fields = ("brand", "kind", "name", "settings", "is_active")

    def _post_clean(self):
        given = {name: self.cleaned_data.get(f"secret_{name}", "") for name in ALL_SECRETS}
        self.instance.merge_secrets({k: v for k, v in given.items() if v})
        super()._post_clean()  # the model's clean() checks the secrets against the kind


_secret_help = lazy(_help, str)

#: The account form with one password input per secret name (declared fields).
ChannelAccountForm = type(
    "ChannelAccountForm",
    (_AccountForm,),
    {
        f"secret_{name}": SecretFormField(label=SECRET_LABELS.get(name, name), help_text=_secret_help(name))
        for name in ALL_SECRETS
    },
)


@admin.register(ChannelAccount)
class ChannelAccountAdmin(RestrictedAdminMixin, HistoryAdmin):
    form = ChannelAccountForm
    list_display = ("name", "brand", "kind", "is_active", "secrets_set_display", "last_updated")
    list_filter = ("kind", "is_active", ("brand", ScopedRelatedFieldListFilter))
    list_select_related = ("brand",)
    search_fields = ("name", "brand__code", "brand__name")
    actions = ["test_connection"]

    def get_fields(self, request, obj=None):
        return ["brand", "kind", "name", "settings", "is_active", *(f"secret_{n}" for n in ALL_SECRETS)]

    def save_model(self, request, obj, form, change):
        if not change and obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    @admin.display(description=gettext_lazy("secrets set"))
    def secrets_set_display(self, obj):
        return ", ".join(obj.secrets_set) or "—"

    @admin.action(description=gettext_lazy("Test connection"), permissions=["change"])
    def test_connection(self, request, queryset):
        for account in queryset.restrict(request.user, "change"):
            check = services.test_connection(account)
            if check.ok:
                self.message_user(
                    request, gettext_lazy("%(account)s: connected.") % {"account": account}, messages.SUCCESS
                )
            else:
                self.message_user(
                    request,
                    gettext_lazy("%(account)s: refused (%(code)s) %(message)s")
                    % {"account": account, "code": check.code, "message": check.message},
                    messages.ERROR,
                )


@admin.register(WebhookReceipt)
class WebhookReceiptAdmin(ReadOnlyAdminMixin, RestrictedAdminMixin, admin.ModelAdmin):
    list_display = ("delivery", "account", "status", "occurred_at", "received_at", "error")
    list_filter = ("status", ("account__brand", ScopedRelatedFieldListFilter))
    list_select_related = ("account", "account__brand")
    search_fields = ("delivery",)


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdminMixin, RestrictedAdminMixin, admin.ModelAdmin):
    list_display = ("openid", "template_id", "account", "remaining", "last_updated")
    list_filter = (("account__brand", ScopedRelatedFieldListFilter),)
    list_select_related = ("account", "account__brand")
    search_fields = ("openid", "template_id")


# deliveries ---------------------------------------------------------------------
@admin.register(Send)
class SendAdmin(ReadOnlyAdminMixin, RestrictedAdminMixin, admin.ModelAdmin):
    list_display = ("__str__", "brand", "account", "kind", "status", "created_by", "created")
    list_filter = ("kind", "status", ("brand", ScopedRelatedFieldListFilter))
    list_select_related = ("brand", "account", "created_by")


class _DeliveryAdmin(ReadOnlyAdminMixin, RestrictedAdminMixin, admin.ModelAdmin):
    list_display = (
        "idempotency_key",
        "send",
        "kind",
        "state",
        "attempts",
        "next_attempt_at",
        "last_error_code",
        "last_error",
        "provider_id",
    )
    # last_error_code: the in_doubt ones a person checks before retrying
    list_filter = ("state", "last_error_code", "send__kind", ("send__brand", ScopedRelatedFieldListFilter))
    list_select_related = ("send", "send__brand")
    search_fields = ("idempotency_key", "oneid", "provider_id")
    actions = ["retry"]

    @admin.display(description=gettext_lazy("channel kind"), ordering="send__kind")
    def kind(self, obj):
        return obj.send.get_kind_display()

    @admin.action(description=gettext_lazy("Retry (queue again, attempts reset)"), permissions=["change"])
    def retry(self, request, queryset):
        done = 0
        for delivery in queryset.restrict(request.user, "change"):
            try:
                deliveries.retry(delivery)
            except deliveries.NotRetryable:
                continue
            done += 1
        self.message_user(request, gettext("%(n)s deliveries queued again.") % {"n": done}, messages.SUCCESS)

    def has_change_permission(self, request, obj=None):
        # read-only rows, but the retry action needs the change permission
        return obj is None and super(ReadOnlyAdminMixin, self).has_change_permission(request, obj)


@admin.register(Delivery)
class DeliveryAdmin(_DeliveryAdmin):
    pass


@admin.register(DeadLetter)
class DeadLetterAdmin(_DeliveryAdmin):
    list_filter = ("send__kind", ("send__brand", ScopedRelatedFieldListFilter))

    def get_queryset(self, request):
        return super().get_queryset(request).filter(state=DeliveryState.DEAD)


# audience syncs (created and paused through their page and the API) -------------
@admin.register(AudienceSync)
class AudienceSyncAdmin(ReadOnlyAdminMixin, RestrictedAdminMixin, admin.ModelAdmin):
    list_display = (
        "audience",
        "account",
        "tag_name",
        "status",
        "synced_number",
        "added",
        "removed",
        "unreachable",
        "rejected",
        "last_error",
    )
    list_filter = ("status", "account__kind", ("audience__brand", ScopedRelatedFieldListFilter))
    list_select_related = ("audience", "account")
    search_fields = ("tag_name", "audience__name")


@admin.register(SyncBatch)
class SyncBatchAdmin(ReadOnlyAdminMixin, RestrictedAdminMixin, admin.ModelAdmin):
    list_display = (
        "sync",
        "number",
        "op",
        "state",
        "attempts",
        "next_attempt_at",
        "done_count",
        "last_error",
    )
    list_filter = ("state", "op", ("sync__audience__brand", ScopedRelatedFieldListFilter))
    list_select_related = ("sync", "sync__audience", "sync__account")


from . import admin_consent  # noqa: E402, F401  (the vault, consent and suppression pages)
