"""State changes of the tag dictionary. Views, admin actions, the API, commands and
tasks call these; none of them writes a status or a version on its own."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from guardian.shortcuts import assign_perm

from tagportal.core.permissions import may, may_add_into

from . import naming
from .choices import TagStatus
from .models import Brand, BusinessLine, Category, NamingRule, Region, Tag, TagAlias, TagVersion
from .signals import template_applied
from .templates import TemplatePack, get_pack, resolve_references

log = logging.getLogger(__name__)

#: The groups each business line owns, and the object permissions they get on it.
BUSINESS_LINE_GROUPS = {
    "operators": ("view_businessline", "change_businessline"),
    "stewards": ("view_businessline", "change_businessline", "delete_businessline", "review_businessline"),
    "analysts": ("view_businessline",),
}


def business_line_group_name(business_line: BusinessLine, member: str) -> str:
    return f"bl:{business_line.code}:{member}"


def ensure_business_line_groups(business_line: BusinessLine) -> dict[str, Group]:
    """Create the business line's operator, steward and analyst groups with their grants.

    Adding a user to ``bl:<code>:stewards`` grants them the business line (its brands and
    tags); what they may do there still comes from their role.
    """
    groups = {}
    for member, codenames in BUSINESS_LINE_GROUPS.items():
        group, _created = Group.objects.get_or_create(name=business_line_group_name(business_line, member))
        for codename in codenames:
            assign_perm(f"catalog.{codename}", group, business_line)
        groups[member] = group
    return groups


def grant_business_line(user, business_line: BusinessLine, member: str) -> None:
    """Put ``user`` in one of the business line's groups (operators, stewards, analysts)."""
    if member not in BUSINESS_LINE_GROUPS:
        raise ValueError(member)
    user.groups.add(ensure_business_line_groups(business_line)[member])


def suggest_code(
    name: str, category: Category | None, brand: Brand | None, name_part: str | None = None
) -> str:
    """A code for a new tag from its Chinese name, following the category's naming rule."""
    snake = name_part or naming.to_snake(name) or "tag"
    context = naming.CodeContext(
        business_line=brand.business_line.code if brand else "",
        brand=brand.code if brand else "",
        domain=category.code if category else "",
    )
    rule = category.effective_naming_rule() if category else None
    code = rule.build(context, snake) if rule else snake
    max_length = rule.max_length if rule else 64
    return code[:max_length].rstrip("_")


def tag_snapshot(tag: Tag, regions: list[str] | None = None) -> dict:
    """Everything a published version freezes about a tag (``regions``: codes, for a
    tag not saved yet)."""
    return {
        "code": tag.code,
        "name": tag.name,
        "name_en": tag.name_en,
        "description": tag.description,
        "category": tag.category.code,
        "category_id": tag.category_id,
        "category_path": tag.category.path_name,
        "business_line": tag.business_line.code,
        "brand": tag.brand.code,
        "regions": sorted(regions if regions is not None else tag.regions.values_list("code", flat=True)),
        "owner": tag.owner.username if tag.owner else None,
        "kind": tag.kind,
        "value_type": tag.value_type,
        "values": tag.values,
        "unit": tag.unit,
        "refresh_mode": tag.refresh_mode,
        "schedule": tag.schedule,
        "definition": tag.definition,
    }


@transaction.atomic
def create_tag(user, *, regions=(), reason: str = "", **fields) -> Tag:
    """Create a draft tag after checking the user may add tags to its brand."""
    brand = fields.get("brand")
    if brand is None:
        raise ValidationError({"brand": _("A tag belongs to a brand.")})
    if user is not None and not may_add_into(user, Tag, brand):
        raise PermissionDenied(_("You may not add tags to the brand “%(brand)s”.") % {"brand": brand})
    fields.setdefault("business_line", brand.business_line)
    fields.setdefault("status", TagStatus.DRAFT)
    if not fields.get("code"):
        fields["code"] = suggest_code(fields.get("name", ""), fields.get("category"), brand)
    tag = Tag(**fields)
    if user is not None and tag.owner_id is None and user.is_authenticated:
        tag.owner = user
    tag.full_clean()
    tag._change_reason = reason or _("Created")
    tag.save()
    if regions:
        tag.regions.set(regions)
    return tag


