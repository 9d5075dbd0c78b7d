"""REST API of the model registry: models (list, read, create, edit; scoped by the
brand grants: another brand's model answers 404), ``POST models/{id}/run/`` (202: the
run is queued), ``POST models/{id}/scores/`` (a score file model's upload),
``POST models/{id}/test-endpoint/`` (a scoring endpoint's connection test), and runs
(read-only, without the artefact's bytes). A scoring endpoint's secret is write-only:
models answer ``secret_set``."""

from __future__ import annotations

import django_filters
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from tagportal.core.api import RestrictedModelViewSet, RestrictedReadOnlyViewSet
from tagportal.core.filters import FilterSet
from tagportal.core.permissions import may_add_into
from tagportal.profiles import lookups

from .. import byom, services
from ..choices import ModelKind, ModelRunStatus
from ..models import ModelRun, PredictiveModel
from .serializers import (
    EndpointTestSerializer,
    ModelRunSerializer,
    PredictiveModelSerializer,
    PredictiveModelUpdateSerializer,
    RunRequestSerializer,
    ScoreFileUploadSerializer,
    ScoreUploadSerializer,
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
    action_permissions = {"run": "change", "scores": "change", "test_endpoint": "change"}

    def get_throttles(self):
        throttles = super().get_throttles()
        if self.action == "scores" and _identity_keyed(self.request):
            throttles.append(lookups.LookupThrottle())
        return throttles

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
        if model.kind == ModelKind.SCORE_FILE:
            raise ValidationError({"detail": _("A score file model is filled by uploading a score file.")})
        services.request_run(model, payload.validated_data.get("as_of"))
        return Response(
            {"detail": _("The run is queued."), "model": model.pk}, status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(
        request={"multipart/form-data": ScoreFileUploadSerializer},
        responses={
            201: OpenApiResponse(ScoreUploadSerializer, description=gettext_lazy("The scores are written.")),
            400: OpenApiResponse(
                ScoreUploadSerializer,
                description=gettext_lazy(
                    "The file is refused (too big, not CSV or Parquet) or has bad rows: nothing is written."
                ),
            ),
        },
    )
    @action(
        detail=True, methods=["post"], parser_classes=[MultiPartParser, FormParser], throttle_scope="import"
    )
    def scores(self, request, pk=None):
        """Upload a score file to a score file model: ``oneid,score`` or ``<identity
        type>,score`` rows (CSV or Parquet, within the upload limits). All or nothing: one
        bad row (a malformed id, a score that is not a finite number or is outside the
        model's range, a person given twice) writes nothing and answers 400 with the rows
        at fault; a good file writes the model's ``score`` and ``level`` tags (201). Rows
        of people the brand does not know are counted, not errors. A file keyed by an
        identity type is a lookup by identity value: it needs that permission (403), is
        throttled and recorded. Every upload is recorded as a run of the model."""
        model = self.get_object()
        if not request.user.has_perm("predictive.run_predictivemodel"):
            raise PermissionDenied(_("You may not run algorithm models."))
        if model.kind != ModelKind.SCORE_FILE:
            raise ValidationError({"detail": _("Scores are uploaded to a score file model only.")})
        upload = request.FILES.get("file")
        if upload is None:
            raise ValidationError({"file": [_("Upload a CSV or Parquet file.")]})
        id_column = str(request.data.get("id_column") or byom.ONEID).strip()
        try:
            run = services.upload_scores(
                model, upload, user=request.user, id_column=id_column, app=str(request.data.get("app") or "")
            )
        except services.ByomRefused as exc:
            raise ValidationError({"detail": exc.message}) from exc
        answer = ScoreUploadSerializer.of(run)
        code = (
            status.HTTP_201_CREATED if run.status == ModelRunStatus.PUBLISHED else status.HTTP_400_BAD_REQUEST
        )
        return Response(answer, status=code)

    @extend_schema(
        request=None,
        responses={200: EndpointTestSerializer},
        description=gettext_lazy(
            "Post one tiny signed batch to a scoring endpoint model's URL, without retries, and "
            "answer what happened (200 whether or not the endpoint answered well: see ok). "
            "The scoring contract: TagPortal posts the request body below (JSON) with the headers "
            "X-TagPortal-Timestamp (Unix seconds) and X-TagPortal-Signature "
            "(sha256=<hex HMAC-SHA256(secret, timestamp + '.' + raw body)>); the endpoint answers "
            "200 with the response body below, one finite score per person of the batch, and 401 "
            "to a wrong signature or a timestamp more than 300 s off. A run posts every person "
            "active in the model's window in batches of batch_size, retrying connection errors, "
            "timeouts, 429 and 5xx; it publishes only when every person is scored."
        ),
    )
    @action(detail=True, methods=["post"], url_path="test-endpoint")
    def test_endpoint(self, request, pk=None):
        model = self.get_object()
        if not request.user.has_perm("predictive.run_predictivemodel"):
            raise PermissionDenied(_("You may not run algorithm models."))
        try:
            answer = services.test_endpoint(model)
        except services.ByomRefused as exc:
            raise ValidationError({"detail": exc.message}) from exc
        return Response(EndpointTestSerializer(answer).data)


class ModelRunViewSet(RestrictedReadOnlyViewSet):
    """Runs of the models, newest first: window, features, fitted parameters, metrics,
    chart data and the artefact's SHA-256."""

    queryset = ModelRun.objects.select_related("model__brand").defer("artefact")
    serializer_class = ModelRunSerializer
    filterset_class = ModelRunFilterSet
    ordering_fields = ["started_at", "duration_s", "key_metric"]
    ordering = ["-started_at", "-pk"]


def _identity_keyed(request) -> bool:
    """Whether an upload names an identity column (a lookup by identity value)."""
    try:
        value = request.data.get("id_column")
    except Exception:  # an unparsable body is refused by the action itself
        return False
    return bool(value) and str(value).strip() != byom.ONEID
