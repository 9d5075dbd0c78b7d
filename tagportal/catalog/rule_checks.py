"""Checking a draft rule document against a brand's dictionary while it is being
written: the same validation a tag's ``clean()`` runs on its definition (the brand's
tags it may read, the tag's own values), and its text spelling. Nothing is saved."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.utils.translation import gettext as _

from tagportal.rules.definitions import RuleError, RuleValidationError, tag_references, validate_definition
from tagportal.rules.syntax import RuleFormatError, format_definition, parse_definition

from .choices import TagKind, ValueType
from .models import Brand, Tag
from .restructure import resolve_aliases

#: Longest rule text accepted (characters).
MAX_TEXT = 20_000


@dataclass
class CheckedRule:
    definition: dict
    text: str
    reads: list[str]
    fields: list[str]


def value_codes(values) -> list[str]:
    """The codes of a tag's values list (items that are not ``{code: …}`` are skipped)."""
    return [v["code"] for v in values or [] if isinstance(v, dict) and isinstance(v.get("code"), str)]


def check_rule(
    brand: Brand,
    *,
    value_type: str | None,
    values=None,
    definition=None,
    text: str | None = None,
    tag: Tag | None = None,
    kind: str | None = None,
) -> CheckedRule:
    """Validate a rule given as a document or as text (``text`` wins). Raises
    :class:`~tagportal.rules.syntax.RuleSyntaxError` for text that does not parse and
    :class:`~tagportal.rules.definitions.RuleValidationError` (every problem at its path)
    for a document that is not valid for the brand and the tag's value type."""
    if text is not None:
        definition = parse_definition(text)
    others = Tag.objects.filter(brand=brand)
    if tag is not None and tag.pk:
        others = others.exclude(pk=tag.pk)
    brand_tags = dict(others.values_list("code", "value_type"))
    own_code = tag.code if tag is not None else None

    unknown = tag_references(definition) - set(brand_tags) if isinstance(definition, dict) else set()
    aliases = resolve_aliases(brand.pk, unknown) if unknown else {}  # old codes a restructure kept

    def known_tag(code):
        if code == own_code:
            return None
        return brand_tags.get(code) or brand_tags.get(aliases.get(code))

    codes = value_codes(values) if value_type == ValueType.ENUM and values else None
    info = validate_definition(
        definition, value_type=value_type or None, value_codes=codes, known_tag=known_tag
    )
    if kind == TagKind.COMPOSITE and not info.tags:
        raise RuleValidationError([RuleError("", _("A composite tag must read at least one other tag."))])
    if kind == TagKind.MANUAL and definition.get("type") != "manual":
        raise RuleValidationError([RuleError("type", _('A manual tag\'s definition is {"type": "manual"}.'))])
    try:
        spelled = format_definition(definition)
    except RuleFormatError as exc:  # not expected of a valid document; said rather than failed
        raise RuleValidationError([RuleError("", str(exc))]) from exc
    return CheckedRule(
        definition=definition,
        text=spelled,
        reads=sorted(info.tags),
        fields=sorted(f"{source}.{name}" for source, name in info.fields),
    )


def readable_text(definition) -> str:
    """A tag's definition in the text syntax, or its JSON when it cannot be spelled."""
    if not definition:
        return ""
    try:
        return format_definition(definition)
    except (RuleFormatError, ValueError, TypeError, KeyError, AttributeError):
        return json.dumps(definition, ensure_ascii=False, indent=2)