class TagLocked(PermissionDenied):
    """A tag past draft changes only through an approved change request."""


#: Lifecycle: which statuses a tag may move to from each status.
TRANSITIONS = {
    TagStatus.DRAFT: {TagStatus.IN_REVIEW},
    TagStatus.IN_REVIEW: {TagStatus.DRAFT, TagStatus.PUBLISHED},
    TagStatus.PUBLISHED: {TagStatus.DEPRECATED, TagStatus.RETIRED},
    TagStatus.DEPRECATED: {TagStatus.PUBLISHED, TagStatus.RETIRED},
    TagStatus.RETIRED: {TagStatus.PUBLISHED},
}


def ensure_editable(tag: Tag) -> None:
    if tag.status != TagStatus.DRAFT:
        raise TagLocked(
            _(
                "The tag “%(code)s” is %(status)s: it changes only through a change request "
                "approved by a data steward."
            )
            % {"code": tag.code, "status": tag.get_status_display()}
        )


@transaction.atomic
def update_tag(user, tag: Tag, *, regions=None, reason: str = "", **fields) -> Tag:
    """Edit a draft tag. Published (and later) tags are refused: see ``apply_changes``."""
    if user is not None and not may(user, tag, "change"):
        raise PermissionDenied(_("You may not change this tag."))
    ensure_editable(tag)
    return _write(user, tag, regions=regions, reason=reason, **fields)


def _write(user, tag: Tag, *, regions=None, reason: str = "", **fields) -> Tag:
    new_brand = fields.get("brand")
    if new_brand is not None and new_brand.pk != tag.brand_id:
        if user is not None and not may_add_into(user, Tag, new_brand):
            raise PermissionDenied(
                _("You may not move tags to the brand “%(brand)s”.") % {"brand": new_brand}
            )
        fields.setdefault("business_line", new_brand.business_line)
    for name, value in fields.items():
        setattr(tag, name, value)
    tag.full_clean()
    tag._change_reason = reason or _("Edited")
    tag.save()
    if regions is not None:
        tag.regions.set(regions)
    return tag


@transaction.atomic
def publish_tag(tag: Tag, user=None, note: str = "") -> TagVersion:
    """Freeze the tag as its next published version, mark it published and certified."""
    tag = Tag.objects.select_for_update().get(pk=tag.pk)
    last = tag.versions.order_by("-version").values_list("version", flat=True).first() or 0
    tag.status = TagStatus.PUBLISHED
    tag.published_version = last + 1
    tag.certified_at = timezone.now()
    tag.certified_by = user if user is not None and user.is_authenticated else None
    tag.full_clean()
    version = TagVersion.objects.create(
        tag=tag, version=last + 1, snapshot=tag_snapshot(tag), note=note, published_by=user
    )
    tag._change_reason = note or _("Published version %(n)s") % {"n": version.version}
    if user is not None:
        tag._history_user = user
    tag.save()
    return version


@transaction.atomic
def apply_changes(tag: Tag, changes: dict, user=None, reason: str = "") -> TagVersion:
    """Write approved changes to a tag and publish them as its next version.

    Only governance calls this, when it applies an approved change request.
    """
    changes = dict(changes)
    regions = changes.pop("regions", None)
    if regions is not None:
        regions = list(Region.objects.filter(code__in=regions))
    # One approval is one history record: the write is recorded by the publication that
    # follows it (which records the regions too), not as a record of its own.
    tag.skip_history_when_saving = True
    try:
        _write(None, tag, regions=regions, reason=reason, **_resolve(changes))
    finally:
        del tag.skip_history_when_saving
    return publish_tag(tag, user=user, note=reason)


def _resolve(changes: dict) -> dict:
    """Field values from a change request's plain data (codes and ids) to model values."""
    from django.contrib.auth import get_user_model

    resolved = dict(changes)
    if "category" in resolved and not isinstance(resolved["category"], Category):
        resolved["category"] = Category.objects.get(pk=resolved["category"])
    if "owner" in resolved and resolved["owner"] is not None and not hasattr(resolved["owner"], "pk"):
        resolved["owner"] = get_user_model().objects.get(username=resolved["owner"])
    return resolved


