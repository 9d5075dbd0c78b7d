"""Customers (OneID), their identities, events and orders, OneID merges and imports.

Everything belongs to a brand and is scoped through it (a grant on the brand or its
business line). Identities are stored as a keyed hash (see :mod:`.pii`); phones are
never stored in clear. Events and orders are append-only facts written in bulk by
imports: they carry no version history (their import job and merge records say what
happened to them), unlike customers, merges and import jobs.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tagportal.catalog.models import Brand
from tagportal.core.models import TimeStampedModel
from tagportal.core.permissions import Via
from tagportal.core.querysets import RestrictedQuerySet
from tagportal.profiles.schema import NUMBER, PROFILE_ATTRIBUTES

from . import pii
from .choices import HASHED_ONLY_TYPES, PER_APP_TYPES, IdentityType, ImportKind, ImportStatus, LookupEndpoint

#: The largest OneID (what a 64-bit signed integer holds, as every database stores it).
MAX_ONEID = 2**63 - 1

BRAND_SCOPE = [Via("catalog.businessline", "brand__business_line"), Via("catalog.brand", "brand")]


class CustomerQuerySet(RestrictedQuerySet):
    def active(self):
        """People not merged into another one."""
        return self.filter(merged_into__isnull=True)


class Customer(TimeStampedModel):
    """One person (OneID) of a brand, across channels."""

    brand = models.ForeignKey(
        Brand, on_delete=models.PROTECT, related_name="customers", verbose_name=_("brand")
    )
    oneid = models.PositiveBigIntegerField(_("OneID"))
    attributes = models.JSONField(
        _("attributes"),
        default=dict,
        blank=True,
        help_text=_("Profile attributes (gender, age, city, member level, skin type, …)."),
    )
    merged_into = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="merged_people",
        verbose_name=_("merged into"),
        help_text=_("Set when this OneID was merged into another person (undo it by splitting the merge)."),
    )

    scope = BRAND_SCOPE
    objects = CustomerQuerySet.as_manager()

    class Meta:
        ordering = ["brand", "oneid"]
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        constraints = [
            models.UniqueConstraint(fields=["brand", "oneid"], name="customer_oneid_unique_per_brand"),
            models.CheckConstraint(condition=Q(oneid__gt=0), name="customer_oneid_positive"),
            models.CheckConstraint(condition=~Q(merged_into=F("pk")), name="customer_not_merged_into_itself"),
        ]

    def __str__(self):
        return f"OneID {self.oneid}"

    def clean(self):
        errors = attribute_errors(self.attributes)
        if errors:
            raise ValidationError({"attributes": errors})


def attribute_errors(attributes) -> list[str]:
    """Problems with a profile's attributes: unknown names, numbers that are not numbers."""
    if not isinstance(attributes, dict):
        return [_("Expected an object of attribute names and values.")]
    errors = []
    for name, value in attributes.items():
        kind = PROFILE_ATTRIBUTES.get(name)
        if kind is None:
            errors.append(_("Unknown attribute “%(name)s”.") % {"name": name})
        elif (
            kind == NUMBER
            and value is not None
            and (isinstance(value, bool) or not isinstance(value, int | float))
        ):
            errors.append(_("“%(name)s” must be a number.") % {"name": name})
    return errors


class Identity(models.Model):
    """An identifier of a person on one channel, stored as a keyed hash."""

    brand = models.ForeignKey(
        Brand, on_delete=models.PROTECT, related_name="identities", verbose_name=_("brand")
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="identities", verbose_name=_("customer")
    )
    type = models.CharField(_("type"), max_length=30, choices=IdentityType.choices)
    app = models.CharField(
        _("app"), max_length=64, blank=True, help_text=_("The WeChat app (appid) an openid belongs to.")
    )
    value_hash = models.CharField(_("value hash"), max_length=64, editable=False)
    value = models.CharField(
        _("value"),
        max_length=pii.MAX_VALUE_LENGTH,
        blank=True,
        help_text=_("In clear for identifiers that are not phone numbers; phone numbers are never stored."),
    )
    masked = models.CharField(_("masked value"), max_length=64)
    created = models.DateTimeField(_("created"), auto_now_add=True)

    scope = BRAND_SCOPE
    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["customer", "type", "app", "pk"]
        verbose_name = _("identity")
        verbose_name_plural = _("identities")
        permissions = [("lookup_identity", _("Can look up people by identity value"))]
        constraints = [
            models.UniqueConstraint(
                fields=["brand", "type", "app", "value_hash"], name="identity_unique_per_brand"
            ),
            models.CheckConstraint(
                condition=~Q(type__in=sorted(HASHED_ONLY_TYPES)) | Q(value=""),
                name="identity_phone_never_in_clear",
            ),
            models.CheckConstraint(
                condition=Q(type__in=sorted(PER_APP_TYPES), app__gt="")
                | (~Q(type__in=sorted(PER_APP_TYPES)) & Q(app="")),
                name="identity_app_only_for_per_app_types",
            ),
            models.CheckConstraint(condition=Q(type__in=IdentityType.values), name="identity_type_valid"),
        ]
        indexes = [models.Index(fields=["customer", "type"], name="identity_customer_type")]

    def __str__(self):
        return f"{self.get_type_display()} {self.masked}"

    def display_value(self, user) -> str:
        """The value as ``user`` may see it: in clear with ``core.view_pii`` (never for phones)."""
        if self.value and pii.can_view_pii(user):
            return self.value
        return self.masked


