"""Restructuring the category tree: move a category under another parent, merge one into
another, rename one (its name and, optionally, its code: the domain part of tag codes).

:func:`preview` works out, without writing, which tags are affected and the code each
gets under the naming rule that applies after the change; :func:`carry_out` applies a
previewed change at once: categories moved, merged or renamed, tags recoded (a published
tag through a new published version, which computes what the previous one did) and each
old code kept as an alias, so lookups by the old code still find the tag. Governance
calls these when a restructure change request is approved."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from tagportal.rules.definitions import renamed_tag_references, tag_references

from . import naming
from .choices import TagStatus
from .models import Category, NamingRule, Tag, TagAlias, code_validator

OPERATIONS = ("move", "merge", "rename")


@dataclass
class Preview:
    operation: str
    source: Category
    target: Category | None
    new_name: str
    new_code: str
    rows: list[dict] = field(default_factory=list)  # {tag, old_code, new_code, old_category, new_category}

    def as_dict(self) -> dict:
        return {
            "operation": self.operation,
            "source": self.source.pk,
            "target": self.target.pk if self.target else None,
            "new_name": self.new_name,
            "new_code": self.new_code,
            "tags": [
                {
                    "id": row["tag"].pk,
                    "brand": row["tag"].brand.code,
                    "business_line": row["tag"].business_line.code,
                    "name": row["tag"].name,
                    "old_code": row["old_code"],
                    "new_code": row["new_code"],
                    "old_category": row["old_category"],
                    "new_category": row["new_category"],
                }
                for row in self.rows
            ],
        }


def payload_of(preview: Preview) -> dict:
    """The plain payload a change request keeps."""
    return {k: v for k, v in preview.as_dict().items() if k != "tags"}


def _tree():
    rows = list(Category.objects.values_list("pk", "parent_id", "code", "name", "naming_rule_id"))
    parents = {pk: parent for pk, parent, *_rest in rows}
    codes = {pk: code for pk, _p, code, *_rest in rows}
    names = {pk: name for pk, _p, _c, name, _r in rows}
    rules = {pk: rule for pk, *_rest, rule in rows}
    return parents, codes, names, rules


def _descendants(parents: dict, root: int) -> set[int]:
    out, frontier = {root}, [root]
    while frontier:
        node = frontier.pop()
        for pk, parent in parents.items():
            if parent == node and pk not in out:
                out.add(pk)
                frontier.append(pk)
    return out


def _path(parents, names, pk) -> str:
    chain, node, seen = [], pk, set()
    while node is not None and node not in seen:
        seen.add(node)
        chain.append(names[node])
        node = parents.get(node)
    return " › ".join(reversed(chain))


def _rule(parents, rules, pk, cache) -> NamingRule | None:
    node, seen = pk, set()
    while node is not None and node not in seen:
        seen.add(node)
        if rules.get(node):
            if rules[node] not in cache:
                cache[rules[node]] = NamingRule.objects.get(pk=rules[node])
            return cache[rules[node]]
        node = parents.get(node)
    return None


def _name_part(tag: Tag, rule: NamingRule | None) -> str:
    """The tag's own snake_case name as its current code holds it under ``rule``."""
    if rule is not None:
        match = naming.pattern_regex(rule.pattern, tag.code_context()).match(tag.code)
        if match and match.groupdict().get("name"):
            return match.group("name")
    return naming.to_snake(tag.name) or tag.code


def _sibling_clash(parents, codes, parent, code, moving: set[int]) -> bool:
    return any(parents.get(pk) == parent and codes[pk] == code for pk in codes if pk not in moving)


