"""Numbers from a query string, bounded: the base filterset of every API list, its
filter backend, and :func:`parse_int` for the numbers a view reads by hand.

A number too large for the database (a 64-bit integer) or for a date sum (days) is
refused with a 400 that says which parameter and the range it takes, never passed on to
the database, where SQLite answers ``OverflowError`` and PostgreSQL an error of its own.
"""

from __future__ import annotations

import decimal

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext as _
from django_filters import rest_framework as drf_filters

#: What a signed 64-bit integer (a database id, BIGINT) holds.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: The most days a "waiting at least N days" or "in the last N days" filter takes (a
#: century), far within what a date sum holds.
MAX_DAYS = 36_525


def out_of_range(value) -> bool:
    """Whether a cleaned filter value is a number no database column holds."""
    if isinstance(value, bool):
        return False
    if isinstance(value, decimal.Decimal):
        return not value.is_finite() or not INT64_MIN <= value <= INT64_MAX
    if isinstance(value, float):
        return value != value or not INT64_MIN <= value <= INT64_MAX
    if isinstance(value, int):
        return not INT64_MIN <= value <= INT64_MAX
    if isinstance(value, list | tuple | set | frozenset):
        return any(out_of_range(v) for v in value)
    if isinstance(value, slice):  # a range filter
        return out_of_range(value.start) or out_of_range(value.stop)
    return False


def range_message(low: int, high: int) -> str:
    return _("Give a whole number from %(min)s to %(max)s.") % {"min": low, "max": high}


class IntegerFilter(django_filters.NumberFilter):
    """A whole number within ``min_value``..``max_value`` (a 64-bit integer by default):
    ``1.5``, ``1e309`` and ``abc`` are refused as not whole numbers, the rest as out of range."""

    field_class = forms.IntegerField

    def __init__(self, *args, min_value: int = INT64_MIN, max_value: int = INT64_MAX, **kwargs):
        error = range_message(min_value, max_value)
        kwargs.setdefault("error_messages", {"min_value": error, "max_value": error})
        super().__init__(*args, min_value=min_value, max_value=max_value, **kwargs)


class IdFilter(IntegerFilter):
    """An object's id: a positive 64-bit integer."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        super().__init__(*args, **kwargs)


class DaysFilter(IntegerFilter):
    """A number of days, 0 to :data:`MAX_DAYS`, safe to subtract from today."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", MAX_DAYS)
        super().__init__(*args, **kwargs)


class _BoundedForm(forms.Form):
    """Refuses any cleaned number (of a filter declared elsewhere) out of the 64-bit range."""

    def clean(self):
        cleaned = super().clean()
        for name, value in list(cleaned.items()):
            if out_of_range(value):
                self.add_error(name, range_message(INT64_MIN, INT64_MAX))
        return cleaned


FILTER_DEFAULTS = {
    **drf_filters.filterset.FILTER_FOR_DBFIELD_DEFAULTS,
    models.AutoField: {"filter_class": IdFilter},
    models.BigAutoField: {"filter_class": IdFilter},
    models.SmallAutoField: {"filter_class": IdFilter},
    models.IntegerField: {"filter_class": IntegerFilter},
    models.BigIntegerField: {"filter_class": IntegerFilter},
    models.SmallIntegerField: {"filter_class": IntegerFilter},
    models.PositiveIntegerField: {"filter_class": IntegerFilter, "extra": lambda f: {"min_value": 0}},
    models.PositiveBigIntegerField: {"filter_class": IntegerFilter, "extra": lambda f: {"min_value": 0}},
    models.PositiveSmallIntegerField: {"filter_class": IntegerFilter, "extra": lambda f: {"min_value": 0}},
}


class FilterSet(drf_filters.FilterSet):
    """The base of every API filterset: integer model fields filter by bounded whole
    numbers, and any number a filter cleans (a ``NumberFilter`` declared by hand, a
    range) is checked against the 64-bit range, so no query reaches the database with
    a number it cannot hold."""

    FILTER_DEFAULTS = FILTER_DEFAULTS

    def get_form_class(self):
        form_class = super().get_form_class()
        return type(form_class.__name__, (_BoundedForm, form_class), {})


class FilterBackend(drf_filters.DjangoFilterBackend):
    """DRF's filter backend, building a viewset's ``filterset_fields`` on :class:`FilterSet`."""

    filterset_base = FilterSet


def parse_int(
    value, name: str, *, min_value: int = INT64_MIN, max_value: int = INT64_MAX, required: bool = True
) -> int | None:
    """``value`` (a query parameter) as a whole number within the bounds, else a
    :class:`~django.core.exceptions.ValidationError` keyed by ``name`` (a 400 in the API).
    ``None`` for a missing or empty value when not ``required``."""
    text = "" if value is None else str(value).strip()
    if not text:
        if required:
            raise ValidationError({name: _("Give a whole number.")})
        return None
    try:
        number = int(text)
    except ValueError:
        raise ValidationError(
            {name: _("Give a whole number, not %(value)r.") % {"value": text[:40]}}
        ) from None
    if not min_value <= number <= max_value:
        raise ValidationError({name: range_message(min_value, max_value)})
    return number


def id_or_none(value) -> int | None:
    """``value`` (a query parameter) as an object id, or ``None`` when it is not one
    (not a whole number, or too large for any id): for pages, where "no such object"
    is the answer to a number out of range."""
    text = str(value or "").strip()
    if not text.isdigit() or len(text) > 19:
        return None
    number = int(text)
    return number if number <= INT64_MAX else None
