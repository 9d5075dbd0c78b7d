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
    kind = models.CharField(_("channel kind"), max_length=20, choices=ChannelKind.choices)
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


# ---------------------------------------------------------------------------
# Contact vault, consent and suppression (see :mod:`.vault` and :mod:`.consent`)

BRAND_SCOPE = [Via("catalog.businessline", "brand__business_line"), Via("catalog.brand", "brand")]


class ContactKind(models.TextChoices):
    PHONE = "phone", _("phone")


class ConsentChannel(models.TextChoices):
    """What a person consents to: a channel as people know it (SMS, whichever platform
    sends it), or every channel at once."""

    ALL = "all", _("all channels")
    SMS = "sms", _("SMS")
    WECOM = "wecom", _("WeCom (企业微信)")
    WECHAT_MP = "wechat_mp", _("WeChat official account (公众号)")
    MINIPROGRAM = "miniprogram", _("WeChat mini-program (小程序)")
    YOUZAN = "youzan", _("Youzan (有赞)")
    WEIMOB = "weimob", _("Weimob (微盟)")
    WEBHOOK = "webhook", _("Signed webhook")


class ConsentState(models.TextChoices):
    OPTED_IN = "opted_in", _("opted in")
    OPTED_OUT = "opted_out", _("opted out")


class ConsentSource(models.TextChoices):
    IMPORT = "import", _("import")
    API = "api", _("API")
    CALLBACK = "callback", _("channel callback")


class SuppressionKey(models.TextChoices):
    PHONE = "phone", _("phone (keyed hash)")
    OPENID = "openid", _("openid")
    ONEID = "oneid", _("OneID")


class ContactEntry(models.Model):
    """A person's contact value (a phone number) encrypted with the vault's own keys; its
    keyed hash (the one profiles stores identities under) and mask beside it. The value
    is decrypted only by :func:`.vault.reveal`, each time recorded as a :class:`VaultAccess`."""

    brand = models.ForeignKey(
        "catalog.Brand", on_delete=models.PROTECT, related_name="contact_entries", verbose_name=_("brand")
    )
    oneid = models.PositiveBigIntegerField(_("OneID"))
    kind = models.CharField(
        _("contact kind"), max_length=20, choices=ContactKind.choices, default=ContactKind.PHONE
    )
    ciphertext = models.TextField(_("ciphertext"), editable=False)
    value_hash = models.CharField(_("value hash"), max_length=64, editable=False)
    masked = models.CharField(_("masked value"), max_length=64, editable=False)
    created = models.DateTimeField(_("created"), auto_now_add=True)
    last_updated = models.DateTimeField(_("last updated"), auto_now=True)

    objects = RestrictedQuerySet.as_manager()
    scope = BRAND_SCOPE

    class Meta:
        ordering = ["brand", "oneid", "kind", "pk"]
        verbose_name = _("contact entry")
        verbose_name_plural = _("contact entries")
        constraints = [
            models.UniqueConstraint(fields=["brand", "kind", "value_hash"], name="activation_contact_unique"),
            models.CheckConstraint(condition=Q(kind__in=ContactKind.values), name="activation_contact_kind"),
        ]
        indexes = [models.Index(fields=["brand", "oneid"], name="activation_contact_person")]

    def __str__(self):
        return f"OneID {self.oneid}: {self.masked}"


class VaultAccess(models.Model):
    """One decryption of a contact entry: why, by whom (none: the system), when."""

    entry = models.ForeignKey(
        ContactEntry, on_delete=models.CASCADE, related_name="accesses", verbose_name=_("contact entry")
    )
    purpose = models.CharField(_("purpose"), max_length=200)
    actor = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("actor"),
    )
    at = models.DateTimeField(_("at"), auto_now_add=True, db_index=True)

    objects = RestrictedQuerySet.as_manager()
    scope = [
        Via("catalog.businessline", "entry__brand__business_line"),
        Via("catalog.brand", "entry__brand"),
    ]

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name = _("vault access")
        verbose_name_plural = _("vault accesses")

    def __str__(self):
        return f"{self.entry} · {self.purpose} · {self.actor or _('system')}"