class Activity(models.Model):
    """What a person did at a moment, on a channel or in a store: the fields that
    :class:`Event` and :class:`Order` share (each keeps its own table)."""

    brand = models.ForeignKey(
        Brand, on_delete=models.PROTECT, related_name="%(class)ss", verbose_name=_("brand")
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="%(class)ss", verbose_name=_("customer")
    )
    identity = models.ForeignKey(
        Identity,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="%(class)ss",
        verbose_name=_("identity"),
        help_text=_("The identity it arrived with."),
    )
    client_id = models.CharField(
        _("client id"),
        max_length=100,
        help_text=_("The sender's id (an order's number); sending it again adds nothing."),
    )
    time = models.DateTimeField(_("time"))
    channel = models.CharField(_("channel"), max_length=30, blank=True)
    store = models.CharField(_("store"), max_length=100, blank=True)
    properties = models.JSONField(_("properties"), default=dict, blank=True)
    created = models.DateTimeField(_("created"), auto_now_add=True)

    scope = BRAND_SCOPE
    objects = RestrictedQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ["brand", "customer", "time"]
        constraints = [
            models.UniqueConstraint(
                fields=["brand", "client_id"], name="%(class)s_client_id_unique_per_brand"
            ),
            models.CheckConstraint(condition=~Q(client_id=""), name="%(class)s_client_id_set"),
        ]
        indexes = [
            models.Index(fields=["brand", "customer", "time"], name="%(class)s_brand_customer_time"),
            models.Index(fields=["brand", "time"], name="%(class)s_brand_time"),
        ]


class Event(Activity):
    """A behaviour event of a person: a store visit, a consultation, a page view, …"""

    type = models.CharField(_("type"), max_length=40)
    value = models.FloatField(_("value"), null=True, blank=True)

    class Meta(Activity.Meta):
        verbose_name = _("event")
        verbose_name_plural = _("events")

    def __str__(self):
        return f"{self.type} {self.time:%Y-%m-%d %H:%M}"


class Order(Activity):
    """A purchase of a person, on a channel or in a store."""

    amount = models.DecimalField(_("amount"), max_digits=14, decimal_places=2)
    quantity = models.PositiveIntegerField(_("quantity"), default=1)
    category = models.CharField(_("category"), max_length=100, blank=True, help_text=_("Product line."))
    sku = models.CharField(_("SKU"), max_length=100, blank=True)
    discount = models.DecimalField(_("discount"), max_digits=14, decimal_places=2, default=0)
    items = models.JSONField(_("items"), default=list, blank=True)

    class Meta(Activity.Meta):
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        constraints = [
            *Activity.Meta.constraints,
            models.CheckConstraint(condition=Q(amount__gte=0), name="order_amount_not_negative"),
            models.CheckConstraint(condition=Q(discount__gte=0), name="order_discount_not_negative"),
        ]

    def __str__(self):
        return f"{self.client_id} ¥{self.amount}"


class MergeRecord(TimeStampedModel):
    """Two people found to be one: what moved, and why. Splitting undoes it."""

    brand = models.ForeignKey(
        Brand, on_delete=models.PROTECT, related_name="merge_records", verbose_name=_("brand")
    )
    kept = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="merges_kept", verbose_name=_("kept person")
    )
    merged = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="merges_merged", verbose_name=_("merged person")
    )
    kept_oneid = models.PositiveBigIntegerField(_("kept OneID"))
    merged_oneid = models.PositiveBigIntegerField(_("merged OneID"))
    rule = models.CharField(_("rule"), max_length=50, help_text=_("The OneID rule whose links joined them."))
    reason = models.TextField(_("reason"), blank=True)
    identities_moved = models.JSONField(_("identities moved"), default=list, blank=True)
    events_moved = models.PositiveIntegerField(_("events moved"), default=0)
    orders_moved = models.PositiveIntegerField(_("orders moved"), default=0)
    kept_attributes_before = models.JSONField(_("kept person's attributes before"), default=dict, blank=True)
    import_job = models.ForeignKey(
        "ImportJob",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="merges",
        verbose_name=_("import job"),
    )
    undone_at = models.DateTimeField(_("split at"), null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("split by"),
    )
    undo_reason = models.TextField(_("split reason"), blank=True)

    scope = BRAND_SCOPE

    class Meta:
        ordering = ["-created", "-pk"]
        verbose_name = _("OneID merge")
        verbose_name_plural = _("OneID merges")
        constraints = [
            models.CheckConstraint(condition=~Q(kept=F("merged")), name="merge_two_different_people"),
            models.CheckConstraint(
                condition=~Q(kept_oneid=F("merged_oneid")), name="merge_two_different_oneids"
            ),
        ]

    def __str__(self):
        return _("OneID %(merged)s → %(kept)s (%(rule)s)") % {
            "merged": self.merged_oneid,
            "kept": self.kept_oneid,
            "rule": self.rule,
        }


