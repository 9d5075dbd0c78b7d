"""Exceptions shared by the apps, and :func:`error_text`: what a page tells a user about
an action refused with one of them."""

from __future__ import annotations

from functools import singledispatch

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _


class Conflict(Exception):
    """The request is valid but clashes with the object's current state (HTTP 409).

    ``extra`` is added to the API answer (e.g. the dependents that need confirming).
    """

    def __init__(self, message: str, **extra):
        super().__init__(message)
        self.extra = extra


def conflict_text(exc: Conflict) -> str:
    """The conflict's message with what it carries: the dependents to confirm, the versions."""
    parts = [str(exc)]
    for code, rows in (exc.extra.get("dependents") or {}).items():
        names = ", ".join(f"{row.get('name', '')} ({row.get('code', '')})" for row in rows)
        parts.append(_("Read by %(tags)s → %(code)s.") % {"tags": names, "code": code})
    if exc.extra.get("base_version") is not None:
        parts.append(
            _("Based on version %(base)s; the published version is now %(current)s.")
            % {"base": exc.extra["base_version"], "current": exc.extra.get("current_version")}
        )
    return " ".join(parts)


@singledispatch
def error_text(exc: Exception) -> str:
    """What to tell a user about an action refused with ``exc``, in one line: the
    messages of a ``ValidationError``, a :class:`Conflict` with what it carries, else the
    exception's message (“You may not do this.” if it has none).

    An app whose exception needs other words registers them (``@error_text.register``),
    as the rule language does for its validation errors.
    """
    return str(exc) or _("You may not do this.")


@error_text.register
def _validation_text(exc: ValidationError) -> str:
    return " ".join(str(message) for message in exc.messages)


@error_text.register
def _conflict_text(exc: Conflict) -> str:
    return conflict_text(exc)
