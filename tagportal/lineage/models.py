"""Lineage: where tag data comes from (data sources and their fields) and what each tag
reads (fields and other tags). Together they form the graph used for impact analysis."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tagportal.core.models import TimeStampedModel
from tagportal.core.permissions import Via
from tagportal.core.querysets import RestrictedQuerySet
from tagportal.profiles import schema

from .choices import DataType, InputOrigin, SourceKind

WRITE_ACTIONS = frozenset({"add", "change", "delete"})

field_name_validator = RegexValidator(
    r"^[A-Za-z_][A-Za-z0-9_.]*$",
    _("Use letters, digits, underscores and dots, starting with a letter or an underscore."),
)


# ---------------------------------------------------------------------------
# Engine fields a data field may feed

#: The moment every event and order carries (what windows and models read), beside the
#: fields of :data:`tagportal.profiles.schema.SOURCES`.
TIME_FIELD = "time"


def engine_field_error(maps_to: str) -> str | None:
    """Why ``maps_to`` does not name an engine field (``None`` if it does).

    Valid: ``profile.<attribute>``, ``events.<field>``, ``events.properties.<key>``,
    ``orders.<field>``, ``orders.properties.<key>`` (see :mod:`tagportal.profiles.schema`),
    and ``events.time`` / ``orders.time``.
    """
    namespace, _dot, rest = (maps_to or "").partition(".")
    if namespace == "profile":
        if rest in schema.PROFILE_ATTRIBUTES:
            return None
        return _("Unknown profile attribute “%(name)s”; known: %(known)s.") % {
            "name": rest,
            "known": ", ".join(sorted(schema.PROFILE_ATTRIBUTES)),
        }
    if namespace in schema.SOURCES:
        if rest == TIME_FIELD or (rest and schema.field_type(namespace, rest) is not None):
            return None
        return _("Unknown %(source)s field “%(name)s”; known: %(known)s, or properties.<key>.") % {
            "source": namespace,
            "name": rest,
            "known": ", ".join(sorted([*schema.SOURCES[namespace], TIME_FIELD])),
        }
    return _(
        "Write the engine field as profile.<attribute>, events.<field>, events.properties.<key>, "
        "orders.<field> or orders.properties.<key>."
    )


# ---------------------------------------------------------------------------
# Scopes: a source without a business line is shared by all of them


def _granted_or_shared(subquery):
    return Q(business_line__in=subquery) | Q(business_line__isnull=True)


def _source_granted_or_shared(subquery):
    return Q(source__business_line__in=subquery) | Q(source__business_line__isnull=True)


class DataSourceQuerySet(RestrictedQuerySet):
    def active(self):
        return self.filter(is_active=True)

    def stale(self, now: dt.datetime | None = None):
        """Active sources past their refresh SLA (or never loaded) at ``now``."""
        now = now or timezone.now()
        rows = self.filter(is_active=True).values_list("pk", "last_loaded_at", "refresh_sla_hours")
        return self.filter(pk__in=[pk for pk, at, sla in rows if is_past_sla(at, sla, now)])

    def fresh(self, now: dt.datetime | None = None):
        return self.exclude(pk__in=self.stale(now).values("pk"))


def is_past_sla(last_loaded_at: dt.datetime | None, sla_hours: int | None, now: dt.datetime) -> bool:
    if last_loaded_at is None:
        return True
    return last_loaded_at + dt.timedelta(hours=sla_hours or 0) < now


class DataSource(TimeStampedModel):
    """Where customer data comes from: a CRM, a WeCom corp, a mini-program, a store POS …"""

    code = models.SlugField(_("code"), max_length=50, unique=True)
    name = models.CharField(_("Chinese name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=150, blank=True)
    kind = models.CharField(_("source type"), max_length=20, choices=SourceKind.choices)
    description = models.TextField(_("description"), blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_data_sources",
        verbose_name=_("owner"),
    )
    business_line = models.ForeignKey(
        "catalog.BusinessLine",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="data_sources",
        verbose_name=_("business line"),
        help_text=_("Empty: shared by all business lines."),
    )
    refresh_sla_hours = models.PositiveIntegerField(
        _("refresh SLA (hours)"),
        default=24,
        validators=[MinValueValidator(1)],
        help_text=_("The source is stale when its last successful load is older than this."),
    )
    last_loaded_at = models.DateTimeField(_("last successful load"), null=True, blank=True)
    is_active = models.BooleanField(_("active"), default=True)

    objects = DataSourceQuerySet.as_manager()

    # Anyone holding the model permission sees shared sources; changing a shared source
    # is for users reaching every business line.
    scope = [
        Via("catalog.businessline", _granted_or_shared, frozenset({"view"})),
        Via("catalog.businessline", "business_line", WRITE_ACTIONS),
    ]

    class Meta:
        ordering = ["code"]
        verbose_name = _("data source")
        verbose_name_plural = _("data sources")
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=SourceKind.values), name="datasource_kind_valid"),
            models.CheckConstraint(condition=Q(refresh_sla_hours__gte=1), name="datasource_sla_positive"),
        ]

    def __str__(self):
        return self.name

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._loaded_business_line_id = instance.__dict__.get("business_line_id")
        return instance

    def is_stale(self, now: dt.datetime | None = None) -> bool:
        return self.is_active and is_past_sla(
            self.last_loaded_at, self.refresh_sla_hours, now or timezone.now()
        )


class DataField(TimeStampedModel):
    """A field a source delivers (e.g. the CRM's ``member_level``) and the engine field it feeds."""

    source = models.ForeignKey(
        DataSource, on_delete=models.CASCADE, related_name="fields", verbose_name=_("data source")
    )
    name = models.CharField(
        _("name"),
        max_length=100,
        validators=[field_name_validator],
        help_text=_("The source's own name for the field, e.g. member_level."),
    )
    description = models.TextField(_("description"), blank=True)
    data_type = models.CharField(
        _("data type"), max_length=10, choices=DataType.choices, default=DataType.STRING
    )
    maps_to = models.CharField(
        _("feeds engine field"),
        max_length=120,
        blank=True,
        db_index=True,
        help_text=_(
            "profile.<attribute>, events.<field>, events.properties.<key>, orders.<field> or "
            "orders.properties.<key>; empty if the field feeds no engine field."
        ),
    )

    objects = RestrictedQuerySet.as_manager()

    scope = [
        Via("catalog.businessline", _source_granted_or_shared, frozenset({"view"})),
        Via("catalog.businessline", "source__business_line", WRITE_ACTIONS),
    ]

    class Meta:
        ordering = ["source__code", "name"]
        verbose_name = _("data field")
        verbose_name_plural = _("data fields")
        constraints = [
            models.UniqueConstraint(fields=["source", "name"], name="datafield_name_unique_per_source"),
            models.CheckConstraint(
                condition=Q(data_type__in=DataType.values), name="datafield_data_type_valid"
            ),
        ]

    def __str__(self):
        return f"{self.source.code}.{self.name}" if self.source_id else self.name

    def clean(self):
        if self.maps_to:
            message = engine_field_error(self.maps_to)
            if message:
                raise ValidationError({"maps_to": message})

    def validate_constraints(self, exclude=None):
        # A duplicate name reads better on the name field than as a generic constraint error.
        if self.source_id and self.name and (exclude is None or "name" not in exclude):
            if (
                DataField.objects.filter(source_id=self.source_id, name=self.name)
                .exclude(pk=self.pk)
                .exists()
            ):
                raise ValidationError(
                    {
                        "name": _("The source already has a field named “%(name)s”.") % {"name": self.name},
                    }
                )
        super().validate_constraints(exclude=exclude)


class TagInput(TimeStampedModel):
    """One thing a tag reads: a data field, or another tag (composite tags).

    ``origin`` says whether it was derived from the tag's definition (kept in sync
    whenever the tag or a field is saved) or declared by a person.
    """

    tag = models.ForeignKey(
        "catalog.Tag", on_delete=models.CASCADE, related_name="lineage_inputs", verbose_name=_("tag")
    )
    field = models.ForeignKey(
        DataField,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="tag_inputs",
        verbose_name=_("data field"),
    )
    upstream = models.ForeignKey(
        "catalog.Tag",
        on_delete=models.RESTRICT,
        null=True,
        blank=True,
        related_name="lineage_dependents",
        verbose_name=_("upstream tag"),
    )
    origin = models.CharField(
        _("origin"), max_length=12, choices=InputOrigin.choices, default=InputOrigin.DECLARED
    )

    objects = RestrictedQuerySet.as_manager()

    scope = [
        Via("catalog.businessline", "tag__business_line"),
        Via("catalog.brand", "tag__brand"),
        Via("catalog.tag", "tag"),
    ]

    class Meta:
        ordering = ["tag_id", "field_id", "upstream_id"]
        verbose_name = _("tag input")
        verbose_name_plural = _("tag inputs")
        constraints = [
            models.CheckConstraint(
                condition=(Q(field__isnull=False) & Q(upstream__isnull=True))
                | (Q(field__isnull=True) & Q(upstream__isnull=False)),
                name="taginput_field_xor_upstream",
            ),
            models.CheckConstraint(condition=~Q(upstream=F("tag")), name="taginput_not_itself"),
            models.CheckConstraint(condition=Q(origin__in=InputOrigin.values), name="taginput_origin_valid"),
            models.UniqueConstraint(
                fields=["tag", "field"], condition=Q(field__isnull=False), name="taginput_field_unique"
            ),
            models.UniqueConstraint(
                fields=["tag", "upstream"],
                condition=Q(upstream__isnull=False),
                name="taginput_upstream_unique",
            ),
        ]

    def __str__(self):
        read = self.field if self.field_id else self.upstream
        return _("%(tag)s reads %(input)s") % {"tag": self.tag.code, "input": getattr(read, "code", read)}

    def clean(self):
        if bool(self.field_id) == bool(self.upstream_id):
            raise ValidationError(_("A tag input is either a data field or an upstream tag, not both."))
        if self.upstream_id and self.tag_id:
            if self.upstream_id == self.tag_id:
                raise ValidationError({"upstream": _("A tag cannot read itself.")})
            if self.upstream.brand_id != self.tag.brand_id:
                raise ValidationError({"upstream": _("A tag reads only tags of its own brand.")})


class ModelInput(models.Model):
    """One thing an algorithm model reads: a data field, or a tag.

    The fields are derived from what the model's kind reads
    (:attr:`tagportal.predictive.kinds.Kind.reads`) and the fields feeding those engine
    fields, kept in sync when a model, a field or a source is saved. The tags are those
    its last published fit used as features (``tag:<code>`` in
    :attr:`~tagportal.predictive.models.ModelRun.features`, e.g. the churn warning's metric
    tags), resolved to the model brand's tags by code, kept in sync when a run is
    published. With the model's outputs (:class:`~tagportal.predictive.models.ModelOutput`)
    it puts the model in the graph: data field or tag → model → output tag. An inactive
    model reads nothing."""

    model = models.ForeignKey(
        "predictive.PredictiveModel",
        on_delete=models.CASCADE,
        related_name="lineage_inputs",
        verbose_name=_("algorithm model"),
    )
    field = models.ForeignKey(
        DataField,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="model_inputs",
        verbose_name=_("data field"),
    )
    tag = models.ForeignKey(
        "catalog.Tag",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="model_inputs",
        verbose_name=_("tag"),
    )

    objects = RestrictedQuerySet.as_manager()

    scope = [Via("catalog.businessline", "model__brand__business_line"), Via("catalog.brand", "model__brand")]

    class Meta:
        ordering = ["model_id", "field_id", "tag_id"]
        verbose_name = _("model input")
        verbose_name_plural = _("model inputs")
        constraints = [
            models.CheckConstraint(
                condition=(Q(field__isnull=False) & Q(tag__isnull=True))
                | (Q(field__isnull=True) & Q(tag__isnull=False)),
                name="modelinput_field_xor_tag",
            ),
            models.UniqueConstraint(
                fields=["model", "field"], condition=Q(field__isnull=False), name="modelinput_field_unique"
            ),
            models.UniqueConstraint(
                fields=["model", "tag"], condition=Q(tag__isnull=False), name="modelinput_tag_unique"
            ),
        ]

    def __str__(self):
        read = self.field if self.field_id else self.tag.code
        return _("%(model)s reads %(input)s") % {"model": self.model.name, "input": read}