@transaction.atomic
def set_status(tag: Tag, status: str, user=None, reason: str = "") -> Tag:
    """Move a tag along its lifecycle (deprecate, retire, restore, review)."""
    tag = Tag.objects.select_for_update().get(pk=tag.pk)
    if status not in TRANSITIONS.get(tag.status, set()):
        raise ValidationError(
            {
                "status": _("A %(current)s tag cannot become %(new)s.")
                % {"current": tag.get_status_display(), "new": TagStatus(status).label}
            }
        )
    if status == TagStatus.PUBLISHED and not tag.published_version:
        raise ValidationError(
            {"status": _("The tag has never been published; publish it by a create request.")}
        )
    tag.status = status
    tag._change_reason = reason or TagStatus(status).label
    if user is not None:
        tag._history_user = user
    tag.save()
    return tag


@transaction.atomic
def merge_tags(source: Tag, target: Tag, user=None, reason: str = "") -> TagAlias:
    """Retire ``source`` and keep its code as an alias resolving to ``target``."""
    if source.pk == target.pk:
        raise ValidationError({"merge_target": _("A tag cannot be merged into itself.")})
    if source.brand_id != target.brand_id:
        raise ValidationError({"merge_target": _("Only tags of the same brand can be merged.")})
    if target.status != TagStatus.PUBLISHED:
        raise ValidationError({"merge_target": _("Tags are merged into a published tag.")})
    set_status(
        source,
        TagStatus.RETIRED,
        user=user,
        reason=reason or _("Merged into %(code)s") % {"code": target.code},
    )
    TagAlias.objects.filter(target=source).update(target=target)  # earlier aliases follow the merge
    alias, _created = TagAlias.objects.update_or_create(
        brand=source.brand, code=source.code, defaults={"source": source, "target": target, "reason": reason}
    )
    return alias


def resolve_code(tags, brand_code: str, code: str) -> tuple[Tag | None, TagAlias | None]:
    """Find a tag by code among ``tags`` (already scoped), following merge aliases."""
    tag = (
        tags.filter(brand__code=brand_code, code=code).first()
        if brand_code
        else tags.filter(code=code).first()
    )
    alias_query = TagAlias.objects.filter(code=code, target__in=tags).select_related("target")
    if brand_code:
        alias_query = alias_query.filter(brand__code=brand_code)
    alias = alias_query.first()
    if alias is not None and (tag is None or tag.status == TagStatus.RETIRED):
        return alias.target, alias
    return tag, None


def recertification_due(tags, now=None):
    """Published tags whose certification is older than their category's period."""
    now = now or timezone.now()
    due = []
    for tag in tags.filter(status=TagStatus.PUBLISHED).select_related("category__parent__parent__parent"):
        days = tag.category.effective_recertification_days()
        if tag.certified_at is None or tag.certified_at + timedelta(days=days) <= now:
            due.append(tag)
    return due


@transaction.atomic
def certify_tag(user, tag: Tag, note: str = "") -> Tag:
    """A steward confirms a published tag is still right (recorded in its history)."""
    tag = Tag.objects.select_for_update().get(pk=tag.pk)
    if not BusinessLine.objects.restrict(user, "review").filter(pk=tag.business_line_id).exists():
        raise PermissionDenied(_("Only a data steward of the business line may certify its tags."))
    if tag.status != TagStatus.PUBLISHED:
        raise ValidationError({"status": _("Only published tags are certified.")})
    tag.certified_at = timezone.now()
    tag.certified_by = user
    tag._change_reason = note or _("Re-certified")
    tag._history_user = user
    tag.save()
    return tag


@dataclass
class TemplateResult:
    template: str
    brand: str
    created: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    categories_created: int = 0
    naming_rule_created: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.created or self.categories_created or self.naming_rule_created)

    def as_dict(self) -> dict:
        return {
            "template": self.template,
            "brand": self.brand,
            "created": len(self.created),
            "skipped": len(self.skipped),
            "categories_created": self.categories_created,
            "naming_rule_created": self.naming_rule_created,
            "created_codes": self.created,
        }