class Consent(models.Model):
    """A person's consent to, or refusal of, one channel (or all of them) of a brand."""

    brand = models.ForeignKey(
        "catalog.Brand", on_delete=models.PROTECT, related_name="consents", verbose_name=_("brand")
    )
    oneid = models.PositiveBigIntegerField(_("OneID"))
    channel = models.CharField(_("channel"), max_length=20, choices=ConsentChannel.choices)
    state = models.CharField(_("state"), max_length=20, choices=ConsentState.choices)
    source = models.CharField(
        _("source"), max_length=20, choices=ConsentSource.choices, default=ConsentSource.API
    )
    at = models.DateTimeField(_("at"), auto_now=True)

    objects = RestrictedQuerySet.as_manager()
    scope = BRAND_SCOPE

    class Meta:
        ordering = ["brand", "oneid", "channel"]
        verbose_name = _("consent")
        verbose_name_plural = _("consents")
        constraints = [
            models.UniqueConstraint(fields=["brand", "oneid", "channel"], name="activation_consent_unique"),
            models.CheckConstraint(
                condition=Q(channel__in=ConsentChannel.values), name="activation_consent_channel"
            ),
            models.CheckConstraint(
                condition=Q(state__in=ConsentState.values), name="activation_consent_state"
            ),
        ]

    def __str__(self):
        return f"OneID {self.oneid} · {self.get_channel_display()}: {self.get_state_display()}"


class Suppression(models.Model):
    """Nobody matching the key is contacted on any channel (until ``until``, if set)."""

    brand = models.ForeignKey(
        "catalog.Brand", on_delete=models.PROTECT, related_name="suppressions", verbose_name=_("brand")
    )
    key_type = models.CharField(_("key type"), max_length=10, choices=SuppressionKey.choices)
    key = models.CharField(
        _("key"),
        max_length=128,
        editable=False,
        help_text=_("The phone's keyed hash, the openid or the OneID; a phone number is never kept."),
    )
    masked = models.CharField(_("masked value"), max_length=64, editable=False)
    reason = models.CharField(_("reason"), max_length=200)
    until = models.DateTimeField(_("until"), null=True, blank=True, help_text=_("Empty: for good."))
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created = models.DateTimeField(_("created"), auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()
    scope = BRAND_SCOPE

    class Meta:
        ordering = ["-created", "-pk"]
        verbose_name = _("suppression")
        verbose_name_plural = _("suppressions")
        constraints = [
            models.UniqueConstraint(
                fields=["brand", "key_type", "key"], name="activation_suppression_unique"
            ),
            models.CheckConstraint(
                condition=Q(key_type__in=SuppressionKey.values), name="activation_suppression_key_type"
            ),
        ]

    def __str__(self):
        return f"{self.get_key_type_display()} {self.masked}"


# deliveries ---------------------------------------------------------------------
class SendStatus(models.TextChoices):
    QUEUED = "queued", _("queued")
    DONE = "done", _("done")


class DeliveryState(models.TextChoices):
    QUEUED = "queued", _("queued")
    SENDING = "sending", _("sending")
    SENT = "sent", _("sent")
    FAILED = "failed", _("failed")
    DEAD = "dead", _("dead")
    DELIVERED = "delivered", _("delivered")
    READ = "read", _("read")
    CLICKED = "clicked", _("clicked")


class Send(models.Model):
    """A batch: one message (template and content) through one channel account to many
    people, one :class:`Delivery` each."""

    brand = models.ForeignKey(
        "catalog.Brand", on_delete=models.PROTECT, related_name="sends", verbose_name=_("brand")
    )
    account = models.ForeignKey(
        ChannelAccount, on_delete=models.PROTECT, related_name="sends", verbose_name=_("channel account")
    )
    kind = models.CharField(_("channel kind"), max_length=20, choices=ChannelKind.choices)
    content = models.JSONField(
        _("content"), default=dict, blank=True, help_text=_("The message: template id, data, text.")
    )
    status = models.CharField(
        _("status"), max_length=10, choices=SendStatus.choices, default=SendStatus.QUEUED
    )
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created = models.DateTimeField(_("created"), auto_now_add=True)
    audience = models.ForeignKey(
        "audiences.Audience",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="activation_sends",
        verbose_name=_("audience"),
        help_text=_("The audience the send went to, if it was sent to one."),
    )
    context = models.JSONField(
        _("context"),
        null=True,
        blank=True,
        help_text=_(
            "Where the send came from, for the feedback events of its deliveries: a journey's id, "
            "version, node, variant and topic."
        ),
    )

    objects = RestrictedQuerySet.as_manager()
    scope = ACCOUNT_SCOPE

    class Meta:
        ordering = ["-created", "-pk"]
        verbose_name = _("send")
        verbose_name_plural = _("sends")
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=ChannelKind.values), name="activation_send_kind_valid"
            ),
        ]

    def __str__(self):
        return f"#{self.pk} {self.get_kind_display()} ({self.created:%Y-%m-%d %H:%M})"


