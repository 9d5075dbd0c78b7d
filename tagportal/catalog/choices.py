"""Every choice list of the tag dictionary, in one place."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class TagKind(models.TextChoices):
    SYSTEM = "system", _("System attribute")
    BEHAVIOR = "behavior", _("Behaviour")
    ALGORITHM = "algorithm", _("Algorithm")
    COMPOSITE = "composite", _("Composite")
    MANUAL = "manual", _("Manual")


class ValueType(models.TextChoices):
    BOOLEAN = "boolean", _("Yes / no")
    ENUM = "enum", _("Enumeration")
    NUMBER = "number", _("Number")


class RefreshMode(models.TextChoices):
    BATCH = "batch", _("Batch (scheduled)")
    REALTIME = "realtime", _("Realtime")


class TagStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    IN_REVIEW = "in_review", _("In review")
    PUBLISHED = "published", _("Published")
    DEPRECATED = "deprecated", _("Deprecated")
    RETIRED = "retired", _("Retired")


class RegionLevel(models.TextChoices):
    COUNTRY = "country", _("Country")
    PROVINCE = "province", _("Province")
    CITY = "city", _("City")


#: Which level a region's parent must have.
REGION_PARENT_LEVEL = {
    RegionLevel.COUNTRY: None,
    RegionLevel.PROVINCE: RegionLevel.COUNTRY,
    RegionLevel.CITY: RegionLevel.PROVINCE,
}
