"""The base of every API resource: scoped querysets, object permissions, errors.

A viewset is a queryset, a serializer and a filterset. As NetBox's
``BaseViewSet.initial`` does, the base viewset narrows its queryset to
``Model.objects.restrict(request.user, action)`` for the action the request needs
(``view`` for GET, ``add`` for POST, ``change`` for PUT and PATCH, ``delete`` for
DELETE, or what a custom action declares in ``action_permissions``). So lists never
show what the caller may not view, and an object the caller may not view answers
404; one they may view but not, say, change answers 403.
"""

from __future__ import annotations

import copy
import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, OperationalError
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import exceptions, serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .api_permissions import request_action

log = logging.getLogger(__name__)


class RestrictedViewSetMixin:
    """Scopes the queryset with the one entry point, ``restrict(user, action)``, for the
    action the request needs (:func:`~tagportal.core.api_permissions.request_action`).

    ``action_permissions`` maps custom actions to the action they need
    (``{"apply": "change"}``); the others need the action of their HTTP method.
    """

    action_permissions: dict[str, str | None] = {}
    #: The action the queryset is restricted by (set once the request is authenticated).
    scope_action: str | None = None
    #: The rate scope (a key of ``DEFAULT_THROTTLE_RATES``) the view is also held to, or
    #: an action's own with ``@action(throttle_scope=…)``; none by default.
    throttle_scope: str | None = None

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication, model permissions, throttling
        self.scope_action = request_action(request, self) or "view"
        self.queryset = self.queryset.restrict(request.user, self.scope_action)

    def get_object(self):
        """The object, or 404 when the caller may not view it, or 403 when they may view
        it but not take the request's action on it."""
        try:
            obj = super().get_object()
        except Http404:
            if self.scope_action != "view" and self._scoped(self._lookup(), "view"):
                raise exceptions.PermissionDenied() from None
            raise
        action = request_action(self.request, self) or "view"
        if action != self.scope_action and not self._scoped({"pk": obj.pk}, action):
            # DRF's OPTIONS metadata asks again as if for a PUT, with a cloned request
            raise exceptions.PermissionDenied()
        return obj

    def _lookup(self) -> dict:
        return {self.lookup_field: self.kwargs.get(self.lookup_url_kwarg or self.lookup_field)}

    def _scoped(self, lookup: dict, action: str) -> bool:
        """Whether the object exists among those the caller may ``action``."""
        try:
            return type(self).queryset.restrict(self.request.user, action).filter(**lookup).exists()
        except (TypeError, ValueError, DjangoValidationError):
            return False


class RestrictedModelViewSet(RestrictedViewSetMixin, viewsets.ModelViewSet):
    pass


class RestrictedReadOnlyViewSet(RestrictedViewSetMixin, viewsets.ReadOnlyModelViewSet):
    pass


class ValidatedModelSerializer(serializers.ModelSerializer):
    """Runs the model's own ``full_clean()`` (field checks, ``clean()``, unique and check
    constraints), so the API refuses exactly what the admin form refuses, with a 400."""

    def validate(self, attrs):
        attrs = super().validate(attrs)
        model = self.Meta.model
        many = {f.name for f in model._meta.many_to_many}
        instance = copy.copy(self.instance) if self.instance is not None else model()
        for name, value in attrs.items():
            if name not in many:
                setattr(instance, name, value)
        instance.full_clean()
        return attrs


class ScopedRelatedField(serializers.SlugRelatedField):
    """A related object by slug, looked up only among those the caller may view,
    so that another brand's object reads as "does not exist"."""

    def get_queryset(self):
        queryset = super().get_queryset()
        request = self.context.get("request")
        if request is not None and hasattr(queryset, "restrict"):
            queryset = queryset.restrict(request.user, "view")
        return queryset


def _messages(error: DjangoValidationError):
    if hasattr(error, "error_dict"):
        return {
            ("non_field_errors" if key == "__all__" else key): [str(m) for m in msgs]
            for key, msgs in error.message_dict.items()
        }
    return {"non_field_errors": [str(m) for m in error.messages]}


#: What a request that waited too long for the database's write lock is told (a 503).
BUSY_MESSAGE = gettext_lazy(
    "The database is busy with another change; nothing was saved. Try again in a few seconds."
)
RETRY_AFTER_SECONDS = 5


def is_database_busy(exc: Exception) -> bool:
    """Whether ``exc`` says the database was locked by another writer for longer than
    the busy timeout (SQLite's "database is locked", PostgreSQL's lock timeout)."""
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text or "lock timeout" in text


def exception_handler(exc, context):
    """DRF's handler, plus clear 4xx answers for Django's own exceptions."""
    from .exceptions import Conflict

    if isinstance(exc, Conflict):
        return Response({"detail": str(exc), **exc.extra}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, DjangoValidationError):
        return Response(_messages(exc), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    if isinstance(exc, ProtectedError | RestrictedError):
        objects = sorted({str(o) for o in list(exc.args[1])[:10]}) if len(exc.args) > 1 else []
        return Response(
            {"detail": _("Still in use; remove or move these first."), "used_by": objects},
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, OverflowError):
        # a number no database column holds, from a parameter no check bounded (the
        # filtersets and :func:`~tagportal.core.filters.parse_int` refuse it earlier)
        log.warning("number out of range on an API request: %s", exc)
        return Response({"detail": _("A number in the request is out of range.")}, status=400)
    if isinstance(exc, OperationalError) and is_database_busy(exc):
        log.warning("database busy on an API request: %s", exc)
        return Response(
            {"detail": str(BUSY_MESSAGE)},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, IntegrityError):
        log.warning("integrity error on API write: %s", exc)
        return Response(
            {"detail": _("The change conflicts with existing data (a duplicate or a broken reference).")},
            status=status.HTTP_409_CONFLICT,
        )
    response = drf_exception_handler(exc, context)
    if response is not None and response.status_code == 400 and isinstance(response.data, list):
        # ValidationError("…") about the request as a whole: the same shape as a serializer's
        response.data = {"non_field_errors": response.data}
    return response