class Delivery(models.Model):
    """One message of a send to one person: claimed when due, sent once (our unique
    idempotency key, and the channel's own key where it has one), retried with backoff
    on retryable errors, dead when the attempts run out."""

    send = models.ForeignKey(
        Send, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("send")
    )
    oneid = models.PositiveBigIntegerField(_("OneID"))
    recipient = models.CharField(
        _("recipient"),
        max_length=128,
        help_text=_(
            "The openid, external_userid or CRM id; for SMS the number's keyed hash, never the number."
        ),
    )
    idempotency_key = models.CharField(_("idempotency key"), max_length=100, unique=True)
    state = models.CharField(
        _("state"), max_length=10, choices=DeliveryState.choices, default=DeliveryState.QUEUED
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), db_index=True)
    lease_until = models.DateTimeField(_("lease until"), null=True, blank=True)
    last_error_code = models.CharField(_("last error code"), max_length=64, blank=True)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)
    provider_id = models.CharField(_("provider message id"), max_length=100, blank=True)
    variables = models.JSONField(
        _("variables"),
        default=dict,
        blank=True,
        help_text=_("The person's values of the tag variables of the content, read when the send was made."),
    )
    created = models.DateTimeField(_("created"), auto_now_add=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    call_started_at = models.DateTimeField(
        _("call started at"),
        null=True,
        blank=True,
        help_text=_("Set just before the platform is called, cleared once its answer is recorded."),
    )
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)
    clicked_at = models.DateTimeField(_("clicked at"), null=True, blank=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    objects = RestrictedQuerySet.as_manager()
    scope = [
        Via("catalog.businessline", "send__brand__business_line"),
        Via("catalog.brand", "send__brand"),
    ]

    class Meta:
        ordering = ["-pk"]
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="activation_delivery_due"),
            # the messages a person got lately (the journeys' caps)
            models.Index(fields=["oneid", "created"], name="activation_delivery_person"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=DeliveryState.values), name="activation_delivery_state_valid"
            ),
        ]

    def __str__(self):
        return f"{self.idempotency_key}: {self.get_state_display()}"


class DeadLetter(Delivery):
    """The dead deliveries, as their own admin list."""

    class Meta:
        proxy = True
        verbose_name = _("dead letter")
        verbose_name_plural = _("dead letters")


# audience syncs -----------------------------------------------------------------
class SyncStatus(models.TextChoices):
    ACTIVE = "active", _("active")
    PAUSED = "paused", _("paused")


class SyncOp(models.TextChoices):
    ADD = "add", _("add the tag")
    REMOVE = "remove", _("remove the tag")


class BatchState(models.TextChoices):
    QUEUED = "queued", _("queued")
    RUNNING = "running", _("running")
    DONE = "done", _("done")
    FAILED = "failed", _("failed")


#: The channel kinds whose customers carry a tag an audience can be synced to.
SYNC_KINDS = (ChannelKind.WECOM, ChannelKind.WECHAT_MP, ChannelKind.YOUZAN, ChannelKind.WEIMOB)

AUDIENCE_SCOPE = [
    Via("catalog.businessline", "audience__business_line"),
    Via("catalog.brand", "audience__brand"),
]


