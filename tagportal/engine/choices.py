"""Choices of the engine models."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class RunStatus(models.TextChoices):
    SUCCESS = "success", _("Success")
    FAILED = "failed", _("Failed")
    SUPERSEDED = "superseded", _("Superseded")
    ABANDONED = "abandoned", _("Abandoned")


#: Statuses that close a tag's part in a run for good: a redelivered task of that run
#: records nothing more for the tag (a failed run may be retried).
FINAL_STATUSES = (RunStatus.SUCCESS, RunStatus.SUPERSEDED, RunStatus.ABANDONED)
