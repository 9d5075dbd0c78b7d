"""Readable, field-by-field differences of a tag, one shape for both kinds:

- between two records of its history (every edit, django-simple-history):
  :func:`compare_records`, :func:`changed_field_names`; which fields differ is
  simple-history's :meth:`~simple_history.models.HistoricalChanges.diff_against`;
- between two snapshots of it (what a published version froze, what a change request
  proposes): :func:`snapshot_changes`.

Each difference is a :class:`FieldChange` with the old and new values as text and, for
values that span lines (a rule definition), a line diff:

>>> FieldChange.between("unit", "unit", display(""), display("次"), True).as_dict()
{'field': 'unit', 'label': 'unit', 'old': '—', 'new': '次', 'changed': True}
>>> line_diff("a\\nb", "a\\nc")
[(' ', 'a'), ('-', 'b'), ('+', 'c')]
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field

from django.db import models
from django.utils.translation import gettext as _

from tagportal.core.days import beijing_text

SKIPPED_FIELDS = {"id", "created", "last_updated"}
#: How a missing or empty value reads.
EMPTY = "—"
#: Keys of a snapshot that another key shows better (the category by its path).
SNAPSHOT_SHOWN_BY = {"category_id": "category", "category_path": "category"}


@dataclass
class FieldChange:
    name: str
    label: str
    old: str
    new: str
    changed: bool
    lines: list[tuple[str, str]] = field(default_factory=list)  # (" "|"-"|"+", text) for long values

    @classmethod
    def between(cls, name: str, label: str, old: str, new: str, changed: bool) -> FieldChange:
        """The change of one field from the text ``old`` to ``new``, line by line when
        either spans lines."""
        lines = line_diff(old, new) if changed and ("\n" in old or "\n" in new) else []
        return cls(name, label, old, new, changed, lines)

    def as_dict(self, with_changed: bool = True) -> dict:
        """The change as plain data: ``with_changed=False`` leaves out the flag (for lists
        of changes only, such as a change request's diff)."""
        data = {"field": self.name, "label": self.label, "old": self.old, "new": self.new}
        if with_changed:
            data["changed"] = self.changed
        if self.lines:
            data["lines"] = [{"op": op, "text": text} for op, text in self.lines]
        return data


def display(value) -> str:
    """A plain value as text: :data:`EMPTY` for nothing, indented JSON (keys sorted) for
    objects and lists, else the value itself."""
    if value is None or value == "" or value == []:
        return EMPTY
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)
    return str(value)


def line_diff(old: str, new: str) -> list[tuple[str, str]]:
    """``(" "|"-"|"+", line)`` pairs turning ``old`` into ``new``, line by line."""
    lines = []
    for line in difflib.ndiff(old.splitlines(), new.splitlines()):
        op, text = line[:1], line[2:]
        if op in (" ", "-", "+"):
            lines.append((op, text))
    return lines


# ---------------------------------------------------------------------------
# History records


def _tracked_fields(model) -> list[models.Field]:
    return [f for f in model._meta.concrete_fields if f.editable and f.name not in SKIPPED_FIELDS]


def _m2m_fields(model) -> list[models.ManyToManyField]:
    return [model._meta.get_field(name) for name in getattr(model, "_history_m2m_fields", [])]


def _delta(old, new):
    """simple-history's diff of two records of one object, over the tracked fields."""
    model = new.instance_type
    names = [f.name for f in _tracked_fields(model)] + [f.name for f in _m2m_fields(model)]
    return new.diff_against(old, included_fields=names)


def _field_text(field_obj, value, names: dict) -> str:
    """A field's value as text: related objects by name, choices by label."""
    if value is None or value == "":
        return EMPTY
    if field_obj.is_relation:
        return names.get((field_obj.related_model, value), f"#{value}")
    if field_obj.choices:
        return str(dict(field_obj.flatchoices).get(value, value))
    if isinstance(field_obj, models.BooleanField):
        return _("yes") if value else _("no")
    if isinstance(field_obj, models.DateTimeField):
        return beijing_text(value)  # in Beijing time, to the minute
    return display(value)


def _related_ids(m2m_field, rows) -> list[int]:
    """The related objects' ids in the through rows that ``diff_against`` reports."""
    return sorted(row[m2m_field.m2m_reverse_field_name()] for row in rows)