def _ensure_categories(pack: TemplatePack, rule: NamingRule, result: TemplateResult) -> dict[str, Category]:
    by_path: dict[str, Category] = {}

    def walk(nodes, parent, prefix, order_base):
        for index, node in enumerate(nodes):
            path = f"{prefix}/{node['code']}" if prefix else node["code"]
            category = Category.objects.filter(parent=parent, code=node["code"]).first()
            if category is None:
                category = Category(
                    code=node["code"],
                    name=node["name"],
                    name_en=node.get("name_en", ""),
                    description=node.get("description", ""),
                    parent=parent,
                    naming_rule=rule if parent is None else None,
                    order=order_base + index,
                )
                category.full_clean()
                category._change_reason = _("Applied template %(name)s (version %(version)s)") % {
                    "name": pack.name,
                    "version": pack.version,
                }
                category.save()
                result.categories_created += 1
            by_path[path] = category
            walk(node.get("children", []), category, path, 0)

    walk(pack.categories, None, "", 0)
    return by_path


@transaction.atomic
def apply_template(brand: Brand, template_key: str, user=None, owner=None, regions=()) -> TemplateResult:
    """Add a template's categories and tags to a brand, published as version 1.

    ``owner`` (default: the user applying it) owns the new tags; ``regions`` classify them.
    Idempotent: categories, the naming rule and tags that exist (by code) are left as
    they are, so applying a template twice changes nothing. Then
    :data:`~.signals.template_applied` is sent (the predictive app links the tags that
    declare a ``model`` to the brand's algorithm models), in the same transaction.
    """
    if user is not None and not (user.has_perm("catalog.apply_template") and may_add_into(user, Tag, brand)):
        raise PermissionDenied(_("You may not apply templates to the brand “%(brand)s”.") % {"brand": brand})
    pack = get_pack(template_key)
    result = TemplateResult(template=pack.key, brand=brand.code)
    spec = pack.naming_rule
    rule = NamingRule.objects.filter(name=spec["name"]).first()
    if rule is None:
        rule = NamingRule(
            name=spec["name"],
            description=spec.get("description", ""),
            pattern=spec["pattern"],
            min_length=spec.get("min_length", 3),
            max_length=spec.get("max_length", 64),
            example_name=spec.get("example_name", "skin_type"),
        )
        rule.full_clean()
        rule.save()
        result.naming_rule_created = True
    categories = _ensure_categories(pack, rule, result)
    existing = set(Tag.objects.filter(brand=brand).values_list("code", flat=True))
    codes: dict[str, str] = {}
    for spec_tag in pack.tags:
        category = categories[spec_tag["category"]]
        rule_for = category.effective_naming_rule() or rule
        context = naming.CodeContext(
            business_line=brand.business_line.code, brand=brand.code, domain=category.code
        )
        codes[spec_tag["name"]] = rule_for.build(context, spec_tag["name"])
    reason = _("Applied template %(name)s (version %(version)s)") % {
        "name": pack.name,
        "version": pack.version,
    }
    by_name: dict[str, Tag] = {}
    for spec_tag in pack.ordered_tags():
        code = codes[spec_tag["name"]]
        if code in existing:
            result.skipped.append(code)
            by_name[spec_tag["name"]] = Tag.objects.get(brand=brand, code=code)
            continue
        tag = Tag(
            code=code,
            name=spec_tag["zh"],
            name_en=spec_tag.get("en", ""),
            description=spec_tag.get("description", ""),
            category=categories[spec_tag["category"]],
            business_line=brand.business_line,
            brand=brand,
            owner=owner or (user if user is not None and user.is_authenticated else None),
            kind=spec_tag["kind"],
            value_type=spec_tag["value_type"],
            values=spec_tag.get("values", []),
            unit=spec_tag.get("unit", ""),
            refresh_mode=spec_tag.get("refresh_mode", "batch"),
            definition=resolve_references(spec_tag["definition"], codes),
            template=pack.key,
        )
        tag.full_clean()
        tag._change_reason = reason
        tag.save()
        if regions:
            tag.regions.set(regions)
        publish_tag(tag, user=user, note=reason)
        result.created.append(code)
        existing.add(code)
        by_name[spec_tag["name"]] = tag
    template_applied.send(sender=TemplatePack, brand=brand, pack=pack, tags=by_name, user=user)
    log.info(
        "template %s applied to %s: %s created, %s skipped",
        pack.key,
        brand.code,
        len(result.created),
        len(result.skipped),
    )
    return result


