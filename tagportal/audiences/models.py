"""Audiences: an expression over a brand's tags, pinned to the tag versions it was
built from, refreshed into snapshots whose membership is kept as Roaring bitmaps.

- :class:`Audience` carries the expression (JSON and its canonical text), the pinned
  versions, and its computation state in PostHog's style (``pending_version`` bumped
  when a refresh is requested; a refresh that finds it moved on gives way).
- :class:`AudienceSnapshot` is one refresh: the members (a serialized bitmap), how
  many joined and left against the previous snapshot, and the tag versions used.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from tagportal.core.models import ComputationStateMixin, TimeStampedModel
from tagportal.core.permissions import Via
from tagportal.core.querysets import RestrictedQuerySet

from .choices import AudienceKind, AudienceStatus, RefreshTrigger

AUDIENCE_SCOPE = [
    Via("catalog.businessline", "business_line"),
    Via("catalog.brand", "brand"),
]


class Audience(ComputationStateMixin, TimeStampedModel):
    """A saved audience of one brand; its refreshes' state comes from
    :class:`~tagportal.core.models.ComputationStateMixin`."""

    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    business_line = models.ForeignKey(
        "catalog.BusinessLine",
        on_delete=models.PROTECT,
        related_name="audiences",
        verbose_name=_("business line"),
    )
    brand = models.ForeignKey(
        "catalog.Brand", on_delete=models.PROTECT, related_name="audiences", verbose_name=_("brand")
    )
    kind = models.CharField(_("kind"), max_length=10, choices=AudienceKind.choices, default=AudienceKind.RULE)
    status = models.CharField(
        _("status"), max_length=10, choices=AudienceStatus.choices, default=AudienceStatus.ACTIVE
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audiences",
        verbose_name=_("owner"),
    )
    expression = models.JSONField(
        _("expression"), default=dict, blank=True, help_text=_("AND / OR / NOT groups of tag conditions.")
    )
    expression_text = models.TextField(_("expression (text)"), blank=True)
    tags = models.ManyToManyField(
        "catalog.Tag", blank=True, related_name="audiences", verbose_name=_("tags used")
    )
    pinned_versions = models.JSONField(
        _("pinned tag versions"),
        default=dict,
        blank=True,
        help_text=_("Tag code → the published version the audience is computed from."),
    )
    is_live = models.BooleanField(
        _("live in a journey"),
        default=False,
        help_text=_("A live audience is re-pinned only after a data steward approves."),
    )
    repin_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("re-pin requested by"),
    )
    repin_requested_at = models.DateTimeField(_("re-pin requested at"), null=True, blank=True)
    refresh_on_recompute = models.BooleanField(_("refresh when a tag is recomputed"), default=True)
    refresh_every_hours = models.PositiveIntegerField(
        _("refresh every (hours)"), null=True, blank=True, help_text=_("Empty: no scheduled refresh.")
    )
    # lookalike audiences
    seed = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="lookalikes",
        verbose_name=_("seed audience"),
    )
    model_params = models.JSONField(_("model parameters"), default=dict, blank=True)
    model_metrics = models.JSONField(_("model validation"), default=dict, blank=True)
    size = models.PositiveIntegerField(_("size"), null=True, blank=True)
    population = models.PositiveIntegerField(_("people of the brand"), null=True, blank=True)

    objects = RestrictedQuerySet.as_manager()
    scope = AUDIENCE_SCOPE

    class Meta:
        ordering = ["brand__code", "name", "pk"]
        verbose_name = _("audience")
        verbose_name_plural = _("audiences")
        permissions = [
            ("export_audience", _("Can export audience members (OneIDs)")),
            ("export_identities", _("Can export audience members' identities")),
            ("approve_repin", _("Can approve re-pinning a live audience")),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=AudienceKind.values), name="audience_kind_valid"),
            models.CheckConstraint(
                condition=Q(status__in=AudienceStatus.values), name="audience_status_valid"
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def share(self) -> float | None:
        if self.size is None or not self.population:
            return None
        return self.size / self.population


class AudienceSnapshot(models.Model):
    """The members of an audience at one refresh, and the change against the one before."""

    audience = models.ForeignKey(
        Audience, on_delete=models.CASCADE, related_name="snapshots", verbose_name=_("audience")
    )
    number = models.PositiveIntegerField(_("number"))
    taken_at = models.DateTimeField(_("taken at"))
    trigger = models.CharField(_("trigger"), max_length=10, choices=RefreshTrigger.choices)
    expression = models.JSONField(_("expression"), default=dict)
    tag_versions = models.JSONField(_("tag versions"), default=dict)
    bitmap = models.BinaryField(_("members"), editable=False)
    size = models.PositiveIntegerField(_("size"))
    population = models.PositiveIntegerField(_("people of the brand"))
    joined = models.PositiveIntegerField(_("joined"), default=0)
    left = models.PositiveIntegerField(_("left"), default=0)
    duration_ms = models.FloatField(_("took (ms)"), null=True, blank=True)

    objects = RestrictedQuerySet.as_manager()
    scope = [
        Via("catalog.businessline", "audience__business_line"),
        Via("catalog.brand", "audience__brand"),
    ]

    class Meta:
        ordering = ["audience_id", "-number"]
        verbose_name = _("audience snapshot")
        verbose_name_plural = _("audience snapshots")
        constraints = [
            models.UniqueConstraint(fields=["audience", "number"], name="audience_snapshot_number_unique"),
        ]

    def __str__(self):
        return f"{self.audience} #{self.number} ({self.size})"
