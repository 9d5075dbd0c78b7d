"""Choices of the audience models: kinds, statuses and what started a refresh."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class AudienceKind(models.TextChoices):
    RULE = "rule", _("Rule")
    LOOKALIKE = "lookalike", _("Lookalike")


class AudienceStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    ACTIVE = "active", _("Active")
    ARCHIVED = "archived", _("Archived")


class RefreshTrigger(models.TextChoices):
    CREATED = "created", _("Created")
    MANUAL = "manual", _("By hand")
    SCHEDULE = "schedule", _("Schedule")
    RECOMPUTE = "recompute", _("A tag it uses was recomputed")
    REPIN = "repin", _("Re-pinned")
