"""The model registry: a brand's algorithm models, the tags their outputs fill, and
their runs.

- :class:`PredictiveModel`: a kind (RFM, lifetime value, churn, AIPL), its parameters
  (validated by the kind's configuration, :mod:`.kinds`), a cron schedule and the
  publishing guard (a metric floor and the largest drop against the last published
  run). Edited data: it keeps a simple-history.
- :class:`EndpointSecret`: the encrypted HMAC secret of a scoring endpoint model.
- :class:`ModelOutput`: which tag each output of a model fills (kind algorithm,
  definition ``{"type": "manual"}``: the engine never computes it, the model writes it).
- :class:`ModelRun`: one fit and score, with its window, features, fitted parameters,
  metrics, chart data and the fitted artefact with its SHA-256. Computed data: the
  runs are their own history.
"""

from __future__ import annotations

from croniter import croniter
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from tagportal.core.models import TimeStampedModel
from tagportal.core.permissions import Via
from tagportal.core.querysets import RestrictedQuerySet
from tagportal.core.secrets import EncryptedTextField

from .choices import ModelKind, ModelRunStatus

MODEL_SCOPE = [Via("catalog.businessline", "brand__business_line"), Via("catalog.brand", "brand")]


def validate_schedule(value: str) -> None:
    """A five-field cron expression (Beijing time), or blank for runs started by hand."""
    if value and (len(value.split()) != 5 or not croniter.is_valid(value)):
        raise ValidationError(
            _("“%(value)s” is not a five-field cron expression (e.g. “0 3 * * *”)."), params={"value": value}
        )


class PredictiveModel(TimeStampedModel):
    """An algorithm model of a brand whose scores fill ordinary tags."""

    brand = models.ForeignKey(
        "catalog.Brand", on_delete=models.PROTECT, related_name="predictive_models", verbose_name=_("brand")
    )
    kind = models.CharField(_("kind"), max_length=10, choices=ModelKind.choices)
    name = models.CharField(_("name"), max_length=100)
    parameters = models.JSONField(
        _("parameters"),
        default=dict,
        blank=True,
        help_text=_("The kind's configuration as JSON; keys left out take their defaults."),
    )
    schedule = models.CharField(
        _("schedule"),
        max_length=100,
        blank=True,
        validators=[validate_schedule],
        help_text=_("A cron expression in Beijing time; blank: run by hand only."),
    )
    metric_floor = models.FloatField(
        _("metric floor"),
        null=True,
        blank=True,
        help_text=_("A run whose key metric is below this is held for a steward instead of published."),
    )
    max_drop = models.FloatField(
        _("largest drop"),
        null=True,
        blank=True,
        help_text=_("A run whose key metric fell by more than this against the last published run is held."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )

    objects = RestrictedQuerySet.as_manager()
    scope = MODEL_SCOPE

    class Meta:
        ordering = ["brand__code", "name"]
        verbose_name = _("algorithm model")
        verbose_name_plural = _("algorithm models")
        permissions = [("run_predictivemodel", _("Can run algorithm models"))]
        constraints = [
            models.UniqueConstraint(fields=["brand", "name"], name="predictive_model_name_unique_per_brand"),
            models.CheckConstraint(
                condition=Q(kind__in=ModelKind.values), name="predictive_model_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(max_drop__isnull=True) | Q(max_drop__gte=0), name="predictive_model_drop_positive"
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.get_kind_display()})"

    def clean(self):
        from .endpoints import EndpointRefused, check_url
        from .kinds import ParametersRefused, kind_of

        if self.kind in ModelKind.values:
            kind = kind_of(self.kind)
            try:
                config = kind.config(self.parameters)
            except ParametersRefused as exc:
                raise ValidationError({"parameters": str(exc)}) from exc
            if not kind.runnable and self.schedule:
                raise ValidationError(
                    {"schedule": _("A score file model is filled by uploads: it has no schedule.")}
                )
            if self.kind == ModelKind.ENDPOINT:
                try:
                    check_url(config.url)
                except EndpointRefused as exc:
                    raise ValidationError({"parameters": str(exc)}) from exc

    def validate_constraints(self, exclude=None):
        if self.brand_id and self.name and (exclude is None or "name" not in exclude):
            if (
                PredictiveModel.objects.filter(brand_id=self.brand_id, name=self.name)
                .exclude(pk=self.pk)
                .exists()
            ):
                raise ValidationError(
                    {"name": _("The brand already has a model named “%(name)s”.") % {"name": self.name}}
                )
        super().validate_constraints(exclude=exclude)


class EndpointSecret(models.Model):
    """The HMAC secret a scoring endpoint model signs its requests with, encrypted at rest
    (:mod:`tagportal.core.secrets`). Kept apart from the model, without history, and never
    shown: the API and the admin only say whether one is set."""

    model = models.OneToOneField(
        PredictiveModel, on_delete=models.CASCADE, related_name="endpoint_secret", verbose_name=_("model")
    )
    secret = EncryptedTextField(_("secret"))
    set_at = models.DateTimeField(_("set at"))
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("set by"),
    )

    class Meta:
        verbose_name = _("scoring endpoint secret")
        verbose_name_plural = _("scoring endpoint secrets")

    def __str__(self):
        return f"{self.model.name}: ********"


