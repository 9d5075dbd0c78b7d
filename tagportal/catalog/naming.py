"""Naming rules for tag codes, and code suggestions from Chinese names (pinyin)."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from django.utils.translation import gettext as _

from tagportal.core import pinyin

#: A snake_case name part: lower-case ASCII words joined by underscores.
NAME_PART = r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*"
#: The parts a naming pattern may use, and what each stands for.
PATTERN_PARTS = {
    "business_line": "the business line's code",
    "brand": "the brand's code",
    "domain": "the category's code",
    "name": "the tag's own snake_case name",
}
LITERAL_RE = re.compile(r"^[a-z0-9_]*$")
CODE_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class CodeContext:
    """What a pattern's parts are filled with for one tag."""

    business_line: str = ""
    brand: str = ""
    domain: str = ""


def pattern_fields(pattern: str) -> list[tuple[str, str | None]]:
    """``(literal, field)`` pairs of a pattern such as ``{business_line}_{domain}_{name}``."""
    try:
        return [(literal, field) for literal, field, _spec, _conv in string.Formatter().parse(pattern)]
    except ValueError as exc:
        raise ValueError(_("The pattern is malformed: %(error)s") % {"error": exc}) from exc


def pattern_errors(pattern: str) -> list[str]:
    """Why a naming pattern is unusable (an empty list when it is fine)."""
    try:
        parts = pattern_fields(pattern)
    except ValueError as exc:
        return [str(exc)]
    errors = []
    names = [field for _literal, field in parts if field is not None]
    unknown = sorted({f for f in names if f not in PATTERN_PARTS})
    if unknown:
        errors.append(
            _("Unknown part(s) %(parts)s; a pattern may use %(known)s.")
            % {
                "parts": ", ".join(f"{{{u}}}" for u in unknown),
                "known": ", ".join(f"{{{k}}}" for k in PATTERN_PARTS),
            }
        )
    if names.count("name") != 1:
        errors.append(_("A pattern must contain {name} exactly once."))
    for literal, _field in parts:
        if not LITERAL_RE.match(literal):
            errors.append(
                _("Fixed text %(text)r may only use lower-case letters, digits and underscores.")
                % {"text": literal}
            )
    return errors


def pattern_regex(pattern: str, context: CodeContext) -> re.Pattern:
    regex = []
    for literal, field in pattern_fields(pattern):
        regex.append(re.escape(literal))
        if field == "name":
            regex.append(f"(?P<name>{NAME_PART})")
        elif field is not None:
            regex.append(re.escape(getattr(context, field, "") or ""))
    return re.compile("^" + "".join(regex) + "$")


def build_code(pattern: str, context: CodeContext, name: str) -> str:
    values = {"business_line": context.business_line, "brand": context.brand, "domain": context.domain}
    return pattern.format(name=name, **values)


def to_snake(text: str) -> str:
    """A snake_case name from any text: Chinese becomes pinyin without tones,
    other words are lower-cased; everything else separates words.

    >>> to_snake("肤质类型")
    'fu_zhi_lei_xing'
    >>> to_snake("RFM 分层")
    'rfm_fen_ceng'
    """
    chunks = pinyin.syllables(text)
    words: list[str] = []
    for chunk in chunks:
        words.extend(w for w in re.split(r"[^a-z0-9]+", chunk.lower().replace("ü", "v")) if w)
    name = "_".join(words)
    if name and name[0].isdigit():
        name = f"n_{name}"
    return name
