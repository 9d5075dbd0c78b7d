"""A brand's channel accounts and the delivery receipts its systems post back.

- :class:`ChannelAccount`: a kind (WeCom, its group robot, 公众号, 小程序, SMS, 有赞,
  微盟, a signed webhook), non-secret settings checked per kind (:mod:`.kinds`) and the
  secrets, one encrypted JSON text (:class:`~tagportal.core.secrets.EncryptedTextField`):
  never shown back by the admin or the API, and left out of the history.
- :class:`WebhookReceipt`: one delivery result a signed-webhook account's system posted
  (``POST /api/activation/webhooks/<id>/receipts/``), or a 公众号's
  ``TEMPLATESENDJOBFINISH`` event (keyed by its MsgID), once per (delivery, status).
- :class:`Subscription`: the one-time grants a person gave a 小程序 to send them a
  subscribe-message template (consent: nothing is sent without one left).
"""

from __future__ import annotations

import hashlib
import json

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from tagportal.core.permissions import Via
from tagportal.core.querysets import RestrictedQuerySet
from tagportal.core.secrets import EncryptedTextField

from .choices import ChannelKind, ReceiptStatus

ACCOUNT_SCOPE = [Via("catalog.businessline", "brand__business_line"), Via("catalog.brand", "brand")]


class ChannelAccount(models.Model):
    """A brand's account on one channel platform."""

    brand = models.ForeignKey(
        "catalog.Brand", on_delete=models.PROTECT, related_name="channel_accounts", verbose_name=_("brand")
    )
    kind = models.CharField(_("kind"), max_length=20, choices=ChannelKind.choices)
    name = models.CharField(_("name"), max_length=100)
    settings = models.JSONField(
        _("settings"),
        default=dict,
        blank=True,
        help_text=_("The kind's non-secret settings as JSON (e.g. corpid and agentid, appid, a URL)."),
    )
    secrets = EncryptedTextField(_("secrets"), help_text=_("A JSON object of the kind's secrets, encrypted."))
    is_active = models.BooleanField(_("active"), default=True)
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created = models.DateTimeField(_("created"), auto_now_add=True)
    last_updated = models.DateTimeField(_("last updated"), auto_now=True)
    # the secrets never reach the history, not even encrypted
    history = HistoricalRecords(excluded_fields=["secrets"], cascade_delete_history=False)

    objects = RestrictedQuerySet.as_manager()
    scope = ACCOUNT_SCOPE

    class Meta:
        ordering = ["brand__code", "kind", "name"]
        verbose_name = _("channel account")
        verbose_name_plural = _("channel accounts")
        constraints = [
            models.UniqueConstraint(
                fields=["brand", "name"], name="activation_account_name_unique_per_brand"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=ChannelKind.values), name="activation_account_kind_valid"
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.get_kind_display()})"

    # secrets -----------------------------------------------------------------
    def secret_values(self) -> dict[str, str]:
        """The secrets in clear (``{}`` when unset or unreadable)."""
        try:
            values = json.loads(self.secrets) if self.secrets else {}
        except ValueError:
            return {}
        return values if isinstance(values, dict) else {}

    def secret(self, name: str) -> str:
        return self.secret_values().get(name, "")

    def merge_secrets(self, given: dict[str, str]) -> None:
        """Set the secrets given; a blank value keeps the stored one."""
        values = self.secret_values()
        values.update({k: v for k, v in given.items() if v})
        self.secrets = json.dumps(values, sort_keys=True) if values else ""

    @property
    def secrets_set(self) -> list[str]:
        """The names of the secrets that are set, never their values."""
        return sorted(name for name, value in self.secret_values().items() if value)

    def secret_fingerprint(self) -> str:
        """A short hash of the secrets: a cached token belongs to the secrets it was fetched with."""
        return hashlib.sha256(self.secrets.encode()).hexdigest()[:16]

    # checks ------------------------------------------------------------------
    def clean(self):
        from .kinds import SettingsRefused, check_secrets, check_settings

        if self.kind in ChannelKind.values:
            try:
                check_settings(self.kind, self.settings)
            except SettingsRefused as exc:
                raise ValidationError({"settings": str(exc)}) from exc
            try:
                check_secrets(self.kind, self.secret_values())
            except SettingsRefused as exc:
                raise ValidationError({"secrets": str(exc)}) from exc

    def validate_constraints(self, exclude=None):
        if self.brand_id and self.name and (exclude is None or "name" not in exclude):
            if (
                ChannelAccount.objects.filter(brand_id=self.brand_id, name=self.name)
                .exclude(pk=self.pk)
                .exists()
            ):
                raise ValidationError(
                    {
                        "name": _("The brand already has a channel account named “%(name)s”.")
                        % {"name": self.name}
                    }
                )
        super().validate_constraints(exclude=exclude)


class WebhookReceipt(models.Model):
    """A delivery result posted by the system behind a signed-webhook account."""

    account = models.ForeignKey(
        ChannelAccount, on_delete=models.CASCADE, related_name="receipts", verbose_name=_("channel account")
    )
    delivery = models.CharField(
        _("delivery"),
        max_length=100,
        help_text=_("The delivery's idempotency key, or the platform's message id (公众号 MsgID)."),
    )
    status = models.CharField(_("status"), max_length=20, choices=ReceiptStatus.choices)
    occurred_at = models.DateTimeField(_("occurred at"))
    error = models.CharField(_("error"), max_length=500, blank=True)
    received_at = models.DateTimeField(_("received at"), auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()
    scope = [
        Via("catalog.businessline", "account__brand__business_line"),
        Via("catalog.brand", "account__brand"),
    ]

    class Meta:
        ordering = ["-received_at", "-pk"]
        verbose_name = _("webhook receipt")
        verbose_name_plural = _("webhook receipts")
        constraints = [
            models.UniqueConstraint(
                fields=["account", "delivery", "status"], name="activation_receipt_once_per_status"
            ),
        ]

    def __str__(self):
        return f"{self.delivery}: {self.get_status_display()}"


class Subscription(models.Model):
    """The one-time grants (一次性订阅) a person gave a mini-program for one subscribe
    message template: each send uses one; the platform answers 43101 without any."""

    account = models.ForeignKey(
        ChannelAccount,
        on_delete=models.CASCADE,
        related_name="subscriptions",
        verbose_name=_("channel account"),
    )
    openid = models.CharField(_("openid"), max_length=128)
    template_id = models.CharField(_("template id"), max_length=128)
    remaining = models.PositiveIntegerField(_("grants left"), default=0)
    created = models.DateTimeField(_("created"), auto_now_add=True)
    last_updated = models.DateTimeField(_("last updated"), auto_now=True)

    objects = RestrictedQuerySet.as_manager()
    scope = [
        Via("catalog.businessline", "account__brand__business_line"),
        Via("catalog.brand", "account__brand"),
    ]

    class Meta:
        ordering = ["-last_updated", "-pk"]
        verbose_name = _("subscription")
        verbose_name_plural = _("subscriptions")
        constraints = [
            models.UniqueConstraint(
                fields=["account", "openid", "template_id"], name="activation_subscription_unique"
            ),
        ]

    def __str__(self):
        return f"{self.openid} · {self.template_id}: {self.remaining}"
