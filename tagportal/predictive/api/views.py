"""REST API of the model registry: models (list, read, create, edit; scoped by the
brand grants: another brand's model answers 404), ``POST models/{id}/run/`` (202: the
run is queued), and runs (read-only, without the artefact's bytes)."""

from __future__ import annotations

import django_filters
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from tagportal.core.api import RestrictedModelViewSet, RestrictedReadOnlyViewSet
from tagportal.core.filters import FilterSet
from tagportal.core.permissions import may_add_into

from .. import services
from ..choices import ModelKind, ModelRunStatus
from ..models import ModelRun, PredictiveModel
from .serializers import (
    ModelRunSerializer,
    PredictiveModelSerializer,
    PredictiveModelUpdateSerializer,
    RunRequestSerializer,
)


class PredictiveModelFilterSet(FilterSet):
    brand = django_filters.CharFilter(field_name="brand__code", label=gettext_lazy("brand code"))
    kind = django_filters.ChoiceFilter(choices=ModelKind.choices)
    is_active = django_filters.BooleanFilter()

    class Meta:
        model = PredictiveModel
        fields = []


class ModelRunFilterSet(FilterSet):
    model = django_filters.NumberFilter(field_name="model_id", label=gettext_lazy("model id"))
    brand = django_filters.CharFilter(field_name="model__brand__code", label=gettext_lazy("brand code"))
    status = django_filters.MultipleChoiceFilter(choices=ModelRunStatus.choices)

    class Meta:
        model = ModelRun
        fields = []


class PredictiveModelViewSet(RestrictedModelViewSet):
    """Algorithm models of the brands the caller reaches. Parameters are checked against
    the kind's configuration; ``run`` queues a fit-and-score (202). Models are not
    deleted (their tags and runs stay): deactivate them."""

    queryset = PredictiveModel.objects.select_related("brand", "created_by").prefetch_related("outputs__tag")
    serializer_class = PredictiveModelSerializer
    filterset_class = PredictiveModelFilterSet
    search_fields = ["name"]
    ordering_fields = ["name", "kind", "created", "last_updated"]
    ordering = ["brand__code", "name", "pk"]
    http_method_names = ["get", "post", "patch", "head", "options"]
    action_permissions = {"run": "change"}

    def get_serializer_class(self):
        if self.action in ("update", "partial_update"):
            return PredictiveModelUpdateSerializer
        return super().get_serializer_class()

    def perform_create(self, serializer):
        brand = serializer.validated_data["brand"]
        if not may_add_into(self.request.user, PredictiveModel, brand):
            raise PermissionDenied(_("You may not add models to the brand “%(brand)s”.") % {"brand": brand})
        serializer.save(created_by=self.request.user)

    @extend_schema(
        request=RunRequestSerializer,
        responses={202: OpenApiResponse(description=gettext_lazy("The run is queued."))},
    )
    @action(detail=True, methods=["post"])
    def run(self, request, pk=None):
        """Queue a fit-and-score of the model; its run appears under ``runs``."""
        model = self.get_object()
        if not request.user.has_perm("predictive.run_predictivemodel"):
            raise PermissionDenied(_("You may not run algorithm models."))
        payload = RunRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        services.request_run(model, payload.validated_data.get("as_of"))
        return Response(
            {"detail": _("The run is queued."), "model": model.pk}, status=status.HTTP_202_ACCEPTED
        )


class ModelRunViewSet(RestrictedReadOnlyViewSet):
    """Runs of the models, newest first: window, features, fitted parameters, metrics,
    chart data and the artefact's SHA-256."""

    queryset = ModelRun.objects.select_related("model__brand").defer("artefact")
    serializer_class = ModelRunSerializer
    filterset_class = ModelRunFilterSet
    ordering_fields = ["started_at", "duration_s", "key_metric"]
    ordering = ["-started_at", "-pk"]
