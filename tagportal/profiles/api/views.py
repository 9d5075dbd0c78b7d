"""REST API of profiles: customers (with their identities, masked unless the caller
holds ``core.view_pii``), a lookup by identity (its own permission, throttled and
recorded: see :mod:`..lookups`), OneID merges (and their split), import jobs, and the
bulk import endpoint. Everything is scoped by brand through ``restrict``; another
brand's objects answer 404."""

from __future__ import annotations

import django_filters
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from tagportal.core.api import RestrictedReadOnlyViewSet
from tagportal.core.filters import FilterSet, IntegerFilter

from .. import imports, lookups, services
from ..choices import IdentityType, LookupEndpoint
from ..models import MAX_ONEID, Customer, ImportJob, MergeRecord
from .serializers import (
    CustomerSerializer,
    ImportJobSerializer,
    ImportRefusedSerializer,
    ImportRequestSerializer,
    MergeRecordSerializer,
    SplitSerializer,
)

TRUE_VALUES = ("1", "true", "yes", "on")


class OneIdFilter(IntegerFilter):
    """A OneID: a whole number from 1 that fits a 64-bit integer (else 400, not a database error)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, min_value=1, max_value=MAX_ONEID, **kwargs)


class CustomerFilterSet(FilterSet):
    brand = django_filters.CharFilter(field_name="brand__code", label=gettext_lazy("brand code"))
    oneid = OneIdFilter()
    include_merged = django_filters.BooleanFilter(
        method="filter_include_merged", label=gettext_lazy("also list people merged into others")
    )

    class Meta:
        model = Customer
        fields = ["oneid"]

    def filter_include_merged(self, queryset, name, value):
        return queryset  # applied by the viewset (lists only)


class MergeRecordFilterSet(FilterSet):
    brand = django_filters.CharFilter(field_name="brand__code")
    oneid = OneIdFilter(method="filter_oneid", label=gettext_lazy("kept or merged OneID"))
    undone = django_filters.BooleanFilter(field_name="undone_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = MergeRecord
        fields = ["rule"]

    def filter_oneid(self, queryset, name, value):
        return queryset.filter(kept_oneid=value) | queryset.filter(merged_oneid=value)


class ImportJobFilterSet(FilterSet):
    brand = django_filters.CharFilter(field_name="brand__code")

    class Meta:
        model = ImportJob
        fields = ["kind", "status"]


LOOKUP_PARAMETERS = [
    OpenApiParameter("type", OpenApiTypes.STR, enum=IdentityType.values, required=True),
    OpenApiParameter("value", OpenApiTypes.STR, required=True, description="the identifier in clear"),
    OpenApiParameter("app", OpenApiTypes.STR, description="the WeChat appid of an openid"),
    OpenApiParameter("brand", OpenApiTypes.STR, description="brand code"),
]


class CustomerViewSet(RestrictedReadOnlyViewSet):
    """People (OneIDs) of the brands the caller may view. People merged into another
    one are left out of lists unless ``include_merged=true``. Identity values are
    masked unless the caller holds the PII permission; phones are never in clear."""

    queryset = Customer.objects.select_related("brand", "merged_into").prefetch_related("identities")
    serializer_class = CustomerSerializer
    filterset_class = CustomerFilterSet
    ordering_fields = ["oneid", "created", "last_updated"]
    ordering = ["brand__code", "oneid"]

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action == "list":
            if str(self.request.query_params.get("include_merged", "")).lower() not in TRUE_VALUES:
                queryset = queryset.filter(merged_into__isnull=True)
        return queryset

    def get_throttles(self):
        if self.action == "lookup":
            return [*super().get_throttles(), lookups.LookupThrottle()]
        return super().get_throttles()

    @extend_schema(
        parameters=LOOKUP_PARAMETERS,
        responses={200: CustomerSerializer, 403: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT},
    )
    @action(detail=False, methods=["get"])
    def lookup(self, request):
        """The person holding an identity (compared by its keyed hash). Needs the
        permission to look people up by identity value (403 without it, whatever the
        value); throttled per user and recorded (who, how many, found or not)."""
        params = request.query_params
        lookups.check(request.user, LookupEndpoint.CUSTOMER_LOOKUP, 1)
        queryset = self.get_queryset()
        if params.get("brand"):
            queryset = queryset.filter(brand__code=params["brand"])
        customer = services.lookup_customer(
            queryset, params.get("type", ""), params.get("value", ""), params.get("app", "")
        )
        lookups.record(
            request.user,
            LookupEndpoint.CUSTOMER_LOOKUP,
            1,
            found=int(customer is not None),
            brand=customer.brand if customer is not None else None,
        )
        if customer is None:
            raise NotFound(_("Nobody holds this identity."))
        customer = self.get_queryset().get(pk=customer.pk)
        return Response(self.get_serializer(customer).data)


class MergeRecordViewSet(RestrictedReadOnlyViewSet):
    """OneID merges: who was merged into whom, by which rule. ``split`` undoes one."""

    queryset = MergeRecord.objects.select_related("brand", "undone_by")
    serializer_class = MergeRecordSerializer
    filterset_class = MergeRecordFilterSet
    ordering_fields = ["created", "kept_oneid", "merged_oneid"]
    ordering = ["-created", "-pk"]
    action_permissions = {"split": "change"}

    @extend_schema(request=SplitSerializer, responses=MergeRecordSerializer)
    @action(detail=True, methods=["post"])
    def split(self, request, pk=None):
        merge = self.get_object()  # needs change on the merge (action_permissions)
        payload = SplitSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        merge = services.split(merge, user=request.user, reason=payload.validated_data["reason"])
        return Response(self.get_serializer(merge).data)


class ImportJobViewSet(RestrictedReadOnlyViewSet):
    """Import jobs: their progress and their report (bad rows with row number, column
    and message; row 1 is the header)."""

    queryset = ImportJob.objects.select_related("brand", "created_by")
    serializer_class = ImportJobSerializer
    filterset_class = ImportJobFilterSet
    ordering_fields = ["created", "finished_at"]
    ordering = ["-created", "-pk"]


class ImportView(APIView):
    """Bulk import of customers, identities, events or orders from a CSV or Parquet file
    (multipart: ``brand``, ``kind``, ``file``).

    The request only checks the file cheaply (its size, format, header, and rows and
    columns against the caps) and answers 400 with ``file`` (messages) and ``errors``
    (``row``, ``column``, ``message``) when it is refused; nothing is stored then.
    Otherwise the file is stored and imported by a background job: 202 with the job
    (``Location``: the job's URL, to follow its ``status``, ``progress`` and report).
    The job is all or nothing (a bad row fails it, nothing written), and rows whose
    ``client_id`` was imported before, even by an import running at the same time, are
    skipped, so sending a file again adds nothing."""

    queryset = ImportJob.objects.all()  # the permission class checks profiles.add_importjob
    parser_classes = [MultiPartParser, FormParser]
    throttle_scope = "import"

    @extend_schema(
        request={"multipart/form-data": ImportRequestSerializer},
        responses={202: ImportJobSerializer, 400: ImportRefusedSerializer},
    )
    def post(self, request):
        payload = ImportRequestSerializer(data=request.data, context={"request": request})
        payload.is_valid(raise_exception=True)
        upload = payload.validated_data["file"]
        try:
            job = imports.queue_import(
                payload.validated_data["brand"], payload.validated_data["kind"], upload, user=request.user
            )
        except imports.UploadRefused as exc:
            return Response({"file": exc.messages, "errors": exc.errors}, status=status.HTTP_400_BAD_REQUEST)
        job.refresh_from_db()  # run in place when tasks run eagerly (the test suite)
        location = reverse("importjob-detail", args=[job.pk], request=request)
        return Response(
            ImportJobSerializer(job, context={"request": request}).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": location},
        )