def version_fingerprints(tag_ids) -> dict[tuple[int, int], str]:
    """``{(tag id, version): computation fingerprint}`` of every published version of
    ``tag_ids`` (one query)."""
    rows = TagVersion.objects.filter(tag_id__in=list(tag_ids)).values_list("tag_id", "version", "fingerprint")
    return {(tag_id, version): fingerprint for tag_id, version, fingerprint in rows}


def same_computation(fingerprints: dict, tag_id: int, a: int | None, b: int | None) -> bool:
    """Whether versions ``a`` and ``b`` of a tag compute the same result (by
    :func:`version_fingerprints`); an unknown version computes something else."""
    if a is None or b is None:
        return False
    if a == b:
        return True
    left, right = fingerprints.get((tag_id, a)), fingerprints.get((tag_id, b))
    return bool(left) and left == right


def latest_equivalent(
    fingerprints: dict, tag_id: int, version: int | None, published: int | None
) -> int | None:
    """``published`` if it computes what ``version`` computes (only its description,
    name or other labels changed), else ``version``."""
    if published is not None and version is not None and published > version:
        if same_computation(fingerprints, tag_id, version, published):
            return published
    return version


def suggest_category(
    user,
    *,
    name: str,
    description: str = "",
    definition=None,
    name_en: str = "",
    exclude=None,
    limit: int = 3,
) -> dict:
    """Categories (and business lines) for a tag with this name, description and
    definition, ranked against the tags ``user`` may view (retired ones and ``exclude``,
    a tag id, left out) by :mod:`.classify`: ``{"categories": [{id, name, path, score,
    similar: [{id, code, name}]}], "business_lines": [{id, code, name, score}]}``."""
    from . import classify

    tags = Tag.objects.restrict(user, "view").exclude(status=TagStatus.RETIRED)
    if exclude:
        tags = tags.exclude(pk=exclude)
    rows = list(
        tags.values_list(
            "pk", "code", "name", "name_en", "description", "definition", "category_id", "business_line_id"
        )
    )
    train = [
        classify.Example(
            name=row[2],
            name_en=row[3],
            description=row[4],
            definition=row[5],
            label=row[6],
            business_line=row[7],
            key=row[0],
        )
        for row in rows
    ]
    query = classify.Example(
        name=name or "", description=description or "", definition=definition, name_en=name_en
    )
    if not train or not (query.name or query.description):
        return {"categories": [], "business_lines": []}
    by_id = {row[0]: row for row in rows}
    paths = Category.path_names()
    categories = []
    for ranked in classify.rank(train, query)[:limit]:
        category_id = ranked.label
        similar = [by_id[key] for key, _weight in sorted(ranked.neighbours, key=lambda n: -n[1])[:3]]
        categories.append(
            {
                "id": category_id,
                "path": paths.get(category_id, ""),
                "score": ranked.score,
                "similar": [{"id": row[0], "code": row[1], "name": row[2]} for row in similar],
            }
        )
    lines = dict(BusinessLine.objects.filter(pk__in={row[7] for row in rows}).values_list("pk", "name"))
    codes = dict(BusinessLine.objects.filter(pk__in=list(lines)).values_list("pk", "code"))
    business_lines = [
        {"id": r.label, "code": codes.get(r.label, ""), "name": lines.get(r.label, ""), "score": r.score}
        for r in classify.rank(train, query, attribute="business_line")[:limit]
    ]
    return {"categories": categories, "business_lines": business_lines}
