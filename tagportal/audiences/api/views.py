"""REST API of audiences: estimate an expression while building it; audiences (create,
read, edit, archive), refresh, snapshots and who joined or left between two of them,
export as CSV, re-pin (with a data steward's approval for a live audience), lookalike.

Every write goes through :mod:`.services`. The queryset is scoped with
``restrict(user, "view")``: another brand's audience answers 404. Bad input (a
malformed rule, an unknown tag or value, another brand) answers 400 naming it, and
nothing is written."""

from __future__ import annotations

from itertools import islice

import django_filters
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from tagportal.core import spreadsheets
from tagportal.core.api import RestrictedModelViewSet
from tagportal.core.filters import FilterSet
from tagportal.profiles.choices import IdentityType

from .. import services
from ..choices import AudienceKind, AudienceStatus
from ..models import Audience, AudienceSnapshot
from .serializers import (
    AudienceCreateSerializer,
    AudienceDetailSerializer,
    AudienceSerializer,
    AudienceUpdateSerializer,
    DiffSerializer,
    EstimateRequestSerializer,
    EstimateSerializer,
    LookalikeRequestSerializer,
    SnapshotSerializer,
)

#: At most this many OneIDs of each side in a diff.
MAX_DIFF_IDS = 1000


DEFAULT_DIFF_IDS = 100


class AudienceFilterSet(FilterSet):
    brand = django_filters.CharFilter(field_name="brand__code", label=gettext_lazy("brand code"))
    business_line = django_filters.CharFilter(
        field_name="business_line__code", label=gettext_lazy("business line code")
    )
    status = django_filters.MultipleChoiceFilter(choices=AudienceStatus.choices)
    kind = django_filters.ChoiceFilter(choices=AudienceKind.choices)
    is_live = django_filters.BooleanFilter()
    tag = django_filters.CharFilter(field_name="tags__code", distinct=True, label=gettext_lazy("tag code"))

    class Meta:
        model = Audience
        fields = []


class EstimateView(APIView):
    """Count an expression among a brand's people while the audience is being built:
    nothing is saved. An unknown tag or value answers 400 naming it."""

    permission_classes = [IsAuthenticated]
    throttle_scope = "estimate"

    @extend_schema(request=EstimateRequestSerializer, responses={200: EstimateSerializer})
    def post(self, request):
        payload = EstimateRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        code = str(payload.validated_data["brand"])
        result = services.estimate(request.user, code, payload.validated_data["expression"])
        return Response(EstimateSerializer(result).data)


def _int_param(request, name: str, default=None, low=None, high=None):
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValidationError({name: [_("Expected a whole number.")]}) from exc
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValidationError({name: [_("Between %(low)s and %(high)s.") % {"low": low, "high": high}]})
    return value