class ModelOutput(models.Model):
    """The tag one output of a model fills."""

    model = models.ForeignKey(
        PredictiveModel, on_delete=models.CASCADE, related_name="outputs", verbose_name=_("model")
    )
    key = models.CharField(_("output"), max_length=40)
    tag = models.OneToOneField(
        "catalog.Tag", on_delete=models.PROTECT, related_name="model_output", verbose_name=_("tag")
    )

    objects = RestrictedQuerySet.as_manager()
    scope = [Via("catalog.businessline", "model__brand__business_line"), Via("catalog.brand", "model__brand")]

    class Meta:
        ordering = ["model_id", "key"]
        verbose_name = _("model output")
        verbose_name_plural = _("model outputs")
        constraints = [
            models.UniqueConstraint(fields=["model", "key"], name="model_output_key_unique_per_model"),
        ]

    def __str__(self):
        return f"{self.model.name}: {self.key} → {self.tag.code}"


class ModelRun(models.Model):
    """One fit and score of a model."""

    model = models.ForeignKey(
        PredictiveModel, on_delete=models.CASCADE, related_name="runs", verbose_name=_("model")
    )
    status = models.CharField(_("status"), max_length=10, choices=ModelRunStatus.choices)
    as_of = models.DateTimeField(_("as of"))
    started_at = models.DateTimeField(_("started"))
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    duration_s = models.FloatField(_("duration (s)"), null=True, blank=True)
    peak_memory_mb = models.FloatField(_("peak memory (MB)"), null=True, blank=True)
    window = models.JSONField(_("window"), default=dict, blank=True)
    features = models.JSONField(_("features"), default=list, blank=True)
    parameters = models.JSONField(_("fitted parameters"), default=dict, blank=True)
    metrics = models.JSONField(_("metrics"), default=dict, blank=True)
    key_metric = models.FloatField(
        _("key metric"), null=True, blank=True, help_text=_("What the floor and the drop are measured on.")
    )
    charts = models.JSONField(_("charts"), default=dict, blank=True)
    artefact = models.BinaryField(_("artefact"), null=True, blank=True, editable=False)
    artefact_sha256 = models.CharField(_("artefact SHA-256"), max_length=64, blank=True)
    people_scored = models.PositiveIntegerField(_("people scored"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)

    objects = RestrictedQuerySet.as_manager()
    scope = [Via("catalog.businessline", "model__brand__business_line"), Via("catalog.brand", "model__brand")]

    class Meta:
        ordering = ["-started_at", "-pk"]
        verbose_name = _("model run")
        verbose_name_plural = _("model runs")
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=ModelRunStatus.values), name="model_run_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["model", "-started_at"], name="model_run_model_started")]

    def __str__(self):
        return f"{self.model.name} {self.get_status_display()} {self.started_at:%Y-%m-%d %H:%M}"
