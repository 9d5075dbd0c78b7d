"""The tag dictionary: dimensions, categories, naming rules, tags and published versions."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from tagportal.core import graphs
from tagportal.core.models import TimeStampedModel
from tagportal.core.permissions import Via, tag_scope
from tagportal.core.querysets import RestrictedQuerySet

from . import hooks, naming
from .choices import REGION_PARENT_LEVEL, RefreshMode, RegionLevel, TagKind, TagStatus, ValueType
from .fingerprints import computation_fingerprint

code_validator = RegexValidator(
    r"^[a-z][a-z0-9]*$",
    _("Use lower-case letters and digits, starting with a letter (it becomes part of tag codes)."),
)
tag_code_validator = RegexValidator(
    r"^[a-z][a-z0-9_]*$",
    _("Use lower-case letters, digits and underscores, starting with a letter."),
)


def _brands_of(subquery):
    return Q(pk__in=Brand.objects.filter(pk__in=subquery).values("business_line_id"))


class BusinessLine(TimeStampedModel):
    """A business line (业务线), e.g. 医美 or 大健康: the top grant scope."""

    code = models.CharField(_("code"), max_length=20, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=100, blank=True)
    description = models.TextField(_("description"), blank=True)
    is_active = models.BooleanField(_("active"), default=True)

    scope = [
        Via("catalog.businessline", "pk"),
        Via("catalog.brand", _brands_of, frozenset({"view"})),
    ]

    class Meta:
        ordering = ["code"]
        verbose_name = _("business line")
        verbose_name_plural = _("business lines")
        permissions = [("review_businessline", _("Can review and approve tag changes in the business line"))]

    def __str__(self):
        return self.name


class Brand(TimeStampedModel):
    """A brand within a business line; tags belong to a brand."""

    business_line = models.ForeignKey(
        BusinessLine, on_delete=models.PROTECT, related_name="brands", verbose_name=_("business line")
    )
    code = models.CharField(_("code"), max_length=30, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=100, blank=True)
    description = models.TextField(_("description"), blank=True)
    is_active = models.BooleanField(_("active"), default=True)

    scope = [Via("catalog.businessline", "business_line"), Via("catalog.brand", "pk")]

    class Meta:
        ordering = ["business_line__code", "code"]
        verbose_name = _("brand")
        verbose_name_plural = _("brands")
        permissions = [("apply_template", _("Can apply an industry template to a brand"))]

    def __str__(self):
        return self.name


def tree_descendants(model, root: int) -> list[int]:
    """``root`` and every row below it in a tree of ``model`` (by ``parent``), in one query."""
    children: dict = {}
    for pk, parent in model.objects.values_list("pk", "parent_id"):
        children.setdefault(parent, []).append(pk)
    return graphs.reachable([root], children)


class Region(TimeStampedModel):
    """A region in a tree: country › province › city."""

    code = models.CharField(_("code"), max_length=30, unique=True, validators=[tag_code_validator])
    name = models.CharField(_("name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=100, blank=True)
    level = models.CharField(_("level"), max_length=10, choices=RegionLevel.choices)
    parent = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="children",
        verbose_name=_("parent"),
    )

    class Meta:
        ordering = ["code"]
        verbose_name = _("region")
        verbose_name_plural = _("regions")
        constraints = [
            models.CheckConstraint(condition=Q(level__in=RegionLevel.values), name="region_level_valid"),
            models.CheckConstraint(
                condition=Q(level=RegionLevel.COUNTRY, parent__isnull=True)
                | (~Q(level=RegionLevel.COUNTRY) & Q(parent__isnull=False)),
                name="region_only_countries_are_roots",
            ),
        ]

    def __str__(self):
        return self.path_name

    @property
    def path_name(self) -> str:
        names, node, seen = [], self, set()
        while node is not None and node.pk not in seen:
            seen.add(node.pk)
            names.append(node.name)
            node = node.parent
        return " › ".join(reversed(names))

    @classmethod
    def descendant_ids(cls, root: int) -> list[int]:
        """``root`` and every region below it, in one query."""
        return tree_descendants(cls, root)

    def clean(self):
        expected = REGION_PARENT_LEVEL.get(self.level)
        if expected is None and self.parent_id:
            raise ValidationError({"parent": _("A country has no parent region.")})
        if expected is not None:
            if self.parent is None:
                raise ValidationError(
                    {
                        "parent": _("A %(level)s needs a parent %(parent)s.")
                        % {"level": self.get_level_display(), "parent": RegionLevel(expected).label}
                    }
                )
            if self.parent.level != expected:
                raise ValidationError(
                    {
                        "parent": _("The parent of a %(level)s must be a %(parent)s.")
                        % {"level": self.get_level_display(), "parent": RegionLevel(expected).label}
                    }
                )


class NamingRule(TimeStampedModel):
    """How tag codes in a category look, e.g. ``{business_line}_{domain}_{name}``."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    description = models.TextField(_("description"), blank=True)
    pattern = models.CharField(
        _("pattern"),
        max_length=200,
        default="{business_line}_{domain}_{name}",
        help_text=_(
            "Parts: {business_line} (business line code), {brand} (brand code), {domain} (category code), "
            "{name} (the tag's snake_case name, required). Fixed text: lower-case letters, digits, underscores."
        ),
    )
    min_length = models.PositiveSmallIntegerField(_("minimum length"), default=3)
    max_length = models.PositiveSmallIntegerField(_("maximum length"), default=64)
    example_name = models.CharField(
        _("example name"), max_length=60, default="skin_type", validators=[tag_code_validator]
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("naming rule")
        verbose_name_plural = _("naming rules")
        constraints = [
            models.CheckConstraint(
                condition=Q(min_length__gte=1)
                & Q(max_length__lte=64)
                & Q(min_length__lte=models.F("max_length")),
                name="naming_rule_lengths_valid",
            )
        ]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        pattern_errors = naming.pattern_errors(self.pattern)
        if pattern_errors:
            errors["pattern"] = pattern_errors
        if self.min_length is not None and self.min_length < 1:
            errors["min_length"] = [_("At least 1.")]
        if self.max_length is not None and self.max_length > 64:
            errors["max_length"] = [_("At most 64: tag codes have 64 characters at most.")]
        if self.min_length is not None and self.max_length is not None and self.min_length > self.max_length:
            errors.setdefault("min_length", []).append(_("The minimum length is greater than the maximum."))
        if errors:
            raise ValidationError(errors)

    def example(self, context: naming.CodeContext) -> str:
        return naming.build_code(self.pattern, context, self.example_name)

    def build(self, context: naming.CodeContext, name: str) -> str:
        return naming.build_code(self.pattern, context, name)

    def violation(self, code: str, context: naming.CodeContext) -> str | None:
        """A message naming this rule and showing a valid example, or None if ``code`` follows it."""
        ok = naming.pattern_regex(self.pattern, context).match(code or "") and (
            self.min_length <= len(code) <= self.max_length
        )
        if ok:
            return None
        return _(
            "Code “%(code)s” breaks the naming rule “%(rule)s”: codes look like %(pattern)s, "
            "%(min)s–%(max)s characters, snake_case. A valid example: “%(example)s”."
        ) % {
            "code": code,
            "rule": self.name,
            "pattern": self.pattern,
            "min": self.min_length,
            "max": self.max_length,
            "example": self.example(context),
        }


class Category(TimeStampedModel):
    """A node in the category tree (e.g. 基础属性 › 人口属性) with a naming rule."""

    code = models.CharField(
        _("code"),
        max_length=30,
        validators=[code_validator],
        help_text=_("The domain part of tag codes in this category."),
    )
    name = models.CharField(_("name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=100, blank=True)
    description = models.TextField(_("description"), blank=True)
    parent = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="children",
        verbose_name=_("parent"),
    )
    naming_rule = models.ForeignKey(
        NamingRule,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="categories",
        verbose_name=_("naming rule"),
        help_text=_("Empty: the parent category's rule applies."),
    )
    order = models.PositiveIntegerField(_("order"), default=0)
    recertification_days = models.PositiveIntegerField(
        _("re-certification period (days)"),
        null=True,
        blank=True,
        help_text=_(
            "How often a steward re-certifies published tags here. Empty: the parent's period (default 180 days)."
        ),
    )

    class Meta:
        ordering = ["order", "code"]
        verbose_name = _("category")
        verbose_name_plural = _("categories")
        constraints = [
            models.UniqueConstraint(fields=["parent", "code"], name="category_code_unique_per_parent"),
            models.UniqueConstraint(
                fields=["code"], condition=Q(parent__isnull=True), name="category_root_code_unique"
            ),
        ]

    def __str__(self):
        return self.path_name

    def ancestors(self) -> list[Category]:
        """This category and its parents, nearest first."""
        chain, node, seen = [], self, set()
        while node is not None and node.pk not in seen:
            seen.add(node.pk)
            chain.append(node)
            node = node.parent
        return chain

    @property
    def path_name(self) -> str:
        return " › ".join(c.name for c in reversed(self.ancestors()))

    @classmethod
    def path_names(cls) -> dict[int, str]:
        """``{pk: "基础属性 › 人口属性"}`` for every category, in one query."""
        rows = {pk: (parent, name) for pk, parent, name in cls.objects.values_list("pk", "parent_id", "name")}
        paths: dict[int, str] = {}
        for pk in rows:
            names, node, seen = [], pk, set()
            while node is not None and node in rows and node not in seen:
                seen.add(node)
                parent, name = rows[node]
                names.append(name)
                node = parent
            paths[pk] = " › ".join(reversed(names))
        return paths

    @classmethod
    def descendant_ids(cls, root: int) -> list[int]:
        """``root`` and every category below it, in one query."""
        return tree_descendants(cls, root)

    def effective_recertification_days(self) -> int:
        for node in self.ancestors():
            if node.recertification_days:
                return node.recertification_days
        return settings.TAGPORTAL_RECERTIFICATION_DAYS

    def effective_naming_rule(self) -> NamingRule | None:
        for node in self.ancestors():
            if node.naming_rule_id:
                return node.naming_rule
        return None

    def clean(self):
        if self.pk and self.parent_id:
            node = self.parent
            while node is not None:
                if node.pk == self.pk:
                    raise ValidationError({"parent": _("A category cannot be inside itself.")})
                node = node.parent


class TagQuerySet(RestrictedQuerySet):
    def published(self):
        return self.filter(status=TagStatus.PUBLISHED)

    def active(self):
        return self.exclude(status=TagStatus.RETIRED)

    def for_list(self):
        return self.select_related("category", "business_line", "brand", "owner")

    def with_computation(self):
        """The tags with their computation state joined in through the reverse relation
        :data:`.hooks.COMPUTATION` (one query, however many tags), leaving the result's
        bulky per-person numbers and distribution to be read on demand. Unchanged when
        nothing computes tags."""
        if Tag.related_model(hooks.COMPUTATION) is None:
            return self
        bulky = (f"{hooks.COMPUTATION}__numbers", f"{hooks.COMPUTATION}__distribution")
        return self.select_related(hooks.COMPUTATION).defer(*bulky)


class Tag(TimeStampedModel):
    """A dictionary entry: what a tag means, how it is computed, who owns it."""

    code = models.CharField(_("code"), max_length=64, validators=[tag_code_validator])
    name = models.CharField(_("Chinese name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=150, blank=True)
    description = models.TextField(_("description"), blank=True)
    category = models.ForeignKey(
        Category, on_delete=models.PROTECT, related_name="tags", verbose_name=_("category")
    )
    business_line = models.ForeignKey(
        BusinessLine, on_delete=models.PROTECT, related_name="tags", verbose_name=_("business line")
    )
    brand = models.ForeignKey(Brand, on_delete=models.PROTECT, related_name="tags", verbose_name=_("brand"))
    regions = models.ManyToManyField(Region, blank=True, related_name="tags", verbose_name=_("regions"))
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_tags",
        verbose_name=_("owner"),
    )
    kind = models.CharField(_("kind"), max_length=12, choices=TagKind.choices)
    value_type = models.CharField(_("value type"), max_length=10, choices=ValueType.choices)
    values = models.JSONField(
        _("values"),
        default=list,
        blank=True,
        help_text=_("Ordered enum values, or number buckets: [{code, label, label_en, min, max}]."),
    )
    unit = models.CharField(
        _("unit"), max_length=20, blank=True, help_text=_("For numbers, e.g. 元, 次, 天.")
    )
    refresh_mode = models.CharField(
        _("refresh mode"), max_length=10, choices=RefreshMode.choices, default=RefreshMode.BATCH
    )
    schedule = models.CharField(
        _("schedule"),
        max_length=100,
        blank=True,
        default="0 2 * * *",
        help_text=_("Cron expression in Beijing time for batch tags (default: every day at 02:00)."),
    )
    definition = models.JSONField(_("definition"), default=dict, blank=True)
    status = models.CharField(_("status"), max_length=12, choices=TagStatus.choices, default=TagStatus.DRAFT)
    published_version = models.PositiveIntegerField(_("published version"), null=True, blank=True)
    template = models.CharField(
        _("template"), max_length=50, blank=True, help_text=_("The industry template this tag came from.")
    )
    certified_at = models.DateTimeField(_("certified at"), null=True, blank=True)
    certified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("certified by"),
    )

    objects = TagQuerySet.as_manager()

    scope = [
        Via("catalog.businessline", "business_line"),
        Via("catalog.brand", "brand"),
        Via("catalog.tag", "pk"),
    ]
    _history_m2m_fields = ["regions"]

    class Meta:
        ordering = ["brand__code", "code"]
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        indexes = [
            models.Index(fields=["business_line", "status"]),
            models.Index(fields=["code"]),
            models.Index(fields=["name"]),
        ]
        constraints = [
            models.UniqueConstraint(fields=["brand", "code"], name="tag_code_unique_per_brand"),
            models.CheckConstraint(condition=Q(status__in=TagStatus.values), name="tag_status_valid"),
            models.CheckConstraint(condition=Q(kind__in=TagKind.values), name="tag_kind_valid"),
            models.CheckConstraint(condition=Q(value_type__in=ValueType.values), name="tag_value_type_valid"),
            models.CheckConstraint(
                condition=Q(refresh_mode__in=RefreshMode.values), name="tag_refresh_mode_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status=TagStatus.PUBLISHED) | Q(published_version__isnull=False),
                name="tag_published_has_version",
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.code})"

    @classmethod
    def field_label(cls, name: str) -> str:
        """The label of the field ``name`` in the active language (``name`` itself for a
        key that is not a field of a tag, e.g. ``merged_into``)."""
        try:
            return str(cls._meta.get_field(name).verbose_name)
        except (FieldDoesNotExist, AttributeError):  # not a field, or a reverse relation
            return name

    @classmethod
    def field_labels(cls) -> dict[str, str]:
        """``{field name: label}`` of every field of a tag, in the active language."""
        return {f.name: str(f.verbose_name) for f in cls._meta.get_fields() if hasattr(f, "verbose_name")}

    @classmethod
    def table_name(cls) -> str:
        """The database table of tags, for the few queries written in SQL."""
        return cls._meta.db_table

    @classmethod
    def related_model(cls, name: str) -> type[models.Model] | None:
        """The model of another app relating to tags by ``name`` (e.g. the engine's result,
        :data:`.hooks.COMPUTATION`), or ``None`` when no installed app does."""
        try:
            return cls._meta.get_field(name).related_model
        except FieldDoesNotExist:
            return None

    def code_context(self) -> naming.CodeContext:
        return naming.CodeContext(
            business_line=self.business_line.code if self.business_line_id else "",
            brand=self.brand.code if self.brand_id else "",
            domain=self.category.code if self.category_id else "",
        )

    def value_codes(self) -> list[str]:
        return [v.get("code") for v in self.values or [] if isinstance(v, dict)]

    def clean(self):
        from .validation import validate_tag

        validate_tag(self)

    def validate_constraints(self, exclude=None):
        # Report a duplicate code on the code field, in words a user understands.
        if self.brand_id and self.code and (exclude is None or "code" not in exclude):
            if Tag.objects.filter(brand_id=self.brand_id, code=self.code).exclude(pk=self.pk).exists():
                raise ValidationError(
                    {"code": _("The brand already has a tag with the code “%(code)s”.") % {"code": self.code}}
                )
        super().validate_constraints(exclude=exclude)

    def save(self, *args, **kwargs):
        if self.brand_id and not self.business_line_id:
            self.business_line_id = self.brand.business_line_id
        super().save(*args, **kwargs)


class TagVersion(models.Model):
    """An immutable, published snapshot of a tag: what computations and audiences refer to."""

    tag = models.ForeignKey(Tag, on_delete=models.PROTECT, related_name="versions", verbose_name=_("tag"))
    version = models.PositiveIntegerField(_("version"))
    snapshot = models.JSONField(_("snapshot"))
    fingerprint = models.CharField(
        _("computation fingerprint"),
        max_length=64,
        blank=True,
        editable=False,
        help_text=_(
            "A digest of what the engine reads (value type, values, definition): versions "
            "with the same fingerprint compute the same result."
        ),
    )
    note = models.TextField(_("note"), blank=True)
    published_at = models.DateTimeField(_("published at"), auto_now_add=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("published by"),
    )

    objects = RestrictedQuerySet.as_manager()
    scope = tag_scope("tag")

    class Meta:
        ordering = ["tag_id", "-version"]
        verbose_name = _("published version")
        verbose_name_plural = _("published versions")
        constraints = [
            models.UniqueConstraint(fields=["tag", "version"], name="tag_version_unique"),
            models.CheckConstraint(condition=Q(version__gte=1), name="tag_version_positive"),
        ]

    def __str__(self):
        return f"{self.tag.code} v{self.version}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValidationError(_("A published version is immutable."))
        self.fingerprint = computation_fingerprint(self.snapshot)
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError(_("A published version is immutable and cannot be deleted."))


class TagAlias(models.Model):
    """An old code that resolves to another tag, kept when a tag is merged into another."""

    brand = models.ForeignKey(
        Brand, on_delete=models.CASCADE, related_name="aliases", verbose_name=_("brand")
    )
    code = models.CharField(_("old code"), max_length=64)
    source = models.ForeignKey(
        Tag, on_delete=models.PROTECT, related_name="aliases_as_source", verbose_name=_("merged tag")
    )
    target = models.ForeignKey(
        Tag, on_delete=models.PROTECT, related_name="aliases", verbose_name=_("resolves to")
    )
    reason = models.TextField(_("reason"), blank=True)
    created = models.DateTimeField(_("created"), auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()
    scope = [Via("catalog.businessline", "brand__business_line"), Via("catalog.brand", "brand")]

    class Meta:
        ordering = ["brand_id", "code"]
        verbose_name = _("tag alias")
        verbose_name_plural = _("tag aliases")
        constraints = [models.UniqueConstraint(fields=["brand", "code"], name="tag_alias_unique_per_brand")]

    def __str__(self):
        return f"{self.code} → {self.target.code}"


# django-guardian direct foreign-key permission tables (faster than generic ones).
class BusinessLineUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(BusinessLine, on_delete=models.CASCADE)


class BusinessLineGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(BusinessLine, on_delete=models.CASCADE)


class BrandUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Brand, on_delete=models.CASCADE)


class BrandGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Brand, on_delete=models.CASCADE)


class TagUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Tag, on_delete=models.CASCADE)


class TagGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Tag, on_delete=models.CASCADE)
