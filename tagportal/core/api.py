"""The base of every API resource: scoped querysets, object permissions, errors.

A viewset is a queryset, a serializer and a filterset. Its queryset is always
``Model.objects.restrict(request.user, "view")``, so lists never show what the
caller may not view and details answer 404 for it; writes also need the object
to be in ``restrict(user, action)`` (403 otherwise).
"""

from __future__ import annotations

import copy
import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import ProtectedError, RestrictedError
from django.utils.translation import gettext as _
from rest_framework import exceptions, serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .api_permissions import METHOD_ACTIONS, RestrictedObjectPermissions, StandardPagination  # noqa: F401

log = logging.getLogger(__name__)


class RestrictedViewSetMixin:
    """Scopes the queryset with the one entry point, ``restrict(user, "view")``."""

    action_permissions: dict[str, str | None] = {}

    def get_queryset(self):
        queryset = super().get_queryset()
        return queryset.restrict(self.request.user, "view")


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
    if isinstance(exc, IntegrityError):
        log.warning("integrity error on API write: %s", exc)
        return Response(
            {"detail": _("The change conflicts with existing data (a duplicate or a broken reference).")},
            status=status.HTTP_409_CONFLICT,
        )
    return drf_exception_handler(exc, context)