def preview(
    operation: str, source: Category, target: Category | None = None, new_name="", new_code=""
) -> Preview:
    """The tags a restructure affects with their current and re-suggested codes;
    ``ValidationError`` naming what is wrong (a cycle, a clash of codes, a missing part)."""
    if operation not in OPERATIONS:
        raise ValidationError({"operation": _("Choose move, merge or rename.")})
    parents, codes, names, rules = _tree()
    old_parents, old_codes = dict(parents), dict(codes)
    new_name, new_code = (new_name or "").strip(), (new_code or "").strip()
    affected = _descendants(parents, source.pk)
    moved_to: dict[int, int] = {}  # category of tags that change category
    if operation == "move":
        if target is not None and target.pk in affected:
            raise ValidationError(
                {"target": _("A category cannot move inside itself or one of its children.")}
            )
        parent = target.pk if target else None
        if _sibling_clash(parents, codes, parent, codes[source.pk], {source.pk}):
            raise ValidationError({"target": _("The new parent already has a category with this code.")})
        parents[source.pk] = parent
    elif operation == "merge":
        if target is None:
            raise ValidationError({"target": _("Choose the category to merge into.")})
        if target.pk in affected:
            raise ValidationError(
                {"target": _("A category cannot be merged into itself or one of its children.")}
            )
        for child in [pk for pk, p in parents.items() if p == source.pk]:
            if _sibling_clash(parents, codes, target.pk, codes[child], {child}):
                raise ValidationError(
                    {"target": _("“%(target)s” already has a child with the code “%(code)s”.")
                     % {"target": target.name, "code": codes[child]}}
                )  # fmt: skip
            parents[child] = target.pk
        moved_to[source.pk] = target.pk
    else:
        if not new_name and not new_code:
            raise ValidationError({"new_name": _("Give a new name or a new code.")})
        if new_code:
            try:
                code_validator(new_code)
            except ValidationError as exc:
                raise ValidationError({"new_code": exc.messages}) from exc
            if new_code != codes[source.pk] and _sibling_clash(
                parents, codes, parents[source.pk], new_code, {source.pk}
            ):
                raise ValidationError({"new_code": _("A sibling category already has this code.")})
            codes[source.pk] = new_code
        if new_name:
            names[source.pk] = new_name
    tags = (
        Tag.objects.filter(category_id__in=affected)
        .exclude(status=TagStatus.RETIRED)
        .select_related("brand", "business_line", "category")
        .order_by("brand__code", "code")
    )
    cache: dict = {}
    result = Preview(operation, source, target, new_name, new_code)
    taken: dict[int, set[str]] = {}
    for tag in tags:
        old_rule = _rule(old_parents, rules, tag.category_id, cache)
        category = moved_to.get(tag.category_id, tag.category_id)
        new_rule = _rule(parents, rules, category, cache)
        context = naming.CodeContext(
            business_line=tag.business_line.code, brand=tag.brand.code, domain=codes[category]
        )
        name_part = _name_part(tag, old_rule)
        code = new_rule.build(context, name_part) if new_rule else name_part
        code = code[: new_rule.max_length if new_rule else 64].rstrip("_")
        if code == tag.code and category == tag.category_id:
            continue
        result.rows.append(
            {
                "tag": tag,
                "old_code": tag.code,
                "new_code": code,
                "old_category": _path(old_parents, {**names, source.pk: source.name}, tag.category_id)
                if old_codes
                else "",
                "new_category": _path(parents, names, category),
                "category_id": category,
            }
        )
        taken.setdefault(tag.brand_id, set())
    recoded = {row["tag"].pk for row in result.rows}
    for row in result.rows:
        tag = row["tag"]
        if row["new_code"] == tag.code:
            continue
        clash = (
            Tag.objects.filter(brand_id=tag.brand_id, code=row["new_code"]).exclude(pk__in=recoded).exists()
        )
        clash = clash or TagAlias.objects.filter(brand_id=tag.brand_id, code=row["new_code"]).exists()
        if clash or row["new_code"] in taken[tag.brand_id]:
            raise ValidationError(
                {"target": _("The new code “%(code)s” of “%(tag)s” is already used in its brand.")
                 % {"code": row["new_code"], "tag": tag.name}}
            )  # fmt: skip
        taken[tag.brand_id].add(row["new_code"])
    return result


@transaction.atomic
def carry_out(result: Preview, user=None, reason: str = "", publish=None) -> list[TagAlias]:
    """Apply a :func:`preview` (all of it or nothing): the category tree changes, the
    tags are recoded and moved, and each old code becomes an alias of its tag.
    ``publish(tag, changes)`` writes a published tag's changes as a new version."""
    from . import services

    source = Category.objects.select_for_update().get(pk=result.source.pk)
    if result.operation == "move":
        source.parent = result.target
    elif result.operation == "rename":
        if result.new_name:
            source.name = result.new_name
        if result.new_code:
            source.code = result.new_code
    if result.operation != "merge":
        source._change_reason = reason
        source.full_clean()
        source.save()
    else:
        Category.objects.filter(parent=source).update(parent=result.target)
    aliases = []
    for row in result.rows:
        tag = Tag.objects.select_for_update().get(pk=row["tag"].pk)
        changes = {}
        if row["new_code"] != tag.code:
            changes["code"] = row["new_code"]
        if row["category_id"] != tag.category_id:
            changes["category"] = row["category_id"]
        old = tag.code
        if tag.status in (TagStatus.PUBLISHED, TagStatus.DEPRECATED) and tag.published_version:
            (publish or services.apply_changes)(tag, changes, user=user, reason=reason)
            if tag.status == TagStatus.DEPRECATED:  # apply_changes publishes: keep it deprecated
                services.set_status(tag, TagStatus.DEPRECATED, user=user, reason=reason)
        else:
            services._write(None, tag, reason=reason, **services._resolve(changes))
        if "code" in changes:
            TagAlias.objects.filter(brand_id=tag.brand_id, code=changes["code"]).delete()
            alias, _created = TagAlias.objects.update_or_create(
                brand_id=tag.brand_id, code=old, defaults={"source": tag, "target": tag, "reason": reason}
            )
            aliases.append(alias)
    if result.operation == "merge":
        # retired tags are not recoded, but follow their category
        Tag.objects.filter(category=source).update(category=result.target)
        source.delete()
    return aliases


def resolve_aliases(brand_id: int, codes) -> dict[str, str]:
    """``{old code: current code}`` for the ``codes`` of a brand that no tag has but an
    alias keeps (codes of merged or recoded tags)."""
    codes = set(codes)
    if not codes:
        return {}
    present = set(
        Tag.objects.filter(brand_id=brand_id, code__in=codes)
        .exclude(status=TagStatus.RETIRED)
        .values_list("code", flat=True)
    )
    missing = codes - present
    if not missing:
        return {}
    rows = TagAlias.objects.filter(brand_id=brand_id, code__in=missing).values_list("code", "target__code")
    return dict(rows)


def current_references(brand_id: int, definition):
    """``definition`` reading the current codes of the tags it names by an old code (a
    code an alias keeps after a restructure or a merge), and the ``{old: current}``
    codes replaced. The stored definition is not changed: this is how a rule naming an
    old code is read by the engine and the validators."""
    codes = resolve_aliases(brand_id, tag_references(definition)) if brand_id else {}
    return (renamed_tag_references(definition, codes) if codes else definition), codes
