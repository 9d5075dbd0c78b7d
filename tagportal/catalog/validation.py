"""Validation of a tag as a whole: naming rule, values, definition. Used by model
``clean()``, so the admin form, the API serializers and the services agree."""

from __future__ import annotations

import itertools
import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from tagportal.rules.definitions import RuleValidationError, tag_references, validate_definition

from .choices import TagKind, TagStatus, ValueType

VALUE_CODE_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")
VALUE_KEYS = {"code", "label", "label_en", "description", "min", "max"}


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def values_errors(values, value_type: str) -> list[str]:
    """Problems with a tag's ``values`` list for its value type (empty when fine)."""
    if not isinstance(values, list):
        return [_("Values must be a list of {code, label} objects.")]
    errors: list[str] = []
    if value_type == ValueType.ENUM and not values:
        errors.append(_("An enumeration needs at least one value."))
    seen: set[str] = set()
    for i, item in enumerate(values, start=1):
        if not isinstance(item, dict):
            errors.append(_("Value %(n)s: expected an object with a code and a label.") % {"n": i})
            continue
        unknown = set(item) - VALUE_KEYS
        if unknown:
            errors.append(
                _("Value %(n)s: unknown key(s) %(keys)s.") % {"n": i, "keys": ", ".join(sorted(unknown))}
            )
        code, label = item.get("code"), item.get("label")
        if not isinstance(code, str) or not VALUE_CODE_RE.match(code):
            errors.append(
                _("Value %(n)s: the code %(code)r must be lower-case letters, digits and underscores.")
                % {"n": i, "code": code}
            )
        elif code in seen:
            errors.append(_("Value %(n)s: the code %(code)r is used twice.") % {"n": i, "code": code})
        else:
            seen.add(code)
        if not isinstance(label, str) or not label.strip():
            errors.append(_("Value %(n)s: a label is required.") % {"n": i})
        has_bounds = "min" in item or "max" in item
        if value_type == ValueType.NUMBER:
            low, high = item.get("min"), item.get("max")
            if (low is not None and not _number(low)) or (high is not None and not _number(high)):
                errors.append(_("Value %(n)s: bucket bounds must be numbers.") % {"n": i})
            elif low is None and high is None:
                errors.append(_("Value %(n)s: a number bucket needs a min, a max or both.") % {"n": i})
            elif low is not None and high is not None and low >= high:
                errors.append(_("Value %(n)s: min must be less than max.") % {"n": i})
        elif has_bounds and value_type != ValueType.NUMBER:
            errors.append(_("Value %(n)s: only number tags have bucket bounds.") % {"n": i})
    if value_type == ValueType.BOOLEAN and seen - {"true", "false"}:
        errors.append(_("A yes/no tag may only label the values “true” and “false”."))
    if value_type == ValueType.NUMBER and not errors:
        bounds = [(v.get("min"), v.get("max")) for v in values]
        for (_low_a, high_a), (low_b, _high_b) in itertools.pairwise(bounds):
            if high_a is None or low_b is None or low_b < high_a:
                errors.append(_("Number buckets must be in ascending order and must not overlap."))
                break
    return errors


def _aliases(brand_id, definition, brand_tags) -> dict[str, str]:
    """``{old code: current code}`` of the tags ``definition`` names by a code that no
    tag of the brand has but an alias keeps."""
    from .restructure import resolve_aliases

    unknown = tag_references(definition) - set(brand_tags)
    return resolve_aliases(brand_id, unknown) if brand_id and unknown else {}


def _reading_cycle(tag, reads: set[str]) -> list[str] | None:
    """A path of codes from ``tag`` back to itself through the tags it reads, if any."""
    from .models import Tag

    if not reads or not tag.brand_id or not tag.code:
        return None
    definitions = dict(
        Tag.objects.filter(brand_id=tag.brand_id).exclude(pk=tag.pk).values_list("code", "definition")
    )
    edges = {code: tag_references(definition) for code, definition in definitions.items()}
    edges[tag.code] = set(reads)
    path, seen = [tag.code], set()

    def visit(code) -> bool:
        for nxt in sorted(edges.get(code, ())):
            if nxt == tag.code:
                path.append(nxt)
                return True
            if nxt in seen or nxt not in edges:
                continue
            seen.add(nxt)
            path.append(nxt)
            if visit(nxt):
                return True
            path.pop()
        return False

    return path if visit(tag.code) else None


def validate_tag(tag) -> None:
    """Raise ``ValidationError`` (keyed by field) if the tag is not acceptable."""
    from .models import Tag

    errors: dict[str, list[str]] = {}

    def add(field, message):
        errors.setdefault(field, []).append(message)

    if tag.brand_id and tag.business_line_id and tag.brand.business_line_id != tag.business_line_id:
        add(
            "brand",
            _("The brand “%(brand)s” is not in the business line “%(bl)s”.")
            % {"brand": tag.brand, "bl": tag.business_line},
        )

    if tag.value_type not in ValueType.values:
        add(
            "value_type",
            _("Unknown value type %(value)r; expected one of %(choices)s.")
            % {"value": tag.value_type, "choices": ", ".join(ValueType.values)},
        )
    else:
        for message in values_errors(tag.values, tag.value_type):
            add("values", message)

    if tag.category_id and tag.brand_id and tag.code:
        rule = tag.category.effective_naming_rule()
        if rule is not None:
            message = rule.violation(tag.code, tag.code_context())
            if message:
                add("code", message)

    definition = tag.definition
    if tag.kind == TagKind.MANUAL and not definition:
        tag.definition = definition = {"type": "manual"}
    if not definition:
        if tag.status not in (TagStatus.DRAFT, TagStatus.IN_REVIEW, "", None):
            add("definition", _("A published tag needs a definition (a rule document)."))
    elif "value_type" not in errors and "values" not in errors:
        brand_tags = {}
        if tag.brand_id:
            brand_tags = dict(
                Tag.objects.filter(brand_id=tag.brand_id).exclude(pk=tag.pk).values_list("code", "value_type")
            )

        # a tag named by an old code (kept as an alias by a restructure or a merge) is read
        # as the tag the code now belongs to
        aliases = _aliases(tag.brand_id, definition, brand_tags)

        def known_tag(code):
            if code == tag.code:
                return None
            return brand_tags.get(code) or brand_tags.get(aliases.get(code))

        try:
            info = validate_definition(
                definition,
                value_type=tag.value_type,
                value_codes=tag.value_codes() if tag.value_type == ValueType.ENUM else None,
                known_tag=known_tag,
            )
        except RuleValidationError as exc:
            for error in exc.errors:
                add("definition", str(error))
        else:
            if tag.kind == TagKind.COMPOSITE and not info.tags:
                add("definition", _("A composite tag must read at least one other tag."))
            cycle = _reading_cycle(tag, {aliases.get(code, code) for code in info.tags})
            if cycle:
                add(
                    "definition",
                    _("Tags would read each other in a circle: %(path)s.") % {"path": " → ".join(cycle)},
                )
            if tag.kind == TagKind.MANUAL and definition.get("type") != "manual":
                add("definition", _('A manual tag\'s definition is {"type": "manual"}.'))
    if errors:
        raise ValidationError(errors)
