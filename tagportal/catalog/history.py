"""Readable, field-by-field differences between two historical records of an object."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field

from django.db import models
from django.utils import formats, timezone
from django.utils.translation import gettext as _

SKIPPED_FIELDS = {"id", "created", "last_updated"}


@dataclass
class FieldChange:
    name: str
    label: str
    old: str
    new: str
    changed: bool
    lines: list[tuple[str, str]] = field(default_factory=list)  # (" "|"-"|"+", text) for long values

    def as_dict(self) -> dict:
        data = {
            "field": self.name,
            "label": self.label,
            "old": self.old,
            "new": self.new,
            "changed": self.changed,
        }
        if self.lines:
            data["lines"] = [{"op": op, "text": text} for op, text in self.lines]
        return data


def _tracked_fields(model) -> list[models.Field]:
    return [f for f in model._meta.concrete_fields if f.name not in SKIPPED_FIELDS]


def _m2m_fields(model) -> list[str]:
    return list(getattr(model, "_history_m2m_fields", []))


def _display(field_obj, value, names: dict) -> str:
    if value is None or value == "":
        return "—"
    if field_obj.is_relation:
        return names.get((field_obj.related_model, value), f"#{value}")
    if field_obj.choices:
        return str(dict(field_obj.flatchoices).get(value, value))
    if isinstance(field_obj, models.JSONField):
        return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)
    if isinstance(field_obj, models.BooleanField):
        return _("yes") if value else _("no")
    if isinstance(field_obj, models.DateTimeField):
        return formats.localize(timezone.localtime(value))  # shown in Beijing time
    return str(value)


def _m2m_values(record, name) -> list[int]:
    try:
        related = getattr(record, name)
    except AttributeError:
        return []
    related_field = record.instance_type._meta.get_field(name)
    attname = f"{related_field.related_model._meta.model_name}_id"
    return sorted(getattr(row, attname) for row in related.all())


def compare_records(old, new) -> list[FieldChange]:
    """Every tracked field of two historical records (``old`` may be None: a creation)."""
    model = new.instance_type
    fields = _tracked_fields(model)
    # Resolve foreign keys in one query per related model.
    wanted: dict[type, set] = {}
    for f in fields:
        if f.is_relation:
            for record in (old, new):
                value = getattr(record, f.attname) if record is not None else None
                if value is not None:
                    wanted.setdefault(f.related_model, set()).add(value)
    m2m = {}
    for name in _m2m_fields(model):
        rel = model._meta.get_field(name).related_model
        m2m[name] = (_m2m_values(old, name) if old is not None else [], _m2m_values(new, name))
        wanted.setdefault(rel, set()).update(m2m[name][0] + m2m[name][1])
    names = {}
    for rel_model, pks in wanted.items():
        for obj in rel_model._default_manager.filter(pk__in=pks):
            names[(rel_model, obj.pk)] = str(obj)

    changes = []
    for f in fields:
        old_value = getattr(old, f.attname) if old is not None else None
        new_value = getattr(new, f.attname)
        old_text, new_text = _display(f, old_value, names), _display(f, new_value, names)
        change = FieldChange(f.name, str(f.verbose_name), old_text, new_text, old_value != new_value)
        if change.changed and ("\n" in old_text or "\n" in new_text):
            change.lines = line_diff(old_text, new_text)
        changes.append(change)
    for name, (old_pks, new_pks) in m2m.items():
        f = model._meta.get_field(name)
        rel = f.related_model

        def text(pks, rel=rel):
            return ", ".join(names.get((rel, pk), f"#{pk}") for pk in pks) or "—"

        changes.append(
            FieldChange(name, str(f.verbose_name), text(old_pks), text(new_pks), old_pks != new_pks)
        )
    return changes


def line_diff(old: str, new: str) -> list[tuple[str, str]]:
    """``(" "|"-"|"+", line)`` pairs turning ``old`` into ``new``, line by line."""
    lines = []
    for line in difflib.ndiff(old.splitlines(), new.splitlines()):
        op, text = line[:1], line[2:]
        if op in (" ", "-", "+"):
            lines.append((op, text))
    return lines


def changed_field_names(old, new) -> list[str]:
    """The names of the fields that differ (raw values, no lookups)."""
    if old is None:
        return []
    model = new.instance_type
    names = [f.name for f in _tracked_fields(model) if getattr(old, f.attname) != getattr(new, f.attname)]
    for name in _m2m_fields(model):
        if _m2m_values(old, name) != _m2m_values(new, name):
            names.append(name)
    return names
