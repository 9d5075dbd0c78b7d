"""Choices of the usage app."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class UsageKind(models.TextChoices):
    API_READ = "api_read", _("Profile API read")
    TAG_READ = "tag_read", _("Tag API read")
    AUDIENCE = "audience", _("Audience")
    JOURNEY = "journey", _("Journey")
    ACTIVATION = "activation", _("Activation (channel sync or send)")
    EXPORT = "export", _("Export")
    PAGE_VIEW = "page_view", _("Page view")