def compare_records(old, new) -> list[FieldChange]:
    """Every tracked field of two historical records of one object, changed or not, in
    the model's order (many-to-many fields last)."""
    model = new.instance_type
    fields = _tracked_fields(model)
    delta = {change.field: change for change in _delta(old, new).changes}
    m2m = {}
    for m2m_field in _m2m_fields(model):
        if m2m_field.name in delta:
            change = delta[m2m_field.name]
            m2m[m2m_field] = (_related_ids(m2m_field, change.old), _related_ids(m2m_field, change.new))
        else:
            same = sorted(
                getattr(new, m2m_field.name).values_list(m2m_field.m2m_reverse_field_name(), flat=True)
            )
            m2m[m2m_field] = (same, same)

    # Name related objects with one query per related model.
    wanted: dict[type, set] = {}
    for f in fields:
        if f.is_relation:
            for record in (old, new):
                if getattr(record, f.attname) is not None:
                    wanted.setdefault(f.related_model, set()).add(getattr(record, f.attname))
    for m2m_field, (old_ids, new_ids) in m2m.items():
        wanted.setdefault(m2m_field.related_model, set()).update(old_ids + new_ids)
    names = {
        (related, obj.pk): str(obj)
        for related, pks in wanted.items()
        for obj in related._default_manager.filter(pk__in=pks)
    }

    changes = []
    for f in fields:
        old_text = _field_text(f, getattr(old, f.attname), names)
        new_text = _field_text(f, getattr(new, f.attname), names)
        changes.append(FieldChange.between(f.name, str(f.verbose_name), old_text, new_text, f.name in delta))
    for m2m_field, (old_ids, new_ids) in m2m.items():
        related = m2m_field.related_model

        def text(ids, related=related):
            return ", ".join(names.get((related, pk), f"#{pk}") for pk in ids) or EMPTY

        changes.append(
            FieldChange.between(
                m2m_field.name,
                str(m2m_field.verbose_name),
                text(old_ids),
                text(new_ids),
                m2m_field.name in delta,
            )
        )
    return changes


def changed_field_names(old, new) -> list[str]:
    """The names of the fields that differ between two historical records of one object,
    in the model's order; none when there is no older record (a creation)."""
    if old is None:
        return []
    changed = set(_delta(old, new).changed_fields)
    model = new.instance_type
    return [f.name for f in [*_tracked_fields(model), *_m2m_fields(model)] if f.name in changed]


# ---------------------------------------------------------------------------
# Snapshots


def snapshot_changes(before: dict, after: dict, label=None) -> list[FieldChange]:
    """The keys that differ between two snapshots of a tag (see
    :func:`~tagportal.catalog.services.tag_snapshot`), ``after``'s keys first: the
    category by its path, long values line by line. ``label(key)`` names a key (by
    default the key itself)."""
    keys = [k for k in after if k not in SNAPSHOT_SHOWN_BY]
    keys += [k for k in before if k not in after and k not in SNAPSHOT_SHOWN_BY]
    changes = []
    for key in keys:
        old, new = before.get(key), after.get(key)
        if key == "category":
            old, new = before.get("category_path", old), after.get("category_path", new)
        if old != new:
            changes.append(
                FieldChange.between(key, label(key) if label else key, display(old), display(new), True)
            )
    return changes


# ---------------------------------------------------------------------------
# Published versions in the history


#: Fields a publication, a re-certification or a status change sets: not what a tag says.
LIFECYCLE_FIELDS = {"status", "published_version", "certified_at", "certified_by"}


def content_changed(old, new) -> list[str]:
    """The fields of what the tag says (not its lifecycle) that differ between two
    historical records."""
    return [name for name in changed_field_names(old, new) if name not in LIFECYCLE_FIELDS]


def version_records(records) -> dict[int, object]:
    """``{version number: the history record of its publication}`` from a tag's records in
    order, oldest first: the first record carrying each published version number."""
    found: dict[int, object] = {}
    for record in records:
        if record.published_version and record.published_version not in found:
            found[record.published_version] = record
    return found


def default_pair(records) -> tuple | None:
    """The two records a comparison opens on, from a tag's records oldest first: the last
    two published versions that differ in what the tag says (two records of one approval
    never), else the last two records that do; ``None`` with fewer than two records."""
    records = list(records)
    if len(records) < 2:
        return None
    published = list(version_records(records).values())
    for candidates in (published, records):
        for i in range(len(candidates) - 1, 0, -1):
            if content_changed(candidates[i - 1], candidates[i]):
                return candidates[i - 1], candidates[i]
    return records[-2], records[-1]
