"""Every choice list of the predictive app, in one place."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class RfmSegment(models.TextChoices):
    """The eight classic RFM segments: R, F and M each high or low (see :mod:`.rfm`)."""

    IMPORTANT_VALUE = "important_value", _("Important value customer")  # R high, F high, M high
    IMPORTANT_DEVELOPMENT = "important_development", _("Important development customer")  # R↑ F↓ M↑
    IMPORTANT_RETENTION = "important_retention", _("Important retention customer")  # R↓ F↑ M↑
    IMPORTANT_WINBACK = "important_winback", _("Important win-back customer")  # R↓ F↓ M↑
    GENERAL_VALUE = "general_value", _("General value customer")  # R↑ F↑ M↓
    GENERAL_DEVELOPMENT = "general_development", _("General development customer")  # R↑ F↓ M↓
    GENERAL_RETENTION = "general_retention", _("General retention customer")  # R↓ F↑ M↓
    GENERAL_WINBACK = "general_winback", _("General win-back customer")  # R↓ F↓ M↓


class AiplStage(models.TextChoices):
    """The AIPL stages, lowest first (see :mod:`.aipl`)."""

    AWARENESS = "awareness", _("Awareness")
    INTEREST = "interest", _("Interest")
    PURCHASE = "purchase", _("Purchase")
    LOYALTY = "loyalty", _("Loyalty")


#: The stage of nobody in the AIPL stage flows: a person with nothing in the windows.
NO_STAGE = "none"
NO_STAGE_LABEL = _("No stage")


class ModelKind(models.TextChoices):
    """What a registered model fits (see :mod:`.kinds`)."""

    RFM = "rfm", _("RFM")
    CLV = "clv", _("Lifetime value and purchase intent (BG/NBD + Gamma-Gamma)")
    CHURN = "churn", _("Churn warning")
    AIPL = "aipl", _("AIPL stage")
    SCORE_FILE = "score_file", _("Own model: score file")
    ENDPOINT = "endpoint", _("Own model: scoring endpoint")


#: Short names of the kinds, where a long one does not fit (a node of the lineage graph).
KIND_SHORT_LABELS = {
    ModelKind.RFM: _("RFM"),
    ModelKind.CLV: _("Lifetime value and purchase intent"),
    ModelKind.CHURN: _("Churn warning"),
    ModelKind.AIPL: _("AIPL stage"),
    ModelKind.SCORE_FILE: _("Score file"),
    ModelKind.ENDPOINT: _("Scoring endpoint"),
}


class ModelRunStatus(models.TextChoices):
    """Where a model run got to: held runs fitted but were not published (below the
    metric floor, or dropped too far against the last published run)."""

    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    HELD = "held", _("Held for review")
    PUBLISHED = "published", _("Published")