class AudienceViewSet(RestrictedModelViewSet):
    """Saved audiences. Creating and editing validate the expression against the brand's
    tags and pin the tags' current result versions; deleting archives. ``refresh`` takes
    a snapshot now; ``snapshots`` lists the membership history, ``diff`` who joined and
    left; ``export`` downloads the members; ``repin`` moves the pins to the newer
    versions (a live audience waits for ``approve-repin`` by a data steward);
    ``lookalike`` expands the audience into a new one."""

    queryset = Audience.objects.select_related(
        "brand", "business_line", "owner", "repin_requested_by"
    ).prefetch_related("tags")
    serializer_class = AudienceSerializer
    filterset_class = AudienceFilterSet
    search_fields = ["name", "description", "expression_text"]
    ordering_fields = ["name", "size", "last_calculated_at", "created", "last_updated"]
    ordering = ["brand__code", "name", "pk"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    action_permissions = {
        "destroy": "change",  # deleting archives: a change
        "refresh": "change",
        "repin": "change",
        "approve_repin": "view",  # the service checks audiences.approve_repin and the steward's grant
        "snapshots": "view",
        "diff": "view",
        "export": "view",  # the service checks the export permissions
        "lookalike": "add",
    }

    def get_serializer_class(self):
        if self.action == "retrieve":
            return AudienceDetailSerializer
        if self.action == "create":
            return AudienceCreateSerializer
        if self.action == "partial_update":
            return AudienceUpdateSerializer
        return super().get_serializer_class()

    def perform_content_negotiation(self, request, force=False):
        if getattr(self, "action", None) == "export":
            renderer = JSONRenderer()  # the CSV is a plain response; errors answer JSON
            return renderer, renderer.media_type
        return super().perform_content_negotiation(request, force)

    def _detail(self, audience, code=status.HTTP_200_OK):
        audience = Audience.objects.select_related(
            "brand", "business_line", "owner", "repin_requested_by"
        ).get(pk=audience.pk)
        return Response(
            AudienceDetailSerializer(audience, context=self.get_serializer_context()).data, status=code
        )

    @extend_schema(request=AudienceCreateSerializer, responses={201: AudienceDetailSerializer})
    def create(self, request, *args, **kwargs):
        payload = AudienceCreateSerializer(data=request.data, context=self.get_serializer_context())
        payload.is_valid(raise_exception=True)
        audience = services.create_audience(request.user, **payload.validated_data)
        return self._detail(audience, status.HTTP_201_CREATED)

    @extend_schema(request=AudienceUpdateSerializer, responses={200: AudienceDetailSerializer})
    def partial_update(self, request, *args, **kwargs):
        audience = self.get_object()
        fixed = sorted(set(request.data) - set(services.EDITABLE_FIELDS))
        if fixed:
            raise ValidationError({name: [_("This field cannot be changed.")] for name in fixed})
        payload = AudienceUpdateSerializer(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        audience = services.update_audience(request.user, audience, **payload.validated_data)
        return self._detail(audience)

    def destroy(self, request, *args, **kwargs):
        """Archive the audience (its snapshots are kept)."""
        services.archive_audience(request.user, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=None,
        responses={
            200: SnapshotSerializer,
            202: OpenApiResponse(description=gettext_lazy("A newer refresh was requested meanwhile.")),
        },
    )
    @action(detail=True, methods=["post"])
    def refresh(self, request, pk=None):
        """Take a snapshot now. 409 when a tag's result moved past the pinned version
        (re-pin first) or the audience is archived or a lookalike."""
        snapshot = services.refresh(self.get_object(), "manual", request.user)
        if snapshot is None:
            return Response(
                {"detail": _("A newer refresh was requested meanwhile; it stores the snapshot.")},
                status=status.HTTP_202_ACCEPTED,
            )
        return Response(SnapshotSerializer(snapshot).data)

    @extend_schema(responses=SnapshotSerializer(many=True))
    @action(detail=True, methods=["get"])
    def snapshots(self, request, pk=None):
        """The membership history, newest first: size and who joined and left at each refresh."""
        audience = self.get_object()
        rows = AudienceSnapshot.objects.filter(audience=audience).defer("bitmap").order_by("-number")
        page = self.paginate_queryset(rows)
        data = SnapshotSerializer(page if page is not None else rows, many=True).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "against",
                OpenApiTypes.INT,
                description=gettext_lazy("the snapshot number to compare with (default: the one before)"),
            ),
            OpenApiParameter(
                "limit",
                OpenApiTypes.INT,
                description=gettext_lazy("OneIDs listed on each side, at most 1000 (default 100)"),
            ),
        ],
        responses=DiffSerializer,
    )
    @action(detail=True, methods=["get"], url_path=r"snapshots/(?P<number>[0-9]+)/diff")
    def diff(self, request, pk=None, number=None):
        """Who joined and who left between two snapshots (counts, and the first OneIDs)."""
        audience = self.get_object()
        snapshot = get_object_or_404(AudienceSnapshot, audience=audience, number=int(number))
        limit = _int_param(request, "limit", DEFAULT_DIFF_IDS, 0, MAX_DIFF_IDS)
        against_number = _int_param(request, "against", None, 1, None)
        previous = None
        if against_number is not None:
            previous = AudienceSnapshot.objects.filter(audience=audience, number=against_number).first()
            if previous is None:
                raise ValidationError(
                    {"against": [_("The audience has no snapshot %(n)s.") % {"n": against_number}]}
                )
        else:
            previous = services.previous_snapshot(snapshot)
        diff = services.snapshot_diff(snapshot, previous)
        data = {
            "number": snapshot.number,
            "against": previous.number if previous is not None else None,
            "joined": len(diff["joined"]),
            "left": len(diff["left"]),
            "joined_oneids": list(islice(diff["joined"], limit)),
            "left_oneids": list(islice(diff["left"], limit)),
            "limit": limit,
        }
        return Response(DiffSerializer(data).data)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "identity_type",
                OpenApiTypes.STR,
                enum=IdentityType.values,
                description=gettext_lazy(
                    "export identities of this type instead of OneIDs (masked without the PII permission)"
                ),
            )
        ],
        responses={(200, "text/csv"): OpenApiTypes.BINARY},
    )
    @action(detail=True, methods=["get"])
    def export(self, request, pk=None):
        """The members at the latest snapshot as a CSV (UTF-8 with a byte order mark)."""
        audience = self.get_object()
        identity_type = request.query_params.get("identity_type") or None
        chunks = services.export_csv_chunks(request.user, audience, identity_type)
        return spreadsheets.streaming_attachment(chunks, f"{audience.name}-{identity_type or 'oneid'}.csv")

    @extend_schema(
        request=None,
        responses={
            200: AudienceDetailSerializer,
            202: OpenApiResponse(
                AudienceDetailSerializer, description=gettext_lazy("Live audience: waiting for approval.")
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def repin(self, request, pk=None):
        """Pin the newer versions of the tags and refresh; a live audience waits for a
        data steward's approval instead (202)."""
        audience = services.repin(request.user, self.get_object())
        waiting = audience.repin_requested_at is not None
        return self._detail(audience, status.HTTP_202_ACCEPTED if waiting else status.HTTP_200_OK)

    @extend_schema(request=None, responses={200: AudienceDetailSerializer})
    @action(detail=True, methods=["post"], url_path="approve-repin")
    def approve_repin(self, request, pk=None):
        """Apply a requested re-pin of a live audience (a data steward of its business
        line, not the requester)."""
        audience = services.approve_repin(request.user, self.get_object())
        return self._detail(audience)

    @extend_schema(request=LookalikeRequestSerializer, responses={201: AudienceDetailSerializer})
    @action(detail=True, methods=["post"])
    def lookalike(self, request, pk=None):
        """A new audience of the people who most resemble this one (members of this one
        excluded): the best ``size`` of them, or all scoring at least ``threshold``."""
        from .. import lookalike

        seed = self.get_object()
        payload = LookalikeRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        audience = lookalike.create_lookalike(
            request.user,
            seed,
            size=data.get("size"),
            threshold=data.get("threshold"),
            name=data.get("name", ""),
        )
        return self._detail(audience, status.HTTP_201_CREATED)