class AudienceSync(models.Model):
    """An audience kept in step with a customer tag of a channel account: everyone on
    the first run, then who joined (tag added) and who left (tag removed) at each new
    snapshot, as :class:`SyncBatch` rows (see :mod:`.syncs`)."""

    audience = models.ForeignKey(
        "audiences.Audience",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="channel_syncs",
        verbose_name=_("audience"),
        help_text=_("Empty: people tagged one by one (a journey's sync node), not an audience."),
    )
    account = models.ForeignKey(
        ChannelAccount,
        on_delete=models.PROTECT,
        related_name="audience_syncs",
        verbose_name=_("channel account"),
    )
    tag_name = models.CharField(_("platform tag name"), max_length=100)
    tag_group = models.CharField(
        _("platform tag group"), max_length=30, blank=True, help_text=_("WeCom: the tag group's name.")
    )
    platform_tag_id = models.CharField(
        _("platform tag id"),
        max_length=64,
        blank=True,
        help_text=_("Set once the tag exists on the platform."),
    )
    settings = models.JSONField(
        _("settings"),
        default=dict,
        blank=True,
        help_text=_("WeCom: the member's userid who tags the customers; Weimob: the tag id."),
    )
    status = models.CharField(
        _("status"), max_length=10, choices=SyncStatus.choices, default=SyncStatus.ACTIVE
    )
    queued_number = models.PositiveIntegerField(
        _("snapshot queued"),
        null=True,
        blank=True,
        help_text=_("The snapshot whose changes are queued last."),
    )
    synced_number = models.PositiveIntegerField(
        _("snapshot synced"), null=True, blank=True, help_text=_("The snapshot last fully applied.")
    )
    added = models.PositiveIntegerField(_("added (last run)"), default=0)
    removed = models.PositiveIntegerField(_("removed (last run)"), default=0)
    unreachable = models.PositiveIntegerField(_("unreachable (last run)"), default=0)
    rejected = models.PositiveIntegerField(_("refused by the platform (last run)"), default=0)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)
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

    objects = RestrictedQuerySet.as_manager()
    scope = AUDIENCE_SCOPE

    class Meta:
        ordering = ["-created", "-pk"]
        verbose_name = _("audience sync")
        verbose_name_plural = _("audience syncs")
        constraints = [
            models.UniqueConstraint(
                fields=["audience", "account", "tag_name"], name="activation_sync_unique_tag"
            ),
            models.UniqueConstraint(
                fields=["account", "tag_name"],
                condition=Q(audience__isnull=True),
                name="activation_sync_unique_direct_tag",
            ),
            models.CheckConstraint(condition=Q(status__in=SyncStatus.values), name="activation_sync_status"),
        ]

    def __str__(self):
        return f"{self.audience or '—'} → {self.account} · {self.tag_name}"


class SyncBatch(models.Model):
    """One chunk of recipients to tag (or untag) for one snapshot of a sync, sized to
    the platform's limit: claimed when due under a lease, retried with backoff after a
    retryable error, failed on a final one. Tagging twice changes nothing, so a batch
    taken again after its lease ran out is safe."""

    sync = models.ForeignKey(
        AudienceSync, on_delete=models.CASCADE, related_name="batches", verbose_name=_("sync")
    )
    number = models.PositiveIntegerField(_("snapshot"))
    op = models.CharField(_("operation"), max_length=10, choices=SyncOp.choices)
    recipients = models.JSONField(
        _("recipients"),
        default=list,
        help_text=_("The openids, external_userids, wids or phone hashes of the chunk; never a phone."),
    )
    state = models.CharField(_("state"), max_length=10, choices=BatchState.choices, default=BatchState.QUEUED)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"))
    lease_until = models.DateTimeField(_("lease until"), null=True, blank=True)
    done_count = models.PositiveIntegerField(_("applied"), default=0)
    rejected = models.JSONField(_("refused by the platform"), default=list, blank=True)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)
    created = models.DateTimeField(_("created"), auto_now_add=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    objects = RestrictedQuerySet.as_manager()
    scope = [
        Via("catalog.businessline", "sync__audience__business_line"),
        Via("catalog.brand", "sync__audience__brand"),
    ]

    class Meta:
        ordering = ["sync", "number", "pk"]
        verbose_name = _("sync batch")
        verbose_name_plural = _("sync batches")
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="activation_syncbatch_due")]
        constraints = [
            models.CheckConstraint(condition=Q(op__in=SyncOp.values), name="activation_syncbatch_op"),
            models.CheckConstraint(
                condition=Q(state__in=BatchState.values), name="activation_syncbatch_state"
            ),
        ]

    def __str__(self):
        return f"{self.sync_id} #{self.number} {self.op} ({len(self.recipients)}): {self.state}"
