"""Tag variables in a send's content: a text such as ``您的肤质：{{tag:skin_type}}`` is
filled per person with their value of the tag ``skin_type``.

The values are read **once, in bulk, when the send is made** (:func:`values_of`: one
read of the engine's stored results for all the people) and kept on each delivery
(``Delivery.variables``); the adapter fills the content from them just before calling the
platform (:func:`fill`). So a retry sends the same text, and the platform call reads no
tag result. A person without a value gets an empty text. An enum value reads as its
label, a yes/no value as 是/否 (the language of the send's author), a number without a
needless ``.0``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.utils.translation import gettext as _

#: ``{{tag:code}}``, spaces allowed inside the braces.
VARIABLE = re.compile(r"\{\{\s*tag:([A-Za-z0-9_\-.]+)\s*\}\}")


def _texts(content) -> Iterable[str]:
    if isinstance(content, str):
        yield content
    elif isinstance(content, dict):
        for value in content.values():
            yield from _texts(value)
    elif isinstance(content, (list, tuple)):
        for value in content:
            yield from _texts(value)


def codes_in(content) -> list[str]:
    """The tag codes the content's texts name, in order, once each."""
    found: dict[str, None] = {}
    for text in _texts(content):
        for code in VARIABLE.findall(text):
            found.setdefault(code, None)
    return list(found)


def fill(content, values: dict[str, str] | None):
    """``content`` with each ``{{tag:code}}`` replaced by ``values[code]`` (empty if none)."""
    values = values or {}
    if isinstance(content, str):
        return VARIABLE.sub(lambda m: str(values.get(m.group(1), "")), content)
    if isinstance(content, dict):
        return {key: fill(value, values) for key, value in content.items()}
    if isinstance(content, (list, tuple)):
        return [fill(value, values) for value in content]
    return content


def _text(value, labels: dict[str, str]) -> str:
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if value is None:
        return ""
    return labels.get(str(value), str(value))


def values_of(brand, oneids: Iterable[int], codes: list[str]) -> dict[int, dict[str, str]]:
    """``{OneID: {code: text}}`` of the people's current values of the tags ``codes``
    (only people with at least one value are keys)."""
    if not codes:
        return {}
    from tagportal.catalog.models import Tag
    from tagportal.engine.results import values_for

    labels = {
        tag.code: {str(v.get("code")): str(v.get("label") or v.get("code")) for v in (tag.values or [])}
        for tag in Tag.objects.filter(brand=brand, code__in=codes).only("code", "values")
    }
    out: dict[int, dict[str, str]] = {}
    for oneid, tags in values_for(brand, oneids, codes).items():
        texts = {
            code: _text(entry.get("value"), labels.get(code, {}))
            for code, entry in tags.items()
            if "value" in entry
        }
        if texts:
            out[oneid] = texts
    return out
