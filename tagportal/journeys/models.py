"""Journeys: a brand's marketing automation flows and the people moving through them.

- :class:`Journey`: a named flow of a brand, its status and the version that runs.
- :class:`JourneyVersion`: a graph (nodes and edges, see :mod:`.graph`), proposed,
  reviewed and approved; an edit of a live journey makes a new version, people already
  inside stay on theirs.
- :class:`JourneyInstance`: one person's pass through one version (one per re-entry),
  the node they are at and when it is next looked at (``next_run_at``).
- :class:`InstanceStep`: what happened to an instance at a node, at most once per
  (instance, node): the runner's idempotency key.
- :class:`ContactPolicy`: a brand's quiet hours and frequency caps.
- :class:`Conversion`: a goal reached by an instance, with the touch it is attributed to.
- :class:`RunnerCursor`: how far the runner has read an append-only table (events, orders).
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings as django_settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from tagportal.core.permissions import Via
from tagportal.core.querysets import RestrictedQuerySet

from .choices import ConversionKind, HoldoutGroup, InstanceState, JourneyStatus, VersionState

BRAND_SCOPE = [Via("catalog.businessline", "brand__business_line"), Via("catalog.brand", "brand")]
JOURNEY_SCOPE = [
    Via("catalog.businessline", "journey__brand__business_line"),
    Via("catalog.brand", "journey__brand"),
]


class Journey(models.Model):
    """A brand's marketing automation flow."""

    brand = models.ForeignKey(
        "catalog.Brand", on_delete=models.PROTECT, related_name="journeys", verbose_name=_("brand")
    )
    name = models.CharField(_("name"), max_length=100)
    description = models.TextField(_("description"), blank=True)
    owner = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="journeys",
        verbose_name=_("owner"),
    )
    status = models.CharField(
        _("status"), max_length=10, choices=JourneyStatus.choices, default=JourneyStatus.DRAFT
    )
    live_version = models.ForeignKey(
        "JourneyVersion",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("live version"),
        help_text=_("The version new people enter."),
    )
    entry_state = models.JSONField(
        _("entry state"),
        default=dict,
        blank=True,
        help_text=_("Where the entry trigger has read up to (last snapshot, last scheduled run)."),
    )
    created = models.DateTimeField(_("created"), auto_now_add=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    objects = RestrictedQuerySet.as_manager()
    scope = BRAND_SCOPE

    class Meta:
        ordering = ["brand__code", "name", "pk"]
        verbose_name = _("journey")
        verbose_name_plural = _("journeys")
        permissions = [("approve_journey", _("Can approve journeys"))]
        constraints = [
            models.UniqueConstraint(fields=["brand", "name"], name="journeys_journey_name_unique_per_brand"),
            models.CheckConstraint(
                condition=Q(status__in=JourneyStatus.values), name="journeys_journey_status_valid"
            ),
        ]

    def __str__(self):
        return self.name


class JourneyVersion(models.Model):
    """One version of a journey's graph."""

    journey = models.ForeignKey(
        Journey, on_delete=models.CASCADE, related_name="versions", verbose_name=_("journey")
    )
    number = models.PositiveIntegerField(_("version"))
    graph = models.JSONField(_("graph"), default=dict, blank=True)
    state = models.CharField(
        _("state"), max_length=12, choices=VersionState.choices, default=VersionState.DRAFT
    )
    proposed_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("proposed by"),
    )
    proposed_at = models.DateTimeField(_("proposed at"), null=True, blank=True)
    approved_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("approved by"),
    )
    approved_at = models.DateTimeField(_("approved at"), null=True, blank=True)
    review_note = models.TextField(_("review note"), blank=True)
    created = models.DateTimeField(_("created"), auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()
    scope = JOURNEY_SCOPE

    class Meta:
        ordering = ["journey", "-number"]
        verbose_name = _("journey version")
        verbose_name_plural = _("journey versions")
        constraints = [
            models.UniqueConstraint(fields=["journey", "number"], name="journeys_version_number_unique"),
            models.CheckConstraint(
                condition=Q(state__in=VersionState.values), name="journeys_version_state_valid"
            ),
        ]

    def __str__(self):
        return f"{self.journey} v{self.number}"


class JourneyInstance(models.Model):
    """One person's pass through one journey version."""

    journey = models.ForeignKey(
        Journey, on_delete=models.CASCADE, related_name="instances", verbose_name=_("journey")
    )
    version = models.ForeignKey(
        JourneyVersion, on_delete=models.CASCADE, related_name="instances", verbose_name=_("version")
    )
    brand = models.ForeignKey(
        "catalog.Brand", on_delete=models.PROTECT, related_name="+", verbose_name=_("brand")
    )
    oneid = models.PositiveBigIntegerField(_("OneID"))
    entry_seq = models.PositiveSmallIntegerField(_("entry"), default=1, help_text=_("1 for the first entry."))
    node = models.CharField(_("node"), max_length=40)
    node_at = models.DateTimeField(_("at the node since"), null=True, blank=True)
    state = models.CharField(
        _("state"), max_length=10, choices=InstanceState.choices, default=InstanceState.ACTIVE
    )
    next_run_at = models.DateTimeField(_("next run at"), null=True, blank=True)
    group = models.CharField(_("group"), max_length=20, blank=True, choices=HoldoutGroup.choices)
    path = models.JSONField(_("path"), default=list, blank=True, help_text=_("The nodes passed, in order."))
    entered_at = models.DateTimeField(_("entered at"))
    left_at = models.DateTimeField(_("left at"), null=True, blank=True)
    lease_until = models.DateTimeField(_("lease until"), null=True, blank=True)
    last_send_at = models.DateTimeField(_("last send at"), null=True, blank=True)
    last_send_node = models.CharField(_("last send node"), max_length=40, blank=True)
    last_variant = models.CharField(_("last variant"), max_length=20, blank=True)

    objects = RestrictedQuerySet.as_manager()
    scope = BRAND_SCOPE

    class Meta:
        ordering = ["-pk"]
        verbose_name = _("journey instance")
        verbose_name_plural = _("journey instances")
        constraints = [
            models.UniqueConstraint(
                fields=["version", "oneid", "entry_seq"], name="journeys_instance_once_per_entry"
            ),
            models.CheckConstraint(
                condition=Q(state__in=InstanceState.values), name="journeys_instance_state_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["state", "next_run_at"], name="journeys_instance_due"),
            models.Index(fields=["journey", "oneid"], name="journeys_instance_person"),
            models.Index(fields=["version", "node", "state"], name="journeys_instance_node"),
            models.Index(fields=["brand", "oneid"], name="journeys_instance_brand_person"),
        ]

    def __str__(self):
        return f"{self.journey_id}/{self.oneid}#{self.entry_seq} @ {self.node}"


class InstanceStep(models.Model):
    """What happened to an instance at a node: recorded once per (instance, node)."""

    instance = models.ForeignKey(
        JourneyInstance, on_delete=models.CASCADE, related_name="steps", verbose_name=_("instance")
    )
    node = models.CharField(_("node"), max_length=40)
    outcome = models.CharField(_("outcome"), max_length=30)
    detail = models.JSONField(_("detail"), default=dict, blank=True)
    at = models.DateTimeField(_("at"))

    class Meta:
        ordering = ["instance", "at", "pk"]
        verbose_name = _("instance step")
        verbose_name_plural = _("instance steps")
        constraints = [
            models.UniqueConstraint(fields=["instance", "node"], name="journeys_step_once_per_node"),
        ]

    def __str__(self):
        return f"{self.instance_id} {self.node}: {self.outcome}"


def _default_quiet_start():
    return dt.time(21, 0)


def _default_quiet_end():
    return dt.time(9, 0)


class ContactPolicy(models.Model):
    """A brand's quiet hours (Beijing time) and frequency caps per person."""

    brand = models.OneToOneField(
        "catalog.Brand", on_delete=models.CASCADE, related_name="contact_policy", verbose_name=_("brand")
    )
    quiet_start = models.TimeField(
        _("quiet hours start"), default=_default_quiet_start, help_text=_("Beijing time.")
    )
    quiet_end = models.TimeField(
        _("quiet hours end"), default=_default_quiet_end, help_text=_("Beijing time.")
    )
    caps = models.JSONField(
        _("caps per channel"),
        default=dict,
        blank=True,
        help_text=_('Per channel kind: {"sms_aliyun": {"day": 1, "week": 3}}.'),
    )
    global_day = models.PositiveIntegerField(_("messages a day, all channels"), null=True, blank=True)
    global_week = models.PositiveIntegerField(_("messages a week, all channels"), null=True, blank=True)

    objects = RestrictedQuerySet.as_manager()
    scope = BRAND_SCOPE

    class Meta:
        verbose_name = _("contact policy")
        verbose_name_plural = _("contact policies")

    def __str__(self):
        return str(self.brand)


class Conversion(models.Model):
    """A journey goal reached by an instance."""

    instance = models.ForeignKey(
        JourneyInstance, on_delete=models.CASCADE, related_name="conversions", verbose_name=_("instance")
    )
    journey = models.ForeignKey(
        Journey, on_delete=models.CASCADE, related_name="conversions", verbose_name=_("journey")
    )
    at = models.DateTimeField(_("at"))
    kind = models.CharField(_("kind"), max_length=10, choices=ConversionKind.choices)
    source_id = models.BigIntegerField(_("source"), help_text=_("The event's or order's id."))
    amount = models.DecimalField(_("amount"), max_digits=14, decimal_places=2, default=0)
    attributed_node = models.CharField(_("attributed node"), max_length=40, blank=True)
    attributed_variant = models.CharField(_("attributed variant"), max_length=20, blank=True)
    attributed_delivery_id = models.BigIntegerField(_("attributed delivery"), null=True, blank=True)

    objects = RestrictedQuerySet.as_manager()
    scope = JOURNEY_SCOPE

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name = _("conversion")
        verbose_name_plural = _("conversions")
        constraints = [
            models.UniqueConstraint(fields=["instance"], name="journeys_conversion_once_per_instance"),
        ]
        indexes = [models.Index(fields=["journey", "at"], name="journeys_conversion_journey")]

    def __str__(self):
        return f"{self.journey_id}/{self.instance_id} {self.kind} {self.at:%Y-%m-%d}"


class RunnerCursor(models.Model):
    """The last id the runner read from an append-only table (``events``, ``orders``)."""

    name = models.CharField(_("name"), max_length=40, unique=True)
    position = models.BigIntegerField(_("position"), default=0)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("runner cursor")
        verbose_name_plural = _("runner cursors")

    def __str__(self):
        return f"{self.name}: {self.position}"


class TagEntryLook(models.Model):
    """Who held the value of a tag-triggered live version at the journey's last look
    (a run-optimised, serialised roaring bitmap of OneIDs: a few bytes per person at
    most), so that only the people who newly hold it enter."""

    version = models.OneToOneField(
        JourneyVersion, on_delete=models.CASCADE, related_name="tag_look", verbose_name=_("version")
    )
    holders = models.BinaryField(_("holders at the last look"))
    looked_at = models.DateTimeField(_("looked at"))

    class Meta:
        verbose_name = _("tag entry look")
        verbose_name_plural = _("tag entry looks")

    def __str__(self):
        return f"{self.version_id}: {self.looked_at:%Y-%m-%d %H:%M}"
