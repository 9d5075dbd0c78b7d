"""Usage counters: every use of a tag, per tag, Beijing day, kind of use and client.

:class:`UsageBuffer` takes uses on the request path; :class:`TagUsage` holds the
daily counters they are folded into (see :mod:`.services`).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from tagportal.core.permissions import tag_scope
from tagportal.core.querysets import RestrictedQuerySet

from .choices import UsageKind


class TagUsage(models.Model):
    """How often one client used a tag on one Beijing day, by kind of use."""

    tag = models.ForeignKey(
        "catalog.Tag", on_delete=models.CASCADE, related_name="usage_counts", verbose_name=_("tag")
    )
    day = models.DateField(_("day"), help_text=_("Beijing date."))
    kind = models.CharField(_("kind"), max_length=20, choices=UsageKind.choices)
    client = models.PositiveBigIntegerField(
        _("client"), help_text=_("The id of the user or service account that used the tag.")
    )
    count = models.PositiveBigIntegerField(_("uses"), default=0)

    objects = RestrictedQuerySet.as_manager()
    scope = tag_scope("tag")

    class Meta:
        ordering = ["-day", "tag_id", "kind", "client"]
        verbose_name = _("tag usage")
        verbose_name_plural = _("tag usage")
        constraints = [
            models.UniqueConstraint(fields=["tag", "day", "kind", "client"], name="tag_usage_unique"),
            models.CheckConstraint(condition=Q(kind__in=UsageKind.values), name="tag_usage_kind_valid"),
        ]
        indexes = [models.Index(fields=["day", "kind"], name="tag_usage_day_kind")]

    def __str__(self):
        return f"{self.tag_id} {self.day} {self.kind} {self.client}: {self.count}"


class UsageBuffer(models.Model):
    """Uses recorded on the request path, not yet folded into :class:`TagUsage`.

    ``tag_id`` is a plain number: appending must not check a foreign key, and a use of
    a tag deleted before aggregation is dropped then."""

    tag_id = models.PositiveBigIntegerField(_("tag"))
    kind = models.CharField(_("kind"), max_length=20, choices=UsageKind.choices)
    client = models.PositiveBigIntegerField(_("client"))
    count = models.PositiveBigIntegerField(_("uses"), default=1)
    at = models.DateTimeField(_("time"))

    class Meta:
        verbose_name = _("buffered tag use")
        verbose_name_plural = _("buffered tag uses")

    def __str__(self):
        return f"{self.tag_id} {self.kind} {self.client}: {self.count} at {self.at:%Y-%m-%d %H:%M}"