class IdentityLink(models.Model):
    """Two identities named on one record (an import row, an event): what OneID
    resolution needs to decide the people of a brand again from its records.

    A record is stored as pairs from one of its identities (an unguarded one when it
    names any) to each other one, a record naming one identity as that identity with
    itself. Resolving these pairs as records gives the same people as the records did.
    """

    brand = models.ForeignKey(
        Brand, on_delete=models.PROTECT, related_name="identity_links", verbose_name=_("brand")
    )
    a = models.ForeignKey(Identity, on_delete=models.CASCADE, related_name="+", verbose_name=_("identity"))
    b = models.ForeignKey(Identity, on_delete=models.CASCADE, related_name="+", verbose_name=_("named with"))

    scope = BRAND_SCOPE
    objects = RestrictedQuerySet.as_manager()

    class Meta:
        verbose_name = _("identity link")
        verbose_name_plural = _("identity links")
        constraints = [models.UniqueConstraint(fields=["a", "b"], name="identity_link_unique")]
        indexes = [models.Index(fields=["b"], name="identity_link_b")]

    def __str__(self):
        return f"{self.a_id} — {self.b_id}"


class ImportJob(TimeStampedModel):
    """One import of customers, identities, events or orders: its progress and its report."""

    brand = models.ForeignKey(
        Brand, on_delete=models.PROTECT, related_name="import_jobs", verbose_name=_("brand")
    )
    kind = models.CharField(_("kind"), max_length=20, choices=ImportKind.choices)
    file_name = models.CharField(_("file name"), max_length=255, blank=True)
    upload = models.FileField(
        _("uploaded file"),
        upload_to="imports/",
        blank=True,
        help_text=_("Kept only until the import has run (it may hold personal data)."),
    )
    status = models.CharField(
        _("status"), max_length=20, choices=ImportStatus.choices, default=ImportStatus.PENDING
    )
    rows_total = models.PositiveIntegerField(_("rows"), default=0)
    rows_ok = models.PositiveIntegerField(_("rows imported"), default=0)
    rows_skipped = models.PositiveIntegerField(
        _("rows already imported"), default=0, help_text=_("Rows whose client id was imported before.")
    )
    rows_bad = models.PositiveIntegerField(_("bad rows"), default=0)
    errors = models.JSONField(
        _("errors"), default=list, blank=True, help_text=_("[{row, column, message}]; row 1 is the header.")
    )
    created_counts = models.JSONField(_("created"), default=dict, blank=True)
    message = models.TextField(_("message"), blank=True)
    progress = models.PositiveSmallIntegerField(
        _("progress (%)"), default=0, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    stage = models.CharField(_("stage"), max_length=50, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    scope = BRAND_SCOPE

    class Meta:
        ordering = ["-created", "-pk"]
        verbose_name = _("import job")
        verbose_name_plural = _("import jobs")
        constraints = [
            models.CheckConstraint(condition=Q(progress__lte=100), name="import_progress_at_most_100"),
            models.CheckConstraint(condition=Q(kind__in=ImportKind.values), name="import_kind_valid"),
            models.CheckConstraint(condition=Q(status__in=ImportStatus.values), name="import_status_valid"),
            models.CheckConstraint(
                condition=Q(rows_ok__lte=F("rows_total")) & Q(rows_bad__lte=F("rows_total")),
                name="import_row_counts_consistent",
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.file_name or self.pk}"

    @property
    def is_finished(self) -> bool:
        return self.status in (ImportStatus.SUCCEEDED, ImportStatus.FAILED)


class IdentityLookup(models.Model):
    """One call that looked people up by raw identity values: who, where, how many values
    and how many were found. The values themselves are never kept, not even hashed.
    Calls refused for want of the permission are recorded too."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("user"),
    )
    endpoint = models.CharField(_("endpoint"), max_length=30, choices=LookupEndpoint.choices)
    brand = models.ForeignKey(
        Brand, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("brand")
    )
    candidates = models.PositiveIntegerField(_("values looked up"))
    found = models.PositiveIntegerField(_("people found"), default=0)
    refused = models.BooleanField(
        _("refused"), default=False, help_text=_("The caller may not look people up by identity value.")
    )
    at = models.DateTimeField(_("at"), default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name = _("identity lookup")
        verbose_name_plural = _("identity lookups")
        constraints = [
            models.CheckConstraint(
                condition=Q(found__lte=F("candidates")), name="identity_lookup_found_le_asked"
            ),
            models.CheckConstraint(
                condition=Q(endpoint__in=LookupEndpoint.values), name="identity_lookup_endpoint_valid"
            ),
        ]
        indexes = [models.Index(fields=["user", "at"], name="identity_lookup_user_at")]

    def __str__(self):
        return f"{self.user} {self.get_endpoint_display()} {self.candidates} @ {self.at:%Y-%m-%d %H:%M}"
